"""Exports: streamed CSV defused against formula injection, and JSON Lines, both following the filters; the
same columns from the dashboard and `logs export`, with the personal and proof groups each role may have."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from consent_gateway.cli import main
from consent_gateway.config import Config
from consent_gateway.events import PERSONAL_FIELDS
from consent_gateway.export import PROOF_COLUMNS, ExportColumns, escape_cell
from consent_gateway.store import ConsentLog
from consent_gateway.store.proof import (
    load_checkpoint_key,
    load_public_key,
    public_key_text,
    take_checkpoint,
    verify_export,
)

from .conftest import AUDITOR_PASSWORD, INJECTION_UA, PREFIX, VISITOR, login, make_events


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+33 1 23", "'+33 1 23"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("\x00=1", "'\x00=1"),
        ("\n=1+1", "'\n=1+1"),
        ("\x1b[31m", "'\x1b[31m"),
        ("\x7f=1", "'\x7f=1"),
        ("", ""),
        ("a\tb", "a\tb"),
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
    assert all(r["country"] == "FR" for r in records)
    assert records[0]["time_utc"].endswith("+00:00")
    # typed values: booleans for the choices, objects for the categories and the proof
    assert isinstance(records[0]["category:analytics"], bool) and isinstance(records[0]["commitments"], dict)
    assert set(records[0]["salts"]) == {"ip", "user_agent", "page_path"}


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
    EventWriter(buffer, "csv", ExportColumns(("analytics",))).write(event)
    header, row = list(csv.reader(io.StringIO(buffer.getvalue())))
    cells = dict(zip(header, row, strict=True))
    assert cells["user_agent"].startswith("'\x00=") and cells["page_path"].startswith("'\t=")


SELECTIONS = [
    ({"personal": "yes", "proof": "yes"}, ["--personal", "--proof"]),
    ({"personal": "no", "proof": "yes"}, ["--no-personal", "--proof"]),
    ({"personal": "yes", "proof": "no"}, ["--personal", "--no-proof"]),
    ({"personal": "no", "proof": "no"}, ["--no-personal", "--no-proof"]),
]


def _cli_export(store_url: str, fmt: str, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["logs", "export", "--store", store_url, "--format", fmt, *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.stdout_bytes.decode("utf-8")  # as written (stdout would turn \r\n into \n)


@pytest.mark.parametrize(("params", "flags"), SELECTIONS)
def test_the_cli_and_the_dashboard_export_the_same_columns_and_cells(
    logged_in: TestClient, admin_config: Config, params: dict[str, str], flags: list[str]
) -> None:
    filters = {"country": "FR", "since": "2026-03-01"}
    cli_filters = ["--country", "FR", "--since", "2026-03-01"]
    dashboard_csv = logged_in.get(f"{PREFIX}/export.csv", params={**filters, **params})
    assert dashboard_csv.status_code == 200
    cli_csv = _cli_export(admin_config.store_url, "csv", *cli_filters, *flags)
    dashboard_rows = list(csv.reader(io.StringIO(dashboard_csv.text)))
    cli_rows = list(csv.reader(io.StringIO(cli_csv)))
    header = dashboard_rows[0]
    assert cli_rows[0] == header  # the same columns, in the same order
    assert len(dashboard_rows) == len(cli_rows) > 20
    for row, (dashboard_row, cli_row) in enumerate(zip(dashboard_rows[1:], cli_rows[1:], strict=True)):
        for column, dashboard_cell, cli_cell in zip(header, dashboard_row, cli_row, strict=True):
            assert dashboard_cell == cli_cell, (row, column)
    # JSON Lines: the CSV's header as keys, in order, and the same records from both
    dashboard_jsonl = logged_in.get(f"{PREFIX}/export.jsonl", params={**filters, **params}).text.splitlines()
    cli_jsonl = _cli_export(admin_config.store_url, "jsonl", *cli_filters, *flags).splitlines()
    dashboard_records = [json.loads(line) for line in dashboard_jsonl]
    assert [json.loads(line) for line in cli_jsonl] == dashboard_records
    assert all(list(r) == header for r in dashboard_records)
    personal = params["personal"] == "yes"
    proof = params["proof"] == "yes"
    assert all((name in header) == personal for name in PERSONAL_FIELDS)
    assert all((name in header) == proof for name in PROOF_COLUMNS)
    assert ("salts" in header) == (personal and proof)  # never a salt without the value it salts


def test_the_json_lines_export_of_the_cli_keeps_its_old_name(logged_in: TestClient, admin_config: Config) -> None:
    assert _cli_export(admin_config.store_url, "json", "--consent-id", VISITOR) == _cli_export(
        admin_config.store_url, "jsonl", "--consent-id", VISITOR
    )


def test_an_analyst_exports_proof_but_no_personal_column(client: TestClient, admin_config: Config) -> None:
    assert login(client, "auditor", AUDITOR_PASSWORD).status_code == 303  # type: ignore[attr-defined]
    default = client.get(f"{PREFIX}/export.csv", params={"consent_id": VISITOR})
    header = next(csv.reader(io.StringIO(default.text)))
    assert not set(PERSONAL_FIELDS) & set(header) and "salts" not in header
    assert set(PROOF_COLUMNS) <= set(header)
    assert INJECTION_UA not in default.text and "198.51.100.0" not in default.text and "/account" not in default.text
    # the same selection from the CLI gives the same file
    cli = _cli_export(admin_config.store_url, "csv", "--consent-id", VISITOR, "--no-personal")
    assert cli == default.text
    for params in ({"personal": "yes"}, {"personal": "yes", "proof": "no"}):
        refused = client.get(f"{PREFIX}/export.jsonl", params=params)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "role_not_allowed"
    page = client.get(f"{PREFIX}/export").text
    assert 'name="personal"' not in page and 'name="proof"' in page
    assert "Your role exports no personal columns" in page


def test_a_bad_column_choice_is_a_400_json(logged_in: TestClient) -> None:
    answer = logged_in.get(f"{PREFIX}/export.csv", params={"proof": "maybe"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_columns"


def test_the_export_choice_is_recorded_in_the_audit_log(logged_in: TestClient, admin_config: Config) -> None:
    logged_in.get(f"{PREFIX}/export.csv", params={"personal": "no"})
    lines = Path(admin_config.admin.audit_log).read_text(encoding="utf-8").splitlines()
    entry = [json.loads(line) for line in lines if '"export"' in line][-1]
    assert entry["personal"] is False and entry["proof"] is True


def test_the_export_page_offers_the_column_groups(logged_in: TestClient) -> None:
    page = logged_in.get(f"{PREFIX}/export", params={"personal": "no"}).text
    assert 'id="x-personal-no" name="personal" value="no" checked' in page
    assert 'id="x-proof-yes" name="proof" value="yes" checked' in page


def test_formula_cells_are_escaped_in_every_selection(logged_in: TestClient) -> None:
    for personal in ("yes", "no"):
        rows = list(csv.DictReader(io.StringIO(
            logged_in.get(f"{PREFIX}/export.csv", params={"consent_id": VISITOR, "personal": personal}).text
        )))  # fmt: skip
        assert rows and all(rows[0].get("browser_family") == "'-Firefox" for _ in rows)
        for row in rows:
            for value in row.values():
                assert not value or value[0] not in "=+-@\t\r\0", value
    # JSON Lines keep the visitor's text as it is: no spreadsheet reads them
    records = [json.loads(line) for line in logged_in.get(
        f"{PREFIX}/export.jsonl", params={"consent_id": VISITOR}).text.splitlines()]  # fmt: skip
    assert records[0]["user_agent"] == INJECTION_UA and records[0]["page_path"] == "+SUM(1,2)"


def test_an_auditor_verifies_the_dashboards_proof_export_with_the_public_key(
    client: TestClient, consent_log: ConsentLog, tmp_path: Path
) -> None:
    # the analyst's default export (proof columns, no personal one), behind a signed checkpoint of the log
    assert login(client, "auditor", AUDITOR_PASSWORD).status_code == 303  # type: ignore[attr-defined]
    key = load_checkpoint_key(tmp_path / "keys")
    checkpoint = asyncio.run(take_checkpoint(consent_log, key))
    export = client.get(f"{PREFIX}/export.jsonl").text.splitlines()
    lines = [json.dumps({"checkpoint": json.loads(checkpoint.to_json())}), *export]
    result = verify_export(lines, load_public_key(public_key_text(key)))
    assert result.ok and result.events_checked == len(make_events()), result.problems
    # and an edited cell is found
    record = json.loads(lines[5])
    record["category:analytics"] = not record["category:analytics"]
    record["categories"]["analytics"] = record["category:analytics"]
    lines[5] = json.dumps(record)
    assert not verify_export(lines, load_public_key(public_key_text(key))).ok
