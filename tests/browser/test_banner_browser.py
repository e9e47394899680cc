"""The visitor banner in a real Chromium, on the demo site behind the real gateway.

What a visitor and a regulator would check: nothing is contacted before consent, refusing is as easy as
accepting and sticks across pages, accepting brings the trackers back without a reload, choices are
honoured per category and per vendor, withdrawal removes the trackers' cookies, GPC is honoured, both
languages, keyboard only, axe-core clean, and a strict CSP does not break it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from .conftest import CATEGORY_VENDORS, Visit, is_loopback

pytestmark = pytest.mark.browser

ANALYTICS = CATEGORY_VENDORS["analytics"]
MARKETING = CATEGORY_VENDORS["marketing"]
TEXTS = {
    "fr": {
        "accept": "Tout accepter",
        "reject": "Tout refuser",
        "customize": "Personnaliser",
        "save": "Enregistrer mes choix",
        "reopen": "Gérer les cookies",
        "analytics": "Mesure d'audience",
        "withdraw": "Retirer mon consentement",
    },
    "en": {
        "accept": "Accept all",
        "reject": "Reject all",
        "customize": "Customize",
        "save": "Save my choices",
        "reopen": "Cookie settings",
        "analytics": "Analytics",
        "withdraw": "Withdraw my consent",
    },
}
FR = TEXTS["fr"]
#: What the demo's home page loads once everything is allowed (vendor stand-ins and the hand-marked tag).
HOME_ANALYTICS = {"google-analytics", "hand-marked"}
HOME_MARKETING = {"meta-pixel"}
#: Computed styles that make two buttons look the same.
PROMINENCE = (
    "background-color",
    "color",
    "font-size",
    "font-weight",
    "font-family",
    "padding-top",
    "padding-left",
    "border-top-width",
    "border-top-color",
    "border-radius",
    "text-decoration-line",
)

Open = Callable[..., Visit]


def button(v: Visit, name: str) -> Any:
    return v.page.get_by_role("button", name=name, exact=True)


def dialog(v: Visit, which: str) -> Any:
    """The first layer (``.cg-b``) or the second (``.cg-m``), through the banner's open shadow root."""
    return v.page.locator(f"#cg-root {which}")


def wait_loaded(v: Visit, vendors: set[str]) -> None:
    v.page.wait_for_function(
        "(want) => want.every((id) => (window.cgDemoLoaded || []).includes(id))", arg=sorted(vendors)
    )


def settle(v: Visit) -> None:
    """Give late tags a chance to show up: network idle, then a short quiet period."""
    v.page.wait_for_load_state("networkidle")
    v.page.wait_for_timeout(150)


def test_nothing_is_contacted_before_consent(visit: Open) -> None:
    v = visit()
    for path in ("/en/", "/video", "/blog", "/contact", "/"):
        v.goto(path)
        settle(v)
    assert v.tracker_requests() == []
    assert v.vendors_loaded() == set()
    assert v.aborted == []
    assert button(v, FR["accept"]).is_visible() and button(v, FR["reject"]).is_visible()
    # Consent Mode v2 defaults are pushed before anything else reaches the dataLayer.
    first = v.page.evaluate("() => Array.from(window.dataLayer[0])")
    assert first[:2] == ["consent", "default"]
    assert {first[2][s] for s in ("ad_storage", "analytics_storage", "ad_user_data", "ad_personalization")} == {
        "denied"
    }
    assert first[2]["wait_for_update"] > 0
    assert v.console_errors == []


def test_reject_all_keeps_trackers_out_on_the_next_pages(visit: Open) -> None:
    v = visit()
    v.goto("/")
    button(v, FR["reject"]).click()
    expect(dialog(v, ".cg-b")).to_be_hidden()
    expect(button(v, FR["reopen"])).to_be_visible()
    for path in ("/blog", "/video"):
        v.goto(path)
        settle(v)
        assert not dialog(v, ".cg-b").is_visible()
    assert v.tracker_requests() == []
    assert v.vendors_loaded() == set()
    assert not v.cookie_names() & {"_ga", "_fbp", "_hjSessionUser_1"}


