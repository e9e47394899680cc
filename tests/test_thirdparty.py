"""Third parties nobody classified: who is first party, who is allowed, who is held as "unclassified"."""

from __future__ import annotations

import pytest

from consent_gateway import metrics
from consent_gateway.catalog import Catalog
from consent_gateway.config import parse_config
from consent_gateway.errors import ConfigError
from consent_gateway.thirdparty import (
    UNCLASSIFIED,
    AllowEntry,
    HostCounters,
    ThirdParties,
    builtin_allow_list,
    registrable_domain,
    site_catalog,
    site_of,
)
from consent_gateway.visitor import VisitorReader
from tests.conftest import TEST_SECRET_KEYS


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.example.com", "example.com"),
        ("a.b.example.com", "example.com"),
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("co.uk", ""),  # a public suffix is nobody's site
        ("alice.github.io", "alice.github.io"),  # private suffix: each user is a site of its own
        ("cdn.alice.github.io", "alice.github.io"),
        ("github.io", ""),
        ("x.s3.amazonaws.com", "x.s3.amazonaws.com"),
        ("WWW.Example.COM", "example.com"),
        ("www.example.com.", "example.com"),  # fully qualified
        ("cdn.example.co.uk.", "example.co.uk"),
        ("www.bücher.de", "xn--bcher-kva.de"),  # IDN compared in punycode, as browsers send it
        ("shop.xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("127.0.0.1", ""),
        ("::1", ""),
        ("[2001:db8::1]", ""),
        ("localhost", ""),
        ("", ""),
    ],
)
def test_registrable_domain_follows_the_public_suffix_list(host: str, expected: str) -> None:
    assert registrable_domain(host) == expected


@pytest.mark.parametrize(
    ("host_header", "site"),
    [
        ("www.example.co.uk", "example.co.uk"),
        ("www.example.co.uk:8443", "example.co.uk"),
        ("Shop.Example.COM.", "example.com"),
        ("localhost:8000", "localhost"),
        ("127.0.0.1:8000", "127.0.0.1"),
        ("[::1]:8000", "::1"),
        ("testserver", "testserver"),
    ],
)
def test_the_site_is_the_hosts_registrable_domain_or_the_bare_host(host_header: str, site: str) -> None:
    assert site_of(host_header) == site


def test_same_site_hosts_are_first_party_and_others_are_unclassified() -> None:
    parties = ThirdParties(counters=HostCounters())
    site = site_of("www.example.co.uk")
    for first_party in ("www.example.co.uk", "static.example.co.uk", "EXAMPLE.CO.UK", "cdn.example.co.uk."):
        assert parties.classify(first_party, site) is None, first_party
    for third_party in ("other.co.uk", "example.com", "tracker.example", "example.co.uk.evil.net"):
        vendor = parties.classify(third_party, site)
        assert vendor is not None, third_party
        assert (vendor.id, vendor.category, vendor.name) == (UNCLASSIFIED, UNCLASSIFIED, third_party)


def test_private_suffix_neighbours_are_third_parties() -> None:
    parties = ThirdParties(counters=HostCounters())
    site = site_of("alice.github.io")
    assert parties.classify("cdn.alice.github.io", site) is None
    assert parties.classify("bob.github.io", site) is not None
    assert parties.classify("github.io", site) is not None


def test_ip_and_localhost_sites_own_only_their_exact_host() -> None:
    parties = ThirdParties(counters=HostCounters())
    assert parties.classify("127.0.0.1", site_of("127.0.0.1:8000")) is None
    assert parties.classify("127.0.0.2", site_of("127.0.0.1:8000")) is not None
    assert parties.classify("localhost", site_of("localhost:8000")) is None
    # the demo's fake third parties live on *.localhost names: third parties of a site on localhost
    assert parties.classify("widgets.example.localhost", site_of("localhost:8000")) is not None


def test_idn_hosts_compare_in_punycode_either_way() -> None:
    parties = ThirdParties(counters=HostCounters())
    assert parties.classify("cdn.xn--bcher-kva.de", site_of("www.bücher.de")) is None
    assert parties.classify("cdn.bücher.de", site_of("www.xn--bcher-kva.de")) is None


def test_an_empty_host_is_the_pages_own() -> None:
    assert ThirdParties(counters=HostCounters()).classify("", "example.com") is None


