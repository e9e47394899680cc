"""Exports of the consent log: the one writer of CSV and JSON Lines, for `logs export` and the dashboard alike.

Both formats have the same columns in the same order (:meth:`ExportColumns.names`; a JSON Lines record's keys
are the CSV header), whoever asks: the event, its choices and what was read from the browser first, then two
groups that can be left out — the *personal* columns (IP address, user agent, page, referrer: erasable,
:data:`~consent_gateway.events.PERSONAL_FIELDS`) and the *proof* columns (chain position, hash, previous hash,
MAC, commitments). The salts of the commitments come only with both: with the personal values they prove
them, without those values they would let anyone test guesses of an erased or withheld IP address against
its commitment. The dashboard lets each role choose among the groups it may see (admin/records.py).

CSV cells that a spreadsheet would read as a formula (starting with ``= + - @``, a tab or a carriage return),
or that start with any other control character (NUL, line feed, escape, DEL…), get a leading ``'``: a visitor
controls their user agent and page path, and must not be able to plant a formula in the privacy team's
spreadsheet (OWASP "CSV injection"). JSON Lines keep values typed (booleans, numbers, objects for the
choices, commitments and salts).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Final, Literal

from consent_gateway.events import PERSONAL_FIELDS, ConsentEvent
from consent_gateway.store.base import ConsentLog, EventFilter

ExportFormat = Literal["csv", "jsonl"]
#: Format → the media type it is served with.
MEDIA_TYPES: Final[dict[str, str]] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}

#: A cell starting with one of these is defused; so is one starting with a control character (below 0x20, DEL).
_FORMULA_STARTS: Final = ("=", "+", "-", "@")
#: Rows per chunk sent: big enough for few sends, small enough to start the download at once.
_ROWS_PER_CHUNK: Final = 500

#: Always exported: the event and the choice it records (``categories`` and ``category:<id>`` follow).
BASE_COLUMNS: Final = (
    "event_id",
    "consent_id",
    "action",
    "time_utc",
    "timestamp_ms",
    "policy_version",
    "banner_version",
)
#: Always exported, after the choices: what the gateway read from the request, minimised.
CONTEXT_COLUMNS: Final = (
    "browser_family",
    "browser_version",
    "os_family",
    "os_version",
    "device_type",
    "country",
    "is_eu",
    "region_rule",
    "gpc",
    "erased_at_ms",
)
#: Personal data, erased on request: only for a role that sees it.
PERSONAL_COLUMNS: Final = PERSONAL_FIELDS
#: What lets an auditor check each event against the hash chain.
PROOF_COLUMNS: Final = ("instance_id", "seq", "prev_hash", "hash", "mac", "commitments")
#: With personal *and* proof columns only (see the module's docstring).
SALT_COLUMNS: Final = ("salts",)


@dataclass(frozen=True, slots=True)
class ExportColumns:
    """Which columns an export has: one per configured category, and the optional groups chosen."""

    categories: tuple[str, ...]
    personal: bool = True
    proof: bool = True

    def names(self) -> list[str]:
        """The header, in order: the same for CSV and JSON Lines, from the CLI and the dashboard."""
        names = [*BASE_COLUMNS, "categories", *(f"category:{c}" for c in self.categories), "vendors"]
        names += CONTEXT_COLUMNS
        if self.personal:
            names += PERSONAL_COLUMNS
        if self.proof:
            names += PROOF_COLUMNS
        if self.personal and self.proof:
            names += SALT_COLUMNS
        return names


def escape_cell(value: object) -> str:
    """The text of one CSV cell, defused against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text and (text.startswith(_FORMULA_STARTS) or text[0] < " " or text[0] == "\x7f"):
        return "'" + text
    return text


def _time_utc(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")


def record(event: ConsentEvent, columns: ExportColumns) -> dict[str, Any]:
    """One event as an export record: the columns' names, in order, to typed values (a JSON Lines line)."""
    found: dict[str, Any] = {}
    for name in columns.names():
        if name == "time_utc":
            found[name] = _time_utc(event.timestamp_ms)
        elif name.startswith("category:"):
            found[name] = event.categories.get(name.removeprefix("category:"))
        elif name in ("categories", "vendors", "commitments", "salts"):
            found[name] = dict(sorted(getattr(event, name).items()))
        else:
            found[name] = getattr(event, name)
    return found


def csv_cells(record_: dict[str, Any]) -> list[str]:
    """A record as CSV cells: choices as words, objects as compact JSON, every cell escaped."""
    cells = []
    for name, value in record_.items():
        if name.startswith("category:"):
            value = None if value is None else ("granted" if value else "refused")
        elif name == "vendors":
            value = ";".join(f"{v}={'granted' if ok else 'refused'}" for v, ok in value.items())
        elif isinstance(value, dict):
            value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        cells.append(escape_cell(value))
    return cells


class EventWriter:
    """Writes events in one export format to a text stream (a file, stdout, a buffer); CSV starts with its header."""

    def __init__(self, stream: IO[str], fmt: ExportFormat, columns: ExportColumns) -> None:
        self._stream = stream
        self._columns = columns
        self._csv = csv.writer(stream, lineterminator="\r\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(columns.names())

    def write(self, event: ConsentEvent) -> None:
        found = record(event, self._columns)
        if self._csv is not None:
            self._csv.writerow(csv_cells(found))
        else:
            self._stream.write(json.dumps(found, ensure_ascii=False, separators=(",", ":")) + "\n")


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
    events: AsyncIterator[ConsentEvent], fmt: ExportFormat, columns: ExportColumns
) -> AsyncIterator[bytes]:
    """The export as UTF-8 chunks of a few hundred rows: memory stays flat whatever the size of the log."""
    buffer = io.StringIO()
    writer = EventWriter(buffer, fmt, columns)
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
