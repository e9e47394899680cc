"""`consent-gateway inventory …` on a real SQLite log, through click's CliRunner."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from consent_gateway.cli import main
from consent_gateway.config import parse_config
from consent_gateway.inventory.records import COOKIE, HOST, STORAGE, InventoryEntry, key_of
from consent_gateway.site_rules import OVERLAY_DOCUMENT
from consent_gateway.store import open_log

SEEN_MS = 1_795_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'consent.db'}"

    async def seed() -> None:
        log = open_log(url)
        await log.open()
        await log.merge_inventory([
            InventoryEntry(HOST, "cdn.newtracker.example", "cdn.newtracker.example", "unclassified", count=4, held=4,
                           first_seen_ms=SEEN_MS, last_seen_ms=SEEN_MS),
            InventoryEntry(HOST, "www.google-analytics.com", "www.google-analytics.com", "google-analytics", count=2,
                           held=2, first_seen_ms=SEEN_MS, last_seen_ms=SEEN_MS - 1),
            InventoryEntry(COOKIE, key_of("nt_id", "", "/"), "nt_id", "", count=1, passed=1,
                           detail={"domain": "", "path": "/", "max_age_s": 3600}, first_seen_ms=SEEN_MS,
                           last_seen_ms=SEEN_MS),
            InventoryEntry(STORAGE, key_of("localStorage", "=SUM(1,2)"), "=SUM(1,2)", "", count=1,
                           detail={"area": "localStorage"}, first_seen_ms=SEEN_MS, last_seen_ms=SEEN_MS),
        ])  # fmt: skip
        await log.close()

    asyncio.run(seed())
    return url


def inventory(*args: str) -> Result:
    return CliRunner().invoke(main, ["inventory", *args], catch_exceptions=False)


def overlay_version(url: str) -> int:
    async def read() -> int:
        log = open_log(url)
        await log.open()
        try:
            return await log.document_version(OVERLAY_DOCUMENT)
        finally:
            await log.close()

    return asyncio.run(read())


def test_list_prints_each_entry_with_its_vendor_in_three_formats(store: str) -> None:
    table = inventory("list", "--store", store)
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split()[:4] == ["kind", "name", "vendor", "category"]
    tracker = next(line for line in lines if "cdn.newtracker.example" in line)
    assert "unclassified" in tracker and "4/0" in tracker
    assert "Google Analytics" in next(line for line in lines if "www.google-analytics.com" in line)

    rows = json.loads(inventory("list", "--store", store, "--format", "json", "--kind", "host").output)
    assert [(r["name"], r["vendor"]) for r in rows] == [("cdn.newtracker.example", None),
                                                         ("www.google-analytics.com", "google-analytics")]
    only = json.loads(inventory("list", "--store", store, "--format", "json", "--unclassified").output)
    assert {r["name"] for r in only} == {"cdn.newtracker.example", "nt_id", "=SUM(1,2)"}

    parsed = list(csv.DictReader(io.StringIO(inventory("list", "--store", store, "--format", "csv").output)))
    assert {row["name"] for row in parsed} >= {"cdn.newtracker.example", "nt_id"}
    assert "'=SUM(1,2)" in {row["name"] for row in parsed}  # a spreadsheet formula is defused


def test_classify_then_export_gives_config_the_loader_accepts(store: str, tmp_path: Path) -> None:
    done = inventory("classify", "host", "cdn.newtracker.example", "--new-vendor", "New Tracker", "--category",
                     "marketing", "--policy-url", "https://newtracker.example/privacy", "--store", store)
    assert done.exit_code == 0 and "new-vendor" in done.output
    assert inventory("classify", "cookie", "nt_id", "--vendor", "new-tracker", "--lifetime", "1 hour",
                     "--store", store).exit_code == 0
    rows = json.loads(inventory("list", "--store", store, "--format", "json").output)
    assert {r["name"]: r["vendor"] for r in rows}["nt_id"] == "new-tracker"
    audit = [json.loads(line) for line in (tmp_path / "consent-data" / "admin-audit.jsonl").read_text().splitlines()]
    assert [(a["action"], a["target"], a["via"]) for a in audit] == [
        ("classify", "host:cdn.newtracker.example", "cli"), ("classify", "cookie:nt_id", "cli")]
    assert str(audit[0]["user"]).startswith("cli:")

    out = tmp_path / "vendors.toml"
    assert inventory("export", "--store", store, "-o", str(out)).exit_code == 0
    tables = tomllib.loads(out.read_text(encoding="utf-8"))["vendors"]
    assert parse_config({"vendors": tables}).vendors[0]["id"] == "new-tracker"

    assert inventory("unclassify", "cookie", "nt_id", "--store", store).exit_code == 0
    assert overlay_version(store) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("host", "cdn.newtracker.example", "--vendor", "nobody"), "no vendor 'nobody'"),
        (("host", "cdn.newtracker.example", "--essential", "   "), "reason: is required"),
        (("host", "cdn.newtracker.example", "--vendor", "hotjar", "--essential", "x"), "exactly one of"),
        (("cookie", "a;b", "--essential", "cart"), "not a cookie name"),
    ],
)
def test_a_bad_classification_exits_non_zero_and_changes_nothing(store: str, args: tuple[str, ...],
                                                                   message: str, tmp_path: Path) -> None:
    result = inventory("classify", *args, "--store", store)
    assert result.exit_code != 0 and message in result.output
    assert overlay_version(store) == 0
    assert not (tmp_path / "consent-data" / "admin-audit.jsonl").exists()
