"""Facts about a visitor for the consent log and region rules: country, browser, the minimised IP.

Why each piece looks the way it does:

* **Client IP** comes from :mod:`consent_gateway.network` (trusted proxies only).
* **Country before minimisation.** The country is looked up on the full address, in memory; only the
  minimised IP (``truncated``: IPv4 /24, IPv6 /48; ``hashed``: keyed HMAC; or ``full``) leaves this
  module. No full IP is ever logged here.
* **GeoIP fails soft.** A missing, unreadable or corrupt database means "country unknown" with one
  warning, never a crash; unknown countries get the safe rule (opt-in).
* **Regions.** ``is_in_european_union`` is not the GDPR's reach: the EEA (NO, IS, LI) is not in the EU, the
  UK has the UK GDPR and Switzerland the FADP. :data:`GDPR_LIKE_COUNTRIES` are opt-in unless the site
  names them in ``region_countries``, whatever ``region_default`` says.
* **User agents** are parsed with ua-parser 1.x (its native ``ua-parser-rs`` resolver when installed, the
  pure-Python one otherwise: same regexes, same results) behind a bounded LRU cache, and classified with
  ``user-agents``' device rules. Traffic repeats a few hundred user agents, so the cache carries the load.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.util
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, Final

from .errors import ConfigError
from .network import IPAddress, parse_ip

logger = logging.getLogger("consent_gateway.enrich")

IP_MODES: Final = ("full", "truncated", "hashed")
REGION_RULES: Final = ("opt-in", "opt-out", "none")

#: EU member states (for documentation and tests; the database's flag is what ``is_eu`` reports).
EU_COUNTRIES: Final = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)
#: Countries under the GDPR or a law modelled on it: EU + EEA (NO, IS, LI) + UK + CH.
GDPR_LIKE_COUNTRIES: Final = EU_COUNTRIES | frozenset({"NO", "IS", "LI", "GB", "CH"})

#: User agents longer than this are cut before parsing: bounds regex cost and cache memory.
UA_MAX_CHARS: Final = 512
UA_CACHE_SIZE: Final = 4096
HASHED_IP_HEX_CHARS: Final = 32  # 128 bits of HMAC-SHA256

#: Python packages that ship a GeoLite2 database, tried in order when no path is configured:
#: (import name, file inside the package). Not dependencies: used only when a site installed one.
_EMBEDDED_GEOIP: Final = (
    ("geolite2", "GeoLite2-City.mmdb"),  # maxminddb-geolite2
    ("_geoip_geolite2", "GeoLite2-City.mmdb"),  # python-geoip-geolite2
)



@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    browser_family: str
    browser_version: str
    os_family: str
    os_version: str
    #: "mobile" | "tablet" | "desktop" | "bot" | "other"
    device_type: str


UNKNOWN_UA: Final = UserAgentInfo("Other", "", "Other", "", "other")


@dataclass(frozen=True, slots=True)
class VisitorFacts:
    #: minimised per the privacy mode; None when there was no usable address
    ip: str | None
    #: ISO 3166-1 alpha-2, or None when unknown
    country: str | None
    is_eu: bool | None
    #: "opt-in" | "opt-out" | "none"
    region_rule: str
    ua: UserAgentInfo


# -- user agents --------------------------------------------------------------------------------------


def _version(major: str | None, minor: str | None, patch: str | None) -> str:
    return ".".join(part for part in (major, minor, patch) if part)


class _UserAgentParser:
    """ua-parser 1.x with the best resolver installed, classified by ``user-agents``' device rules."""

    def __init__(self, *, native: bool | None = None) -> None:
        import ua_parser
        from ua_parser import Domain

        self._domains = Domain.ALL
        if native is None:
            native = ua_parser.RegexResolver is not None
        if native and ua_parser.RegexResolver is not None:  # ua-parser-rs: same regexes, matched in Rust
            self._resolver: Any = ua_parser.RegexResolver(ua_parser.load_lazy_builtins())
            self.native = True
        else:
            self._resolver = ua_parser.BasicResolver(ua_parser.load_builtins())
            self.native = False

    def parse(self, ua: str) -> UserAgentInfo:
        result = self._resolver(ua, self._domains).complete().with_defaults()  # failures → "Other"
        browser, os_ = result.user_agent, result.os
        return UserAgentInfo(
            browser_family=browser.family,
            browser_version=_version(browser.major, browser.minor, browser.patch),
            os_family=os_.family,
            os_version=_version(os_.major, os_.minor, os_.patch),
            device_type=_device_type(ua, result),
        )


