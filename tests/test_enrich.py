"""Enrichment: client IP behind proxies, IP minimisation, GeoIP country and regions, user agents."""

from __future__ import annotations

import logging
import shutil
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent_gateway import enrich
from consent_gateway.enrich import (
    GDPR_LIKE_COUNTRIES,
    UNKNOWN_UA,
    Enricher,
    UserAgentInfo,
)
from consent_gateway.errors import ConfigError
from consent_gateway.network import client_ip

GEOIP_DIR = Path(__file__).parent / "data" / "geoip"
COUNTRY_DB = GEOIP_DIR / "GeoLite2-Country-Test.mmdb"
CITY_DB = GEOIP_DIR / "GeoIP2-City-Test.mmdb"
HASH_KEY = b"0123456789abcdef-test-key"

# Real user-agent strings as browsers and crawlers send them, with what a privacy team should read.
REAL_USER_AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        UserAgentInfo("Chrome", "120.0.0", "Windows", "10", "desktop"),
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Safari/605.1.15",
        UserAgentInfo("Safari", "17.1", "Mac OS X", "10.15.7", "desktop"),
    ),
    (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        UserAgentInfo("Firefox", "121.0", "Ubuntu", "", "desktop"),
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
        UserAgentInfo("Edge", "120.0.2210", "Windows", "10", "desktop"),
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1.2 Mobile/15E148 Safari/604.1",
        UserAgentInfo("Mobile Safari", "17.1.2", "iOS", "17.1.2", "mobile"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-S908B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/112.0.0.0 Mobile Safari/537.36",
        UserAgentInfo("Chrome Mobile", "112.0.0", "Android", "13", "mobile"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 "
        "Chrome/115.0.0.0 Mobile Safari/537.36",
        UserAgentInfo("Samsung Internet", "23.0", "Android", "10", "mobile"),
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1",
        UserAgentInfo("Mobile Safari", "16.6", "iOS", "16.6", "tablet"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 12; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/114.0.0.0 Safari/537.36",
        UserAgentInfo("Chrome", "114.0.0", "Android", "12", "tablet"),
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        UserAgentInfo("Googlebot", "2.1", "Other", "", "bot"),
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        UserAgentInfo("bingbot", "2.0", "Other", "", "bot"),
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
        UserAgentInfo("GPTBot", "1.0", "Other", "", "bot"),
    ),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        UserAgentInfo("FacebookBot", "1.1", "Other", "", "bot"),
    ),
    ("curl/8.4.0", UserAgentInfo("curl", "8.4.0", "Other", "", "other")),
    (
        "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
        UserAgentInfo("IE", "11.0", "Windows", "7", "desktop"),
    ),
]


@pytest.fixture
def enricher() -> Enricher:
    return Enricher(geoip_database=str(COUNTRY_DB))


def http_scope(peer: str | None, *forwarded: str) -> dict[str, object]:
    return {
        "type": "http",
        "client": (peer, 51000) if peer else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


# -- user agents --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ua", "expected"), REAL_USER_AGENTS, ids=lambda v: getattr(v, "browser_family", None))
def test_real_user_agents_are_parsed_and_classified(enricher: Enricher, ua: str, expected: UserAgentInfo) -> None:
    assert enricher.user_agent(ua) == expected


def test_pure_python_resolver_gives_the_same_results_as_the_native_one() -> None:
    native = enrich._UserAgentParser()
    pure = enrich._UserAgentParser(native=False)
    assert native.native, "ua-parser-rs is a test dependency: the fast path must be the one measured"
    assert not pure.native
    for ua, _ in REAL_USER_AGENTS:
        assert pure.parse(ua) == native.parse(ua)


def test_device_type_agrees_with_user_agents_library() -> None:
    import user_agents

    parser = enrich._UserAgentParser()
    for ua, _ in REAL_USER_AGENTS:
        reference = user_agents.parse(ua)
        if reference.is_bot:
            expected = "bot"
        elif reference.is_tablet:
            expected = "tablet"
        elif reference.is_mobile:
            expected = "mobile"
        elif reference.is_pc:
            expected = "desktop"
        else:
            expected = "other"
        info = parser.parse(ua)
        assert info.device_type == expected, ua
        assert info.browser_family == reference.browser.family
        assert info.browser_version == reference.browser.version_string


def test_missing_or_odd_user_agents_never_fail(enricher: Enricher) -> None:
    assert enricher.user_agent(None) == UNKNOWN_UA
    assert enricher.user_agent("") == UNKNOWN_UA
    assert enricher.user_agent("\x00\xff garbage ((((").device_type == "other"
    huge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " + "A" * 100_000
    assert enricher.user_agent(huge).os_family == "Windows"


def test_user_agent_cache_is_bounded_and_reused() -> None:
    enricher = Enricher(ua_cache_size=2)
    first = enricher.user_agent(REAL_USER_AGENTS[0][0])
    assert enricher.user_agent(REAL_USER_AGENTS[0][0]) is first
    for ua, _ in REAL_USER_AGENTS[1:4]:
        enricher.user_agent(ua)
    info = enricher._parse_ua.cache_info()
    assert info.currsize == 2
    assert info.hits == 1


# -- client IP ----------------------------------------------------------------------------------------

PROXIES = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]


def test_peer_is_the_client_when_no_proxy_is_trusted() -> None:
    assert client_ip(http_scope("203.0.113.7", "198.51.100.1"), []) == "203.0.113.7"


def test_forwarded_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_ip(http_scope("203.0.113.7", "198.51.100.1"), PROXIES) == "203.0.113.7"


def test_trusted_proxy_gives_right_most_untrusted_address() -> None:
    # the visitor forged the first hop; our proxy appended what it saw, then a second proxy of ours
    scope = http_scope("10.0.0.2", "1.1.1.1, 198.51.100.9, 10.0.0.5")
    assert client_ip(scope, PROXIES) == "198.51.100.9"


def test_several_forwarded_headers_are_read_in_order() -> None:
    scope = http_scope("10.0.0.2", "1.1.1.1", "198.51.100.9,10.0.0.5")
    assert client_ip(scope, PROXIES) == "198.51.100.9"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("198.51.100.9:4711", "198.51.100.9"),
        ("2001:db8::7", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
        (" 2001:DB8:0:0::7 ", "2001:db8::7"),
    ],
)
def test_forwarded_address_forms(forwarded: str, expected: str) -> None:
    assert client_ip(http_scope("10.0.0.2", forwarded), PROXIES) == expected


