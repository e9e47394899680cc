"""Strict JSON in, clear errors out: every body, header and cookie a visitor can send gets a 2xx or a 4xx
with a JSON error code, never a 500 (issue 10, item 3)."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.config import Config
from consent_gateway.jsonin import MAX_DEPTH, parse_json
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    site = Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])
    with TestClient(ConsentGateway(site, config, secret_keys=TEST_SECRET_KEYS)) as test_client:
        yield test_client


def post_raw(client: TestClient, body: bytes, **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/_consent/choices", content=body, headers={**SAME_ORIGIN, **headers})


def error_code(response) -> str:  # type: ignore[no-untyped-def]
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    return response.json()["error"]["code"]  # type: ignore[no-any-return]


def test_five_thousand_nested_arrays_are_refused_as_too_deep_not_a_500(client: TestClient) -> None:
    body = b'{"choices":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert len(body) < 16_384  # under the body limit: the depth is what refuses it
    assert error_code(post_raw(client, body)) == "json_too_deep"


def test_a_duplicated_key_is_refused_rather_than_the_last_one_winning(client: TestClient) -> None:
    response = post_raw(client, b'{"choices":{"analytics":false,"analytics":true}}')
    assert error_code(response) == "json_duplicate_key"
    assert "cg_consent" not in response.headers.get("set-cookie", "")
    assert client.get("/_consent/state").json()["consent"] is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"action":"accept_all"}'.encode("utf-16"), "json_bom"),  # UTF-16 with its BOM
        ('{"action":"accept_all"}'.encode("utf-16-le"), "json_not_utf8"),  # UTF-16 without one
        (b'\xef\xbb\xbf{"action":"accept_all"}', "json_bom"),
        (b'{"action":"accept_all","referrer":"\xff"}', "json_not_utf8"),
        (b'{"choices":{"analytics":NaN}}', "json_non_finite_number"),
        (b'{"choices":{"analytics":Infinity}}', "json_non_finite_number"),
        (b'{"choices":{"analytics":-Infinity}}', "json_non_finite_number"),
        (b'{"choices":{"analytics":1e999}}', "json_non_finite_number"),
        (b'{"action":"accept_all","referrer":"\\ud800"}', "json_invalid_string"),
        (b'{"action":"accept_all"', "malformed_json"),
        (b"", "malformed_json"),
    ],
)
def test_bodies_that_are_not_strict_json_get_a_400_naming_the_problem(
    client: TestClient, body: bytes, code: str
) -> None:
    response = post_raw(client, body)
    assert response.status_code == 400
    assert error_code(response) == code
    assert client.get("/_consent/state").json()["consent"] is None


def test_strict_json_still_reads_what_browsers_send() -> None:
    value = parse_json('{"choices":{"analytics":true},"referrer":"https://ex.example/é \\ud83d\\ude00"}'.encode())
    assert value == {"choices": {"analytics": True}, "referrer": "https://ex.example/é \U0001f600"}
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(nested) is not None  # exactly at the limit is read
    assert parse_json(b'["' + b"[" * 40 + b'"]') == ["[" * 40]  # brackets in strings do not count


def test_a_malformed_referer_is_recorded_without_a_page_not_a_500(client: TestClient) -> None:
    response = post_raw(client, b'{"action":"accept_all","referrer":"http://["}', Referer="http://[")
    assert response.status_code == 200, response.text
    (event,) = client.get("/_consent/receipt").json()["events"]
    assert event["page_path"] is None and event["referrer_host"] is None


def test_delete_with_a_malformed_referer_still_withdraws(client: TestClient) -> None:
    assert post_raw(client, b'{"action":"accept_all"}').status_code == 200
    response = client.delete("/_consent/choices", headers={"Sec-Fetch-Site": "same-origin", "Referer": "http://["})
    assert response.status_code == 200, response.text
    assert response.json()["withdrawn"] is True
    assert any(h.startswith("cg_consent=") and "Max-Age=0" in h for h in response.headers.get_list("set-cookie"))
    assert client.get("/_consent/state").json()["consent"] is None


@pytest.mark.parametrize("origin", ["http://[", "http://testserver:99999", "https://[::1", "\x7f"])
def test_a_malformed_origin_is_refused_as_cross_site_not_a_500(client: TestClient, origin: str) -> None:
    response = client.post(
        "/_consent/choices",
        content=b'{"action":"accept_all"}',
        headers={"Origin": origin, "Content-Type": "application/json"},
    )
    assert error_code(response) == "cross_site_request"


def test_a_malformed_host_header_is_answered_not_a_500(client: TestClient) -> None:
    for method, path in (
        ("POST", "/_consent/choices"),
        ("DELETE", "/_consent/choices"),
        ("GET", "/_consent/banner.js"),
    ):
        response = client.request(
            method, path, content=b'{"action":"accept_all"}', headers={**SAME_ORIGIN, "Host": "[", "Cookie": "a=b"}
        )
        assert response.status_code < 500, (method, path, response.text)


# -- fuzzing: random JSON bodies and headers, "never a 500" as the oracle

_HEADER_NAMES = (
    "referer", "origin", "host", "cookie", "user-agent", "sec-gpc", "sec-fetch-site", "content-type",
    "x-forwarded-for", "x-forwarded-proto", "forwarded", "accept-language", "if-none-match",
)  # fmt: skip
_HEADER_TEXT = st.text(
    alphabet=string.printable.replace("\r", "").replace("\n", "").replace("\x0b", "").replace("\x0c", ""), max_size=40
)
_INTERESTING = st.sampled_from(
    [
        "http://[",
        "https://testserver",
        "same-origin",
        "cross-site",
        "application/json",
        "1",
        "[",
        "null",
        "cg_consent=x",
    ]
)
_HEADERS = st.dictionaries(st.sampled_from(_HEADER_NAMES), _INTERESTING | _HEADER_TEXT, max_size=6)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["choices", "vendors", "action", "referrer", "analytics", "youtube", "x"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_BODIES = _JSON.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method_path=st.sampled_from(
        [
            ("POST", "/_consent/choices"),
            ("DELETE", "/_consent/choices"),
            ("GET", "/_consent/state"),
            ("GET", "/_consent/receipt"),
            ("GET", "/_consent/banner.js"),
            ("GET", "/"),
        ]
    ),
    body=_BODIES,
    headers=_HEADERS,
)
def test_the_consent_api_never_answers_500(
    client: TestClient, method_path: tuple[str, str], body: bytes, headers: dict[str, str]
) -> None:
    method, path = method_path
    client.cookies.clear()
    response = client.request(method, path, content=body if method != "GET" else None, headers=headers)
    assert response.status_code < 500 or response.json()["error"]["code"] == "consent_not_recorded", response.text