def test_accept_all_brings_trackers_back_without_reload(visit: Open) -> None:
    v = visit()
    v.goto("/")
    navigations = len(v.navigations)
    button(v, FR["accept"]).click()
    wait_loaded(v, HOME_ANALYTICS | HOME_MARKETING)
    assert len(v.navigations) == navigations  # no reload
    assert {"google-analytics", "meta-pixel"} <= v.vendors_contacted()
    assert v.page.locator('script[type="text/plain"][data-category]').count() == 0
    update = v.page.evaluate("() => Array.from(window.dataLayer.filter((e) => e[1] === 'update').pop())")
    assert update[2]["analytics_storage"] == "granted" and update[2]["ad_storage"] == "granted"
    assert not dialog(v, ".cg-b").is_visible()
    # The choice holds on the next page: the server sends the tags as they are.
    v.goto("/blog")
    wait_loaded(v, {"google-analytics"})
    assert v.console_errors == []


def test_held_back_scripts_run_in_document_order(visit: Open) -> None:
    v = visit()
    v.goto("/")
    held = v.page.evaluate(
        """() => Array.from(document.querySelectorAll('script[type="text/plain"][data-category]'))
                 .map((s) => s.getAttribute('data-cg-src') || 'inline')"""
    )
    assert len(held) >= 3
    v.page.evaluate(
        """() => { window.cgOrder = [];
                   new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach((n) => {
                     if (n.tagName === 'SCRIPT' && n.hasAttribute('data-category'))
                       window.cgOrder.push(n.getAttribute('src') || 'inline');
                   }))).observe(document, {childList: true, subtree: true}); }"""
    )
    button(v, FR["accept"]).click()
    wait_loaded(v, HOME_ANALYTICS)
    v.page.wait_for_function("(n) => window.cgOrder.length >= n", arg=len(held))
    assert v.page.evaluate("() => window.cgOrder")[: len(held)] == held


def test_customize_with_analytics_only_loads_only_analytics(visit: Open) -> None:
    v = visit()
    v.goto("/")
    button(v, FR["customize"]).click()
    switch = v.page.get_by_role("switch", name=FR["analytics"], exact=True)
    assert not switch.is_checked()  # never pre-ticked
    for name in ("Marketing", "Préférences"):
        assert not v.page.get_by_role("switch", name=name, exact=True).is_checked()
    necessary = v.page.get_by_role("switch", name="Strictement nécessaires", exact=True)
    assert necessary.is_checked() and necessary.is_disabled()
    switch.check()
    button(v, FR["save"]).click()
    wait_loaded(v, HOME_ANALYTICS)
    settle(v)
    assert v.vendors_contacted() <= ANALYTICS
    assert v.vendors_loaded() <= ANALYTICS | {"hand-marked"}
    assert "_ga" in v.cookie_names() and "_fbp" not in v.cookie_names()


def test_second_layer_lists_vendors_cookies_and_consent_id(visit: Open) -> None:
    v = visit()
    v.goto("/")
    button(v, FR["accept"]).click()
    wait_loaded(v, HOME_ANALYTICS)
    button(v, FR["reopen"]).click()
    layer = dialog(v, ".cg-m")
    layer.get_by_text(re.compile(r"^Partenaires")).first.click()
    ga = v.page.get_by_role("switch", name=re.compile("Google Analytics"))
    assert ga.first.is_checked()
    text = layer.inner_text()
    assert "_ga" in text and "Politique de confidentialité de Google Analytics" in text
    assert "Votre identifiant de consentement" in text
    receipt = layer.get_by_role("link", name="Voir et gérer mes données de consentement")
    href = receipt.get_attribute("href")
    assert href is not None and href.endswith("/_consent/me")
    # Proof of what was shown: the recorded event names the banner version this page loaded.
    history = v.page.evaluate("() => fetch('/_consent/receipt').then((r) => r.json())")
    script = v.page.locator('script[src*="/banner.js?v="]').get_attribute("src")
    assert script is not None
    assert history["events"][-1]["banner_version"] == script.rsplit("v=", 1)[1]
    assert history["consent_id"] in text


