"""Aggregates kept on write: what the dashboard's overview reads instead of scanning every event.

Every backend keeps, per UTC day, counters updated in the same transaction (SQL) or script (Redis) as the
append that adds the events, so an overview over a year reads a few thousand counters, not millions of events:

- ``(day, dim, value, category) → (total, granted)`` for ``dim`` in ``day``, ``country``, ``browser``,
  ``device``, ``policy_version`` (one cell per category an event carries a choice for), and ``vendor``
  (``value`` the vendor id, category :data:`VENDOR_CATEGORY`);
- ``(day, "events")``: events stored that day; ``(day, "visitors")``: distinct consent ids with at least one
  event stored that day.

Semantics, which the contract tests hold every backend to (aggregate answers equal a scan's answers):

- **append** adds only events not stored before (a replayed batch adds nothing);
- **erasure** changes nothing: it removes personal fields (IP, user agent, page, referrer), while the
  counters hold only anonymous fields (day, country, browser, device, policy, choices) that the chained
  record keeps too, so a scan after an erasure gives the same counts;
- **retention purge** subtracts the events it deletes (a month dropped whole takes its days' counters with
  it), and a visitor-day goes when its last event goes; **IP purge** changes nothing.

A selection that is not whole UTC days and nothing else (a country filter, a time bound inside a day) is
answered by a scan on the backend's indexes, as before.
"""

# ruff: noqa: S608

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from consent_gateway.events import ConsentEvent
from consent_gateway.store.base import VENDOR_CATEGORY, DayCount, EventFilter, StatRow

DAY_MS: Final = 86_400_000
#: Grouping dimensions with counters (the keys of ``stats(by=…)``).
DIMENSIONS: Final = ("day", "country", "browser", "device", "policy_version", "vendor")
EVENTS: Final = "events"
VISITORS: Final = "visitors"

#: One counter: (day "YYYY-MM-DD", dimension, group value, category).
CellKey = tuple[str, str, str, str]


