"""The vendor catalog: which tags and cookies belong to which vendor and category.

Data, not code: the built-in entries live in ``catalog_data.toml``; the site's ``[[vendors]]`` tables add
entries or override fields of built-in ones (same ``id``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CookieRule:
    #: exact cookie name, or a prefix when it ends with ``*`` (``_ga_*``)
    pattern: str
    #: lifetime shown to visitors, e.g. "13 months", "session"
    lifetime: str = ""
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class VendorRule:
    id: str
    category: str
    name: str = ""
    policy_url: str = ""
    #: host patterns, matched label-aligned anywhere in the URL's host (see docs/architecture.md)
    script_hosts: tuple[str, ...] = ()
    iframe_hosts: tuple[str, ...] = ()
    img_hosts: tuple[str, ...] = ()
    link_hosts: tuple[str, ...] = ()
    #: URL path patterns for self-hosted tools on any host (Matomo: "/matomo.js", "/piwik.php")
    paths: tuple[str, ...] = ()
    #: substrings that identify the vendor's inline scripts ("fbq('init'", "gtag(")
    inline_signatures: tuple[str, ...] = ()
    cookies: tuple[CookieRule, ...] = ()
    #: vendor endpoints that /_consent/collect/{vendor}/… forwards to, only with consent
    beacon_endpoints: tuple[str, ...] = ()