def test_first_party_hosts_with_and_without_wildcards() -> None:
    parties = ThirdParties(first_party_hosts=["example-cdn.net", "*.example-static.org"], counters=HostCounters())
    site = "example.com"
    assert parties.classify("example-cdn.net", site) is None
    assert parties.classify("img.example-cdn.net", site) is None
    assert parties.classify("a.b.example-static.org", site) is None
    assert parties.classify("example-static.org", site) is not None  # "*." means subdomains only
    assert parties.classify("notexample-cdn.net", site) is not None  # label-aligned
    assert parties.is_first_party("IMG.Example-CDN.net.", site)


def test_builtin_allow_list_lets_functional_hosts_through() -> None:
    parties = ThirdParties(counters=HostCounters())
    site = "example.com"
    for host in ("cdnjs.cloudflare.com", "cdn.jsdelivr.net", "unpkg.com", "code.jquery.com", "js.stripe.com",
                 "challenges.cloudflare.com", "js.hcaptcha.com", "newassets.hcaptcha.com"):
        assert parties.classify(host, site) is None, host
    assert parties.allow_entry("js.stripe.com") is not None
    assert "Stripe" in parties.allow_entry("js.stripe.com").reason  # type: ignore[union-attr]


def test_path_limited_entries_allow_only_their_path() -> None:
    parties = ThirdParties(counters=HostCounters())
    assert parties.classify("www.paypal.com", "example.com", "/sdk/js") is None
    assert parties.classify("www.paypal.com", "example.com", "/tagmanager/pptm.js") is not None
    assert parties.classify("www.paypal.com", "example.com") is not None  # no path: not the SDK
    assert parties.allow_entry("www.paypal.com", "/sdk/js") is not None


def test_font_cdns_recaptcha_and_maps_are_off_until_the_owner_opts_in() -> None:
    default = ThirdParties(counters=HostCounters())
    for host, path in (("fonts.googleapis.com", "/css2"), ("fonts.gstatic.com", "/s/roboto.woff2"),
                       ("use.typekit.net", "/abc.css"), ("www.google.com", "/recaptcha/api.js"),
                       ("tile.openstreetmap.org", "/1/1/1.png")):
        assert default.classify(host, "example.com", path) is not None, host
    opted = ThirdParties(enable=["google-fonts", "recaptcha"], counters=HostCounters())
    assert opted.classify("fonts.googleapis.com", "example.com", "/css2") is None
    assert opted.classify("www.google.com", "example.com", "/recaptcha/api.js") is None
    assert opted.classify("www.google.com", "example.com", "/search") is not None


def test_the_owner_can_disable_a_builtin_entry_and_add_hosts() -> None:
    parties = ThirdParties(
        disable=["jsdelivr"],
        allow=[AllowEntry("config:widgets.shop.net", ("widgets.shop.net",), "cart widget")],
        counters=HostCounters(),
    )
    assert parties.classify("cdn.jsdelivr.net", "example.com") is not None
    assert parties.classify("widgets.shop.net", "example.com") is None


def test_every_builtin_entry_says_why_and_never_names_a_tracking_host() -> None:
    entries = builtin_allow_list()
    assert len({e.id for e in entries}) == len(entries)
    catalog = Catalog.builtin()
    for entry in entries:
        assert len(entry.reason) > 20, entry.id
        for pattern in entry.hosts:
            host, _, path = pattern.partition("/")
            url = f"https://{host}/{path}"
            for kind in ("script", "iframe", "img", "link"):
                assert catalog.vendor_for_url(url, kind) is None, (entry.id, pattern, kind)
    assert not any("polyfill.io" in h for e in entries for h in e.hosts)


def test_mode_allow_classifies_nothing() -> None:
    assert ThirdParties(mode="allow", counters=HostCounters()).classify("tracker.example", "example.com") is None