def test_vendor_refused_by_name_stays_out_of_a_granted_category(visit: Open) -> None:
    v = visit()
    v.goto("/")
    button(v, FR["customize"]).click()
    v.page.get_by_role("switch", name=FR["analytics"], exact=True).check()
    layer = dialog(v, ".cg-m")
    layer.locator("details").first.locator("summary").click()
    v.page.get_by_role("switch", name=re.compile("^Matomo")).uncheck()
    button(v, FR["save"]).click()
    wait_loaded(v, HOME_ANALYTICS)
    settle(v)
    assert "matomo" not in v.vendors_contacted()
    assert "matomo" not in v.vendors_loaded()


def test_granting_analytics_only_leaves_session_recording_held(visit: Open) -> None:
    v = visit()
    v.goto("/")
    button(v, FR["customize"]).click()
    replay = v.page.get_by_role("switch", name="Enregistrement de session", exact=True)
    expect(replay).not_to_be_checked()  # never pre-ticked
    v.page.get_by_role("switch", name=FR["analytics"], exact=True).check()
    button(v, FR["save"]).click()
    wait_loaded(v, HOME_ANALYTICS | {"matomo"})
    settle(v)
    assert "hotjar" not in v.vendors_contacted() and "hotjar" not in v.vendors_loaded()
    assert not {"_hjSessionUser_1", "_hjSession_1"} & v.cookie_names()
    button(v, FR["reopen"]).click()
    expect(replay).not_to_be_checked()
    replay.check()
    button(v, FR["save"]).click()
    wait_loaded(v, {"hotjar"})  # brought back without a reload once its own purpose is allowed


def test_withdrawal_reloads_and_the_trackers_cookies_are_gone(visit: Open) -> None:
    v = visit()
    v.goto("/")
    button(v, FR["accept"]).click()
    wait_loaded(v, HOME_ANALYTICS | HOME_MARKETING)
    assert {"_ga", "_fbp"} <= v.cookie_names()
    button(v, FR["reopen"]).click()
    with v.page.expect_navigation():
        button(v, FR["withdraw"]).click()
    v.page.wait_for_selector("#cg-root[data-cg-ready]", state="attached")
    settle(v)
    left = v.cookie_names()
    assert not left & {"_ga", "_ga_DEMO", "_gid", "_fbp", "_hjSessionUser_1"}, left
    assert v.vendors_loaded() == set()
    assert button(v, FR["accept"]).is_visible()  # asked again


def test_narrowing_a_choice_reloads_without_the_trackers(visit: Open) -> None:
    v = visit()
    v.goto("/")
    button(v, FR["accept"]).click()
    wait_loaded(v, HOME_MARKETING)
    button(v, FR["reopen"]).click()
    with v.page.expect_navigation():
        dialog(v, ".cg-m").get_by_role("button", name=FR["reject"], exact=True).click()
    v.page.wait_for_selector("#cg-root[data-cg-ready]", state="attached")
    settle(v)
    assert v.vendors_loaded() == set()
    assert v.page.evaluate("() => window.consentGateway.acceptedCategory('marketing')") is False


def test_gpc_visitor_gets_no_marketing_vendor(visit: Open) -> None:
    v = visit(extra_http_headers={"Sec-GPC": "1"})
    v.goto("/")
    assert dialog(v, ".cg-b").get_by_text("Global Privacy Control").is_visible()
    button(v, FR["accept"]).click()
    wait_loaded(v, HOME_ANALYTICS)
    settle(v)
    assert not v.vendors_contacted() & MARKETING
    assert not v.vendors_loaded() & MARKETING


def test_placeholder_grants_its_vendor_in_one_click(visit: Open) -> None:
    v = visit()
    v.goto("/video")
    placeholder = v.page.get_by_role("region", name="YouTube")
    assert re.search(r"Ce contenu est fourni par YouTube, qui dépose des cookies \S+", placeholder.inner_text())
    settle(v)
    assert "youtube" not in v.vendors_contacted()
    placeholder.get_by_role("button", name="Autoriser YouTube").click()
    wait_loaded(v, {"youtube"})
    assert "youtube" in v.vendors_contacted()
    assert "vimeo" not in v.vendors_contacted()
    assert v.page.get_by_role("region", name="YouTube").count() == 0


@pytest.mark.parametrize(("path", "lang"), [("/", "fr"), ("/en/", "en")])
def test_banner_speaks_the_page_language_to_a_visitor_whose_language_the_site_lacks(
    visit: Open, path: str, lang: str
) -> None:
    v = visit(locale="de-DE")
    v.goto(path)
    assert_banner_speaks(v, TEXTS[lang])


