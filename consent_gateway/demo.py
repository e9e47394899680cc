"""The demo: a small association site carrying real-shaped third-party tags, and the third parties too.

Everything is answered by this one app, so nothing leaves the machine. The pages load their trackers from
the vendors' real host names under ``.localhost`` on the demo's own port
(``http://www.googletagmanager.com.localhost:8000/gtag/js?id=G-DEMO``): browsers resolve ``*.localhost`` to
loopback, the built-in catalog matches those hosts label-aligned, and requests for them come back here, where
``Host`` routing serves small stand-ins. Each stand-in does what the real tag does in ways a test can see —
sets its well-known first-party cookies, sends a beacon to its vendor, and records its vendor id in
``window.cgDemoLoaded`` — and every request a vendor host receives is listed at ``/_demo/hits``.

The site itself also sets a necessary cookie (``session``) and a tracking one (``_fbp``, as a server-side
pixel integration would) with ``Set-Cookie``, so the gateway's cookie filter has something to show, and
``/csp`` is served with a strict nonce-based Content-Security-Policy.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Host, Mount, Route
from starlette.staticfiles import StaticFiles

from ._types import ASGIApp, Receive, Scope, Send

DEMO_DIR: Final = Path(__file__).parent / "demo_site"
HOST_SUFFIX: Final = ".localhost"
HITS_MAX_ENTRIES: Final = 1000
CONTACT_MAX_BODY_BYTES: Final = 16_384
SITE_FBP_MAX_AGE_SECONDS: Final = 90 * 24 * 3600  # Meta's _fbp lifetime
NO_STORE: Final = {"Cache-Control": "no-store"}
#: the smallest transparent GIF, what tracking pixels answer
PIXEL_GIF: Final = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


@dataclass(frozen=True, slots=True)
class FakeVendor:
    id: str  # the built-in catalog's vendor id ("unclassified" for a third party the catalog does not know)
    name: str
    #: ``name=value`` cookies its script sets with ``document.cookie`` (first-party, as the real ones)
    cookies: tuple[str, ...] = ()
    #: ``host/path?query`` its script pings, on the vendor's side; a leading "/" means the site's own host
    beacon: str = ""


VENDORS: Final = {
    vendor.id: vendor
    for vendor in (
        FakeVendor(
            "google-analytics",
            "Google Analytics 4 (gtag.js)",
            (
                "_ga=GA1.1.1234567890.1767225600",
                "_ga_DEMO=GS1.1.1767225600.1.0.1767225600.0.0.0",
                "_gid=GA1.1.987654321.1767225600",
            ),
            "www.google-analytics.com/g/collect?v=2&tid=G-DEMO&en=page_view",
        ),
        FakeVendor("google-tag-manager", "Google Tag Manager", (), "www.googletagmanager.com/a?id=GTM-DEMO"),
        FakeVendor(
            "meta-pixel",
            "Meta Pixel",
            ("_fbp=fb.1.1767225600000.1234567890",),
            "www.facebook.com/tr/?id=123456789012345&ev=PageView",
        ),
        FakeVendor(
            "linkedin-insight",
            "LinkedIn Insight Tag",
            ("li_fat_id=demo-li-fat-id", "_gcl_au=1.1.123.1767225600"),
            "px.ads.linkedin.com/collect/?pid=1234567&fmt=js",
        ),
        FakeVendor(
            "hotjar",
            "Hotjar",
            ("_hjSessionUser_1=eyJpZCI6ImRlbW8ifQ==", "_hjSession_1=eyJpZCI6ImRlbW8ifQ=="),
            "in.hotjar.com/api/v2/client/sites/1/visit-data",
        ),
        FakeVendor(
            "matomo",
            "Matomo (self-hosted)",
            ("_pk_id.1.abcd=0123456789abcdef.1767225600.", "_pk_ses.1.abcd=1"),
            "/matomo.php?idsite=1&rec=1",
        ),
        FakeVendor("tiktok-pixel", "TikTok Pixel", ("_ttp=demo-ttp",), "analytics.tiktok.com/api/v2/pixel"),
        FakeVendor("twitter", "X (Twitter) widgets", (), "syndication.twitter.com/settings"),
        FakeVendor("youtube", "YouTube", ("YSC=demo-ysc", "VISITOR_INFO1_LIVE=demo-visitor")),
        FakeVendor("vimeo", "Vimeo", ("vuid=demo-vuid",)),
        # a widget no catalog knows: held back as "unclassified", named in the banner's preferences
        FakeVendor("unclassified", "Météo du quartier", ("meteo_uid=demo-meteo",)),
        FakeVendor("google-maps", "Google Maps", ("NID=demo-nid",)),
    )
}

#: what each vendor host answers: (host, path prefix, kind, vendor id); anything else is a pixel/beacon
_RESOURCES: Final = (
    ("www.googletagmanager.com", "/gtag/js", "script", "google-analytics"),
    ("www.googletagmanager.com", "/gtm.js", "script", "google-tag-manager"),
    ("www.googletagmanager.com", "/ns.html", "frame", "google-tag-manager"),
    ("connect.facebook.net", "/en_US/fbevents.js", "script", "meta-pixel"),
    ("snap.licdn.com", "/li.lms-analytics/insight.min.js", "script", "linkedin-insight"),
    ("static.hotjar.com", "/c/hotjar-", "script", "hotjar"),
    ("analytics.tiktok.com", "/i18n/pixel/events.js", "script", "tiktok-pixel"),
    ("platform.twitter.com", "/widgets.js", "script", "twitter"),
    ("twitter.com", "/", "frame", "twitter"),  # a tweet's permalink, opened from the embed
    ("www.youtube.com", "/embed/", "frame", "youtube"),
    ("player.vimeo.com", "/video/", "frame", "vimeo"),
    ("www.google.com", "/maps/embed", "frame", "google-maps"),
    ("widgets.meteo-quartier.net", "/widget.js", "script", "unclassified"),
)
_BEACON_ONLY_HOSTS: Final = (
    "www.google-analytics.com",
    "www.facebook.com",
    "px.ads.linkedin.com",
    "in.hotjar.com",
    "syndication.twitter.com",
)
#: third-party hosts the demo answers (each under ``.localhost``)
VENDOR_HOSTS: Final = frozenset(host for host, *_ in _RESOURCES) | frozenset(_BEACON_ONLY_HOSTS)

_FRAME_LOOKS: Final = {  # icon, caption, background, text colour
    "youtube": ("▶", "lecture de la vidéo", "#0f0f0f", "#fff"),
    "vimeo": ("▶", "lecture de la vidéo", "#1a2e3b", "#fff"),
    "google-maps": ("⌖", "12 quai Claude-Bernard, Lyon", "#e5efe0", "#1d2a22"),
    "google-tag-manager": ("", "noscript", "#fff", "#000"),
    "twitter": ("✎", "publication", "#fff", "#0f1419"),
}

_NAV: Final = {
    "fr": (
        ("/", "Accueil"),
        ("/blog", "Blog"),
        ("/video", "Vidéos"),
        ("/contact", "Contact"),
        ("/privacy", "Confidentialité"),
    ),
    "en": (
        ("/en/", "Home"),
        ("/blog", "Blog (fr)"),
        ("/video", "Videos (fr)"),
        ("/contact", "Contact (fr)"),
        ("/en/privacy", "Privacy"),
    ),
}
_OTHER_LANGUAGE: Final = {"/": "/en/", "/en/": "/", "/privacy": "/en/privacy", "/en/privacy": "/privacy"}
_HOST_HEADER_RE: Final = re.compile(r"(?P<name>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>\d{1,5}))?")


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where the visitor reached the demo, so third-party URLs point back to the same port."""

    scheme: str
    host: str  # as in the Host header: name[:port]
    port_suffix: str  # ":8000" or ""

    @classmethod
    def of(cls, request: Request) -> _Origin:
        match = _HOST_HEADER_RE.fullmatch(request.headers.get("host", ""))
        if match is None:  # a Host header we will not reflect into pages
            server = request.scope.get("server")
            port = f":{server[1]}" if server and server[1] not in (80, 443, None) else ""
            return cls(request.url.scheme, f"localhost{port}", port)
        port = f":{match['port']}" if match["port"] else ""
        return cls(request.url.scheme, f"{match['name']}{port}", port)

    def vendor_url(self, host: str, scheme: bool = True) -> str:
        """``http://www.googletagmanager.com.localhost:8000`` for ``www.googletagmanager.com``."""
        base = f"//{host}{HOST_SUFFIX}{self.port_suffix}"
        return f"{self.scheme}:{base}" if scheme else base

    def beacon_url(self, beacon: str) -> str:
        if beacon.startswith("/"):
            return f"{self.scheme}://{self.host}{beacon}"
        host, _, rest = beacon.partition("/")
        return f"{self.vendor_url(host)}/{rest}"


