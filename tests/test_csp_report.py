"""POST /_consent/csp-report: both report formats, what is counted, and every way a bad report is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from consent_gateway import metrics
from consent_gateway.config import Config, CSPConfig
from consent_gateway.consent import ConsentRecord
from consent_gateway.csp_report import MAX_REPORTS_PER_BODY, Violation, parse_reports
from consent_gateway.errors import APIError
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS

URL = "/_consent/csp-report"
CSP_REPORT = {"content-type": "application/csp-report"}
REPORTS_JSON = {"content-type": "application/reports+json"}
META = "https://connect.facebook.net/en_US/fbevents.js"
GA = "https://www.google-analytics.com/g/collect?v=2"


def csp_report(
    blocked: str, directive: str = "script-src-elem", page: str = "https://www.example.org/shop?id=42"
) -> bytes:
    body = {
        "document-uri": page,
        "referrer": "",
        "violated-directive": directive,
        "effective-directive": directive,
        "original-policy": "default-src 'self'",
        "disposition": "report",
        "blocked-uri": blocked,
        "status-code": 200,
    }
    return json.dumps({"csp-report": body}).encode()


def reporting_api(*blocked: str, kind: str = "csp-violation") -> bytes:
    return json.dumps(
        [
            {
                "type": kind,
                "age": 10,
                "url": "https://www.example.org/cart?x=1",
                "user_agent": "Chrome",
                "body": {
                    "documentURL": "https://www.example.org/cart?x=1",
                    "blockedURL": url,
                    "effectiveDirective": "img-src",
                    "disposition": "enforce",
                },
            }
            for url in blocked
        ]
    ).encode()


class Violations:
    """The inventory's side of the contract: every load without consent handed over."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str]] = []
        self.vendors: list[str] = []

    def csp_violation(self, host: str, directive: str, page_path: str, consent_state: str, *,
                      vendor: str = "unclassified") -> None:
        self.seen.append((host, directive, page_path, consent_state))
        self.vendors.append(vendor)


@pytest.fixture
def gateway(config: Config) -> ConsentGateway:
    return ConsentGateway(Starlette(), config, secret_keys=TEST_SECRET_KEYS)


@pytest.fixture
def sink(gateway: ConsentGateway) -> Violations:
    sink = Violations()
    gateway.csp_reports.sink = sink
    return sink


@pytest.fixture
def client(gateway: ConsentGateway) -> Iterator[TestClient]:
    with TestClient(gateway, base_url="https://www.example.org") as test_client:
        yield test_client


def consent_cookie(gateway: ConsentGateway, **choices: bool) -> dict[str, str]:
    base = {c: False for c in ("analytics", "session-replay", "marketing", "preferences", "unclassified")}
    record = ConsentRecord("c7", {**base, **choices}, {}, "1", int(time.time()))
    return {gateway.config.cookie.name: gateway.codec.encode(record)}


# -- the parser ----------------------------------------------------------------------------------------------


def test_a_report_uri_report_is_read_down_to_host_directive_and_path() -> None:
    (violation,), left_out = parse_reports("application/csp-report", csp_report(META))
    assert violation == Violation(META, "connect.facebook.net", "/en_US/fbevents.js", "script-src-elem", "/shop")
    assert left_out == 0


def test_a_reporting_api_batch_keeps_its_csp_violations_only() -> None:
    body = json.loads(reporting_api(GA, META))
    body.append({"type": "deprecation", "url": "https://www.example.org/", "body": {"id": "x"}})
    violations, left_out = parse_reports("application/reports+json; charset=utf-8", json.dumps(body).encode())
    assert [(v.host, v.directive, v.page_path) for v in violations] == [
        ("www.google-analytics.com", "img-src", "/cart"),
        ("connect.facebook.net", "img-src", "/cart"),
    ]
    assert left_out == 1


