"""The banner's head fragment, its assets, its version hash and its language choice."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from consent_gateway.banner import BUILTIN_TEXTS, Banner, archive_version
from consent_gateway.catalog import Catalog, CookieRule, VendorRule
from consent_gateway.config import BannerConfig, Category, Config, PolicyConfig
from consent_gateway.decision import Decision
from consent_gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
#: The issue's budget for what visitors download: JS and CSS together, gzip level 9.
SIZE_BUDGET_BYTES = 6 * 1024
HOSTILE = '</script><script>alert("x")</script><!-- <img src=x onerror=alert(1)> & \u2028'
FIRST_VISIT = Decision(granted=frozenset({"necessary"}))


_BANNERS: dict[str, Banner] = {}


def make_banner(config: Config | None = None, catalog: Catalog | None = None) -> Banner:
    banner = Banner(config or Config(), catalog or Catalog.builtin())
    _BANNERS[banner.version] = banner
    return banner


def with_banner(**changes: Any) -> Config:
    return replace(Config(), banner=replace(BannerConfig(), **changes))


class _Tags(HTMLParser):
    """Records the start tags and the text inside each <script>, as a browser's tokenizer would."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts.append("")

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and self.scripts:
            self.scripts[-1] += data


def parse(fragment: bytes) -> _Tags:
    parser = _Tags()
    parser.feed(fragment.decode())
    parser.close()
    return parser


def config_of(fragment: bytes) -> dict[str, Any]:
    """What banner.js sees: the site-wide data of banner-data.js, then the page's own state over it."""
    version = re.search(rb"banner-data\.js\?v=([0-9a-f]+)", fragment)
    assert version is not None, fragment
    data = _BANNERS[version.group(1).decode()].asset("banner-data.js")
    assert data is not None
    site_wide = json.loads(data[0].decode().removeprefix("window.cgBannerData=").rstrip().rstrip(";"))
    return {**site_wide, **json.loads(parse(fragment).scripts[0])}


def test_head_fragment_is_config_then_stylesheet_then_script() -> None:
    banner = make_banner()
    fragment = banner.head_html(decision=FIRST_VISIT, language="fr", nonce=None)
    tags = parse(fragment).tags
    assert [tag for tag, _ in tags] == ["script", "link", "script", "script"]
    assert tags[0][1] == {"type": "application/json", "id": "cg-config"}
    assert tags[1][1]["href"] == f"/_consent/banner.css?v={banner.version}"
    assert tags[2][1] == {"src": f"/_consent/banner-data.js?v={banner.version}"}
    assert tags[3][1] == {"src": f"/_consent/banner.js?v={banner.version}"}
    assert fragment.count(b"</script>") == 3
    assert len(fragment) < 1024  # only the visitor's state travels with each page


def test_config_carries_texts_categories_vendors_and_state() -> None:
    decision = Decision(
        granted=frozenset({"necessary", "analytics"}),
        vendors_refused=frozenset({"hotjar"}),
        vendors_granted=frozenset({"youtube"}),
        consent_id="c0ns3nt",
        explicit=True,
        gpc=True,
    )
    cfg = config_of(make_banner().head_html(decision=decision, language="en", nonce=None))
    assert cfg["lang"] == "en"
    assert cfg["i18n"]["fr"]["accept_all"] == "Tout accepter"
    assert cfg["i18n"]["en"]["reject_all"] == "Reject all"
    assert cfg["i18n"]["fr"]["cats"]["analytics"][0] == "Mesure d'audience"
    assert cfg["state"] == {
        "explicit": True,
        "choices": {
            "analytics": True, "session-replay": False, "marketing": False, "preferences": False,
            "unclassified": False,
        },
        "vendors": {"youtube": True, "hotjar": False},
    }
    assert cfg["consent_id"] == "c0ns3nt"
    assert cfg["gpc"] is True
    assert cfg["api"] == "/_consent"
    assert cfg["receipt_url"] == "/_consent/me"
    assert cfg["privacy_policy_url"] == "/privacy"
    assert cfg["consent_mode"]["signals"]["marketing"] == ["ad_storage", "ad_user_data", "ad_personalization"]
    ga = next(v for v in cfg["vendors"] if v["id"] == "google-analytics")
    assert ga["category"] == "analytics"
    assert ga["policy_url"].startswith("https://")
    assert ["_ga", "13 months"] in ga["cookies"] or any(c[0].startswith("_ga") for c in ga["cookies"])