@pytest.mark.parametrize(("path", "locale", "lang"), [("/en/", "fr-FR", "fr"), ("/", "en-GB", "en")])
def test_banner_speaks_the_visitors_own_language_on_a_page_in_another(
    visit: Open, path: str, locale: str, lang: str
) -> None:
    v = visit(locale=locale)
    v.goto(path)
    page_lang = v.page.evaluate("() => document.documentElement.lang")
    assert page_lang != lang  # the page is in the other language
    assert_banner_speaks(v, TEXTS[lang])


def assert_banner_speaks(v: Visit, texts: dict[str, str]) -> None:
    for key in ("accept", "reject", "customize"):
        assert button(v, texts[key]).is_visible()
    button(v, texts["customize"]).click()
    assert v.page.get_by_role("switch", name=texts["analytics"], exact=True).is_visible()
    assert button(v, texts["save"]).is_visible()
    v.page.keyboard.press("Escape")
    button(v, texts["reject"]).click()
    expect(button(v, texts["reopen"])).to_be_visible()


def focused(v: Visit) -> dict[str, Any]:
    return v.page.evaluate(
        """() => { let a = document.activeElement;
                   while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
                   const s = getComputedStyle(a);
                   return {text: (a.getAttribute('aria-label') || a.textContent || '').trim(),
                           role: a.getAttribute('role'), cls: a.className, tag: a.tagName,
                           outline: s.outlineStyle, outlineWidth: parseFloat(s.outlineWidth),
                           inModal: !!a.closest('.cg-m'), inBanner: !!a.closest('.cg-b')}; }"""
    )


def test_keyboard_only_flow(visit: Open) -> None:
    v = visit()
    v.goto("/")
    kb = v.page.keyboard
    assert focused(v)["inBanner"]  # focus moved into the banner when it opened
    kb.press("Tab")
    seen = [focused(v)]
    while seen[-1]["text"] != FR["customize"] and len(seen) < 8:
        kb.press("Tab")
        seen.append(focused(v))
    assert [f["text"] for f in seen if f["tag"] == "BUTTON"][-3:] == [FR["accept"], FR["reject"], FR["customize"]]
    assert all(f["outline"] != "none" and f["outlineWidth"] >= 2 for f in seen)  # visible focus ring
    kb.press("Enter")
    assert focused(v)["inModal"]
    # The focus stays trapped in the second layer, both ways.
    for _ in range(30):
        kb.press("Tab")
        assert focused(v)["inModal"]
    for _ in range(5):
        kb.press("Shift+Tab")
        assert focused(v)["inModal"]
    kb.press("Escape")  # back to the first layer
    assert not dialog(v, ".cg-m").is_visible() and dialog(v, ".cg-b").is_visible()
    assert focused(v)["inBanner"]
    button(v, FR["customize"]).focus()
    kb.press("Enter")
    for _ in range(10):
        if v.page.evaluate("() => document.getElementById('cg-root').shadowRoot.activeElement.id") == "cg-c-analytics":
            break
        kb.press("Tab")
    kb.press("Space")
    for _ in range(30):
        if focused(v)["text"] == FR["save"]:
            break
        kb.press("Tab")
    kb.press("Enter")
    wait_loaded(v, HOME_ANALYTICS)
    assert not v.vendors_loaded() & MARKETING


def styles(v: Visit, name: str, scope: str) -> dict[str, Any]:
    return (
        dialog(v, scope)
        .get_by_role("button", name=name, exact=True)
        .evaluate(
            """(b, props) => { const s = getComputedStyle(b), r = b.getBoundingClientRect();
             const out = Object.fromEntries(props.map((p) => [p, s.getPropertyValue(p)]));
             out.width = Math.round(r.width); out.height = Math.round(r.height); return out; }""",
            list(PROMINENCE),
        )
    )


def _luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg: str, bg: str) -> float:
    a, b = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_accept_and_reject_have_equal_prominence(visit: Open, scheme: str) -> None:
    v = visit(color_scheme=scheme)
    v.goto("/")
    for scope in (".cg-b", ".cg-m"):
        if scope == ".cg-m":
            button(v, FR["customize"]).click()
        accept, reject = styles(v, FR["accept"], scope), styles(v, FR["reject"], scope)
        assert accept == reject, (scope, accept, reject)
        assert contrast(accept["color"], accept["background-color"]) >= 4.5