def test_inline_code_and_odd_directives_are_read_without_a_host() -> None:
    (violation,), _ = parse_reports("application/csp-report", csp_report("inline", directive="script-src-attr"))
    assert violation.host == "" and violation.directive == "script-src-attr"
    (violation,), _ = parse_reports("application/csp-report", csp_report("eval", directive="made-up-src 'self'"))
    assert violation.directive == "other"
    (violation,), _ = parse_reports("application/csp-report", csp_report("http://[::1", page="not a url"))
    assert violation.host == "" and violation.page_path == "not a url"


def test_a_batch_is_read_up_to_its_limit() -> None:
    violations, left_out = parse_reports(
        "application/reports+json", reporting_api(*[META] * (MAX_REPORTS_PER_BODY + 5))
    )
    assert len(violations) == MAX_REPORTS_PER_BODY and left_out == 5


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/json", csp_report(META), 415, "unsupported_media_type"),
        ("text/plain", b"hello", 415, "unsupported_media_type"),
        ("application/csp-report", b"{not json", 400, "malformed_json"),
        ("application/csp-report", b"[]", 400, "invalid_report"),
        ("application/csp-report", b'{"csp-report": "x"}', 400, "invalid_report"),
        ("application/csp-report", b'{"csp-report": {"blocked-uri": 42}}', 400, "invalid_report"),
        ("application/csp-report", b'{"csp-report": {}, "csp-report": {}}', 400, "json_duplicate_key"),
        ("application/reports+json", b'{"type": "csp-violation"}', 400, "invalid_report"),
        ("application/reports+json", b'[{"type": "csp-violation", "body": []}]', 400, "invalid_report"),
        ("application/reports+json", b"[" * 40 + b"]" * 40, 400, "json_too_deep"),
    ],
)
def test_what_is_not_a_report_is_refused_with_a_named_error(
    content_type: str, body: bytes, status: int, code: str
) -> None:
    with pytest.raises(APIError) as error:
        parse_reports(content_type, body)
    assert (error.value.status, error.value.code) == (status, code)


# -- the endpoint --------------------------------------------------------------------------------------------


def test_a_tracker_loaded_without_consent_is_counted_and_handed_to_the_inventory(
    client: TestClient, sink: Violations
) -> None:
    response = client.post(f"{URL}?state=none", content=csp_report(META), headers=CSP_REPORT)
    assert response.status_code == 204 and response.content == b""
    assert sink.seen == [("connect.facebook.net", "script-src-elem", "/shop", "none")]
    assert metrics.value("csp_reports_total", directive="script-src-elem", host="connect.facebook.net") == 1
    assert 'consent_gateway_csp_reports_total{directive="script-src-elem",host="connect.facebook.net"} 1' in (
        client.get("/_consent/metrics").text
    )


def test_a_reporting_api_batch_is_taken_without_a_cookie(client: TestClient, sink: Violations) -> None:
    response = client.post(
        f"{URL}?state=partial",
        content=reporting_api(META, "https://tags.unknown-ads.example/p.gif"),
        headers=REPORTS_JSON,
    )
    assert response.status_code == 204
    assert sink.seen == [
        ("connect.facebook.net", "img-src", "/cart", "partial"),
        ("tags.unknown-ads.example", "img-src", "/cart", "partial"),
    ]
    assert sink.vendors[1] == "unclassified"


def test_the_consent_cookie_gives_the_state_at_report_time(
    client: TestClient, sink: Violations, gateway: ConsentGateway
) -> None:
    client.cookies.update(consent_cookie(gateway, analytics=True))
    client.post(f"{URL}?state=none", content=csp_report(META), headers=CSP_REPORT)
    # granted since the page was served (the banner revived it in place): not a load without consent
    client.post(f"{URL}?state=none", content=csp_report(GA, "img-src"), headers=CSP_REPORT)
    assert sink.seen == [("connect.facebook.net", "script-src-elem", "/shop", "partial")]
    assert metrics.value("csp_reports_discarded_total", reason="consented") == 1


