"""The CSP backstop policy: what it allows for each visitor, and how it reaches the page through the proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from email.utils import formatdate, parsedate_to_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from consent_gateway import metrics
from consent_gateway.config import (
    AllowedHost,
    BannerConfig,
    Config,
    CSPConfig,
    GatewayConfig,
    ThirdPartiesConfig,
    parse_config,
)
from consent_gateway.consent import ConsentRecord
from consent_gateway.csp import ENFORCE_HEADER, POLICY_MAX_BYTES, REPORT_ONLY_HEADER, BackstopPolicy
from consent_gateway.decision import Decision
from consent_gateway.errors import ConfigError
from consent_gateway.middleware import ConsentGateway
from consent_gateway.proxy import UpstreamProxy
from consent_gateway.thirdparty import site_catalog
from tests.conftest import TEST_SECRET_KEYS
from tests.servers import ServerThread

UNDECIDED = Decision(granted=frozenset({"necessary"}), site="example.org")
HTTP = {"scheme": "http"}
HTTPS = {"scheme": "https"}


def policy_of(config: Config, decision: Decision, scope: dict[str, str] = HTTP) -> dict[bytes, str]:
    backstop = BackstopPolicy(config, site_catalog(config))
    return {name: value.decode() for name, value in backstop.headers(scope, decision)}


def sources(config: Config, decision: Decision) -> list[str]:
    (policy,) = policy_of(config, decision).values()
    directive, _, rest = policy.partition(";")[0].partition(" ")
    assert directive == "default-src"
    return rest.split(" ")


def granted(*categories: str, **vendors: bool) -> Decision:
    return Decision(
        granted=frozenset({"necessary", *categories}),
        vendors_granted=frozenset(v for v, on in vendors.items() if on),
        vendors_refused=frozenset(v for v, on in vendors.items() if not on),
        explicit=True,
        site="example.org",
    )


# -- the policy builder ------------------------------------------------------------------------------------


def test_an_undecided_visitor_may_load_from_the_site_and_allowed_hosts_only() -> None:
    headers = policy_of(Config(), UNDECIDED)
    assert list(headers) == [REPORT_ONLY_HEADER]
    allowed = sources(Config(), UNDECIDED)
    assert allowed[:5] == ["'self'", "'unsafe-inline'", "'unsafe-eval'", "data:", "blob:"]
    assert {"example.org", "*.example.org", "cdnjs.cloudflare.com", "js.stripe.com"} <= set(allowed)
    assert "www.paypal.com/sdk/" in allowed  # an allow-list entry limited to a path keeps its path
    assert not [s for s in allowed if "googletagmanager" in s or "google-analytics" in s or "doubleclick" in s]
    assert "fonts.googleapis.com" not in allowed  # built-in entry that is off until the owner enables it
    assert headers[REPORT_ONLY_HEADER].endswith("; report-uri /_consent/csp-report?state=none")


def test_the_hosts_of_granted_categories_are_allowed_and_no_others() -> None:
    allowed = sources(Config(), granted("analytics"))
    assert {"google-analytics.com", "*.google-analytics.com", "analytics.google.com"} <= set(allowed)
    assert not {"facebook.net", "connect.facebook.net", "*.facebook.net"} & set(allowed)  # marketing


def test_a_vendor_refused_by_name_stays_out_and_one_granted_by_name_comes_in() -> None:
    allowed = sources(Config(), granted("analytics", **{"google-analytics": False, "meta-pixel": True}))
    assert "google-analytics.com" not in allowed
    assert "connect.facebook.net" in allowed


def test_a_visitor_who_granted_unclassified_gets_no_policy() -> None:
    everything = Decision(granted=frozenset(Config().category_ids), explicit=True, site="example.org")
    assert policy_of(Config(), everything) == {}
    # "report"/"allow" let unknown hosts through for everyone: no allow-list can express that
    report = replace(Config(), third_parties=ThirdPartiesConfig(unknown="report"))
    assert policy_of(report, replace(UNDECIDED, granted=frozenset({"necessary", "unclassified"}))) == {}


def test_enforce_mode_sends_a_blocking_policy() -> None:
    config = replace(Config(), csp=CSPConfig(mode="enforce"))
    assert list(policy_of(config, UNDECIDED)) == [ENFORCE_HEADER]


def test_https_pages_also_name_a_reporting_endpoint() -> None:
    headers = policy_of(Config(), granted("analytics"), HTTPS)
    assert headers[REPORT_ONLY_HEADER].endswith("; report-uri /_consent/csp-report?state=partial; report-to cg-csp")
    assert headers[b"reporting-endpoints"] == 'cg-csp="/_consent/csp-report?state=partial"'


def test_the_site_s_first_party_hosts_and_allowed_hosts_are_allowed() -> None:
    config = replace(
        Config(),
        gateway=GatewayConfig(first_party_hosts=("static.example-cdn.net", "*.example-assets.org")),
        third_parties=ThirdPartiesConfig(
            allow=(AllowedHost("widgets.shop-tools.com", "cart"),), enable=("google-fonts",), disable=("jsdelivr",)
        ),
    )
    allowed = sources(config, UNDECIDED)
    assert {"static.example-cdn.net", "*.example-assets.org", "widgets.shop-tools.com"} <= set(allowed)
    assert "fonts.googleapis.com" in allowed and "cdn.jsdelivr.net" not in allowed
    assert "example-assets.org" not in allowed  # "*.host" is its subdomains only


def test_a_host_pattern_cannot_change_the_policy_s_meaning() -> None:
    config = parse_config({"third_parties": {"allow": [{"host": "a.example;script-src", "reason": "x"}]}})
    policy = policy_of(config, UNDECIDED)[REPORT_ONLY_HEADER]
    assert "script-src" not in policy and policy.count(";") == 1


def test_on_this_machine_vendors_are_their_localhost_stand_ins_on_any_port() -> None:
    decision = replace(granted("analytics"), site="127.0.0.1")
    allowed = sources(Config(), decision)
    assert "127.0.0.1:*" in allowed
    assert {"google-analytics.com.localhost:*", "*.google-analytics.com.localhost:*"} <= set(allowed)
    assert not any(s.startswith("*.localhost") for s in sources(Config(), replace(UNDECIDED, site="localhost")))


def test_the_policy_is_built_once_per_decision() -> None:
    backstop = BackstopPolicy(Config(), site_catalog(Config()))
    first = backstop.headers(HTTP, granted("analytics"))
    assert backstop.headers(HTTP, granted("analytics")) is first
    assert backstop.headers(HTTP, UNDECIDED) is not first


def test_a_policy_past_the_size_budget_is_not_sent_and_is_counted() -> None:
    decision = granted("analytics", "marketing", "preferences")
    backstop = BackstopPolicy(Config(), site_catalog(Config()))
    assert len(" ".join(backstop.sources(decision))) > POLICY_MAX_BYTES
    assert backstop.headers(HTTP, decision) == ()
    assert metrics.value("csp_policies_skipped_total", reason="too_large") == 1


def test_the_vendors_the_banner_lists_are_the_ones_the_policy_knows() -> None:
    config = replace(Config(), banner=BannerConfig(vendors=("hotjar",)))
    allowed = sources(config, granted("analytics", "session-replay", "marketing", "preferences"))
    assert "hotjar.com" in allowed and "google-analytics.com" not in allowed


def test_consent_mode_advanced_google_tags_load_before_consent() -> None:
    config = Config()
    backstop = BackstopPolicy(config, site_catalog(config), always_loaded=frozenset({"google-analytics"}))
    assert "google-analytics.com" in backstop.sources(UNDECIDED)
    assert "google-analytics.com" not in backstop.sources(
        replace(UNDECIDED, vendors_refused=frozenset({"google-analytics"}))
    )


def test_csp_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"csp": {"mode": "block"}})
    assert error.value.key == "csp.mode"
    with pytest.raises(ConfigError) as error:
        parse_config({"csp": {"report_max_body_bytes": 10}})
    assert error.value.key == "csp.report_max_body_bytes"
    with pytest.raises(ConfigError) as error:
        parse_config({"cookie": {"tracker_max_age_days": 0}})
    assert error.value.key == "cookie.tracker_max_age_days"
    with pytest.raises(ConfigError) as error:
        parse_config({"csp": {"report_to": True}})
    assert error.value.key == "csp.report_to"


# -- through the proxy, in front of a real upstream --------------------------------------------------------

SITE_CSP = "script-src 'nonce-c2l0ZS1ub25jZQ' 'strict-dynamic'; object-src 'none'; base-uri 'none'"
TWO_YEARS = 2 * 365 * 24 * 3600


async def page(request: Request) -> Response:
    return HTMLResponse(
        "<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1></body></html>",
        headers={"content-security-policy": SITE_CSP},
    )


async def cookies(request: Request) -> Response:
    response = HTMLResponse("<!doctype html><html><head></head><body>cookies</body></html>")
    expires = formatdate(time.time() + TWO_YEARS, usegmt=True)
    response.raw_headers.append(
        (b"set-cookie", f"_ga=GA1.1.42; Max-Age={TWO_YEARS}; Expires={expires}; Path=/".encode())
    )
    response.set_cookie("_gid", "GA1.1.43", max_age=3600, path="/")
    response.set_cookie("cart", "7", max_age=TWO_YEARS, path="/")  # the site's own: not a tracker's
    return response


async def api(request: Request) -> Response:
    return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerThread]:
    app = Starlette(routes=[Route("/", page), Route("/cookies", cookies), Route("/api", api)])
    with ServerThread(app) as server:
        yield server


def serve_gateway(upstream: ServerThread, config: Config) -> tuple[ConsentGateway, ServerThread]:
    gateway = ConsentGateway(UpstreamProxy(upstream.url), config, secret_keys=TEST_SECRET_KEYS)
    return gateway, ServerThread(gateway)


def consent(gateway: ConsentGateway, **choices: bool) -> dict[str, str]:
    base = {c: False for c in ("analytics", "session-replay", "marketing", "preferences", "unclassified")}
    record = ConsentRecord("c42", {**base, **choices}, {}, "1", int(time.time()))
    return {gateway.config.cookie.name: gateway.codec.encode(record)}


def test_a_proxied_page_keeps_its_own_policy_and_gains_the_backstop(upstream: ServerThread, config: Config) -> None:
    gateway, server = serve_gateway(upstream, config)
    with server:
        response = httpx.get(server.url + "/")
        assert response.status_code == 200
        assert response.headers.get_list("content-security-policy") == [SITE_CSP]  # byte for byte
        backstop = response.headers["content-security-policy-report-only"]
        assert backstop.startswith("default-src 'self' 'unsafe-inline'") and "state=none" in backstop
        assert "google-analytics.com.localhost:*" not in backstop
        # the banner still reuses the site's nonce for its tags, as before
        assert 'nonce="c2l0ZS1ub25jZQ"' in response.text
        granted_page = httpx.get(server.url + "/", cookies=consent(gateway, analytics=True))
        assert "google-analytics.com.localhost:*" in granted_page.headers["content-security-policy-report-only"]
        assert "content-security-policy-report-only" not in httpx.get(server.url + "/api").headers


def test_enforce_mode_adds_a_second_content_security_policy(upstream: ServerThread, config: Config) -> None:
    _, server = serve_gateway(upstream, replace(config, csp=CSPConfig(mode="enforce")))
    with server:
        policies = httpx.get(server.url + "/").headers.get_list("content-security-policy")
    assert policies[0] == SITE_CSP and policies[1].startswith("default-src 'self'") and len(policies) == 2


def test_mode_off_sends_no_policy_and_no_report_route(upstream: ServerThread, config: Config) -> None:
    _, server = serve_gateway(upstream, replace(config, csp=CSPConfig(mode="off")))
    with server:
        response = httpx.get(server.url + "/")
        assert "content-security-policy-report-only" not in response.headers
        report = httpx.post(server.url + "/_consent/csp-report", content=b"{}")
    assert report.status_code == 404 and report.json()["error"]["code"] == "not_found"


def test_a_granted_tracker_s_cookie_lives_13_months_at_most(upstream: ServerThread, config: Config) -> None:
    gateway, server = serve_gateway(upstream, config)
    with server:
        response = httpx.get(server.url + "/cookies", cookies=consent(gateway, analytics=True))
    set_cookies = {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}
    assert "Max-Age=34128000" in set_cookies["_ga"]  # 395 days
    assert f"Max-Age={TWO_YEARS}" not in set_cookies["_ga"]
    expires = parsedate_to_datetime(set_cookies["_ga"].split("Expires=")[1].split(";")[0]).timestamp()
    assert abs(expires - (time.time() + 395 * 86400)) < 60
    assert "Max-Age=3600" in set_cookies["_gid"]  # short enough: untouched
    assert f"Max-Age={TWO_YEARS}" in set_cookies["cart"]  # not a tracker's
    assert metrics.value("capped_cookies_total", vendor="google-analytics") == 1


def test_the_cap_follows_the_config(upstream: ServerThread, config: Config) -> None:
    gateway, server = serve_gateway(upstream, replace(config, cookie=replace(config.cookie, tracker_max_age_days=30)))
    with server:
        response = httpx.get(server.url + "/cookies", cookies=consent(gateway, analytics=True))
        refused = httpx.get(server.url + "/cookies")
    (ga,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("_ga=")]
    assert f"Max-Age={30 * 86400}" in ga
    assert not [h for h in refused.headers.get_list("set-cookie") if h.startswith("_ga=")]  # dropped as before


def test_expires_alone_is_capped_too() -> None:
    from consent_gateway.cookies import cap_lifetime

    now = 1_800_000_000.0
    capped = cap_lifetime(b"_ga=1; Path=/; expires=Wed, 21-Oct-2099 07:28:00 GMT", 86400, now)
    assert capped == b"_ga=1; Path=/; Expires=Sat, 16 Jan 2027 08:00:00 GMT"
    assert cap_lifetime(b"_ga=1; Path=/", 86400, now) is None  # a session cookie
    assert cap_lifetime(b"_ga=1; Expires=not a date", 86400, now) is None
    assert cap_lifetime(b"_ga=1; Max-Age=-1", 86400, now) is None
