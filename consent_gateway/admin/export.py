"""Streamed exports of the consent log: CSV for spreadsheets, JSON Lines for programs.

CSV cells that a spreadsheet would read as a formula (starting with ``= + - @``, a tab or a carriage return)
get a leading ``'``: a visitor controls their user agent and page path, and must not be able to plant a
formula in the privacy team's spreadsheet (OWASP "CSV injection"). Rows are written in batches so memory
stays flat whatever the size of the log.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from consent_gateway.events import ConsentEvent, event_to_dict

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
#: Rows per chunk sent: big enough for few sends, small enough to start the download at once.
_ROWS_PER_CHUNK: Final = 500
#: Internal to the hash chain: the salts stay in the log (exporting them would undo erasure's point).
_NOT_EXPORTED: Final = frozenset({"salts", "commitments"})

_BASE_COLUMNS: Final = (
    "event_id",
    "consent_id",
    "action",
    "time_utc",
    "timestamp_ms",
    "policy_version",
    "banner_version",
)
_TAIL_COLUMNS: Final = (
    "vendors",
    "page_path",
    "referrer_host",
    "ip",
    "user_agent",
    "browser_family",
    "browser_version",
    "os_family",
    "os_version",
    "device_type",
    "country",
    "is_eu",
    "region_rule",
    "gpc",
    "instance_id",
    "seq",
    "prev_hash",
    "hash",
    "erased_at_ms",
)


def escape_cell(value: object) -> str:
    """The text of one CSV cell, defused against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_columns(categories: Sequence[str]) -> list[str]:
    return [*_BASE_COLUMNS, *(f"category:{c}" for c in categories), *_TAIL_COLUMNS]


def _time_utc(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")


def csv_row(event: ConsentEvent, categories: Sequence[str]) -> list[str]:
    values: dict[str, Any] = {
        name: getattr(event, name) for name in (*_BASE_COLUMNS, *_TAIL_COLUMNS) if hasattr(event, name)
    }
    values["time_utc"] = _time_utc(event.timestamp_ms)
    values["vendors"] = ";".join(f"{v}={'granted' if ok else 'refused'}" for v, ok in sorted(event.vendors.items()))
    for category in categories:
        granted = event.categories.get(category)
        values[f"category:{category}"] = "" if granted is None else ("granted" if granted else "refused")
    return [escape_cell(values.get(column)) for column in csv_columns(categories)]


async def stream_csv(events: AsyncIterator[ConsentEvent], categories: Sequence[str]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(csv_columns(categories))
    rows = 0
    async for event in events:
        writer.writerow(csv_row(event, categories))
        rows += 1
        if rows % _ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def jsonl_record(event: ConsentEvent) -> dict[str, Any]:
    record = {k: v for k, v in event_to_dict(event).items() if k not in _NOT_EXPORTED}
    record["time_utc"] = _time_utc(event.timestamp_ms)
    return record


async def stream_jsonl(events: AsyncIterator[ConsentEvent]) -> AsyncIterator[bytes]:
    lines: list[str] = []
    async for event in events:
        lines.append(json.dumps(jsonl_record(event), ensure_ascii=False, separators=(",", ":")))
        if len(lines) >= _ROWS_PER_CHUNK:
            yield ("\n".join(lines) + "\n").encode("utf-8")
            lines.clear()
    if lines:
        yield ("\n".join(lines) + "\n").encode("utf-8")
