"""The banner under the strictest nonce-only CSP (no 'strict-dynamic', no 'self' for scripts or styles),
with a themed, repositioned banner from the config, on a bare ASGI site behind the real gateway."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from consent_gateway._types import Receive, Scope, Send

from .conftest import SECRET_KEYS, Visit, gateway_config, serve

pytestmark = pytest.mark.browser

NONCE = "c3RyaWN0LWNzcC10ZXN0"
CSP = (
    f"default-src 'self'; script-src 'nonce-{NONCE}'; style-src 'nonce-{NONCE}'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
MATOMO_JS = b'window.cgDemoLoaded.push("matomo"); document.cookie = "_pk_id.1.abcd=1; path=/";'
#: Subresource integrity of the script: kept on the restored tag, the browser still checks it.
MATOMO_SRI = "sha384-" + base64.b64encode(hashlib.sha384(MATOMO_JS).digest()).decode()
ACCENT = "#7c2d12"
HOSTILE_TITLE = '</script><img src=x onerror="window.cgPwned = 1"> Cookies & <b>you</b>'
PAGE = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Strict CSP</title>
<script nonce="{NONCE}">window.cgDemoLoaded = [];</script>
<script async src="/matomo.js" integrity="{MATOMO_SRI}" crossorigin="anonymous" nonce="{NONCE}"></script>
<script type="text/plain" data-category="analytics" nonce="{NONCE}">window.cgDemoLoaded.push("hand-marked");</script>
</head><body><main><h1>A strict site</h1><p>Only scripts and styles carrying the nonce may run.</p></main>
</body></html>
""".encode()


async def strict_site(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/matomo.js":
        headers = [(b"content-type", b"text/javascript")]
        body = MATOMO_JS
    else:
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-security-policy", CSP.encode())]
        body = PAGE
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def strict_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from consent_gateway.middleware import ConsentGateway

    config = gateway_config(
        tmp_path_factory.mktemp("strict-csp-data"),
        theme={"accent": ACCENT},
        position="bottom-right",
        reopen_position="hidden",
        texts={"en": {"title": HOSTILE_TITLE}},
    )
    with serve(ConsentGateway(strict_site, config, secret_keys=SECRET_KEYS)) as url:
        yield url


def test_banner_works_under_a_nonce_only_csp_with_theme_and_position(visit: Any, strict_url: str) -> None:
    v: Visit = visit(base_url=strict_url)
    v.page.add_init_script(
        "window.cgViolations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.cgViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    v.goto("/")
    assert v.vendors_loaded() == set()
    accept = v.page.get_by_role("button", name="Accept all", exact=True)  # <html lang="en">: not offered de-DE
    expect(accept).to_be_visible()
    # Themed from the config through CSS custom properties (rgb of #7c2d12).
    assert accept.evaluate("(b) => getComputedStyle(b).backgroundColor") == "rgb(124, 45, 18)"
    box = v.page.locator("#cg-root .cg-b").bounding_box()
    assert box is not None and box["x"] > 1280 / 2 and box["x"] + box["width"] >= 1280 - 32  # bottom-right
    # A configured text is shown as text, never parsed as markup.
    expect(v.page.locator("#cg-root .cg-b h2")).to_have_text(HOSTILE_TITLE)
    assert v.page.evaluate("() => window.cgPwned") is None
    accept.click()
    v.page.wait_for_function("() => ['matomo', 'hand-marked'].every((id) => window.cgDemoLoaded.includes(id))")
    assert v.page.evaluate("() => window.cgViolations") == []
    restored = v.page.locator('script[src="/matomo.js"]')
    assert restored.get_attribute("integrity") == MATOMO_SRI
    assert restored.get_attribute("crossorigin") == "anonymous"
    assert restored.evaluate("(s) => [s.async, s.type, s.nonce]") == [True, "", NONCE]
    assert not [e for e in v.console_errors if "Content Security Policy" in e]
    # The reopen control is hidden by the config; the API still opens the preferences.
    expect(v.page.locator("#cg-root .cg-re")).to_be_hidden()
    v.page.evaluate("() => window.consentGateway.showPreferences()")
    expect(v.page.get_by_role("button", name="Save my choices")).to_be_visible()