def test_first_visit_state_is_never_pre_ticked() -> None:
    cfg = config_of(make_banner().head_html(decision=FIRST_VISIT, language="fr", nonce=None))
    assert cfg["state"]["explicit"] is False
    assert not any(cfg["state"]["choices"].values())
    assert cfg["consent_id"] is None


def test_configured_texts_cannot_break_out_of_the_json_block() -> None:
    config = replace(
        with_banner(texts={"fr": {"title": HOSTILE}}),
        categories=(
            Category(id="necessary", required=True, label={"fr": HOSTILE}),
            Category(id="analytics", label={"fr": "Mesure"}, description={"fr": HOSTILE}),
        ),
        policy=replace(PolicyConfig(), privacy_policy_url='/privacy"><script>alert(2)</script>'),
    )
    catalog = Catalog([VendorRule(id="evil", category="analytics", name=HOSTILE, cookies=(CookieRule(HOSTILE),))])
    banner = make_banner(config, catalog)
    fragment = banner.head_html(decision=replace(FIRST_VISIT, consent_id=HOSTILE), language="fr", nonce=None)
    parsed = parse(fragment)
    assert [tag for tag, _ in parsed.tags] == ["script", "link", "script", "script"]
    block = parsed.scripts[0]
    data = banner.asset("banner-data.js")
    assert data is not None
    for text in (block, data[0].decode()):
        assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    cfg = config_of(fragment)
    assert cfg["i18n"]["fr"]["title"] == HOSTILE
    assert cfg["i18n"]["fr"]["cats"]["necessary"][0] == HOSTILE
    assert cfg["vendors"][0]["name"] == HOSTILE
    assert cfg["consent_id"] == HOSTILE


def test_script_urls_become_links_only_when_safe() -> None:
    config = replace(Config(), policy=replace(PolicyConfig(), privacy_policy_url="javascript:alert(1)"))
    catalog = Catalog(
        [
            VendorRule(id="a", category="analytics", name="A", policy_url="JavaScript:alert(1)"),
            VendorRule(id="b", category="analytics", name="B", policy_url="https://b.example/privacy"),
            VendorRule(id="c", category="analytics", name="C", policy_url="data:text/html,x"),
        ]
    )
    cfg = config_of(make_banner(config, catalog).head_html(decision=FIRST_VISIT, language="fr", nonce=None))
    assert cfg["privacy_policy_url"] == ""
    assert {v["id"]: v["policy_url"] for v in cfg["vendors"]} == {"a": "", "b": "https://b.example/privacy", "c": ""}


def test_nonce_is_carried_by_the_stylesheet_and_the_script() -> None:
    banner = make_banner()
    tags = parse(banner.head_html(decision=FIRST_VISIT, language="fr", nonce="r4nd0m+/=")).tags
    assert tags[1][1]["nonce"] == "r4nd0m+/="
    assert tags[2][1]["nonce"] == "r4nd0m+/="
    assert "nonce" not in tags[0][1]  # a JSON block is not executed: it needs none
    again = parse(banner.head_html(decision=FIRST_VISIT, language="fr", nonce="other")).tags
    assert again[2][1]["nonce"] == "other"


def test_a_malformed_nonce_never_reaches_the_markup() -> None:
    fragment = make_banner().head_html(decision=FIRST_VISIT, language="fr", nonce='x" onload="alert(1)')
    assert b"onload" not in fragment
    assert "nonce" not in parse(fragment).tags[2][1]


def test_version_changes_with_the_texts_shown() -> None:
    base = make_banner().version
    assert make_banner().version == base  # stable across instances and processes
    assert re.fullmatch(r"[0-9a-f]{32}", base)
    assert make_banner(with_banner(texts={"fr": {"title": "Autre titre"}})).version != base
    assert make_banner(with_banner(theme={"accent": "#b91c1c"})).version != base
    label = replace(Config(), categories=(Category(id="necessary", required=True, label={"fr": "Requis"}),))
    assert make_banner(label).version != base


