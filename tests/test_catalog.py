"""The vendor catalog: built-in data, URL / inline / cookie lookups, and merging the site's [[vendors]]."""

from __future__ import annotations

import re

import pytest

from consent_gateway.catalog import BUILTIN_FILE, Catalog, CookieRule, VendorRule, split_url
from consent_gateway.catalog_schema import ROLES, vendor_from_table
from consent_gateway.cookie_database import GENERIC_NAMES
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
        assert vendor.category in {"analytics", "session-replay", "marketing", "preferences"}, vendor.id
        assert vendor.name and vendor.policy_url.startswith("https://"), vendor.id
        assert vendor.script_hosts or vendor.iframe_hosts or vendor.paths, vendor.id
        # GTM itself sets none; DistroScale documents a cookie lifetime (TCF vendor list) but no names
        assert vendor.cookies or vendor.id in {"google-tag-manager", "distroscale"}, vendor.id
    assert CATALOG.categories_used() == {"analytics", "session-replay", "marketing", "preferences"}
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


# -- the grown catalog: every entry complete, sourced and unambiguous ------------------------------------------

def test_every_builtin_vendor_names_its_source_role_and_real_category() -> None:
    assert len(CATALOG.vendors) >= 200
    for vendor in CATALOG.vendors.values():
        assert vendor.source.startswith("https://"), vendor.id
        assert vendor.role in ROLES, vendor.id
        assert vendor.category in {"analytics", "session-replay", "marketing", "preferences"}, vendor.id
        assert vendor.inline_signatures or vendor.script_hosts or vendor.iframe_hosts or vendor.img_hosts, vendor.id


def test_no_host_pattern_is_claimed_by_two_vendors() -> None:
    owners: dict[tuple[str, str], str] = {}
    for vendor in CATALOG.vendors.values():
        for field in ("script_hosts", "iframe_hosts", "img_hosts", "link_hosts"):
            for pattern in getattr(vendor, field):
                key = (field, pattern.lower().removeprefix("//"))
                assert owners.setdefault(key, vendor.id) == vendor.id, f"{key} in {owners[key]} and {vendor.id}"


def test_inline_signatures_are_loader_or_queue_code_not_bare_host_names() -> None:
    for vendor in CATALOG.vendors.values():
        for signature in vendor.inline_signatures:
            assert len(signature) >= 4, (vendor.id, signature)
            bare_host = re.fullmatch(r"[a-z0-9.-]+\.(com|net|org|io|de|fr|ru|tv|co|uk|be|at|eu|me|pl|ly)/?", signature)
            assert not bare_host, (vendor.id, signature)


def test_short_or_generic_cookie_names_are_bound_to_the_vendor_domain() -> None:
    """A rule like `uid` without a domain would drop the site's own `uid` cookie."""
    for vendor in CATALOG.vendors.values():
        for cookie in vendor.cookies:
            exact = not cookie.pattern.endswith("*")
            if exact and (len(cookie.pattern) <= 3 or cookie.pattern.lower() in GENERIC_NAMES):
                assert cookie.domain or cookie.pattern in {"_ga", "fr", "IDE", "NID", "YSC", "_cb", "xbc"}, (
                    vendor.id, cookie.pattern)
            assert len(cookie.pattern.rstrip("*")) >= 2, (vendor.id, cookie.pattern)