def day_of(timestamp_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp_ms // 1000))


def day_bounds(day: str) -> tuple[int, int]:
    """``[start, end)`` of a UTC day in ms."""
    start = calendar.timegm(time.strptime(day, "%Y-%m-%d")) * 1000
    return start, start + DAY_MS


def whole_days(filters: EventFilter) -> tuple[str | None, str | None] | None:
    """``(first day, day after the last)`` when ``filters`` selects whole UTC days and nothing else (the
    counters can answer); ``None`` when it needs a scan. ``None`` bounds are open."""
    if filters != EventFilter(since_ms=filters.since_ms, until_ms=filters.until_ms):
        return None
    bounds = (filters.since_ms, filters.until_ms)
    if any(b is not None and (b < 0 or b % DAY_MS) for b in bounds):
        return None
    return tuple(None if b is None else day_of(b) for b in bounds)  # type: ignore[return-value]


def group_value(
    dim: str, *, day: str, country: str | None, browser: str | None, device: str | None, policy_version: str
) -> str:
    if dim == "day":
        return day
    if dim == "country":
        return country or "unknown"
    if dim == "browser":
        return browser or "unknown"
    if dim == "device":
        return device or "unknown"
    return policy_version


class Cells:
    """Counter deltas of a batch of events, summed per cell before they reach the store (a batch of a
    thousand events touches a few hundred cells)."""

    def __init__(self) -> None:
        self.cells: dict[CellKey, list[int]] = {}

    def add_event(self, event: ConsentEvent) -> None:
        """Count one stored event (its anonymous fields only)."""
        self.add(
            timestamp_ms=event.timestamp_ms,
            country=event.country,
            browser=event.browser_family,
            device=event.device_type,
            policy_version=event.policy_version,
            categories=event.categories,
            vendors=event.vendors,
        )

    def add(
        self,
        *,
        timestamp_ms: int,
        country: str | None,
        browser: str | None,
        device: str | None,
        policy_version: str,
        categories: Mapping[str, bool],
        vendors: Mapping[str, bool],
        sign: int = 1,
    ) -> None:
        day = day_of(timestamp_ms)
        cells = self.cells
        for dim in DIMENSIONS[:-1]:
            value = group_value(
                dim, day=day, country=country, browser=browser, device=device, policy_version=policy_version
            )
            for category, granted in categories.items():
                cell = cells.setdefault((day, dim, value, category), [0, 0])
                cell[0] += sign
                cell[1] += sign if granted else 0
        for vendor, granted in vendors.items():
            cell = cells.setdefault((day, "vendor", vendor, VENDOR_CATEGORY), [0, 0])
            cell[0] += sign
            cell[1] += sign if granted else 0
        cell = cells.setdefault((day, EVENTS, "", ""), [0, 0])
        cell[0] += sign

    def add_events(self, events: Iterable[ConsentEvent]) -> None:
        """Count stored events, as :meth:`add_event` does one by one, in one tight loop (the SQLite append
        counts every batch this way: the same counts in SQL cost several times more)."""
        cells = self.cells
        days: dict[int, str] = {}
        for e in events:
            n = e.timestamp_ms // DAY_MS
            day = days.get(n)
            if day is None:
                day = days[n] = day_of(n * DAY_MS)
            groups = (
                ("day", day),
                ("country", e.country or "unknown"),
                ("browser", e.browser_family or "unknown"),
                ("device", e.device_type or "unknown"),
                ("policy_version", e.policy_version),
            )
            for category, granted in e.categories.items():
                for dim, value in groups:
                    key = (day, dim, value, category)
                    cell = cells.get(key)
                    if cell is None:
                        cells[key] = [1, 1 if granted else 0]
                    else:
                        cell[0] += 1
                        if granted:
                            cell[1] += 1
            for vendor, granted in e.vendors.items():
                cell = cells.setdefault((day, "vendor", vendor, VENDOR_CATEGORY), [0, 0])
                cell[0] += 1
                cell[1] += 1 if granted else 0
            cell = cells.setdefault((day, EVENTS, "", ""), [0, 0])
            cell[0] += 1

    def rows(self) -> list[tuple[str, str, str, str, int, int]]:
        """``(day, dim, value, category, total, granted)``, sorted (writers lock rows in one order)."""
        return [(*key, t, g) for key, (t, g) in sorted(self.cells.items()) if t or g]


def stored_now(events: Iterable[ConsentEvent], new_ids: Iterable[str]) -> list[ConsentEvent]:
    """Those of ``events`` an append stored (their ids in ``new_ids``): not the ones already there, nor a
    second copy of one the batch holds twice. What that append's counters count."""
    pending = set(new_ids)
    stored: list[ConsentEvent] = []
    for e in events:
        if e.event_id in pending:
            pending.discard(e.event_id)
            stored.append(e)
    return stored


def stat_rows(cells: Iterable[tuple[str, str, int, int]]) -> list[StatRow]:
    """Summed ``(group, category, total, granted)`` → StatRows sorted by group, category, none empty."""
    summed: dict[tuple[str, str], list[int]] = {}
    for group, category, total, granted in cells:
        cell = summed.setdefault((group, category), [0, 0])
        cell[0] += total
        cell[1] += granted
    return [StatRow(group=g, category=c, total=t, granted=n) for (g, c), (t, n) in sorted(summed.items()) if t > 0]


# -- the SQL backends ---------------------------------------------------------------------------------------
# SQL here is assembled only from constant fragments (column names, a dialect's expressions); every value
# goes through a placeholder.

#: ``aggregates`` rows are read by dimension and day range; open bounds become these.
FIRST_DAY: Final = "0000-00-00"
LAST_DAY: Final = "9999-99-99"


@dataclass(frozen=True, slots=True)
class SqlDialect:
    """What differs between SQLite and PostgreSQL in the counters' SQL."""

    #: the UTC day ``YYYY-MM-DD`` of a time in ms, ``{}`` the time
    day_at: str
    #: a table function over the keys and values of a JSON object column, ``{}`` the column
    each: str
    #: true when ``j.value`` (a value of ``each``) is JSON ``true``
    granted: str
    #: the value placeholder
    param: str
    #: ends a subquery the planner must run as it is written (PostgreSQL turns NOT EXISTS into an anti-join
    #: unless the subquery has an OFFSET; SQLite runs it per row anyway)
    fence: str = ""

    @property
    def day(self) -> str:
        """The UTC day of column ``timestamp_ms``."""
        return self.day_at.format("timestamp_ms")


SQLITE: Final = SqlDialect(
    day_at="strftime('%Y-%m-%d', {} / 1000, 'unixepoch')",
    each="json_each({}) AS j",
    granted="j.value = 1",
    param="?",
)
POSTGRES: Final = SqlDialect(
    day_at="to_char(to_timestamp({} / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    each="jsonb_each({}) AS j",
    granted="j.value = 'true'::jsonb",
    param="%s",
    fence=" OFFSET 0",
)

_GROUP_COLUMNS: Final = {
    "day": "s.d",
    "country": "coalesce(s.country, 'unknown')",
    "browser": "coalesce(s.browser_family, 'unknown')",
    "device": "coalesce(s.device_type, 'unknown')",
    "policy_version": "s.policy_version",
}


def cells_select(source: str, dialect: SqlDialect, *, visitors: bool = False) -> str:
    """``SELECT day, dim, value, category, total, granted`` over the events of ``source`` (a table or a
    parenthesised query with the event columns); with ``visitors``, distinct consent ids per day too (right
    for a whole table, not for a batch: see :func:`new_visitors_select`)."""
    rows = f"(SELECT {dialect.day} AS d, consent_id, country, browser_family, device_type, policy_version,"
    rows += f" categories, vendors FROM {source}) AS s"
    granted = f"sum(CASE WHEN {dialect.granted} THEN 1 ELSE 0 END)"
    parts = [
        f"SELECT s.d AS day, '{dim}' AS dim, {column} AS value, j.key AS category, count(*) AS total,"
        f" {granted} AS granted FROM {rows}, {dialect.each.format('s.categories')} GROUP BY 1, 3, 4"
        for dim, column in _GROUP_COLUMNS.items()
    ]
    parts.append(
        f"SELECT s.d, 'vendor', j.key, '{VENDOR_CATEGORY}', count(*), {granted}"
        f" FROM {rows}, {dialect.each.format('s.vendors')} GROUP BY 1, 3"
    )
    parts.append(f"SELECT s.d, '{EVENTS}', '', '', count(*), 0 FROM {rows} GROUP BY 1")
    if visitors:
        parts.append(f"SELECT s.d, '{VISITORS}', '', '', count(DISTINCT s.consent_id), 0 FROM {rows} GROUP BY 1")
    return " UNION ALL ".join(parts)


def new_visitors_select(source: str, dialect: SqlDialect, *, older: str = "") -> str:
    """``SELECT day, 'visitors', '', '', count, 0``: the (consent id, day) pairs of ``source`` that no
    other stored event has (``older``: an extra condition on ``o``, the other event).

    Pairs are taken by day number and the day's name is made once per day, not per event (the date
    functions cost more than the rest of the statement on both engines); the fence keeps each pair's test
    one probe of the consent index: PostgreSQL would otherwise turn NOT EXISTS into an anti-join and, on a
    partition it has no statistics for yet, hash the whole month for every batch."""
    return (
        f"SELECT {dialect.day_at.format(f'(v.n * {DAY_MS})')} AS day, '{VISITORS}' AS dim,"
        " '' AS value, '' AS category, count(*) AS total, 0 AS granted FROM"
        f" (SELECT DISTINCT consent_id, timestamp_ms / {DAY_MS} AS n FROM {source}) AS v"
        " WHERE NOT EXISTS (SELECT 1 FROM events AS o WHERE o.consent_id = v.consent_id"
        f" AND o.timestamp_ms >= v.n * {DAY_MS} AND o.timestamp_ms < (v.n + 1) * {DAY_MS}{older}{dialect.fence})"
        " GROUP BY v.n"
    )


def upsert(select: str, *, sign: int = 1) -> str:
    """Add (``sign`` -1: subtract) the cells of ``select`` to the counters."""
    factor = "" if sign == 1 else "-"
    return (
        "INSERT INTO aggregates (day, dim, value, category, total, granted)"
        f" SELECT day, dim, value, category, {factor}total, {factor}granted FROM ({select}) AS c WHERE true"
        " ON CONFLICT (dim, day, value, category) DO UPDATE SET total = aggregates.total + excluded.total,"
        " granted = aggregates.granted + excluded.granted"
    )


def read_cells(dialect: SqlDialect) -> str:
    """The counters of one dimension over ``[first day, end day)``: ``value, category, total, granted``."""
    p = dialect.param
    return (
        "SELECT value, category, total, granted FROM aggregates"
        f" WHERE dim = {p} AND day >= {p} AND day < {p} AND total > 0"
    )


def read_days(dialect: SqlDialect) -> str:
    """Events and visitors per day over ``[first day, end day)``: ``day, dim, total``."""
    p = dialect.param
    return (
        "SELECT day, dim, total FROM aggregates"
        f" WHERE dim IN ('{EVENTS}', '{VISITORS}') AND day >= {p} AND day < {p} AND total > 0 ORDER BY day"
    )


def day_range(days: tuple[str | None, str | None]) -> tuple[str, str]:
    return days[0] or FIRST_DAY, days[1] or LAST_DAY


def day_counts(rows: Iterable[tuple[str, str, int]]) -> list[DayCount]:
    """``read_days`` rows → DayCounts, oldest first."""
    days: dict[str, list[int]] = {}
    for day, dim, total in rows:
        days.setdefault(day, [0, 0])[0 if dim == EVENTS else 1] += int(total)
    return [DayCount(day, events, visitors) for day, (events, visitors) in sorted(days.items()) if events]


#: The counters' table on both SQL backends (the same DDL reads on SQLite and PostgreSQL).
CREATE_TABLE: Final = """
CREATE TABLE aggregates (
    dim text NOT NULL,
    day text NOT NULL,
    value text NOT NULL,
    category text NOT NULL,
    total bigint NOT NULL,
    granted bigint NOT NULL,
    PRIMARY KEY (dim, day, value, category)
)"""
