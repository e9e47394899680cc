"""Reads a visitor once per request: consent cookie, Global Privacy Control, region → `Decision`.

This runs on every proxied request, so it does the least it can: one pass over the headers, a cached
cookie verification (see `consent.ConsentCodec`), and a GeoIP lookup only when region rules differ by
country. Anything in doubt — no cookie, a bad one, two of them — yields the "nothing granted" decision.
"""

from __future__ import annotations

import ipaddress

from . import metrics
from ._types import Scope
from .config import Config
from .consent import ConsentCodec, ConsentRecord
from .decision import Decision
from .enrich import Enricher
from .network import client_ip, parse_ip

DECISION_SCOPE_KEY = "consent_gateway.decision"
RECORD_SCOPE_KEY = "consent_gateway.record"


def cookie_values(header: str, name: str) -> list[str]:
    """Every value of one cookie in a Cookie header (a duplicated consent cookie is suspicious)."""
    if name not in header:
        return []
    values = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            values.append(value.strip().strip('"'))
    return values


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
        self.cookie_name = config.cookie.name
        self._cookie_name_bytes = self.cookie_name.encode("latin-1")
        self._trusted = tuple(ipaddress.ip_network(n, strict=False) for n in config.gateway.trusted_proxies)
        self._needs_country = enricher.needs_country_per_request
        required = config.required_categories
        everything = frozenset(config.category_ids)
        gpc_refused = frozenset(config.gateway.gpc_refuses)
        # The decisions for visitors without a valid choice, computed once.
        self._undecided = {
            ("opt-in", False): Decision(granted=required),
            ("opt-in", True): Decision(granted=required, gpc=True),
            ("opt-out", False): Decision(granted=everything, region="opt-out"),
            ("opt-out", True): Decision(granted=(everything - gpc_refused) | required, gpc=True, region="opt-out"),
            ("none", False): Decision(granted=everything, region="none"),
            ("none", True): Decision(granted=(everything - gpc_refused) | required, gpc=True, region="none"),
        }
        self._required = required

    def read(self, scope: Scope) -> Decision:
        cookie_header = b""
        gpc = False
        for key, value in scope["headers"]:
            if key == b"cookie":
                cookie_header = cookie_header + b"; " + value if cookie_header else value
            elif key == b"sec-gpc":
                gpc = value.strip() == b"1"
        record = None
        if cookie_header and self._cookie_name_bytes in cookie_header:
            record = self.record_from_cookie(cookie_header.decode("latin-1"))
        if record is not None:
            scope[RECORD_SCOPE_KEY] = record
            return self.decision_for(record, gpc=gpc)
        region = self.region(scope) if self._needs_country else "opt-in"
        return self._undecided[(region, gpc)]

    def record_from_cookie(self, cookie_header: str) -> ConsentRecord | None:
        values = cookie_values(cookie_header, self.cookie_name)
        if len(values) != 1:
            if values:
                metrics.inc("consent_cookie_rejected_total", reason="duplicated")
            return None
        return self.codec.decode(values[0])

    def decision_for(self, record: ConsentRecord, *, gpc: bool = False) -> Decision:
        granted = self._required | {c for c, on in record.choices.items() if on}
        return Decision(
            granted=frozenset(granted),
            vendors_granted=frozenset(v for v, on in record.vendors.items() if on),
            vendors_refused=frozenset(v for v, on in record.vendors.items() if not on),
            consent_id=record.consent_id,
            explicit=True,
            gpc=gpc or record.gpc,
        )

    def client_ip(self, scope: Scope) -> str | None:
        return client_ip(scope, self._trusted)

    def region(self, scope: Scope) -> str:
        ip = self.client_ip(scope)
        country, _ = self.enricher.country(ip) if ip and parse_ip(ip) else (None, None)
        return self.enricher.region_rule(country)
