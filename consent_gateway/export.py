"""Exports of the consent log, for the `logs export` command and the dashboard alike.

Two formats: CSV for spreadsheets and JSON Lines for programs, with the same columns wherever the export
is made. CSV cells that a spreadsheet would read as a formula (starting with ``= + - @``, a tab or a
carriage return), or that start with a NUL, get a leading ``'``: a visitor controls their user agent and
page path, and must not be able to plant a formula in the privacy team's spreadsheet (OWASP "CSV
injection"). The salts and commitments of the hash chain are never exported: they stay in the log, or
erasure would lose its point.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import IO, Any, Final, Literal

from consent_gateway.events import ConsentEvent, event_to_dict
from consent_gateway.store.base import ConsentLog, EventFilter

ExportFormat = Literal["csv", "jsonl"]
#: Format → the media type it is served with.
MEDIA_TYPES: Final[dict[str, str]] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r", "\0")
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
    """One column per configured category, plus `categories`: every choice as JSON, removed categories too."""
    return [*_BASE_COLUMNS, "categories", *(f"category:{c}" for c in categories), *_TAIL_COLUMNS]


def _time_utc(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")


def csv_row(event: ConsentEvent, categories: Sequence[str]) -> list[str]:
    values: dict[str, Any] = {
        name: getattr(event, name) for name in (*_BASE_COLUMNS, *_TAIL_COLUMNS) if hasattr(event, name)
    }
    values["time_utc"] = _time_utc(event.timestamp_ms)
    values["categories"] = json.dumps(event.categories, sort_keys=True, separators=(",", ":"))
    values["vendors"] = ";".join(f"{v}={'granted' if ok else 'refused'}" for v, ok in sorted(event.vendors.items()))
    for category in categories:
        granted = event.categories.get(category)
        values[f"category:{category}"] = "" if granted is None else ("granted" if granted else "refused")
    return [escape_cell(values.get(column)) for column in csv_columns(categories)]


def jsonl_record(event: ConsentEvent) -> dict[str, Any]:
    record = {k: v for k, v in event_to_dict(event).items() if k not in _NOT_EXPORTED}
    record["time_utc"] = _time_utc(event.timestamp_ms)
    return record


class EventWriter:
    """Writes events in one export format to a text stream (a file, stdout, a buffer); CSV starts with its header."""

    def __init__(self, stream: IO[str], fmt: ExportFormat, categories: Sequence[str]) -> None:
        self._stream = stream
        self._categories = tuple(categories)
        self._csv = csv.writer(stream, lineterminator="\r\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(csv_columns(self._categories))

    def write(self, event: ConsentEvent) -> None:
        if self._csv is not None:
            self._csv.writerow(csv_row(event, self._categories))
        else:
            self._stream.write(json.dumps(jsonl_record(event), ensure_ascii=False, separators=(",", ":")) + "\n")


#: The shape of a banner-versions export.
BANNERS_FORMAT: Final = "consent-gateway.banner-versions/1"


async def banner_versions_export(log: ConsentLog, filters: EventFilter) -> dict[str, Any]:
    """What the banners of the selected events showed: every banner version they recorded, with the archived
    document (texts, categories, vendors, policy, settings, layout) or ``null`` when the log holds none (an
    event recorded before versions were archived). Read in one pass, keeping only the versions in memory."""
    versions: set[str] = set()
    async for event in log.export(filters):
        versions.add(event.banner_version)
    found = await log.banner_versions(sorted(versions)) if versions else {}
    return {
        "format": BANNERS_FORMAT,
        "versions": {v: json.loads(found[v]) if v in found else None for v in sorted(versions)},
    }


async def stream_export(
    events: AsyncIterator[ConsentEvent], fmt: ExportFormat, categories: Sequence[str]
) -> AsyncIterator[bytes]:
    """The export as UTF-8 chunks of a few hundred rows: memory stays flat whatever the size of the log."""
    buffer = io.StringIO()
    writer = EventWriter(buffer, fmt, categories)
    rows = 0
    async for event in events:
        writer.write(event)
        rows += 1
        if rows % _ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")
