"""The vendor catalog: built-in data, URL / inline / cookie lookups, and merging the site's [[vendors]]."""

from __future__ import annotations

import pytest

from consent_gateway.catalog import Catalog, CookieRule, VendorRule, split_url
from consent_gateway.errors import ConfigError

CATALOG = Catalog.builtin()

REQUIRED_VENDORS = {
    "google-analytics", "google-tag-manager", "google-ads", "meta-pixel", "linkedin-insight", "tiktok-pixel",
    "microsoft-clarity", "microsoft-uet", "hotjar", "matomo", "youtube", "vimeo", "google-maps", "twitter",
    "pinterest-tag", "snap-pixel", "criteo", "hubspot",
}


def vendor_id(url: str, kind: str = "script") -> str | None:
    vendor = CATALOG.vendor_for_url(url, kind)
    return vendor.id if vendor else None


def test_builtin_catalog_covers_the_common_trackers_with_complete_entries() -> None:
    assert REQUIRED_VENDORS <= set(CATALOG.vendors)
    for vendor in CATALOG.vendors.values():
        assert vendor.category in {"analytics", "marketing", "preferences"}, vendor.id
        assert vendor.name and vendor.policy_url.startswith("https://"), vendor.id
        assert vendor.script_hosts or vendor.iframe_hosts or vendor.paths, vendor.id
        assert vendor.cookies or vendor.id == "google-tag-manager", vendor.id  # GTM itself sets none
    assert CATALOG.categories_used() == {"analytics", "marketing", "preferences"}
    assert Catalog.builtin() is CATALOG  # loaded once


@pytest.mark.parametrize(
    ("url", "kind", "expected"),
    [
        ("https://www.googletagmanager.com/gtag/js?id=G-ABC", "script", "google-analytics"),
        ("https://www.googletagmanager.com/gtag/js?id=AW-123&l=dl", "script", "google-ads"),
        ("https://www.googletagmanager.com/gtag/js?l=dl&id=DC-123", "script", "google-ads"),
        ("https://www.googletagmanager.com/gtm.js?id=GTM-X", "script", "google-tag-manager"),
        ("https://www.googletagmanager.com/ns.html?id=GTM-X", "iframe", "google-tag-manager"),
        ("https://www.google-analytics.com/analytics.js", "script", "google-analytics"),
        ("https://googleads.g.doubleclick.net/pagead/viewthroughconversion/1/", "img", "google-ads"),
        ("https://pagead2.googlesyndication.com/pagead/js/adsbygoogle.js", "script", "google-ads"),
        ("https://connect.facebook.net/en_US/fbevents.js", "script", "meta-pixel"),
        ("https://www.facebook.com/tr?id=1&ev=PageView&noscript=1", "img", "meta-pixel"),
        ("https://snap.licdn.com/li.lms-analytics/insight.min.js", "script", "linkedin-insight"),
        ("https://px.ads.linkedin.com/collect/?pid=1&fmt=gif", "img", "linkedin-insight"),
        ("https://analytics.tiktok.com/i18n/pixel/events.js", "script", "tiktok-pixel"),
        ("https://www.clarity.ms/tag/abc", "script", "microsoft-clarity"),
        ("https://bat.bing.com/bat.js", "script", "microsoft-uet"),
        ("https://static.hotjar.com/c/hotjar-1.js?sv=6", "script", "hotjar"),
        ("https://cdn.matomo.cloud/site.matomo.cloud/matomo.js", "script", "matomo"),
        ("https://www.youtube.com/embed/dQw4w9WgXcQ", "iframe", "youtube"),
        ("https://www.youtube-nocookie.com/embed/x", "iframe", "youtube"),
        ("https://i.ytimg.com/vi/x/hqdefault.jpg", "img", "youtube"),
        ("https://player.vimeo.com/video/1", "iframe", "vimeo"),
        ("https://www.google.com/maps/embed?pb=!1m18", "iframe", "google-maps"),
        ("https://maps.googleapis.com/maps/api/js?key=k", "script", "google-maps"),
        ("https://platform.twitter.com/widgets.js", "script", "twitter"),
        ("https://syndication.twitter.com/srv/timeline", "iframe", "twitter"),
        ("https://s.pinimg.com/ct/core.js", "script", "pinterest-tag"),
        ("https://ct.pinterest.com/v3/?tid=1", "img", "pinterest-tag"),
        ("https://sc-static.net/scevent.min.js", "script", "snap-pixel"),
        ("https://tr.snapchat.com/p", "img", "snap-pixel"),
        ("https://static.criteo.net/js/ld/ld.js", "script", "criteo"),
        ("https://dis.criteo.com/dis/rtb.js", "img", "criteo"),
        ("https://js.hs-scripts.com/1.js", "script", "hubspot"),
        ("https://js.hs-analytics.net/analytics/1/1.js", "script", "hubspot"),
        ("https://track.hubspot.com/__pt.gif", "img", "hubspot"),
    ],
)
def test_known_tracker_urls_belong_to_their_vendor(url: str, kind: str, expected: str) -> None:
    assert vendor_id(url, kind) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.googletagmanager.com.localhost/gtm.js", "google-tag-manager"),  # demo hosts
        ("//www.googletagmanager.com/gtm.js", "google-tag-manager"),  # protocol-relative
        ("HTTPS://WWW.GOOGLETAGMANAGER.COM/gtm.js", "google-tag-manager"),
        ("https://user:pw@www.googletagmanager.com:443/gtm.js", "google-tag-manager"),
        ("https://www.googletagmanager.com./gtm.js", "google-tag-manager"),
        (" \n https://www.google\ttagmanager.com/gtm.js", "google-tag-manager"),  # the URL parser drops tab/newline
        ("https:\\\\www.googletagmanager.com\\gtm.js", "google-tag-manager"),
        ("https://www.googletagmanager&#46;com/gtm.js", "google-tag-manager"),  # entity-encoded
        ("https://www.%67oogletagmanager.com/gtm.js", "google-tag-manager"),  # percent-encoded host
        ("https://notgoogletagmanager.com/gtm.js", None),
        ("https://googletagmanager.com.evil.example/x.js", "google-tag-manager"),  # fails closed
        ("https://cdn.example.org/www.googletagmanager.com/gtm.js", None),  # a host in the path is not a host
        ("/static/googletagmanager.com.js", None),
        ("data:text/javascript,alert(1)", None),
        ("javascript:void(0)", None),
    ],
)
def test_host_patterns_match_label_aligned_anywhere_in_the_host(url: str, expected: str | None) -> None:
    assert vendor_id(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/matomo.js", "matomo"),
        ("https://stats.example.org/piwik.js", "matomo"),
        ("//example.org/analytics/matomo.php?idsite=1&rec=1", "matomo"),
        ("/js/MATOMO.JS", "matomo"),
        ("/matomo.json", None),
        ("/matomo.js.map", None),
    ],
)
def test_self_hosted_path_patterns_match_on_any_host(url: str, expected: str | None) -> None:
    assert vendor_id(url) == expected