@pytest.mark.parametrize(("motion", "animation"), [("reduce", "none"), ("no-preference", "cg-in")])
def test_banner_animates_only_without_a_reduced_motion_preference(visit: Open, motion: str, animation: str) -> None:
    v = visit(reduced_motion=motion)
    v.goto("/")
    assert dialog(v, ".cg-b").evaluate("(b) => getComputedStyle(b).animationName") == animation


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_core_finds_no_violation_in_either_layer(visit: Open, axe_source: str, scheme: str) -> None:
    v = visit(color_scheme=scheme)
    v.goto("/video")
    v.page.add_script_tag(content=axe_source)

    def violations() -> list[Any]:
        result = v.page.evaluate(
            """async () => (await axe.run({include: [['#cg-root']]},
                                         {resultTypes: ['violations']})).violations
                 .map((x) => ({id: x.id, impact: x.impact, nodes: x.nodes.map((n) => n.target)}))"""
        )
        placeholders = v.page.evaluate(
            """async () => (await axe.run({include: [['.cg-ph-host']]}, {resultTypes: ['violations']}))
                 .violations.map((x) => ({id: x.id, impact: x.impact, nodes: x.nodes.map((n) => n.target)}))"""
        )
        return list(result) + list(placeholders)

    assert violations() == []
    button(v, FR["customize"]).click()
    dialog(v, ".cg-m").locator("details").first.locator("summary").click()
    assert violations() == []


def test_strict_csp_page_works(visit: Open) -> None:
    v = visit()
    v.goto("/csp")
    accept = dialog(v, ".cg-b").get_by_role("button", name=FR["accept"], exact=True)
    # Styled (the stylesheet loaded) and interactive (the script ran) under the policy.
    assert accept.evaluate("(b) => getComputedStyle(b).backgroundColor") != "rgba(0, 0, 0, 0)"
    accept.click()
    wait_loaded(v, HOME_ANALYTICS | HOME_MARKETING)
    settle(v)
    assert not [e for e in v.console_errors if "Content Security Policy" in e or "Refused" in e]


def test_page_content_does_not_shift_and_fits_320px(visit: Open) -> None:
    v = visit(viewport={"width": 320, "height": 640})
    v.goto("/")
    host = v.page.evaluate("() => document.getElementById('cg-root').getBoundingClientRect().height")
    assert host == 0  # the banner floats over the page: nothing in the flow moves
    assert v.page.evaluate("() => document.documentElement.scrollWidth") <= 320
    for name in (FR["accept"], FR["reject"], FR["customize"]):
        box = button(v, name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320
    button(v, FR["customize"]).click()
    button(v, FR["save"]).scroll_into_view_if_needed()
    assert button(v, FR["save"]).is_visible()
    assert v.page.evaluate("() => document.documentElement.scrollWidth") <= 320


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("width", [1280, 360])
def test_screenshots_of_both_layers(visit: Open, artifacts: Path, lang: str, width: int) -> None:
    v = visit(viewport={"width": width, "height": 800 if width > 400 else 740}, reduced_motion="reduce")
    v.goto("/video" if lang == "fr" else "/en/")
    dialog(v, ".cg-b").wait_for(state="visible")
    v.page.screenshot(path=str(artifacts / f"banner-{lang}-{width}-layer1.png"))
    button(v, TEXTS[lang]["customize"]).click()
    dialog(v, ".cg-m").locator("details").first.locator("summary").click()
    v.page.screenshot(path=str(artifacts / f"banner-{lang}-{width}-layer2.png"))
    assert v.page.evaluate("() => document.documentElement.scrollWidth") <= width


def test_site_css_cannot_restyle_the_banner_nor_be_touched_by_it(visit: Open) -> None:
    v = visit()
    v.goto("/")
    before = styles(v, FR["accept"], ".cg-b")
    v.page.add_style_tag(
        content="* { color: red !important; background: yellow !important; font-size: 40px !important; "
        "padding: 0 !important; border: 0 !important } div { display: inline !important }"
    )
    assert styles(v, FR["accept"], ".cg-b") == before
    # The stylesheet only applies inside the banner's shadow roots, never to the page.
    sheets = v.page.evaluate("() => [...document.styleSheets].map((s) => s.href || '')")
    assert not [href for href in sheets if "banner.css" in href]


def test_site_link_marked_data_cg_open_reopens_the_preferences(visit: Open) -> None:
    v = visit()
    v.goto("/")
    button(v, FR["reject"]).click()
    expect(button(v, FR["reopen"])).to_be_visible()
    link = v.page.locator("footer [data-cg-open]")
    link.focus()
    v.page.keyboard.press("Enter")
    expect(dialog(v, ".cg-m")).to_be_visible()
    assert not v.page.get_by_role("switch", name=FR["analytics"], exact=True).is_checked()
    v.page.keyboard.press("Escape")
    expect(dialog(v, ".cg-m")).to_be_hidden()
    assert v.page.evaluate("() => document.activeElement.hasAttribute('data-cg-open')")  # focus came back


def test_a_grant_the_log_could_not_record_shows_a_polite_message(visit: Open) -> None:
    v = visit()
    v.goto("/")
    # The gateway's documented answer when neither the log nor the spool can keep the event.
    v.page.route(
        "**/_consent/choices",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": {"code": "consent_not_recorded", "message": "The consent log is unavailable."}}',
        ),
    )
    button(v, FR["accept"]).click()
    status = dialog(v, ".cg-b").get_by_role("status")
    expect(status).to_have_text(re.compile("n'a pas pu être enregistré"))
    assert dialog(v, ".cg-b").is_visible()  # still asking: nothing was saved
    settle(v)
    assert v.vendors_loaded() == set()


