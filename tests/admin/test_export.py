"""Exports: streamed CSV defused against formula injection, and JSON Lines, both following the filters."""

from __future__ import annotations

import csv
import io
import json

import pytest
from starlette.testclient import TestClient

from consent_gateway.export import escape_cell

from .conftest import INJECTION_UA, PREFIX, VISITOR, make_events


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+33 1 23", "'+33 1 23"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("Firefox", "Firefox"),
        ("a=b", "a=b"),
        (None, ""),
        (True, "true"),
        (12, "12"),
    ],
)
def test_escape_cell_defuses_what_a_spreadsheet_would_run(value: object, cell: str) -> None:
    assert escape_cell(value) == cell


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_export_escapes_visitor_controlled_cells(logged_in: TestClient) -> None:
    response = logged_in.get(f"{PREFIX}/export.csv", params={"consent_id": VISITOR})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="consent-events-')
    rows = _rows(response.text)
    assert len(rows) == 3
    first = rows[0]
    assert first["user_agent"] == "'" + INJECTION_UA
    assert first["page_path"] == "'+SUM(1,2)"
    assert first["referrer_host"] == "'@evil.example"
    assert first["browser_family"] == "'-Firefox"
    assert first["category:analytics"] == "granted" and rows[1]["category:analytics"] == "refused"
    assert first["vendors"] == "youtube=granted"
    # No cell anywhere starts with a formula character.
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r", value


def test_the_csv_export_has_every_event_oldest_first(logged_in: TestClient) -> None:
    rows = _rows(logged_in.get(f"{PREFIX}/export.csv").text)
    events = sorted(make_events(), key=lambda e: (e.timestamp_ms, e.event_id))
    assert [r["event_id"] for r in rows] == [e.event_id for e in events]


def test_the_jsonl_export_follows_the_filters(logged_in: TestClient) -> None:
    response = logged_in.get(f"{PREFIX}/export.jsonl", params={"country": "fr", "since": "2026-03-01"})
    assert response.status_code == 200
    records = [json.loads(line) for line in response.text.splitlines()]
    expected = [e for e in make_events() if e.country == "FR" and e.timestamp_ms >= 1772323200000]
    assert {r["event_id"] for r in records} == {e.event_id for e in expected}
    assert all("salts" not in r and r["country"] == "FR" for r in records)
    assert records[0]["time_utc"].endswith("+00:00")


def test_an_export_with_a_bad_filter_is_a_400_json(logged_in: TestClient) -> None:
    response = logged_in.get(f"{PREFIX}/export.csv", params={"since": "yesterday"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_filter"


def test_the_export_page_offers_both_formats_with_the_search_filters(logged_in: TestClient) -> None:
    page = logged_in.get(f"{PREFIX}/export", params={"country": "DE"})
    assert 'formaction="/_consent/admin/export.csv"' in page.text
    assert 'formaction="/_consent/admin/export.jsonl"' in page.text
    assert 'name="country" value="DE"' in page.text


def test_a_nul_prefixed_cell_is_escaped_like_a_formula() -> None:
    import csv
    import io
    import uuid

    from consent_gateway.events import ConsentEvent
    from consent_gateway.export import EventWriter

    event = ConsentEvent(
        event_id=uuid.uuid4().hex, consent_id="c", action="consent-given", categories={"analytics": True},
        vendors={}, policy_version="1", banner_version="b", timestamp_ms=0,
        user_agent="\x00=HYPERLINK(\"http://evil.example\")", page_path="\t=1+1",
    )
    buffer = io.StringIO()
    EventWriter(buffer, "csv", ["analytics"]).write(event)
    header, row = list(csv.reader(io.StringIO(buffer.getvalue())))
    cells = dict(zip(header, row, strict=True))
    assert cells["user_agent"].startswith("'\x00=") and cells["page_path"].startswith("'\t=")