def test_an_unknown_or_forged_state_is_filed_as_unknown(client: TestClient, sink: Violations) -> None:
    client.post(f"{URL}?state=%3Cscript%3E", content=csp_report(META), headers=CSP_REPORT)
    client.post(URL, content=csp_report(META), headers=CSP_REPORT)
    assert [seen[3] for seen in sink.seen] == ["unknown", "unknown"]


def test_what_needs_no_consent_is_not_filed(client: TestClient, sink: Violations) -> None:
    for blocked in ("https://cdnjs.cloudflare.com/x.js", "https://static.example.org/app.js", "inline", "data"):
        assert client.post(URL, content=csp_report(blocked), headers=CSP_REPORT).status_code == 204
    assert sink.seen == []
    assert metrics.value("csp_reports_discarded_total", reason="needs_no_consent") == 2
    assert metrics.value("csp_reports_discarded_total", reason="no_host") == 2


def test_forged_hosts_cannot_grow_the_metrics_without_bound(client: TestClient, gateway: ConsentGateway) -> None:
    gateway.csp_reports._host_labels.update(f"h{i}.example" for i in range(200))
    client.post(URL, content=csp_report("https://one-more.example/x.js"), headers=CSP_REPORT)
    assert metrics.value("csp_reports_total", directive="script-src-elem", host="other") == 1


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"content-type": "application/json"}, csp_report(META), 415, "unsupported_media_type"),
        ({}, csp_report(META), 415, "unsupported_media_type"),
        (CSP_REPORT, b"{oops", 400, "malformed_json"),
        (CSP_REPORT, b"\xef\xbb\xbf{}", 400, "json_bom"),
        (REPORTS_JSON, b'{"not": "a list"}', 400, "invalid_report"),
        (CSP_REPORT, b" " * 70_000, 413, "body_too_large"),
    ],
)
def test_bad_reports_get_a_json_error_never_an_error_page(
    client: TestClient, sink: Violations, headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert sink.seen == []


def test_only_post_is_taken(client: TestClient) -> None:
    response = client.get(URL)
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_one_address_is_rate_limited(config: Config) -> None:
    config = replace(config, csp=CSPConfig(report_rate_per_minute=1, report_rate_burst=3))
    gateway = ConsentGateway(Starlette(), config, secret_keys=TEST_SECRET_KEYS)
    with TestClient(gateway) as client:
        statuses = [client.post(URL, content=csp_report(META), headers=CSP_REPORT).status_code for _ in range(4)]
        refused = client.post(URL, content=csp_report(META), headers=CSP_REPORT)
    assert statuses == [204, 204, 204, 429]
    assert refused.json()["error"]["code"] == "too_many_requests" and int(refused.headers["retry-after"]) >= 1
    assert metrics.value("csp_reports_total", directive="script-src-elem", host="connect.facebook.net") == 3


def test_odd_bodies_never_cause_a_server_error(client: TestClient) -> None:
    bodies = [
        b"null", b"0", b'"x"', b"[]", b"{}", b'{"csp-report": null}', b'{"csp-report": {"document-uri": []}}',
        b'{"csp-report": {"blocked-uri": "http://%zz"}}', b'{"csp-report": {"blocked-uri": "\\ud800"}}',
        b'[{"type": "csp-violation", "body": {"blockedURL": null, "documentURL": "::::"}}]', b"[1, 2]",
        b'{"csp-report": {"effective-directive": "' + b"x" * 5000 + b'"}}', b"\xff\xfe\x00",
    ]  # fmt: skip
    for body in bodies:
        for headers in (CSP_REPORT, REPORTS_JSON):
            response = client.post(URL, content=body, headers=headers)
            assert response.status_code in (204, 400), (body, response.status_code)
            if response.status_code == 400:
                assert "code" in response.json()["error"]