@pytest.mark.parametrize("forwarded", ["unknown", "_hidden", "not an ip", "[2001:db8::7", "1.2.3.4.5", "", ","])
def test_garbage_in_forwarded_header_falls_back_to_the_peer(forwarded: str) -> None:
    assert client_ip(http_scope("10.0.0.2", forwarded), PROXIES) == "10.0.0.2"


def test_ipv6_trusted_proxy() -> None:
    assert client_ip(http_scope("fd00::1", "2001:db8::7"), PROXIES) == "2001:db8::7"


def test_all_hops_trusted_gives_the_left_most() -> None:
    assert client_ip(http_scope("10.0.0.2", "10.1.1.1, 10.0.0.5"), PROXIES) == "10.1.1.1"


def test_no_client_in_scope() -> None:
    assert client_ip(http_scope(None, "198.51.100.9"), PROXIES) is None


# -- IP minimisation ----------------------------------------------------------------------------------


def test_truncation_defaults_to_ipv4_24_and_ipv6_48() -> None:
    enricher = Enricher()
    assert enricher.minimise_ip("89.160.20.112") == "89.160.20.0"
    assert enricher.minimise_ip("2a02:cfc0:1234:5678::1") == "2a02:cfc0:1234::"
    assert enricher.minimise_ip("::ffff:89.160.20.112") == "89.160.20.0"


def test_truncation_prefixes_are_configurable() -> None:
    enricher = Enricher(ipv4_prefix=16, ipv6_prefix=32)
    assert enricher.minimise_ip("89.160.20.112") == "89.160.0.0"
    assert enricher.minimise_ip("2a02:cfc0:1234:5678::1") == "2a02:cfc0::"


def test_full_mode_keeps_the_address_normalised() -> None:
    assert Enricher(ip_mode="full").minimise_ip("2A02:CFC0:0::1") == "2a02:cfc0::1"