@pytest.mark.parametrize(
    ("url", "kind", "expected"),
    [
        ("https://www.googletagservices.com/tag/js/gpt.js", "script", "google-publisher-tag"),
        ("https://securepubads.g.doubleclick.net/tag/js/gpt.js", "script", "google-publisher-tag"),
        ("https://securepubads.g.doubleclick.net/gampad/ads?iu=/1/x", "img", "google-ads"),
        ("https://connect.facebook.net/de_DE/fbevents.js", "script", "meta-pixel"),
        ("https://sb.scorecardresearch.com/beacon.js", "script", "comscore"),
        ("https://sb.scorecardresearch.com/p?c1=2&c2=6035737&cv=2.0&cj=1", "img", "comscore"),
        ("https://cdn.taboola.com/libtrc/tmz/loader.js", "script", "taboola"),
        ("https://c.jsrdn.com/s/cs.js?p=22445", "script", "distroscale"),
        ("https://i.jsrdn.com/i/1.gif?r=h8yu", "img", "distroscale"),
        ("//cdn.taboolasyndication.com/libtrc/x/loader.js", "script", "taboola"),
        ("https://widgets.outbrain.com/outbrain.js", "script", "outbrain"),
        ("https://c.amazon-adsystem.com/aax2/apstag.js", "script", "amazon-ads"),
        ("https://acdn.adnxs.com/ast/ast.js", "script", "xandr"),
        ("https://ib.adnxs.com/getuid?x", "img", "xandr"),
        ("https://js-sec.indexww.com/ht/p/183973-93942139695505.js", "script", "index-exchange"),
        ("https://fastlane.rubiconproject.com/a/api/fastlane.js", "script", "magnite"),
        ("https://ads.pubmatic.com/AdServer/js/pwt/1/2/pwt.js", "script", "pubmatic"),
        ("https://pixel.quantserve.com/pixel/p-423IyeSlam-w-.gif", "img", "quantcast"),
        ("https://secure.quantserve.com/quant.js", "script", "quantcast"),
        ("https://static.chartbeat.com/js/chartbeat.js", "script", "chartbeat"),
        ("https://logc2.xiti.com/hit.xiti?s=1", "img", "piano-analytics"),
        ("https://mc.yandex.ru/metrika/tag.js", "script", "yandex-metrica"),
        ("https://mc.yandex.ru/watch/1936822", "img", "yandex-metrica"),
        ("https://stats.wp.com/e-201947.js", "script", "wordpress-stats"),
        ("https://pixel.wp.com/g.gif?v=ext", "img", "wordpress-stats"),
        ("https://i0.wp.com/example.org/photo.jpg", "img", None),  # Jetpack's image CDN is not the stats
        ("https://assets.adobedtm.com/launch-EN03682f.min.js", "script", "adobe-launch"),
        ("https://script.ioam.de/iam.js", "script", "infonline"),
        ("https://secure-us.imrworldwide.com/cgi-bin/m?ci=x", "img", "nielsen"),
        ("https://z.moatads.com/x/moatad.js", "script", "moat"),
        ("https://ww690.smartadserver.com/call/pubi/50270/", "img", "smart-adserver"),
        ("https://cdn.mxpnl.com/libs/mixpanel-2.2.min.js", "script", "mixpanel"),
        ("https://cdn.parsely.com/keys/livescience.com/p.js", "script", "parsely"),
        ("https://static.criteo.net/js/ld/publishertag.js", "script", "criteo-publisher"),
        ("https://static.criteo.net/js/ld/ld.js", "script", "criteo"),
        # one host, several things: the path tells the Facebook SDK from the Meta Pixel
        ("https://connect.facebook.net/en_US/sdk.js#xfbml=1", "script", "facebook-social"),
        ("https://connect.facebook.net/fr_FR/all.js", "script", "facebook-social"),
        ("https://connect.facebook.net/en_US/fbevents.js", "script", "meta-pixel"),
        ("https://connect.facebook.net/signals/config/1?v=2", "script", "meta-pixel"),
        ("https://www.facebook.com/v2.12/plugins/like.php?href=x", "iframe", "facebook-social"),
        ("https://www.facebook.com/plugins/page.php?href=x", "iframe", "facebook-social"),
        ("https://www.facebook.com/tr?id=1&ev=PageView", "img", "meta-pixel"),
        ("https://www.facebook.com/v2.12/pluginsx", "iframe", None),
        ("https://tags.tiqcdn.com/utag/acme/main/prod/utag.js", "script", "tealium"),
        ("https://cdn.tagcommander.com/1234/tc_Acme_1.js", "script", "commanders-act"),
        ("https://t.contentsquare.net/uxa/abc.js", "script", "contentsquare"),
        ("https://edge.fullstory.com/s/fs.js", "script", "fullstory"),
        ("https://try.abtasty.com/abc.js", "script", "ab-tasty"),
        ("https://abc.kameleoon.eu/kameleoon.js", "script", "kameleoon"),
        ("https://dev.visualwebsiteoptimizer.com/j.php?a=1", "script", "vwo"),
        ("https://munchkin.marketo.net/munchkin.js", "script", "marketo"),
        ("https://pi.pardot.com/pd.js", "script", "pardot"),
        ("https://widget.intercom.io/widget/abc", "script", "intercom"),
        ("https://platform.linkedin.com/in.js", "script", "linkedin-platform"),
        ("https://www.redditstatic.com/ads/pixel.js", "script", "reddit-pixel"),
        ("https://assets.pinterest.com/js/pinit.js", "script", "pinterest-widgets"),
    ],
)
def test_real_tags_are_attributed_to_their_vendor(url: str, kind: str, expected: str | None) -> None:
    assert vendor_id(url, kind) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("var googletag = googletag || {}; googletag.cmd = googletag.cmd || [];", "google-publisher-tag"),
        ('var _comscore = _comscore || []; _comscore.push({ c1: "2", c2: "6035737" });', "comscore"),
        ("var _qevents = _qevents || []; _qevents.push({qacct:\"p-x\"});", "quantcast"),
        ("_stq = window._stq || []; _stq.push([ 'view', {blog:'1'} ]);", "wordpress-stats"),
        ("apstag.init({ pubID: '3', adServer: 'googletag' });", "amazon-ads"),
        ("window._taboola = window._taboola || []; _taboola.push({article:'auto'});", "taboola"),
        ("var _sf_async_config = _sf_async_config || {}; _sf_async_config.uid = 1;", "chartbeat"),
        ('xtsite = "381060"; xtn2 = "42";', "piano-analytics"),
        ("window.iom.c(oewa_data, 1);", "infonline"),
        ("(function(m,e,t,r,i,k,a){})(window, document, 'script', 'https://mc.yandex.ru/metrika/tag.js', 'ym');",
         "yandex-metrica"),
        # a first-party configuration that merely names tracker hosts is not a tracker
        ('window.__CONFIG__ = {"csp": ["https://www.googletagservices.com", "https://cdn.taboola.com", '
         '"https://sb.scorecardresearch.com", "https://stats.wp.com", "https://connect.facebook.net"]};', None),
        ('{"symbols": "sym(\'x\')", "xtsite": 1}', None),
        ('var settings = {"atlas_account_name": null, "utag": false};', None),
    ],
)
def test_loader_snippets_and_queue_calls_identify_the_vendor(text: str, expected: str | None) -> None:
    vendor = CATALOG.vendor_for_inline(text)
    assert (vendor.id if vendor else None) == expected
    found = CATALOG.vendors_for_inline_bytes(text.encode())
    assert (found[0].id if found else None) == expected