def test_config_builds_the_rules(tmp_path: object) -> None:
    config = parse_config({
        "gateway": {"first_party_hosts": ["*.example-cdn.net"]},
        "third_parties": {"unknown": "report", "allow": [{"host": "maps.example.org", "reason": "store finder"}],
                          "enable": ["google-fonts"]},
    })
    catalog = site_catalog(config)
    parties = catalog.third_parties
    assert parties.mode == "report"
    assert parties.classify("img.example-cdn.net", "example.com") is None
    assert parties.classify("maps.example.org", "example.com") is None
    assert parties.classify("fonts.gstatic.com", "example.com") is None
    assert parties.classify("tracker.example", "example.com") is not None
    assert catalog.token != site_catalog(parse_config({})).token


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"third_parties": {"unknown": "block"}}, r"third_parties\.unknown: expected 'hold' \| 'report' \| 'allow'"),
        ({"third_parties": {"allow": [{"host": "x.example"}]}}, r"third_parties\.allow\[0\]\.reason: is required"),
        ({"third_parties": {"allow": [{"host": "x.example", "reason": " "}]}}, r"say why"),
        ({"third_parties": {"allow": [{"host": "https://x.example/", "reason": "r"}]}}, r"expected a host"),
        ({"gateway": {"first_party_hosts": ["cdn.*.example"]}}, r"only allowed as a leading"),
        ({"gateway": {"first_party_hosts": ["cdn.example/path"]}}, r"a host, not a URL"),
    ],
)
def test_bad_third_party_config_is_refused_with_its_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_an_unknown_builtin_entry_name_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"third_parties\.enable: unknown built-in entry 'google-font'"):
        site_catalog(parse_config({"third_parties": {"enable": ["google-font"]}}))


def test_a_custom_category_list_still_gets_the_unclassified_category() -> None:
    own = [{"id": "necessary", "required": True}, {"id": "analytics"}, {"id": "marketing"}, {"id": "preferences"}]
    config = parse_config({"categories": own})
    assert config.category_ids == ("necessary", "analytics", "marketing", "preferences", UNCLASSIFIED)


def _reader(data: dict[str, object]) -> VisitorReader:
    from consent_gateway.consent import ConsentCodec
    from consent_gateway.enrich import Enricher

    config = parse_config(data)
    enricher = Enricher(region_default=config.regions.default, region_unknown=config.regions.unknown)
    return VisitorReader(config, ConsentCodec(config, TEST_SECRET_KEYS), enricher)


def _scope(host: bytes, *, gpc: bool = False) -> dict[str, object]:
    headers = [(b"host", host)] + ([(b"sec-gpc", b"1")] if gpc else [])
    return {"type": "http", "headers": headers, "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80)}


def test_decision_carries_the_site_and_keys_on_it() -> None:
    reader = _reader({})
    one = reader.read(_scope(b"www.example.co.uk:8443"))
    other = reader.read(_scope(b"shop.other.com"))
    assert one.site == "example.co.uk" and other.site == "other.com"
    assert one.key != other.key
    assert reader.read(_scope(b"static.example.co.uk")) is one or reader.read(_scope(b"static.example.co.uk")) == one


def test_unclassified_is_held_in_opt_in_and_follows_the_region_elsewhere() -> None:
    assert not _reader({}).read(_scope(b"example.com")).allows_category(UNCLASSIFIED)
    assert _reader({"third_parties": {"unknown": "report"}}).read(_scope(b"example.com")).allows_category(UNCLASSIFIED)
    opt_out = _reader({"regions": {"default": "opt-out", "unknown": "opt-out"}})
    assert opt_out.undecided("opt-out", False, "example.com").allows_category(UNCLASSIFIED)
    # GPC refuses what may be an ad server, with marketing
    assert not opt_out.undecided("opt-out", True, "example.com").allows_category(UNCLASSIFIED)
    assert opt_out.undecided("none", False, "example.com").allows_category(UNCLASSIFIED)


def test_counters_stay_bounded_and_keep_the_frequent_hosts() -> None:
    counters = HostCounters(capacity=3)
    for _ in range(50):
        counters.note("frequent.example", held=True, now=1.0)
    for index in range(100):
        counters.note(f"rare{index}.example", held=False, now=2.0)
    assert len(counters) == 3
    top = counters.top(1)[0]
    assert (top.host, top.seen, top.held, top.error) == ("frequent.example", 50, 50, 0)
    snapshot = counters.snapshot()
    assert snapshot[0] == {"host": "frequent.example", "seen": 50, "held": 50, "first_seen": 1.0,
                           "last_seen": 1.0, "error": 0}
    assert counters.evicted == 98  # rare2 … rare99 each replaced the rarest


def test_note_seen_shows_on_metrics() -> None:
    metrics.reset()
    parties = ThirdParties()
    parties.note_seen("tracker.example", held=True)
    parties.note_seen("tracker.example", held=True)
    parties.note_seen("widget.example", held=False)
    text = metrics.render()
    assert 'consent_gateway_unclassified_host_seen_total{host="tracker.example"} 2' in text
    assert 'consent_gateway_unclassified_host_held_total{host="tracker.example"} 2' in text
    assert 'consent_gateway_unclassified_host_held_total{host="widget.example"} 0' in text
    metrics.reset()
    assert "tracker.example" not in metrics.render()