def test_hashed_mode_is_keyed_and_never_shows_the_address() -> None:
    one = Enricher(ip_mode="hashed", ip_hash_key=HASH_KEY)
    other = Enricher(ip_mode="hashed", ip_hash_key=HASH_KEY + b"2")
    hashed = one.minimise_ip("89.160.20.112")
    assert hashed is not None and len(hashed) == 32
    assert set(hashed) <= set("0123456789abcdef")  # an opaque token, not an address
    assert one.minimise_ip("89.160.20.112") == hashed  # same visitor, same value: histories still join
    assert one.minimise_ip("::ffff:89.160.20.112") == hashed
    assert one.minimise_ip("89.160.20.113") != hashed
    assert other.minimise_ip("89.160.20.112") != hashed


def test_hashed_mode_without_a_real_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as excinfo:
        Enricher(ip_mode="hashed")
    assert excinfo.value.key == "privacy.ip_mode"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"ip_mode": "partial"}, "privacy.ip_mode"),
        ({"ipv4_prefix": 33}, "privacy.ipv4_prefix"),
        ({"ipv6_prefix": -1}, "privacy.ipv6_prefix"),
        ({"region_default": "maybe"}, "regions.default"),
        ({"region_countries": {"US": "opt_out"}}, "regions.countries.US"),
    ],
)
def test_bad_settings_name_their_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Enricher(**kwargs)  # type: ignore[arg-type]
    assert excinfo.value.key == key


def test_unparseable_ip_is_never_passed_through() -> None:
    assert Enricher(ip_mode="full").minimise_ip("<script>") is None
    assert Enricher().minimise_ip(None) is None


# -- GeoIP --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("database", [COUNTRY_DB, CITY_DB], ids=["country-db", "city-db"])
@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("89.160.20.112", ("SE", True)),
        ("81.2.69.142", ("GB", False)),
        ("2a02:cfc0::1", ("FR", True)),
        ("2a02:cf40::1", ("NO", False)),
        ("2a02:d000::1", ("CH", False)),
        ("216.160.83.56", ("US", False)),
        ("127.0.0.1", (None, None)),
        ("10.0.0.1", (None, None)),
        ("::1", (None, None)),
        ("192.0.2.1", (None, None)),
        ("garbage", (None, None)),
        (None, (None, None)),
    ],
)
def test_country_and_eu_membership(database: Path, ip: str | None, expected: tuple[object, object]) -> None:
    assert Enricher(geoip_database=str(database)).country(ip) == expected


def test_country_is_looked_up_before_truncation(enricher: Enricher) -> None:
    facts = enricher.facts("89.160.20.112", REAL_USER_AGENTS[0][0])
    assert facts.ip == "89.160.20.0"
    assert (facts.country, facts.is_eu) == ("SE", True)
    # the truncated address alone is not in the database: the country came from the full one
    assert enricher.country("89.160.20.0") == (None, None)
    assert facts.ua.browser_family == "Chrome"
    assert facts.region_rule == "opt-in"