def test_set_cookie_rules_for_a_vendor_domain_match_only_that_domain() -> None:
    catalog = Catalog(CATALOG.vendors.values())  # without the cookie database: catalog rules only
    assert catalog.vendor_for_set_cookie("_ga").id == "google-analytics"  # type: ignore[union-attr]
    assert catalog.vendor_for_set_cookie("uuid2") is None  # the site's own cookie of that name passes
    assert catalog.vendor_for_set_cookie("uuid2", ".adnxs.com").id == "xandr"  # type: ignore[union-attr]
    assert catalog.vendor_for_set_cookie("uuid2", "ib.adnxs.com").id == "xandr"  # type: ignore[union-attr]
    assert catalog.vendor_for_set_cookie("uuid2", "notadnxs.com") is None
    assert catalog.vendor_for_cookie("uuid2").id == "xandr"  # type: ignore[union-attr]  # what the name says


def test_cookie_rules_with_a_domain_are_validated() -> None:
    table = {"id": "x", "category": "marketing", "cookies": [{"pattern": "u", "domain": ".X.example"}]}
    merged = CATALOG.merged([table])
    assert merged.vendors["x"].cookies == (CookieRule("u", domain="x.example"),)
    with pytest.raises(ConfigError) as info:
        CATALOG.merged([{"id": "x", "category": "marketing", "cookies": [{"pattern": "u", "domain": "not a domain"}]}])
    assert info.value.key == "vendors[0].cookies[0].domain"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"id": "youtube", "role": "spying"}, "vendors[0].role"),
        ({"id": "youtube", "source": "vendor docs"}, "vendors[0].source"),
        ({"id": "youtube", "storage": "key"}, "vendors[0].storage"),
        ({"id": "youtube", "storage": [{"pattern": "k", "ttl": "1"}]}, "vendors[0].storage[0].ttl"),
    ],
)
def test_new_vendor_fields_are_validated_naming_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        CATALOG.merged([table], source="site.toml")
    assert (info.value.key, info.value.file) == (key, "site.toml")


def test_builtin_data_errors_name_the_data_file() -> None:
    with pytest.raises(ConfigError) as info:
        vendor_from_table({"id": "x", "category": "marketing", "role": "nope"}, "vendors[7]", None, BUILTIN_FILE)
    assert str(info.value).startswith("catalog_data.toml: vendors[7].role:")
