"""`consent-gateway logs …` on a real SQLite log (and once on Redis), through click's CliRunner."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from consent_gateway.cli import main
from consent_gateway.events import EventChain
from consent_gateway.export import escape_cell as escape_csv_cell
from consent_gateway.logs_common import parse_when
from consent_gateway.store import open_log
from tests.store.conftest import BASE_MS, make_event

DAY_MS = 86_400_000


def fill(url: str, n: int = 30, *, base_ms: int = BASE_MS, step_ms: int = 3_600_000) -> list:  # type: ignore[type-arg]
    async def run() -> list:  # type: ignore[type-arg]
        log = open_log(url)
        await log.open()
        chain = EventChain("gw-1")
        events = [chain.append(make_event(i, timestamp_ms=base_ms + i * step_ms)) for i in range(n)]
        await log.append(events)
        await log.close()
        return events

    return asyncio.run(run())


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'consent.db'}"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def logs(runner: CliRunner, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(main, ["logs", *args], input=input, catch_exceptions=False)


def test_search_prints_a_table_newest_first_with_a_cursor_for_more(runner: CliRunner, store: str) -> None:
    events = fill(store)
    result = logs(runner, "search", "--store", store, "--limit", "5")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["time", "(UTC)", "event"]
    assert events[-1].event_id in lines[2]
    assert events[-5].event_id in lines[6]
    cursor = result.output.split("--cursor ")[1].strip()
    more = logs(runner, "search", "--store", store, "--limit", "5", "--cursor", cursor)
    assert events[-6].event_id in more.output.splitlines()[2]


def test_search_filters_and_says_when_nothing_matches(runner: CliRunner, store: str) -> None:
    events = fill(store)
    result = logs(runner, "search", "--store", store, "--country", "DE", "--json")
    found = [json.loads(line) for line in result.output.splitlines()]
    assert {e["event_id"] for e in found} == {e.event_id for e in events if e.country == "DE"}
    assert logs(runner, "search", "--store", store, "--country", "ZZ").output.strip() == "No events match."


def test_a_bad_cursor_or_date_is_a_usage_error(runner: CliRunner, store: str) -> None:
    fill(store)
    assert logs(runner, "search", "--store", store, "--cursor", "garbage!").exit_code == 2
    bad = logs(runner, "search", "--store", store, "--since", "last tuesday")
    assert bad.exit_code == 2
    assert "expected 2026-01-31" in bad.output


def test_a_missing_sqlite_log_is_a_clear_error_not_a_new_empty_file(runner: CliRunner, tmp_path: Path) -> None:
    result = logs(runner, "verify", "--store", f"sqlite:///{tmp_path / 'nope.db'}")
    assert result.exit_code == 1
    assert "no consent log at" in result.output
    assert not (tmp_path / "nope.db").exists()


def test_export_csv_escapes_formula_cells_and_round_trips(runner: CliRunner, store: str, tmp_path: Path) -> None:
    async def add_hostile() -> None:
        log = open_log(store)
        await log.open()
        heads = await log.chain_heads()
        chain = EventChain("gw-1", heads["gw-1"])
        hostile = make_event(99, timestamp_ms=BASE_MS + 99 * 3_600_000)
        from dataclasses import replace

        hostile = replace(hostile, page_path='=HYPERLINK("http://evil")', referrer_host="+cmd", user_agent="@SUM(1)")
        await log.append([chain.append(hostile)])
        await log.close()

    events = fill(store, 10)
    asyncio.run(add_hostile())
    out = tmp_path / "export.csv"
    result = logs(runner, "export", "--store", store, "--format", "csv", "--output", str(out))
    assert result.exit_code == 0
    assert "11 events exported." in result.output
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["event_id"] for r in rows[:10]] == [e.event_id for e in events]
    assert rows[-1]["page_path"] == '\'=HYPERLINK("http://evil")'
    assert rows[-1]["referrer_host"] == "'+cmd"
    assert rows[-1]["user_agent"] == "'@SUM(1)"
    assert json.loads(rows[0]["categories"]) == events[0].categories


def test_export_json_lines_honours_since_and_until(runner: CliRunner, store: str) -> None:
    events = fill(store, 48)
    since = time.strftime("%Y-%m-%dT%H:%M", time.gmtime((BASE_MS + 10 * 3_600_000) / 1000))
    until = time.strftime("%Y-%m-%dT%H:%M", time.gmtime((BASE_MS + 20 * 3_600_000) / 1000))
    result = logs(runner, "export", "--store", store, "--format", "json", "--since", since, "--until", until)
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [e["event_id"] for e in lines] == [e.event_id for e in events[10:20]]


def test_stats_table_and_json(runner: CliRunner, store: str) -> None:
    events = fill(store, 24)
    result = logs(runner, "stats", "--store", store, "--by", "country")
    assert result.exit_code == 0
    header = result.output.splitlines()[0].split()
    assert header == ["country", "category", "granted", "choices", "rate"]
    data = json.loads(logs(runner, "stats", "--store", store, "--by", "device", "--json").output)
    mobile = next(r for r in data if r["group"] == "mobile" and r["category"] == "analytics")
    assert mobile["total"] == sum(1 for e in events if e.device_type == "mobile")


def test_access_prints_the_visitors_history_as_json(runner: CliRunner, store: str) -> None:
    events = fill(store)
    result = logs(runner, "access", "--store", store, "--consent-id", "consent-3")
    document = json.loads(result.output)
    assert document["consent_id"] == "consent-3"
    assert [e["event_id"] for e in document["events"]] == [e.event_id for e in events if e.consent_id == "consent-3"]
    missing = logs(runner, "access", "--store", store, "--consent-id", "nobody")
    assert missing.exit_code == 3


def test_erase_asks_first_and_then_removes_personal_fields(runner: CliRunner, store: str) -> None:
    fill(store)
    declined = logs(runner, "erase", "--store", store, "--consent-id", "consent-2", input="n\n")
    assert declined.exit_code == 1  # aborted
    assert json.loads(logs(runner, "access", "--store", store, "--consent-id", "consent-2").output)["events"][0]["ip"]
    done = logs(runner, "erase", "--store", store, "--consent-id", "consent-2", input="y\n")
    assert done.exit_code == 0
    assert "Erased the personal data of" in done.output
    history = json.loads(logs(runner, "access", "--store", store, "--consent-id", "consent-2").output)["events"]
    assert all(e["ip"] is None and e["user_agent"] is None and e["page_path"] is None for e in history)
    assert logs(runner, "verify", "--store", store).exit_code == 0
    again = logs(runner, "erase", "--store", store, "--consent-id", "consent-2", "--yes")
    assert "already erased" in again.output
    assert logs(runner, "erase", "--store", store, "--consent-id", "nobody", "--yes").exit_code == 3


def test_purge_uses_the_configs_retention_and_keeps_the_chain_verifiable(
    runner: CliRunner, store: str, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    fill(store, 40, base_ms=now - 40 * DAY_MS + 3_600_000, step_ms=DAY_MS)  # one event a day for 40 days
    config = tmp_path / "gateway.toml"
    config.write_text(f'[store]\nurl = "{store}"\n\n[retention]\nevents_days = 30\nip_days = 10\n')
    result = logs(runner, "purge", "--config", str(config), "--yes")
    assert result.exit_code == 0, result.output
    assert "Deleted 10 events older than 30 days; removed 20 IPs older than 10 days." in result.output
    assert logs(runner, "verify", "--config", str(config)).exit_code == 0
    with sqlite3.connect(store.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 30


def test_verify_exits_non_zero_and_names_the_first_broken_event(runner: CliRunner, store: str) -> None:
    events = fill(store)
    ok = logs(runner, "verify", "--store", store)
    assert ok.exit_code == 0
    assert "VERIFIED: 30 stored events in 1 chain, no alteration found." in ok.output
    assert "OK" not in ok.output  # never a plain OK: without log key nor checkpoint it says what is unproven
    assert "no log key" in ok.output and "no checkpoint" in ok.output
    with sqlite3.connect(store.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE events SET action = 'consent-given' WHERE event_id = ?", (events[4].event_id,))
        db.execute("UPDATE events SET country = 'CN' WHERE event_id = ?", (events[2].event_id,))
    broken = logs(runner, "verify", "--store", store)
    assert broken.exit_code == 1
    assert f"first broken event {events[2].event_id}" in broken.output
    assert events[4].event_id in broken.output


def test_checkpoint_then_verify_detects_a_truncated_tail(runner: CliRunner, store: str, tmp_path: Path) -> None:
    events = fill(store)
    checkpoint = tmp_path / "heads.json"
    assert logs(runner, "checkpoint", "--store", store, "--output", str(checkpoint)).exit_code == 0
    assert json.loads(checkpoint.read_text())["heads"]["gw-1"]["seq"] == 30
    assert logs(runner, "verify", "--store", store, "--checkpoint", str(checkpoint)).exit_code == 0
    with sqlite3.connect(store.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM events WHERE seq > 27")
        db.execute("UPDATE chain_heads SET seq = 27, hash = ? WHERE instance_id = 'gw-1'", (events[26].hash,))
    assert logs(runner, "verify", "--store", store).exit_code == 0  # without the checkpoint: undetectable
    result = logs(runner, "verify", "--store", store, "--checkpoint", str(checkpoint))
    assert result.exit_code == 1
    assert "first broken event gw-1@28: chain truncated" in result.output


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[str]:
    """The test Redis under a key prefix of this test's own, deleted afterwards."""
    import uuid

    import redis

    prefix = f"cgtest-cli-{uuid.uuid4().hex[:12]}"
    yield f"{redis_url}?prefix={prefix}"
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match="{" + prefix + "}:*"))
        if keys:
            client.delete(*keys)


