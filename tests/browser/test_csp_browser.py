"""The CSP backstop in a real Chromium: a tracker a script injects after load, which the rewriter cannot see.

The site has its own strict policy (a nonce and 'strict-dynamic', so its own scripts may load anything) and
an inline script that, after load, injects the Meta pixel from a URL built from pieces, as a tag manager
does. Before consent the backstop reports it (report mode) or blocks it (enforce mode); the site's inline
script still runs and the site's own policy still applies.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from consent_gateway.config import CSPConfig

from .conftest import SECRET_KEYS, Visit, gateway_config, serve

pytestmark = pytest.mark.browser

Open = Callable[..., Visit]
NONCE = "Y3NwLWJyb3dzZXItdGVzdA"
SITE_CSP = f"script-src 'nonce-{NONCE}' 'strict-dynamic'; object-src 'none'; base-uri 'none'"
TRACKER_HOST = "connect.facebook.net.localhost"
WAIT_SECONDS = 10.0


#: the tracker's server log: (request path, the page it was loaded from)
TRACKER_HITS: list[tuple[str, str]] = []


def _tracker_app() -> Starlette:
    async def script(request: Request) -> Response:
        TRACKER_HITS.append((request.url.path, request.headers.get("referer", "")))
        return Response(
            "(window.cgRan = window.cgRan || []).push('meta');",
            media_type="text/javascript",
            headers={"Cache-Control": "no-store"},
        )

    return Starlette(routes=[Route("/en_US/fbevents.js", script)])


def _site(tracker_port: int) -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse(
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>'
            f'<script nonce="{NONCE}">window.siteInline = true;'
            # the tag manager: after load, a script from a URL the HTML never spells out
            "addEventListener('load', function () { setTimeout(function () {"
            "  var s = document.createElement('script');"
            # (split, so that neither the rewriter's inline signatures nor its host patterns can see it)
            f"  s.src = 'http://' + ['connect', 'face' + 'book', 'net', 'localhost'].join('.') + ':{tracker_port}'"
            "    + '/en_US/fbe' + 'vents.js';"
            "  document.head.appendChild(s); }, 50); });</script>"
            # no nonce: the site's own policy blocks it, whatever the backstop allows
            "<script>window.unnonced = true;</script>"
            "</head><body><h1>Shop</h1><p>Welcome</p></body></html>",
            headers={"content-security-policy": SITE_CSP, "cache-control": "no-store"},
        )

    return Starlette(routes=[Route("/", page), Route("/shop/item", page)])


@pytest.fixture(scope="module")
def tracker_port() -> Iterator[int]:
    with serve(_tracker_app()) as url:
        yield int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory, tracker_port: int) -> Iterator[dict[str, str]]:
    """The shop behind the gateway, in report mode and in enforce mode."""
    from consent_gateway.middleware import ConsentGateway

    urls: dict[str, str] = {}
    with ExitStack() as stack:
        for mode in ("report", "enforce"):
            config = gateway_config(Path(tmp_path_factory.mktemp(f"csp-{mode}")), default_language="en")
            config = replace(config, csp=CSPConfig(mode=mode))  # type: ignore[arg-type]
            gateway = ConsentGateway(_site(tracker_port), config, secret_keys=SECRET_KEYS)
            urls[mode] = stack.enter_context(serve(gateway))
        yield urls


def reports_for(base_url: str, host: str) -> int:
    """How many loads without consent of `host` the gateway counted (its Prometheus metrics)."""
    text = httpx.get(base_url + "/_consent/metrics").text
    found = re.findall(
        rf'consent_gateway_csp_reports_total\{{directive="([^"]+)",host="{re.escape(host)}"\}} (\d+)', text
    )
    return sum(int(count) for _, count in found)


def wait_for_reports(base_url: str, host: str) -> int:
    deadline = time.monotonic() + WAIT_SECONDS
    while (count := reports_for(base_url, host)) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


def watch_violations(v: Visit) -> None:
    v.page.add_init_script(
        "window.cgViolations = [];"
        "document.addEventListener('securitypolicyviolation', (e) => window.cgViolations.push("
        "[e.disposition, e.effectiveDirective, e.blockedURI].join(' ')));"
    )


def test_report_mode_reports_a_late_injected_tracker_and_blocks_nothing(visit: Open, sites: dict[str, str]) -> None:
    v = visit(base_url=sites["report"])
    watch_violations(v)
    v.goto("/shop/item?ref=newsletter")
    v.page.wait_for_function("() => (window.cgRan || []).includes('meta')")  # report-only: it loads
    assert v.page.evaluate("() => window.siteInline") is True
    assert v.page.evaluate("() => window.unnonced") is None  # the site's own policy still applies
    violations = v.page.evaluate("() => window.cgViolations")
    assert any(x.startswith("report script-src-elem http://connect.facebook.net.localhost") for x in violations)
    assert wait_for_reports(sites["report"], TRACKER_HOST) >= 1


def test_enforce_mode_blocks_it_while_the_site_s_scripts_run(visit: Open, sites: dict[str, str]) -> None:
    v = visit(base_url=sites["enforce"])
    watch_violations(v)
    v.goto("/")
    v.page.wait_for_function("() => window.cgViolations.some((x) => x.includes('connect.facebook.net.localhost'))")
    v.page.wait_for_timeout(200)
    assert "meta" not in v.page.evaluate("() => window.cgRan || []")
    assert not [hit for hit in TRACKER_HITS if hit[1].startswith(sites["enforce"])]  # never fetched
    assert v.page.evaluate("() => window.siteInline") is True
    assert v.page.evaluate("() => window.unnonced") is None
    assert any(x.startswith("enforce script-src-elem") for x in v.page.evaluate("() => window.cgViolations"))
    assert wait_for_reports(sites["enforce"], TRACKER_HOST) >= 1
    # the banner is the site's too: it works under both policies
    v.page.get_by_role("button", name="Accept all", exact=True).click()
    # a grant reloads the page under enforce mode, and the new page allows what was granted
    v.page.wait_for_function("() => (window.cgRan || []).includes('meta')")
    assert v.page.evaluate("() => window.siteInline") is True