def test_version_changes_with_the_vendors_listed() -> None:
    one = Catalog([VendorRule(id="a", category="analytics", name="A")])
    two = Catalog([VendorRule(id="a", category="analytics", name="A", cookies=(CookieRule("_a", "1 day"),))])
    assert make_banner(catalog=one).version != make_banner(catalog=two).version


def test_version_does_not_change_with_the_visitor() -> None:
    banner = make_banner()
    a = banner.head_html(decision=FIRST_VISIT, language="fr", nonce=None)
    b = banner.head_html(decision=replace(FIRST_VISIT, explicit=True, consent_id="x"), language="en", nonce="n")
    assert parse(a).tags[2][1]["src"] == parse(b).tags[2][1]["src"]


def test_assets_are_the_minified_build_with_their_media_types() -> None:
    banner = make_banner()
    js = banner.asset("banner.js")
    css = banner.asset("banner.css")
    assert js is not None and js[1].startswith("text/javascript")
    assert css is not None and css[1].startswith("text/css")
    assert js[0] == (ROOT / "static/banner/banner.min.js").read_bytes()
    assert css[0] == (ROOT / "static/banner/banner.min.css").read_bytes()
    assert banner.asset("../config.py") is None
    assert banner.asset("banner.min.js") is None


def test_served_js_and_css_fit_the_size_budget() -> None:
    banner = make_banner()
    sizes = {name: len(gzip.compress(banner.asset(name)[0], compresslevel=9)) for name in ("banner.js", "banner.css")}
    assert sum(sizes.values()) <= SIZE_BUDGET_BYTES, sizes


def test_served_files_equal_a_fresh_build_of_the_sources() -> None:
    spec = importlib.util.spec_from_file_location("build_banner", ROOT / "scripts" / "build_banner.py")
    assert spec is not None and spec.loader is not None
    build_banner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_banner)
    for name, text in build_banner.build().items():
        assert (ROOT / "static/banner" / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run python scripts/build_banner.py"
        )


def test_the_minifier_keeps_strings_regexes_and_line_breaks() -> None:
    spec = importlib.util.spec_from_file_location("build_banner", ROOT / "scripts" / "build_banner.py")
    assert spec is not None and spec.loader is not None
    build_banner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_banner)
    source = "var a = 'x  // y', b = /\\/ +[/]/g; // gone\n/* gone */ return a +\n+b\n"
    assert build_banner.minify_js(source) == "var a='x  // y',b=/\\/ +[/]/g;return a+\n+b\n"
    assert build_banner.minify_css("a :focus , b > c { color: red ; }") == "a :focus,b>c{color:red}\n"


def test_the_minifier_shortens_only_the_scripts_own_names() -> None:
    spec = importlib.util.spec_from_file_location("build_banner", ROOT / "scripts" / "build_banner.py")
    assert spec is not None and spec.loader is not None
    build_banner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_banner)
    source = ("(function (w) { var total = 1, later = 2; var branch = 3; var o = { keep: total };"
              " function helper(arg) { return arg.keep + o.keep + fetch(later) + (arg ? branch : 'total'); }"
              " w.api = { helper: helper }; })(window);")
    out = build_banner.minify_js(source)
    # declared names go short (after a comma of a var statement too); a property, an object key (or a
    # ternary branch) and a global stay as they are, and so does every string
    assert "total=1" not in out and "later" not in out and "arg" not in out and "'total'" in out
    assert "?branch:" in out and ".keep" in out and "{keep:" in out and "{helper:helper}" in out
    assert "fetch(" in out
    assert out.startswith("(function(w){var ")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("en-US,en;q=0.9,fr;q=0.8", "en"),
        ("fr-CA,en;q=0.5", "fr"),
        ("de-DE,de;q=0.9,en;q=0.7,fr;q=0.6", "en"),
        ("de, it", None),
        ("fr;q=0.4, en;q=0.6", "en"),
        ("en;q=0, fr;q=0.1", "fr"),
        ("EN-gb", "en"),
        ("en;q=abc, fr", "fr"),
        ("*", None),
    ],
)
def test_language_follows_accept_language(header: str | None, expected: str | None) -> None:
    assert make_banner().language_for(header) == expected