def test_a_page_restored_by_back_honours_the_choice_made_since(visit_with_bfcache: Open) -> None:
    v = visit_with_bfcache()
    v.goto("/")  # shown before the choice…
    v.page.evaluate("() => { window.cgStillHere = true; }")
    v.goto("/blog")
    button(v, FR["accept"]).click()  # …made on another page
    wait_loaded(v, {"google-analytics"})
    v.page.go_back(wait_until="commit")  # a restore from the cache fires no new "load"
    assert v.page.evaluate("() => window.cgStillHere") is True  # restored from the back/forward cache
    expect(button(v, FR["reopen"])).to_be_visible()
    expect(dialog(v, ".cg-b")).to_be_hidden()
    wait_loaded(v, HOME_ANALYTICS)
    assert all(is_loopback(urlsplit(url).hostname or "") for url in v.requests)  # nothing was aborted


def plant_hotjar_leftovers(v: Visit) -> None:
    """What Hotjar's script leaves: a cookie it set itself and copies of its ids in both storages."""
    v.page.evaluate(
        """() => {
            document.cookie = '_hjSessionUser_1=planted; Path=/';
            localStorage.setItem('_hjSessionUser_1', 'planted');
            sessionStorage.setItem('_hjSession_1', 'planted');
            localStorage.setItem('site_cart', 'kept');
        }"""
    )


def hotjar_leftovers(v: Visit) -> dict[str, Any]:
    return v.page.evaluate(
        """() => ({
            cookie: document.cookie.includes('_hjSessionUser_1='),
            local: localStorage.getItem('_hjSessionUser_1'),
            session: sessionStorage.getItem('_hjSession_1'),
            site: localStorage.getItem('site_cart'),
        })"""
    )


@pytest.mark.parametrize("how", ["reject", "withdraw"])
def test_refusal_and_withdrawal_remove_script_set_cookies_and_storage_keys(visit: Open, how: str) -> None:
    v = visit()
    v.goto("/")
    button(v, FR["accept"]).click()
    wait_loaded(v, {"hotjar"})
    plant_hotjar_leftovers(v)
    button(v, FR["reopen"]).click()
    with v.page.expect_navigation():  # both narrow the choice: the page reloads without the trackers
        button(v, FR["reject"] if how == "reject" else FR["withdraw"]).click()
    v.page.wait_for_selector("#cg-root[data-cg-ready]", state="attached")
    v.page.wait_for_load_state("load")
    left = hotjar_leftovers(v)
    assert left == {"cookie": False, "local": None, "session": None, "site": "kept"}, left
    assert "_hjSessionUser_1" not in v.cookie_names()