@pytest.mark.redis
def test_the_cli_works_on_redis_too(runner: CliRunner, redis_store: str) -> None:
    store = redis_store
    events = fill(store, 12)
    assert logs(runner, "verify", "--store", store).exit_code == 0
    result = logs(runner, "search", "--store", store, "--json", "--limit", "3")
    assert [json.loads(x)["event_id"] for x in result.output.splitlines()] == [e.event_id for e in events[::-1][:3]]


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [
        ("=1+1", "'=1+1"),
        ("+33 1", "'+33 1"),
        ("-2", "'-2"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("ok", "ok"),
    ],
)
def test_csv_cells_that_look_like_formulas_are_escaped(cell: str, escaped: str) -> None:
    assert escape_csv_cell(cell) == escaped


def test_when_accepts_dates_datetimes_and_days_ago() -> None:
    assert parse_when("2026-01-01") == BASE_MS
    assert parse_when("2026-01-01T01:00") == BASE_MS + 3_600_000
    assert parse_when("2026-01-01T02:00+01:00") == BASE_MS + 3_600_000
    assert parse_when("7d", now_ms=BASE_MS) == BASE_MS - 7 * DAY_MS
    assert parse_when(None) is None


def test_read_only_commands_work_while_the_gateway_holds_the_write_lock(runner: CliRunner, store: str) -> None:
    fill(store, 5)
    writer = sqlite3.connect(store.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # as the gateway's writer, mid-commit
    writer.execute("DELETE FROM chain_heads WHERE instance_id = 'nobody'")
    try:
        started = time.monotonic()
        for command in ("search", "verify", "stats"):
            result = logs(runner, command, "--store", store)
            assert result.exit_code == 0, (command, result.output)
        assert time.monotonic() - started < 4  # never waited for the lock (busy timeout: 5 s)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_purge_dry_run_changes_nothing_and_a_purge_of_everything_needs_force(
    runner: CliRunner, store: str, tmp_path: Path
) -> None:
    fill(store, 10)  # events of 2026-01-01: all older than 30 days by any clock after February 2026
    dry = logs(runner, "purge", "--store", store, "--events-days", "1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Would delete 10 of 10 events" in dry.output and "Nothing was changed" in dry.output
    refused = logs(runner, "purge", "--store", store, "--events-days", "1", "--yes")
    assert refused.exit_code == 1
    assert "every event" in refused.output and "clock" in refused.output
    with sqlite3.connect(store.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 10
    forced = logs(runner, "purge", "--store", store, "--events-days", "1", "--yes", "--force")
    assert forced.exit_code == 0, forced.output
    assert logs(runner, "verify", "--store", store).exit_code == 0


def test_export_banners_gives_the_archived_banner_each_selected_event_was_shown(
    runner: CliRunner, store: str, tmp_path: Path
) -> None:
    events = fill(store, 3)
    version = events[0].banner_version

    async def archive() -> None:
        log = open_log(store)
        await log.open()
        await log.archive_banner(version, json.dumps({"texts": {"fr": {"accept_all": "Tout accepter"}}}))
        await log.close()

    asyncio.run(archive())
    out = tmp_path / "banners.json"
    result = logs(runner, "export", "--store", store, "--format", "banners", "--output", str(out))
    assert result.exit_code == 0, result.output
    found = json.loads(out.read_text(encoding="utf-8"))
    assert found["format"] == "consent-gateway.banner-versions/1"
    assert found["versions"] == {version: {"texts": {"fr": {"accept_all": "Tout accepter"}}}}
    nothing = logs(runner, "export", "--store", store, "--format", "banners", "--since", "2100-01-01")
    assert json.loads(nothing.stdout)["versions"] == {}