def _vendor_host(scope: Scope) -> str | None:
    """The demo vendor host a request is for (``www.youtube.com``), or None for the site itself."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1").lower().rsplit(":", 1)[0] if not value.endswith(b"]") else ""
            if host.endswith(HOST_SUFFIX) and host[: -len(HOST_SUFFIX)] in VENDOR_HOSTS:
                return host[: -len(HOST_SUFFIX)]
            return None
    return None


class _DemoSite:
    def __init__(self) -> None:
        self.hits: deque[dict[str, Any]] = deque(maxlen=HITS_MAX_ENTRIES)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(DEMO_DIR / "templates"),
            autoescape=jinja2.select_autoescape(["html"]),
            keep_trailing_newline=True,
        )

    # -- the association's pages

    def render(
        self, request: Request, template: str, *, lang: str = "fr", nonce: str | None = None, **extra: Any
    ) -> HTMLResponse:
        origin = _Origin.of(request)
        path = request.url.path
        context = {
            "lang": lang,
            "path": path,
            "nav": _NAV[lang],
            "other_lang_href": _OTHER_LANGUAGE.get(path, "/" if lang == "en" else "/en/"),
            "site": origin.host,
            "v": origin.vendor_url,
            "n": Markup(' nonce="{}"').format(nonce) if nonce else "",
            "t": (lambda fr, en: en) if lang == "en" else (lambda fr, en: fr),
            **extra,
        }
        response = HTMLResponse(self.templates.get_template(template).render(context))
        self.set_site_cookies(request, response)
        return response

    @staticmethod
    def set_site_cookies(request: Request, response: Response) -> None:
        if "session" not in request.cookies:  # strictly necessary: kept whatever the visitor chose
            response.set_cookie("session", secrets.token_urlsafe(18), httponly=True, samesite="lax")
        # a tracking cookie set server-side, as a Conversions API integration does: the gateway drops it
        fbp = f"fb.1.{int(time.time() * 1000)}.{secrets.randbelow(10**10)}"
        response.set_cookie("_fbp", fbp, max_age=SITE_FBP_MAX_AGE_SECONDS, samesite="lax")

    async def home(self, request: Request) -> Response:
        return self.render(request, "home.html")

    async def home_en(self, request: Request) -> Response:
        return self.render(request, "home.html", lang="en")

    async def blog(self, request: Request) -> Response:
        return self.render(request, "blog.html")

    async def video(self, request: Request) -> Response:
        return self.render(request, "video.html")

    async def contact(self, request: Request) -> Response:
        sent = None
        if request.method == "POST":  # a plain urlencoded form: no multipart parser needed
            body = (await request.body())[:CONTACT_MAX_BODY_BYTES].decode("utf-8", "replace")
            name = parse_qs(body).get("name", [""])[0]
            sent = name.strip()[:80] or "à vous"
        return self.render(request, "contact.html", sent=sent)

    async def privacy(self, request: Request) -> Response:
        return self.render(request, "privacy.html")

    async def privacy_en(self, request: Request) -> Response:
        return self.render(request, "privacy.html", lang="en")

    async def csp(self, request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        response = self.render(request, "csp.html", nonce=nonce)
        response.headers["Content-Security-Policy"] = (
            f"script-src 'nonce-{nonce}' 'strict-dynamic'; object-src 'none'; base-uri 'none'"
        )
        return response

    async def hits_json(self, request: Request) -> Response:
        return JSONResponse(list(self.hits), headers=NO_STORE)

    # -- self-hosted Matomo on the site's own host

    async def matomo(self, request: Request) -> Response:
        is_script = request.url.path.endswith(".js")
        self.record(request, "matomo", _Origin.of(request).host, "script" if is_script else "beacon")
        if is_script:
            return self.vendor_script(request, VENDORS["matomo"])
        return Response(PIXEL_GIF, media_type="image/gif", headers=NO_STORE)

    # -- the third parties, by Host

    async def vendor(self, request: Request) -> Response:
        host = _vendor_host(request.scope) or ""
        path = request.url.path
        for resource_host, prefix, kind, vendor_id in _RESOURCES:
            if host == resource_host and path.startswith(prefix):
                self.record(request, vendor_id, host, kind)
                if kind == "script":
                    return self.vendor_script(request, VENDORS[vendor_id])
                return self.vendor_frame(VENDORS[vendor_id])
        self.record(request, _beacon_vendor(host), host, "beacon")
        return Response(PIXEL_GIF, media_type="image/gif", headers=NO_STORE)

    def vendor_script(self, request: Request, vendor: FakeVendor) -> Response:
        origin = _Origin.of(request)
        beacon = origin.beacon_url(vendor.beacon) if vendor.beacon else ""
        body = self.templates.get_template("vendor.js").render(
            vendor=vendor.id, name=vendor.name, cookies=list(vendor.cookies), beacon=beacon
        )
        return Response(body, media_type="text/javascript; charset=utf-8", headers=NO_STORE)

    def vendor_frame(self, vendor: FakeVendor) -> Response:
        icon, caption, background, color = _FRAME_LOOKS[vendor.id]
        body = self.templates.get_template("frame.html").render(
            vendor=vendor.id,
            name=vendor.name,
            cookies=list(vendor.cookies),
            icon=icon,
            caption=caption,
            background=background,
            color=color,
        )
        return HTMLResponse(body, headers=NO_STORE)

    def record(self, request: Request, vendor_id: str, host: str, kind: str = "script") -> None:
        self.hits.append(
            {"vendor": vendor_id, "host": host, "path": request.url.path, "kind": kind, "method": request.method}
        )


def _beacon_vendor(host: str) -> str:
    for vendor in VENDORS.values():
        if vendor.beacon.partition("/")[0] == host:
            return vendor.id
    return next((vendor_id for h, _, _, vendor_id in _RESOURCES if h == host), host)


def build_demo_site() -> Starlette:
    """The sample site and its stand-in third parties in one Starlette app, routed by ``Host``.

    ``app.state.vendor_hits`` (also ``GET /_demo/hits``) lists the requests the vendor hosts received.
    """
    demo = _DemoSite()
    vendor_routes = [Route("/{path:path}", demo.vendor, methods=["GET", "POST"])]
    routes: list[BaseRoute] = [
        *(Host(f"{host}{HOST_SUFFIX}", Starlette(routes=vendor_routes)) for host in sorted(VENDOR_HOSTS)),
        Route("/", demo.home),
        Route("/en/", demo.home_en),
        Route("/blog", demo.blog),
        Route("/video", demo.video),
        Route("/contact", demo.contact, methods=["GET", "POST"]),
        Route("/privacy", demo.privacy),
        Route("/en/privacy", demo.privacy_en),
        Route("/csp", demo.csp),
        Route("/matomo.js", demo.matomo),
        Route("/matomo.php", demo.matomo, methods=["GET", "POST"]),
        Route("/_demo/hits", demo.hits_json),
        Mount("/static", StaticFiles(directory=DEMO_DIR / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.vendor_hits = demo.hits
    return app


def bypass_for_vendor_hosts(gateway: ASGIApp, site: ASGIApp) -> ASGIApp:
    """Send requests for the stand-in third parties straight to ``site``, the rest (and lifespan) to
    ``gateway``: real vendors are not behind the site's gateway, and their iframes must not get a banner."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _vendor_host(scope) is not None:
            await site(scope, receive, send)
        else:
            await gateway(scope, receive, send)

    return app
