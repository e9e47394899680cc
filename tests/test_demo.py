"""The demo site: pages, real-shaped tags on .localhost hosts, stand-in vendors answered by Host."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from starlette.testclient import TestClient

from consent_gateway.catalog import Catalog
from consent_gateway.demo import VENDOR_HOSTS, build_demo_site, bypass_for_vendor_hosts

PORT = 8123
SITE = f"localhost:{PORT}"
PAGES = ["/", "/en/", "/blog", "/video", "/contact", "/privacy", "/en/privacy", "/csp"]
URL_RE = re.compile(r"""(?:https?:)?//([A-Za-z0-9.\-\[\]:]+)""")


class TagCollector(HTMLParser):
    """Every tag that can load something, with its attributes; inline scripts with their text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.inline_scripts: list[tuple[dict[str, str], str]] = []
        self._script: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.append((tag, values))
        if tag == "script" and "src" not in values:
            self._script = values

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.inline_scripts.append((self._script, data))
            self._script = None


def collect(html: str) -> TagCollector:
    collector = TagCollector()
    collector.feed(html)
    return collector


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_demo_site(), base_url=f"http://{SITE}")


def vendor_get(client: TestClient, host: str, path: str) -> object:
    return client.get(path, headers={"host": f"{host}.localhost:{PORT}"})


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_in_its_language(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    lang = "en" if path.startswith("/en/") else "fr"
    assert f'<html lang="{lang}">' in response.text
    assert "Les Jardins du Rhône" in response.text
    assert "data-cg-open" in response.text  # the link that reopens the banner's preferences


@pytest.mark.parametrize("path", PAGES)
def test_no_page_points_outside_this_machine(client: TestClient, path: str) -> None:
    html = client.get(path).text
    hosts = set(URL_RE.findall(html))
    assert hosts, "the page should carry third-party URLs"
    outside = {h for h in hosts if h != SITE and not h.removesuffix(f":{PORT}").endswith(".localhost")}
    assert outside == set()
    # and the third parties are reached on the demo's own port
    assert all(h == SITE or h.endswith(f".localhost:{PORT}") for h in hosts)


def test_home_page_carries_about_thirteen_real_shaped_tracker_tags(client: TestClient) -> None:
    catalog = Catalog.builtin()
    page = collect(client.get("/").text)
    found: list[str] = []
    for tag, attrs in page.tags:
        kind = {"script": "script", "iframe": "iframe", "img": "img"}.get(tag)
        url = attrs.get("src", "")
        if tag == "link" and attrs.get("rel") in ("preconnect", "dns-prefetch"):
            kind, url = "link", attrs["href"]
        if kind and url and not url.startswith("/static/"):
            vendor = catalog.vendor_for_url(url, kind)
            assert vendor is not None, f"catalog does not know <{tag}> {url}"
            found.append(vendor.id)
    for attrs, text in page.inline_scripts:
        if attrs.get("type") == "text/plain":
            assert attrs.get("data-category") == "analytics"  # the hand-marked tag
            found.append("hand-marked")
            continue
        vendor = catalog.vendor_for_inline(text)
        if vendor is not None:
            found.append(vendor.id)
        else:
            assert "cgDemoLoaded" in text, f"an unknown inline script: {text[:80]!r}"
    tags = [v for v in found if v]
    assert 12 <= len(tags) - 2 <= 15  # the two preconnect links are not tags
    assert {
        "google-analytics",
        "google-tag-manager",
        "meta-pixel",
        "linkedin-insight",
        "hotjar",
        "matomo",
        "tiktok-pixel",
        "twitter",
        "hand-marked",
    } <= set(tags)


@pytest.mark.parametrize(
    ("path", "vendors"),
    [("/video", {"youtube", "vimeo"}), ("/contact", {"google-maps"}), ("/blog", {"twitter"})],
)
def test_embeds_are_matched_by_the_catalog(client: TestClient, path: str, vendors: set[str]) -> None:
    catalog = Catalog.builtin()
    page = collect(client.get(path).text)
    found = set()
    for tag, attrs in page.tags:
        if tag in ("iframe", "script") and attrs.get("src"):
            vendor = catalog.vendor_for_url(attrs["src"], tag)
            if vendor is not None:
                found.add(vendor.id)
    assert vendors <= found


def test_site_sets_a_necessary_and_a_tracking_cookie(client: TestClient) -> None:
    response = client.get("/")
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("session="))
    assert "HttpOnly" in session
    assert any(c.startswith("_fbp=fb.1.") for c in cookies)
    again = client.get("/blog")  # the client now holds `session`: it is not set twice
    assert not any(c.startswith("session=") for c in again.headers.get_list("set-cookie"))


def test_csp_page_has_a_strict_nonce_policy_and_nonced_scripts(client: TestClient) -> None:
    response = client.get("/csp")
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert "'strict-dynamic'" in policy
    scripts = [attrs for tag, attrs in collect(response.text).tags if tag == "script"]
    assert len(scripts) >= 10
    assert all(attrs.get("nonce") == nonce for attrs in scripts)
    assert client.get("/csp").headers["content-security-policy"] != policy  # fresh per response
    assert "nonce=" not in client.get("/").text


@pytest.mark.parametrize(
    ("host", "path", "vendor", "cookie"),
    [
        ("www.googletagmanager.com", "/gtag/js?id=G-DEMO", "google-analytics", "_ga_DEMO="),
        ("www.googletagmanager.com", "/gtm.js?id=GTM-DEMO", "google-tag-manager", None),
        ("connect.facebook.net", "/en_US/fbevents.js", "meta-pixel", "_fbp="),
        ("snap.licdn.com", "/li.lms-analytics/insight.min.js", "linkedin-insight", "li_fat_id="),
        ("static.hotjar.com", "/c/hotjar-1.js?sv=6", "hotjar", "_hjSessionUser_1="),
        ("analytics.tiktok.com", "/i18n/pixel/events.js?sdkid=CDEMO&lib=ttq", "tiktok-pixel", "_ttp="),
        ("platform.twitter.com", "/widgets.js", "twitter", None),
    ],
)
def test_vendor_hosts_serve_scripts_that_behave_like_the_real_tags(
    client: TestClient, host: str, path: str, vendor: str, cookie: str | None
) -> None:
    response = vendor_get(client, host, path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-store"
    script = response.text
    assert f'"{vendor}"' in script and "cgDemoLoaded" in script
    if cookie:
        assert cookie in script and "document.cookie" in script
    beacon = re.search(r'"(http://[^"]+)"\);\s*$', script).group(1)
    assert re.match(rf"http://[a-z0-9.\-]+\.localhost:{PORT}/", beacon), beacon
    hits = client.get("/_demo/hits").json()
    assert {"vendor": vendor, "host": host, "path": path.split("?")[0], "kind": "script", "method": "GET"} in hits


def test_vendor_pixels_answer_a_one_pixel_gif_and_are_recorded(client: TestClient) -> None:
    for host, path in [
        ("www.facebook.com", "/tr"),
        ("px.ads.linkedin.com", "/collect/"),
        ("www.google-analytics.com", "/g/collect"),
    ]:
        response = vendor_get(client, host, path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert response.content.startswith(b"GIF89a") and len(response.content) < 64
    beacon = client.post("/g/collect?v=2", headers={"host": f"www.google-analytics.com.localhost:{PORT}"})
    assert beacon.status_code == 200
    vendors = [(hit["vendor"], hit["kind"]) for hit in client.get("/_demo/hits").json()]
    assert ("meta-pixel", "beacon") in vendors and ("google-analytics", "beacon") in vendors


@pytest.mark.parametrize(
    ("host", "path", "vendor"),
    [
        ("www.youtube.com", "/embed/dQw4w9WgXcQ?si=DEMO", "youtube"),
        ("player.vimeo.com", "/video/76979871", "vimeo"),
        ("www.google.com", "/maps/embed?pb=!1m18", "google-maps"),
        ("www.googletagmanager.com", "/ns.html?id=GTM-DEMO", "google-tag-manager"),
    ],
)
def test_vendor_iframes_are_tiny_pages_that_report_to_the_parent(
    client: TestClient, host: str, path: str, vendor: str
) -> None:
    response = vendor_get(client, host, path)
    assert response.headers["content-type"].startswith("text/html")
    assert f'postMessage({{ cgDemoLoaded: "{vendor}" }}' in response.text
    assert "Set-Cookie" not in response.headers


def test_self_hosted_matomo_is_on_the_sites_own_host(client: TestClient) -> None:
    html = client.get("/").text
    assert f'var u="//{SITE}/";' in html
    script = client.get("/matomo.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "_pk_id.1.abcd=" in script.text
    assert f'"http://{SITE}/matomo.php?idsite=1\\u0026rec=1"' in script.text  # JSON-escaped "&"
    assert client.get("/matomo.php?idsite=1&rec=1").content.startswith(b"GIF89a")


def test_unknown_hosts_get_the_site_not_a_vendor(client: TestClient) -> None:
    response = client.get("/", headers={"host": f"www.notgoogletagmanager.com.localhost:{PORT}"})
    assert "<html" in response.text


def test_hostile_host_header_is_not_reflected(client: TestClient) -> None:
    response = client.get("/", headers={"host": 'evil"><script>alert(1)</script>'})
    assert response.status_code == 200
    assert "alert(1)" not in response.text
    assert "//www.googletagmanager.com.localhost" in response.text


def test_contact_form_thanks_without_injecting_markup(client: TestClient) -> None:
    response = client.post("/contact", data={"name": "<b>Zoé</b>", "email": "z@example.org", "message": "Bonjour"})
    assert response.status_code == 200
    assert "Merci &lt;b&gt;Zoé&lt;/b&gt;" in response.text


def test_stylesheet_is_served_locally(client: TestClient) -> None:
    response = client.get("/static/site.css")
    assert response.status_code == 200
    assert "--green" in response.text
    assert not URL_RE.search(response.text.replace("http://www.w3.org", ""))


def test_vendor_host_set_covers_every_url_on_the_pages(client: TestClient) -> None:
    for path in PAGES:
        for host in URL_RE.findall(client.get(path).text):
            if host != SITE:
                assert host.removesuffix(f".localhost:{PORT}") in VENDOR_HOSTS, host


def test_bypass_sends_vendor_hosts_around_the_gateway() -> None:
    site = build_demo_site()

    async def gateway(scope, receive, send):  # a stand-in that marks what went through it
        async def marked_send(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-through-gateway", b"1")]
            await send(message)

        await site(scope, receive, marked_send)

    client = TestClient(bypass_for_vendor_hosts(gateway, site), base_url=f"http://{SITE}")
    assert client.get("/").headers.get("x-through-gateway") == "1"
    framed = client.get("/embed/x", headers={"host": f"www.youtube.com.localhost:{PORT}"})
    assert "x-through-gateway" not in framed.headers
    assert "youtube" in framed.text