def test_missing_database_warns_once_and_never_fails(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    enricher = Enricher(geoip_database=str(tmp_path / "nope.mmdb"))
    with caplog.at_level(logging.WARNING, logger="consent_gateway.enrich"):
        results = [enricher.facts(ip, None) for ip in ("89.160.20.112", "81.2.69.142", "2a02:cfc0::1")]
    assert [(f.country, f.is_eu, f.region_rule) for f in results] == [(None, None, "opt-in")] * 3
    assert len(caplog.records) == 1
    assert "nope.mmdb" in caplog.text


def test_corrupt_database_warns_once_and_logs_no_ip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "broken.mmdb"
    data = bytearray(COUNTRY_DB.read_bytes())
    data[: len(data) // 2] = b"\x00" * (len(data) // 2)  # data section gone, metadata intact
    broken.write_bytes(bytes(data))
    enricher = Enricher(geoip_database=str(broken))
    with caplog.at_level(logging.DEBUG, logger="consent_gateway.enrich"):
        for ip in ("89.160.20.112", "81.2.69.142", "89.160.20.112"):
            assert enricher.country(ip) == (None, None)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "InvalidDatabaseError" in warnings[0].getMessage()
    assert "89.160.20.112" not in caplog.text and "81.2.69.142" not in caplog.text


def test_not_a_database_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"this is not an mmdb file" * 100)
    enricher = Enricher(geoip_database=str(junk))
    with caplog.at_level(logging.WARNING, logger="consent_gateway.enrich"):
        assert enricher.country("89.160.20.112") == (None, None)
        assert enricher.country("81.2.69.142") == (None, None)
    assert len(caplog.records) == 1


def test_no_database_anywhere_means_unknown_country_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(enrich, "_EMBEDDED_GEOIP", (("cg_no_such_geolite_package", "GeoLite2-City.mmdb"),))
    enricher = Enricher()
    with caplog.at_level(logging.WARNING, logger="consent_gateway.enrich"):
        assert enricher.country("89.160.20.112") == (None, None)
        assert enricher.country("2a02:cfc0::1") == (None, None)
    assert len(caplog.records) == 1
    assert "no GeoIP database" in caplog.text


def test_geolite2_database_from_an_installed_package_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the layout of the maxminddb-geolite2 distribution: package `geolite2` with the .mmdb inside
    package = tmp_path / "geolite2"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(CITY_DB, package / "GeoLite2-City.mmdb")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert Enricher().country("89.160.20.112") == ("SE", True)


# -- regions ------------------------------------------------------------------------------------------


def test_default_rules_are_opt_in_everywhere(enricher: Enricher) -> None:
    assert enricher.region_rule("US") == "opt-in"
    assert enricher.region_rule(None) == "opt-in"
    assert not enricher.needs_country_per_request


def test_gdpr_like_countries_stay_opt_in_when_the_default_is_relaxed() -> None:
    enricher = Enricher(region_default="none", region_unknown="opt-in")
    assert {"NO", "IS", "LI", "GB", "CH", "FR", "SE"} <= GDPR_LIKE_COUNTRIES
    for country in ("NO", "IS", "LI", "GB", "CH", "FR", "SE", "se"):
        assert enricher.region_rule(country) == "opt-in"
    assert enricher.region_rule("US") == "none"
    assert enricher.region_rule(None) == "opt-in"  # unknown: the safe side
    assert enricher.needs_country_per_request


def test_named_countries_override_the_defaults() -> None:
    enricher = Enricher(region_countries={"us": "opt-out", "GB": "opt-out"})
    assert enricher.region_rule("US") == "opt-out"
    assert enricher.region_rule("GB") == "opt-out"
    assert enricher.region_rule("JP") == "opt-in"
    assert enricher.needs_country_per_request


def test_country_lookup_needed_only_when_rules_differ() -> None:
    assert not Enricher(region_countries={"FR": "opt-in"}).needs_country_per_request
    assert Enricher(region_unknown="opt-out").needs_country_per_request
    assert Enricher(region_default="opt-out", region_unknown="opt-out").needs_country_per_request


def test_region_rule_follows_the_visitors_country() -> None:
    enricher = Enricher(geoip_database=str(COUNTRY_DB), region_default="none")
    assert enricher.facts("216.160.83.56", None).region_rule == "none"  # US
    assert enricher.facts("2a02:cf40::1", None).region_rule == "opt-in"  # NO: EEA, not EU
    assert enricher.facts("127.0.0.1", None).region_rule == "opt-in"  # unknown


# -- properties ---------------------------------------------------------------------------------------

ANY_IP = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
_PROPERTY_ENRICHER = Enricher(geoip_database=str(COUNTRY_DB))


@given(ANY_IP)
def test_truncated_ip_is_the_network_of_the_address(address: IPv4Address | IPv6Address) -> None:
    truncated = _PROPERTY_ENRICHER.minimise_ip(str(address))
    assert truncated is not None
    original = enrich.parse_ip(str(address))  # IPv4-mapped IPv6 counts as IPv4
    assert original is not None
    prefix = 24 if original.version == 4 else 48
    assert ip_network(f"{truncated}/{prefix}").network_address == ip_address(truncated)
    assert original in ip_network(f"{truncated}/{prefix}")


@given(st.lists(st.one_of(ANY_IP.map(str), st.text(max_size=30)), max_size=6))
def test_client_ip_never_fails_and_never_invents_an_address(hops: list[str]) -> None:
    found = client_ip(http_scope("10.0.0.2", ", ".join(hops)), PROXIES)
    assert found is not None
    assert found == "10.0.0.2" or any(
        enrich.parse_ip(part) == ip_address(found) for hop in hops for part in hop.split(",")
    )
    _PROPERTY_ENRICHER.facts(found, None)  # and the lookups on it never raise
