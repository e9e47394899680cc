"""Reads a visitor once per request: consent cookie, Global Privacy Control, region → `Decision`.

This runs on every proxied request, so it does the least it can: one pass over the headers, a cached
cookie verification (see `consent.ConsentCodec`), and a GeoIP lookup only when region rules differ by
country. Anything in doubt — no cookie, a bad one — yields the "nothing granted" decision. Two consent
cookies (a host-only one and a domain-wide one) are counted and read as the newest valid one; the scope then
asks for a repair (see `consent_cookie`), which the middleware adds to the response.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from . import metrics
from ._types import Scope
from .config import Config
from .consent import ConsentCodec, ConsentRecord
from .consent_cookie import ConsentCookie, CookieReading, cookie_values
from .decision import Decision
from .enrich import Enricher
from .network import client_ip, parse_ip
from .shared_pages import SharedPages
from .thirdparty import UNCLASSIFIED, site_of

__all__ = [
    "DECISION_SCOPE_KEY",
    "RECORD_SCOPE_KEY",
    "REPAIR_SCOPE_KEY",
    "VisitorReader",
    "cookie_values",
    "parse_cookies",
]

DECISION_SCOPE_KEY = "consent_gateway.decision"
RECORD_SCOPE_KEY = "consent_gateway.record"
#: set when the browser sent the consent cookie twice: the `CookieReading` to repair in the response
REPAIR_SCOPE_KEY = "consent_gateway.cookie_repair"
#: distinct (region, GPC, site) decisions of undecided visitors kept; a gateway serves a few sites
_UNDECIDED_CACHE_MAX = 1024


def parse_cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key:
            cookies.setdefault(key, value.strip())
    return cookies


class VisitorReader:
    def __init__(self, config: Config, codec: ConsentCodec, enricher: Enricher) -> None:
        self.config = config
        self.codec = codec
        self.enricher = enricher
        self.cookie = ConsentCookie(config, codec)
        self.cookie_name = config.cookie.name
        self._cookie_name_bytes = self.cookie_name.encode("latin-1")
        self._trusted = tuple(ipaddress.ip_network(n, strict=False) for n in config.gateway.trusted_proxies)
        self._needs_country = enricher.needs_country_per_request
        self._signal_headers = (b"sec-gpc", b"dnt") if config.privacy.honour_dnt else (b"sec-gpc",)
        required = config.required_categories
        everything = frozenset(config.category_ids)
        gpc_refused = frozenset(config.gateway.gpc_refuses)
        if "marketing" in gpc_refused:
            # a host nobody classified may well be an ad server: GPC refuses it with marketing
            gpc_refused |= {UNCLASSIFIED}
        # "report"/"allow": hosts nobody classified go through, whatever the region or the visitor's choice
        self._always = frozenset({UNCLASSIFIED}) if config.third_parties.unknown != "hold" else frozenset()
        opt_in = required | (self._always & everything)
        # The decisions for visitors without a valid choice, computed once (per site, see `undecided`).
        self._undecided_base = {
            ("opt-in", False): Decision(granted=opt_in),
            ("opt-in", True): Decision(granted=opt_in, gpc=True),
            ("opt-out", False): Decision(granted=everything, region="opt-out"),
            ("opt-out", True): Decision(granted=(everything - gpc_refused) | required, gpc=True, region="opt-out"),
            ("none", False): Decision(granted=everything, region="none"),
            ("none", True): Decision(granted=(everything - gpc_refused) | required, gpc=True, region="none"),
        }
        self._undecided: dict[tuple[str, bool, str], Decision] = {}
        self._always_granted = required | (self._always & everything)
        #: `[gateway] html_cache = "shared"`: one page for every visitor, their state in a readable cookie
        self.shared: SharedPages | None = None
        if config.gateway.html_cache == "shared":
            self.shared = SharedPages(config, codec, self._undecided_base[("opt-in", False)])

    def read(self, scope: Scope) -> Decision:
        cookie_header = b""
        gpc = False
        host = b""
        for key, value in scope["headers"]:
            if key == b"cookie":
                cookie_header = cookie_header + b"; " + value if cookie_header else value
            elif key in self._signal_headers:
                gpc = gpc or value.strip() == b"1"  # GPC, or DNT where the site honours it
            elif key == b"host":
                host = value
        site = site_of(host.decode("latin-1")) if host else self._server_site(scope)
        record = None
        if cookie_header and self._cookie_name_bytes in cookie_header:
            reading = self.read_cookie(cookie_header.decode("latin-1"))
            if reading.duplicated:
                scope[REPAIR_SCOPE_KEY] = reading
            record = reading.record
        if record is not None:
            scope[RECORD_SCOPE_KEY] = record
            return self.decision_for(record, gpc=gpc, site=site)
        region = self.region(scope) if self._needs_country else "opt-in"
        return self.undecided(region, gpc, site)

    def undecided(self, region: str, gpc: bool, site: str) -> Decision:
        """The decision for a visitor without a valid choice (cached: a handful exist per site)."""
        key = (region, gpc, site)
        decision = self._undecided.get(key)
        if decision is None:
            if len(self._undecided) >= _UNDECIDED_CACHE_MAX:
                self._undecided.clear()
            decision = self._undecided[key] = replace(self._undecided_base[(region, gpc)], site=site)
        return decision

    @staticmethod
    def _server_site(scope: Scope) -> str:
        """No Host header (HTTP/1.0): the address the request came to, as the ASGI server saw it."""
        server = scope.get("server")
        return site_of(str(server[0])) if server else ""

    def read_cookie(self, cookie_header: str) -> CookieReading:
        reading = self.cookie.read(cookie_header)
        if reading.duplicated:
            metrics.inc("consent_cookie_rejected_total", reason="duplicated")
        return reading

    def record_from_cookie(self, cookie_header: str) -> ConsentRecord | None:
        return self.read_cookie(cookie_header).record

    def decision_for(self, record: ConsentRecord, *, gpc: bool = False, site: str = "") -> Decision:
        granted = self._always_granted | {c for c, on in record.choices.items() if on}
        return Decision(
            granted=frozenset(granted),
            vendors_granted=frozenset(v for v, on in record.vendors.items() if on),
            vendors_refused=frozenset(v for v, on in record.vendors.items() if not on),
            consent_id=record.consent_id,
            explicit=True,
            gpc=gpc or record.gpc,
            site=site,
        )

    def client_ip(self, scope: Scope) -> str | None:
        return client_ip(scope, self._trusted)

    def region(self, scope: Scope) -> str:
        ip = self.client_ip(scope)
        country, _ = self.enricher.country(ip) if ip and parse_ip(ip) else (None, None)
        return self.enricher.region_rule(country)