def test_path_prefix_stops_at_a_boundary() -> None:
    assert vendor_id("https://www.facebook.com/tr?id=1", "img") == "meta-pixel"
    assert vendor_id("https://www.facebook.com/tr/", "img") == "meta-pixel"
    assert vendor_id("https://www.facebook.com/trending", "img") is None
    assert vendor_id("https://www.youtube.com/watch?v=x", "iframe") is None


def test_split_url_reads_urls_like_a_browser() -> None:
    assert split_url("//Host.Example:8080/p/a?q=1#f") == ("host.example", "/p/a", "q=1")
    assert split_url("https:host.example/x") == ("host.example", "/x", "")
    assert split_url("relative/path.js?x") == ("", "relative/path.js", "x")
    assert split_url("https://[::1]:8000/x") == ("[::1]", "/x", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fbq('init', '123'); fbq('track', 'PageView');", "meta-pixel"),
        ("window.dataLayer = window.dataLayer || []; function gtag(){dataLayer.push(arguments);}", "google-analytics"),
        ("w[l].push({'gtm.start': new Date().getTime(), event:'gtm.js'})", "google-tag-manager"),
        ("_linkedin_partner_id = '1';", "linkedin-insight"),
        ("var _paq = window._paq || []; _paq.push(['trackPageView']);", "matomo"),
        ("(function(h,o,t,j,a,r){h.hj=h.hj||function(){};h._hjSettings={hjid:1,hjsv:6};", "hotjar"),
        ("!function (w, d, t) {w.TiktokAnalyticsObject=t; ttq.load('C1');", "tiktok-pixel"),
        ("pintrk('load', '123');", "pinterest-tag"),
        ("snaptr('init', 'x');", "snap-pixel"),
        ("window.criteo_q = window.criteo_q || [];", "criteo"),
        ("var _hsq = window._hsq = window._hsq || []; _hsq.push(['setPath', '/']);", "hubspot"),
        ("function hj() { return 1; } // the site's own hj", None),
        ("document.querySelector('.menu').classList.add('open');", None),
    ],
)
def test_inline_signatures_identify_vendor_snippets_without_hitting_site_code(text: str, expected: str | None) -> None:
    vendor = CATALOG.vendor_for_inline(text)
    assert (vendor.id if vendor else None) == expected
    found = CATALOG.vendors_for_inline_bytes(text.encode())
    assert (found[0].id if found else None) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("_ga", "google-analytics"),
        ("_ga_ABC123", "google-analytics"),
        ("_gid", "google-analytics"),
        ("_gcl_au", "google-ads"),
        ("_fbp", "meta-pixel"),
        ("fr", "meta-pixel"),
        ("li_fat_id", "linkedin-insight"),
        ("_hjSessionUser_1234", "hotjar"),
        ("_pk_id.1.1fff", "matomo"),
        ("_clck", "microsoft-clarity"),
        ("_uetsid", "microsoft-uet"),
        ("hubspotutk", "hubspot"),
        ("__hstc", "hubspot"),
        ("_ttp", "tiktok-pixel"),
        ("session", None),
        ("_gax", None),
        ("frx", None),
    ],
)
def test_cookies_belong_to_the_vendor_that_sets_them(name: str, expected: str | None) -> None:
    vendor = CATALOG.vendor_for_cookie(name)
    assert (vendor.id if vendor else None) == expected