def _device_type(ua: str, result: Any) -> str:
    """``user-agents``' classification (is_bot, is_tablet, is_mobile, is_pc) on an existing parse."""
    from user_agents.parsers import (  # type: ignore[import-untyped]
        UserAgent,
        parse_browser,
        parse_device,
        parse_operating_system,
    )

    classified = UserAgent.__new__(UserAgent)  # its __init__ would parse again with the legacy API
    classified.ua_string = ua
    b, o, d = result.user_agent, result.os, result.device
    classified.browser = parse_browser(b.family, b.major, b.minor, b.patch)
    classified.os = parse_operating_system(o.family, o.major, o.minor, o.patch)
    classified.device = parse_device(d.family, d.brand, d.model)
    if classified.is_bot:
        return "bot"
    if classified.is_tablet:
        return "tablet"
    if classified.is_mobile:
        return "mobile"
    if classified.is_pc:
        return "desktop"
    return "other"


# -- the enricher -------------------------------------------------------------------------------------


def _embedded_geoip_path() -> Path | None:
    """A GeoLite2 database shipped by an installed Python package, found without importing it."""
    for package, filename in _EMBEDDED_GEOIP:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / filename
            if candidate.is_file():
                return candidate
    return None


def ip_hash_key(secret_keys: Sequence[str]) -> bytes:
    """The key of hashed IPs, derived from the oldest signing key: putting a new key first does not change
    the IP hashes already in the log."""
    return hmac.new(secret_keys[-1].encode(), b"consent-gateway.ip-hash", hashlib.sha256).digest()