def test_default_language_is_configurable() -> None:
    banner = make_banner(with_banner(default_language="en"))
    assert config_of(banner.head_html(decision=FIRST_VISIT, language=None, nonce=None))["lang"] == "en"


def test_the_visitors_language_is_marked_so_the_page_language_does_not_override_it() -> None:
    banner = make_banner()
    offered = config_of(banner.head_html(decision=FIRST_VISIT, language="en", nonce=None))
    assert (offered["lang"], offered["lv"]) == ("en", True)
    lacking = config_of(banner.head_html(decision=FIRST_VISIT, language=None, nonce=None))
    assert (lacking["lang"], lacking["lv"]) == ("fr", False)  # banner.js then reads <html lang>
    page_first = make_banner(with_banner(language="page"))
    assert config_of(page_first.head_html(decision=FIRST_VISIT, language="en", nonce=None))["lv"] is False


def test_configured_language_is_added_with_fallbacks() -> None:
    banner = make_banner(with_banner(texts={"de": {"accept_all": "Alle akzeptieren"}}))
    assert banner.language_for("de-AT") == "de"
    cfg = config_of(banner.head_html(decision=FIRST_VISIT, language="de", nonce=None))
    assert cfg["lang"] == "de"
    assert cfg["i18n"]["de"]["accept_all"] == "Alle akzeptieren"
    assert cfg["i18n"]["de"]["reject_all"] == BUILTIN_TEXTS["fr"]["reject_all"]  # the default language fills in


def test_unknown_language_falls_back_to_the_default() -> None:
    cfg = config_of(make_banner().head_html(decision=FIRST_VISIT, language="xx", nonce=None))
    assert cfg["lang"] == "fr"


def test_unknown_text_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        make_banner(with_banner(texts={"en": {"acept_all": "Sure"}}))
    assert caught.value.key == "banner.texts.en.acept_all"


def test_texts_override_built_in_ones() -> None:
    cfg = config_of(
        make_banner(with_banner(texts={"en": {"title": "Cookies?"}})).head_html(
            decision=FIRST_VISIT, language="en", nonce=None
        )
    )
    assert cfg["i18n"]["en"]["title"] == "Cookies?"
    assert cfg["i18n"]["fr"]["title"] == BUILTIN_TEXTS["fr"]["title"]


def test_built_in_languages_have_every_text() -> None:
    assert set(BUILTIN_TEXTS["fr"]) == set(BUILTIN_TEXTS["en"])
    for lang, texts in BUILTIN_TEXTS.items():
        assert all(value.strip() for value in texts.values()), lang


def test_prefix_is_used_for_every_url() -> None:
    config = replace(Config(), gateway=replace(Config().gateway, prefix="/privacy-gw"))
    banner = make_banner(config)
    fragment = banner.head_html(decision=FIRST_VISIT, language="fr", nonce=None)
    cfg = config_of(fragment)
    assert cfg["api"] == "/privacy-gw"
    assert cfg["receipt_url"] == "/privacy-gw/me"
    assert parse(fragment).tags[3][1]["src"].startswith("/privacy-gw/banner.js?v=")


def test_a_default_language_override_does_not_replace_another_language_built_in_text() -> None:
    cfg = config_of(
        make_banner(with_banner(texts={"fr": {"title": "Cookies ?"}})).head_html(
            decision=FIRST_VISIT, language="en", nonce=None
        )
    )
    assert cfg["i18n"]["fr"]["title"] == "Cookies ?"
    assert cfg["i18n"]["en"]["title"] == BUILTIN_TEXTS["en"]["title"]


def test_cookie_lifetimes_and_kinds_are_shown_in_french() -> None:
    catalog = Catalog(
        [
            VendorRule(
                id="a",
                category="analytics",
                name="A",
                cookies=(CookieRule("_a", "13 months"), CookieRule("_b", "1 day")),
            )
        ]
    )
    cfg = config_of(make_banner(catalog=catalog).head_html(decision=FIRST_VISIT, language="fr", nonce=None))
    assert cfg["i18n"]["fr"]["lifetimes"] == {"13 months": "13 mois", "1 day": "1 jour"}
    assert "lifetimes" not in cfg["i18n"]["en"]
    fr = cfg["i18n"]["fr"]
    placeholder = fr["placeholder"].format(vendor="YouTube", category=fr["cats"]["marketing"][2])
    assert placeholder == "Ce contenu est fourni par YouTube, qui dépose des cookies marketing."
    assert cfg["i18n"]["fr"]["cats"]["analytics"][2] == "de mesure d'audience"


