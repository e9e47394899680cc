"""A visitor's consent history as a consent record the privacy world reads: W3C DPV terms, ISO/IEC TS 27560.

ISO/IEC TS 27560 ("consent record information structure") says what a consent record holds; the W3C Data
Privacy Vocabulary (DPV) gives the terms its JSON-LD uses. The mapping, field by field, is in
``docs/consent-record.md``. In short: one ``dpv:ConsentRecord`` per consent id, holding one record per
purpose (category) with its current status, and every event of the log as a dated consent event. Where a
field of ours has no DPV term (the banner version, the hash chain) it goes under the ``cg:`` namespace
rather than be dressed up as something it is not.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .config import Config
from .consent import ConsentRecord
from .events import (
    CONSENT_GIVEN,
    CONSENT_UPDATED,
    CONSENT_WITHDRAWN,
    DATA_ERASED,
    GPC_APPLIED,
    PROCESSING_OBJECTED,
    SYNCED_FROM,
    SYNCED_FROM_ACCOUNT,
    ConsentEvent,
)

DPV: Final = "https://w3id.org/dpv#"
#: Version of the vocabulary the record follows (DPV 2.x namespace, the one TS 27560's annex points to).
CONTEXT: Final[dict[str, Any]] = {
    "dpv": DPV,
    "eu-gdpr": "https://w3id.org/dpv/legal/eu/gdpr#",
    "dct": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "cg": "https://consent-gateway.invalid/ns#",
}
SCHEMA_VERSION: Final = "ISO/IEC TS 27560:2023 (W3C DPV)"
#: Our categories → the closest DPV purpose; a site's own categories become plain ``dpv:Purpose``.
PURPOSES: Final[Mapping[str, str]] = {
    "necessary": "dpv:ServiceProvision",
    "analytics": "dpv:ServiceUsageAnalytics",
    "session-replay": "dpv:ServiceOptimisation",
    "marketing": "dpv:Marketing",
    "preferences": "dpv:ServicePersonalisation",
    "unclassified": "dpv:Purpose",
}
#: Event actions → DPV consent status after the event (for a category the event grants or refuses).
_GIVEN_OR_REFUSED: Final = frozenset({CONSENT_GIVEN, CONSENT_UPDATED, GPC_APPLIED, SYNCED_FROM, SYNCED_FROM_ACCOUNT})
_WITHDRAWN: Final = frozenset({CONSENT_WITHDRAWN, PROCESSING_OBJECTED, DATA_ERASED})


def _iso(timestamp_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp_ms / 1000))


def status_after(event: ConsentEvent, category: str) -> str:
    """The DPV consent status a category has after this event."""
    granted = event.categories.get(category)
    if event.action in _WITHDRAWN:
        return "dpv:ConsentWithdrawn"
    if event.action in _GIVEN_OR_REFUSED:
        return "dpv:ConsentGiven" if granted else "dpv:ConsentRefused"
    return "dpv:ConsentStatus"


def consent_record(
    config: Config,
    consent_id: str,
    events: Sequence[ConsentEvent],
    current: ConsentRecord | None,
    *,
    site: str,
    language: str,
) -> dict[str, Any]:
    """The visitor's consent record as DPV JSON-LD (see the module docstring and docs/consent-record.md)."""
    prefix = config.gateway.prefix.rstrip("/")
    purposes = []
    for category in config.categories:
        label = category.label.get(language) or category.label.get("en") or category.id
        entry: dict[str, Any] = {
            "@type": PURPOSES.get(category.id, "dpv:Purpose"),
            "dct:identifier": category.id,
            "dct:title": {"@value": label, "@language": language},
        }
        if category.required:
            # strictly necessary: exempt from consent (ePrivacy art. 5(3)), so no consent status to give
            entry["cg:required"] = True
        else:
            last = next((e for e in reversed(events) if category.id in e.categories or e.action in _WITHDRAWN), None)
            status = status_after(last, category.id) if last is not None else "dpv:ConsentRequested"
            if current is None and last is not None and last.action not in _WITHDRAWN:
                status = "dpv:ConsentExpired"  # the choice no longer counts: a new policy version asks again
            entry["dpv:hasLegalBasis"] = {"@id": "eu-gdpr:A6-1-a"}  # consent
            entry["dpv:hasConsentStatus"] = {"@id": status}
        purposes.append(entry)
    return {
        "@context": CONTEXT,
        "@id": f"{site}{prefix}/me#{consent_id}",
        "@type": "dpv:ConsentRecord",
        "dct:conformsTo": SCHEMA_VERSION,
        "dpv:hasIdentifier": consent_id,
        # a pseudonym: the browser's consent id is the only identifier the gateway has for its visitor
        "dpv:hasDataSubject": {"@type": "dpv:DataSubject", "dpv:hasIdentifier": consent_id},
        "dpv:hasDataController": {"@type": "dpv:DataController", "dpv:hasAddress": site},
        "dpv:hasNotice": {
            "@type": "dpv:PrivacyNotice",
            "dct:identifier": config.policy.version,
            "dct:source": config.policy.privacy_policy_url or None,
        },
        "dpv:hasWithdrawalMethod": f"{site}{prefix}/me",
        "dct:created": _iso(events[0].timestamp_ms) if events else None,
        "dct:modified": _iso(events[-1].timestamp_ms) if events else None,
        "dpv:hasPurpose": purposes,
        # the log's events, oldest first: DPV has no term for a record's history, so ours names it
        "cg:history": [_consent_event(e) for e in events],
    }


def _consent_event(event: ConsentEvent) -> dict[str, Any]:
    return {
        "@type": "cg:ConsentEvent",
        "dct:identifier": event.event_id,
        "dct:date": {"@type": "xsd:dateTime", "@value": _iso(event.timestamp_ms)},
        "cg:action": event.action,
        "dpv:hasNotice": {"dct:identifier": event.policy_version},
        "cg:bannerVersion": event.banner_version,
        "cg:eventHash": event.hash,
        "dpv:hasConsentStatus": [
            {"dct:identifier": category, "dpv:hasConsentStatus": {"@id": status_after(event, category)}}
            for category in sorted(event.categories)
        ],
        "cg:globalPrivacyControl": event.gpc,
    }