class Enricher:
    """Turns a request's IP and user agent into :class:`VisitorFacts`. Thread-safe; readers open lazily.

    :param ip_mode: ``full``, ``truncated`` (default) or ``hashed`` (HMAC-SHA256 with ``ip_hash_key``).
    :param geoip_database: path to a MaxMind database (GeoIP2 or GeoLite2; Country, City or Enterprise);
        ``None`` looks for a GeoLite2 database shipped by an installed package, else the country is unknown.
    :param region_default: the rule for known countries not named in ``region_countries`` and outside
        :data:`GDPR_LIKE_COUNTRIES` (which are opt-in unless named).
    :param region_unknown: the rule when the country is unknown (private address, no database).
    """

    def __init__(
        self,
        *,
        ip_mode: str = "truncated",
        ipv4_prefix: int = 24,
        ipv6_prefix: int = 48,
        ip_hash_key: bytes = b"",
        geoip_database: str | None = None,
        region_default: str = "opt-in",
        region_unknown: str = "opt-in",
        region_countries: Mapping[str, str] | None = None,
        ua_cache_size: int = UA_CACHE_SIZE,
    ) -> None:
        if ip_mode not in IP_MODES:
            raise ConfigError("privacy.ip_mode", f"expected one of {', '.join(IP_MODES)}, got {ip_mode!r}")
        if not 0 <= ipv4_prefix <= 32:
            raise ConfigError("privacy.ipv4_prefix", f"expected 0 to 32, got {ipv4_prefix!r}")
        if not 0 <= ipv6_prefix <= 128:
            raise ConfigError("privacy.ipv6_prefix", f"expected 0 to 128, got {ipv6_prefix!r}")
        if ip_mode == "hashed" and len(ip_hash_key) < 16:
            # an unkeyed or short-keyed hash of an IPv4 address is reversed by trying all 2**32
            raise ConfigError("privacy.ip_mode", "hashed IPs need a secret key of at least 16 bytes")
        for key, rule in (("regions.default", region_default), ("regions.unknown", region_unknown)):
            _check_rule(key, rule)
        countries: dict[str, str] = {}
        for country, rule in (region_countries or {}).items():
            _check_rule(f"regions.countries.{country}", rule)
            countries[country.upper()] = rule
        self.ip_mode = ip_mode
        self._ipv4_mask = ((1 << ipv4_prefix) - 1) << (32 - ipv4_prefix)
        self._ipv6_mask = ((1 << ipv6_prefix) - 1) << (128 - ipv6_prefix)
        self._ip_hash_key = bytes(ip_hash_key)
        self._geoip_path = geoip_database
        self._region_default = region_default
        self._region_unknown = region_unknown
        self._region_countries = countries
        self._lock = threading.Lock()
        self._geoip: Any = None  # maxminddb Reader once opened
        self._geoip_failed = False
        self._warned = False
        self._ua_parser: _UserAgentParser | None = None
        self._parse_ua = functools.lru_cache(maxsize=ua_cache_size)(self._parse_ua_uncached)

    # -- user agent

    def user_agent(self, ua: str | None) -> UserAgentInfo:
        if not ua:
            return UNKNOWN_UA
        return self._parse_ua(ua[:UA_MAX_CHARS])

    def _parse_ua_uncached(self, ua: str) -> UserAgentInfo:
        parser = self._ua_parser
        if parser is None:
            with self._lock:
                if self._ua_parser is None:
                    self._ua_parser = _UserAgentParser()
                parser = self._ua_parser
        try:
            return parser.parse(ua)
        except Exception:  # a parser bug must not cost the visitor their consent record
            logger.exception("user-agent parsing failed")
            return UNKNOWN_UA

    @property
    def uses_native_ua_parser(self) -> bool:
        if self._ua_parser is None:
            self.user_agent("Mozilla/5.0")
        return bool(self._ua_parser and self._ua_parser.native)

    # -- country

    def country(self, ip: str | None) -> tuple[str | None, bool | None]:
        """``(iso_code, is_in_european_union)``; ``(None, None)`` when unknown. Never raises."""
        return self._country(parse_ip(ip) if ip else None)

    def _country(self, address: IPAddress | None) -> tuple[str | None, bool | None]:
        if address is None or not address.is_global:  # private, loopback, link-local: nowhere
            return None, None
        reader = self._geoip if self._geoip is not None else self._geoip_reader()
        if reader is None:
            return None, None
        try:
            record = reader.get(address)
        except Exception as exc:  # a corrupt data section
            self._warn_once("GeoIP lookup failed (%s); country unknown", type(exc).__name__)
            return None, None
        country = record.get("country") if isinstance(record, dict) else None
        if not country or not country.get("iso_code"):
            return None, None
        return country["iso_code"], bool(country.get("is_in_european_union", False))

    def _geoip_reader(self) -> Any:
        if self._geoip is None and not self._geoip_failed:
            with self._lock:
                if self._geoip is None and not self._geoip_failed:
                    self._open_geoip()
        return self._geoip

    def _open_geoip(self) -> None:
        path = Path(self._geoip_path) if self._geoip_path else _embedded_geoip_path()
        if path is None:
            self._geoip_failed = True
            self._warn_once(
                "no GeoIP database configured or installed; every visitor's country is unknown "
                "and gets the %r rule",
                self._region_unknown,
            )
            return
        try:
            # the MMDB reader under geoip2, used directly: geoip2's model objects cost 3x the lookup
            import maxminddb

            reader = maxminddb.open_database(str(path))
        except Exception as exc:  # missing file, not an MMDB, corrupt metadata
            self._geoip_failed = True
            self._warn_once("cannot open GeoIP database %s (%s); country unknown", path, exc)
            return
        db_type = reader.metadata().database_type
        if not any(kind in db_type for kind in ("Country", "City", "Enterprise")):
            reader.close()
            self._geoip_failed = True
            self._warn_once(
                "GeoIP database %s is a %s database, not a country one; country unknown", path, db_type
            )
            return
        self._geoip = reader
        logger.info("GeoIP database %s (%s)", path, db_type)

    def _warn_once(self, message: str, *args: object) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(message, *args)

    def close(self) -> None:
        with self._lock:
            if self._geoip is not None:
                self._geoip.close()
                self._geoip = None

    # -- IP minimisation

    def minimise_ip(self, ip: str | None) -> str | None:
        """The IP as the log may keep it. An unparseable value gives None, never the raw text."""
        return self._minimise(parse_ip(ip) if ip else None)

    def _minimise(self, address: IPAddress | None) -> str | None:
        if address is None:
            return None
        if self.ip_mode == "full":
            return str(address)
        if self.ip_mode == "hashed":
            digest = hmac.new(self._ip_hash_key, address.packed, hashlib.sha256).hexdigest()
            return digest[:HASHED_IP_HEX_CHARS]
        if address.version == 4:
            return str(IPv4Address(int(address) & self._ipv4_mask))
        return str(IPv6Address(int(address) & self._ipv6_mask))

    # -- regions

    def region_rule(self, country: str | None) -> str:
        if not country:
            return self._region_unknown
        country = country.upper()
        rule = self._region_countries.get(country)
        if rule is not None:
            return rule
        if country in GDPR_LIKE_COUNTRIES:
            return "opt-in"
        return self._region_default

    @property
    def needs_country_per_request(self) -> bool:
        """True when the rule depends on the country, so the hot path must look it up."""
        if self._region_unknown != self._region_default or self._region_default != "opt-in":
            return True
        return any(rule != self._region_default for rule in self._region_countries.values())

    # -- all together

    def facts(self, ip: str | None, user_agent: str | None) -> VisitorFacts:
        address = parse_ip(ip) if ip else None
        country, is_eu = self._country(address)  # on the full address, before it is minimised
        return VisitorFacts(
            ip=self._minimise(address),
            country=country,
            is_eu=is_eu,
            region_rule=self.region_rule(country),
            ua=self.user_agent(user_agent),
        )


def _check_rule(key: str, rule: str) -> None:
    if rule not in REGION_RULES:
        raise ConfigError(key, f"expected one of {', '.join(REGION_RULES)}, got {rule!r}")