def test_cookie_rules_carry_lifetimes() -> None:
    ga = CATALOG.vendors["google-analytics"]
    assert CookieRule("_ga", "2 years", "Distinguishes visitors.") in ga.cookies
    assert CookieRule("_ga_*").matches("_ga_XYZ") and not CookieRule("_ga").matches("_ga_XYZ")


def test_site_vendors_override_fields_of_builtin_entries_and_add_new_ones() -> None:
    merged = CATALOG.merged(
        [
            {"id": "youtube", "category": "marketing"},
            {"id": "acme-pixel", "category": "marketing", "name": "ACME", "script_hosts": ["px.acme.example"],
             "inline_signatures": ["acmeTrack("], "cookies": ["_acme", {"pattern": "_acme_*", "lifetime": "1 day"}]},
        ]
    )
    assert merged.vendors["youtube"].category == "marketing"
    assert merged.vendors["youtube"].iframe_hosts == CATALOG.vendors["youtube"].iframe_hosts
    assert merged.vendor_for_url("https://px.acme.example/p.js", "script").id == "acme-pixel"  # type: ignore[union-attr]
    assert merged.vendor_for_inline("acmeTrack('x')").id == "acme-pixel"  # type: ignore[union-attr]
    assert merged.vendor_for_cookie("_acme_session").id == "acme-pixel"  # type: ignore[union-attr]
    assert CATALOG.vendors["youtube"].category == "marketing"  # the built-in catalog is unchanged
    assert merged.token != CATALOG.token
    assert CATALOG.merged([]) is CATALOG


def test_site_vendor_accepts_cookie_rules_built_by_the_config_loader() -> None:
    rule = CookieRule("_x", "1 day")
    merged = CATALOG.merged([{"id": "x", "category": "analytics", "script_hosts": ("x.example",), "cookies": (rule,)}])
    assert merged.vendors["x"] == VendorRule(id="x", category="analytics", script_hosts=("x.example",), cookies=(rule,))


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"id": "new-vendor", "script_hosts": ["x.example"]}, "vendors[0].category"),
        ({"category": "analytics"}, "vendors[0].id"),
        ({"id": "youtube", "iframe_host": ["x"]}, "vendors[0].iframe_host"),
        ({"id": "youtube", "script_hosts": "x.example"}, "vendors[0].script_hosts"),
        ({"id": "youtube", "script_hosts": ["ok.example", 3]}, "vendors[0].script_hosts[1]"),
        ({"id": "youtube", "category": 1}, "vendors[0].category"),
        ({"id": "youtube", "cookies": [{"lifetime": "1 day"}]}, "vendors[0].cookies[0].pattern"),
        ({"id": "youtube", "cookies": [{"pattern": "a", "ttl": "1"}]}, "vendors[0].cookies[0].ttl"),
        ({"id": "bad id!", "category": "analytics"}, "vendors[0].id"),
    ],
)
def test_bad_site_vendor_tables_are_config_errors_naming_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        CATALOG.merged([table])
    assert info.value.key == key


def test_tag_pre_check_never_hides_a_vendor_url() -> None:
    assert CATALOG.tag_may_name_vendor(b'<img src="https://WWW.FACEBOOK.COM/tr?id=1">')
    assert CATALOG.tag_may_name_vendor(b'<img src="https://www.facebook&#46;com/tr">')
    assert CATALOG.tag_may_name_vendor(b'<script src="/js/matomo.js">')
    assert not CATALOG.tag_may_name_vendor(b'<img src="/static/logo.png" alt="Logo">')
