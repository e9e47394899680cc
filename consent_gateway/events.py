"""The consent event: what the log keeps as proof of each choice.

The store helper owns the hash chain (``EventChain``); this module fixes the fields the visitor path fills.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

CONSENT_GIVEN: Final = "consent-given"  # first choice of a consent id
CONSENT_UPDATED: Final = "consent-updated"  # a later choice of the same consent id
CONSENT_WITHDRAWN: Final = "consent-withdrawn"  # DELETE /_consent/choices
GPC_APPLIED: Final = "gpc-applied"  # a choice made while Sec-GPC: 1 narrowed it
ACTIONS: Final = (CONSENT_GIVEN, CONSENT_UPDATED, CONSENT_WITHDRAWN, GPC_APPLIED)


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    event_id: str
    consent_id: str
    action: str
    #: category id → granted
    categories: dict[str, bool]
    #: vendor id → granted, only for vendors the visitor chose by name
    vendors: dict[str, bool]
    policy_version: str
    banner_version: str
    #: UTC, milliseconds since the epoch
    timestamp_ms: int
    page_path: str | None = None
    referrer_host: str | None = None
    #: already minimised per ``[privacy] ip_mode``: a full IP never reaches the log when truncation is on
    ip: str | None = None
    user_agent: str | None = None
    browser_family: str | None = None
    browser_version: str | None = None
    os_family: str | None = None
    os_version: str | None = None
    #: "mobile" | "tablet" | "desktop" | "bot" | "other"
    device_type: str | None = None
    country: str | None = None
    is_eu: bool | None = None
    #: the regional rule applied: "opt-in" | "opt-out" | "none"
    region_rule: str | None = None
    gpc: bool = False
    instance_id: str = ""
    prev_hash: str = ""
    hash: str = field(default="")