def test_listed_vendors_restrict_the_second_layer() -> None:
    banner = make_banner(with_banner(vendors=("google-analytics", "youtube")))
    cfg = config_of(banner.head_html(decision=FIRST_VISIT, language="fr", nonce=None))
    assert [v["id"] for v in cfg["vendors"]] == ["google-analytics", "youtube"]
    assert banner.version != make_banner().version


def test_an_unknown_listed_vendor_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        make_banner(with_banner(vendors=("google-analytic",)))
    assert caught.value.key == "banner.vendors"
    assert "google-analytic" in caught.value.message


def test_what_the_gateway_serves_fits_the_size_budget(config: Config) -> None:
    from starlette.testclient import TestClient

    from consent_gateway.middleware import ConsentGateway

    async def site(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raise AssertionError("the banner files are answered by the gateway itself")

    gateway = ConsentGateway(site, config, secret_keys=["banner-test-key-0123456789-abcdefghijklmnop"])
    total = 0
    with TestClient(gateway) as client:
        for name, media in (("banner.js", "text/javascript"), ("banner.css", "text/css")):
            response = client.get(f"/_consent/{name}", params={"v": gateway.banner.version})
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(media)
            assert response.content == gateway.banner.asset(name)[0]
            total += len(gzip.compress(response.content, compresslevel=9))
    assert total <= SIZE_BUDGET_BYTES


def test_an_unknown_theme_property_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        make_banner(with_banner(theme={"acent": "#000"}))
    assert caught.value.key == "banner.theme.acent"


def test_only_a_visitor_who_refused_something_gets_the_cleaner() -> None:
    banner = make_banner()
    tag = b"/banner-clean.js?v="
    optional = frozenset(c.id for c in Config().categories)
    everything = Decision(granted=optional, explicit=True)
    refused = Decision(granted=frozenset({"necessary", "analytics"}), explicit=True)
    by_name = Decision(granted=optional, vendors_refused=frozenset({"hotjar"}), explicit=True)
    assert tag not in banner.head_html(decision=FIRST_VISIT, language="fr", nonce=None)
    assert tag not in banner.head_html(decision=everything, language="fr", nonce=None)
    assert tag in banner.head_html(decision=refused, language="fr", nonce=None)
    assert tag in banner.head_html(decision=by_name, language="fr", nonce="abc")
    assert tag in banner.head_html(decision=FIRST_VISIT, language="fr", nonce=None, clean=True)  # after withdrawal
    data = banner.asset("banner-data.js")
    assert data is not None
    hotjar = next(v for v in json.loads(data[0].split(b"=", 1)[1].rstrip(b";\n"))["vendors"] if v["id"] == "hotjar")
    # the catalog's site-set cookie names and storage keys, not the cookies on the vendor's own domain
    assert {"_hjSessionUser_*", "_hjSession_*", "_hjid"} <= set(hotjar["store"])


def test_version_covers_every_setting_of_banner_data_and_the_archive_proves_it() -> None:
    base = make_banner()
    # what banner-data.js carries besides the texts: the policy, the consent mode, the API's place
    policy = replace(Config(), policy=replace(Config().policy, version="2027-01"))
    assert make_banner(policy).version != base.version
    assert make_banner(with_banner(consent_mode="advanced")).version != base.version
    served = base.asset("banner-data.js")
    assert served is not None
    data = json.loads(served[0].decode().removeprefix("window.cgBannerData=").rstrip().rstrip(";"))
    css = data.pop("css")
    assert css.endswith(f"?v={base.version}")  # the only part not archived: it carries the version itself
    assert data == base.archive["banner_data"]
    assert base.archive["policy"]["version"] == Config().policy.version
    assert {"banner.js", "banner.css", "banner-clean.js"} <= set(base.archive["layout"]["files"])
    assert archive_version(json.loads(base.archive_json)) == base.version
