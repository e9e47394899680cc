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

Per-visitor counters (:func:`visitor_stats_of` says what they hold, and the contract tests hold every backend
to it): for each **period** (UTC day, UTC month) and category, the distinct visitors (consent ids) whose
**latest event in that period** (by time, then event id) carried a choice for the category, and how many of them
granted it. A visitor who grants then refuses on the same day counts once, as refusing; one who grants on
Monday and refuses on Tuesday counts once on each day; a ``data-erased`` event (no choice) as the latest event
of a period takes the visitor out of that period's figures. They are kept as differences: an append or a purge
finds, for each (visitor, period) it touches, the latest event before and after it, and moves the visitor's
count from the one's choices to the other's (nothing when the latest event did not change, as for a replayed
batch or an event older than the visitor's latest). Writers of one visitor and period are serialised
(SQLite's write lock, PostgreSQL advisory locks, one Redis script), so two instances writing at once count
each visitor once. Erasure of personal fields changes nothing; a retention purge recomputes the periods of the
visitors whose events it deletes. Stored in the same counters: dimension :data:`VISITOR_DAY` or
:data:`VISITOR_MONTH`, ``day`` the period's first day, ``value`` the period (``YYYY-MM-DD`` or ``YYYY-MM``).

A selection that is not whole UTC days and nothing else (a country filter, a time bound inside a day) is
answered by a scan on the backend's indexes, as before (per visitor: each visitor's latest selected event in
each period). One kind of filtered **count** is exactly a sum of counters and is read from them
(:func:`granted_cells`): whole UTC days, a granted category, and at most one of country, browser, device or
policy version. Counters keep no action, visitor or IP, nor two dimensions crossed: those counts scan.
"""

# ruff: noqa: S608

from __future__ import annotations

import calendar
import dataclasses
import functools
import operator
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from consent_gateway.events import ConsentEvent
from consent_gateway.store.base import VENDOR_CATEGORY, VISITOR_PERIODS, DayCount, EventFilter, StatRow

DAY_MS: Final = 86_400_000
#: Grouping dimensions with counters (the keys of ``stats(by=…)``).
DIMENSIONS: Final = ("day", "country", "browser", "device", "policy_version", "vendor")
EVENTS: Final = "events"
VISITORS: Final = "visitors"
#: Per-visitor counters' dimensions: latest choice of each visitor per UTC day, per UTC month.
VISITOR_DAY: Final = "visitor-day"
VISITOR_MONTH: Final = "visitor-month"
PERIOD_DIMS: Final = {"day": VISITOR_DAY, "month": VISITOR_MONTH}

#: One counter: (day "YYYY-MM-DD", dimension, group value, category).
CellKey = tuple[str, str, str, str]
#: What ``granted_cells`` returns: (days, dimension, group value or None for ``day``, category).
GrantedCells = tuple[tuple[str | None, str | None], str, str | None, str]


def day_of(timestamp_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp_ms // 1000))


def day_bounds(day: str) -> tuple[int, int]:
    """``[start, end)`` of a UTC day in ms."""
    start = calendar.timegm(time.strptime(day, "%Y-%m-%d")) * 1000
    return start, start + DAY_MS


def month_of(timestamp_ms: int) -> tuple[str, str, int, int]:
    """The UTC month of a time: ``(first day "YYYY-MM-01", label "YYYY-MM", start ms, end ms)``."""
    year, month = time.gmtime(timestamp_ms // 1000)[:2]
    start = calendar.timegm((year, month, 1, 0, 0, 0)) * 1000
    end = calendar.timegm((year + month // 12, month % 12 + 1, 1, 0, 0, 0)) * 1000
    return f"{year:04d}-{month:02d}-01", f"{year:04d}-{month:02d}", start, end


#: One per-visitor period of one visitor: (consent id, dimension, period's first day, label, start ms, end ms).
VisitorKey = tuple[str, str, str, str, int, int]


def visitor_keys(events: Iterable[ConsentEvent]) -> list[VisitorKey]:
    """The (visitor, day) and (visitor, month) periods ``events`` fall in, each once, sorted."""
    keys: set[VisitorKey] = set()
    for e in events:
        keys.update(period_keys(e))
    return sorted(keys)


#: A period's latest stored event: (timestamp_ms, event_id, categories).
Latest = tuple[int, str, Mapping[str, bool]]


def settle_days(
    keys: Iterable[VisitorKey], months: Mapping[VisitorKey, Latest | None]
) -> tuple[dict[VisitorKey, Latest | None], list[VisitorKey]]:
    """Each key's latest stored event, from the latest of each (visitor, month) (``months``, looked up first):
    a day before the month's latest event has none, a day holding it has it; only a day after it (a batch
    older than the visitor's latest choice of the month, a rare replay) is left to look up (the list)."""
    found: dict[VisitorKey, Latest | None] = dict(months)
    left: list[VisitorKey] = []
    month_of_day: dict[tuple[str, str], Latest | None] = {(k[0], k[3]): v for k, v in months.items()}
    for key in keys:
        if key[1] != VISITOR_DAY:
            continue
        latest = month_of_day[(key[0], key[3][:7])]
        if latest is None or latest[0] < key[4]:
            found[key] = None
        elif latest[0] < key[5]:
            found[key] = latest
        else:
            left.append(key)
    return found, left


def newest_of_periods(events: Iterable[ConsentEvent]) -> dict[VisitorKey, ConsentEvent]:
    """The latest of ``events`` (by time, then event id) in each (visitor, day) and (visitor, month) they fall
    in; its keys are the periods ``visitor_keys`` lists."""
    newest: dict[VisitorKey, ConsentEvent] = {}
    for e in sorted(events, key=_time_order):  # the later event of a period replaces the earlier
        day, month = period_keys(e)
        newest[day] = newest[month] = e
    return newest


def add_visitor_moves(cells: Cells, stored: Iterable[ConsentEvent], before: Mapping[VisitorKey, Latest | None]) -> None:
    """Add to ``cells`` what an append of ``stored`` (the events it stored) changes in the per-visitor counters,
    given each (visitor, period)'s latest event before it: where a stored event is the newer, the visitor
    leaves the old latest choice's cells and joins the new one's."""
    _add_period_changes(cells, newest_of_periods(stored), before, new_days=False)


def add_period_changes(
    cells: Cells, newest: Mapping[VisitorKey, ConsentEvent], before: Mapping[VisitorKey, Latest | None]
) -> None:
    """:func:`add_visitor_moves` and :func:`add_new_visitor_days` in one pass, from the stored events' latest of
    each period (``newest_of_periods``, which an append computes before it takes the write lock)."""
    _add_period_changes(cells, newest, before, new_days=True)


def _add_period_changes(
    cells: Cells,
    newest: Mapping[VisitorKey, ConsentEvent],
    before: Mapping[VisitorKey, Latest | None],
    *,
    new_days: bool,
) -> None:
    counters = cells.cells
    # visitors moving out of / into each (period, choices): many visitors share a few sets of choices, so
    # each set is spread over its categories once
    moved: dict[tuple[str, str, str, tuple[tuple[str, bool], ...]], int] = {}
    for key, e in newest.items():
        old = before.get(key)
        if old is not None:
            if old[0] > e.timestamp_ms or (old[0] == e.timestamp_ms and old[1] >= e.event_id):
                continue
            out = (key[1], key[2], key[3], tuple(old[2].items()))
            moved[out] = moved.get(out, 0) - 1
        elif new_days and key[1] == VISITOR_DAY:  # a visitor-day with no stored event before: a new visitor
            counters.setdefault((key[2], VISITORS, "", ""), [0, 0])[0] += 1
        into = (key[1], key[2], key[3], tuple(e.categories.items()))
        moved[into] = moved.get(into, 0) + 1
    for (dim, first_day, label, choices), n in moved.items():
        for category, granted in choices:
            cell = counters.setdefault((first_day, dim, label, category), [0, 0])
            cell[0] += n
            if granted:
                cell[1] += n


def add_new_visitor_days(
    cells: Cells, stored: Iterable[ConsentEvent], before: Mapping[VisitorKey, Latest | None]
) -> None:
    """Add to ``cells`` the visitor-days an append of ``stored`` opens: each (consent id, day) of a stored event
    whose day had no stored event before it (``before``, read under the same write lock as the append), once.
    The lookups the per-visitor counters make anyway answer it: no probe of the consent index per event."""
    seen: set[VisitorKey] = set()
    counters = cells.cells
    for e in stored:
        day = period_keys(e)[0]
        if before.get(day) is None and day not in seen:
            seen.add(day)
            counters.setdefault((day[2], VISITORS, "", ""), [0, 0])[0] += 1


_time_order = operator.attrgetter("timestamp_ms", "event_id")


def period_keys(event: ConsentEvent) -> tuple[VisitorKey, VisitorKey]:
    """The (visitor, day) and (visitor, month) of an event."""
    day, month = periods_of_day(event.timestamp_ms // DAY_MS)
    return (event.consent_id, *day), (event.consent_id, *month)


@functools.lru_cache(maxsize=1024)
def periods_of_day(n: int) -> tuple[tuple[str, str, str, int, int], tuple[str, str, str, int, int]]:
    """The day and month periods of UTC day number ``n`` (a batch's events share a few days: computed once)."""
    start = n * DAY_MS
    day = day_of(start)
    return (VISITOR_DAY, day, day, start, start + DAY_MS), (VISITOR_MONTH, *month_of(start))


def period_of(timestamp_ms: int, period: str) -> str:
    """The label of the day (``YYYY-MM-DD``) or month (``YYYY-MM``) of a time."""
    return day_of(timestamp_ms) if period == "day" else day_of(timestamp_ms)[:7]


def visitor_stats_of(events: Iterable[ConsentEvent], period: str) -> list[StatRow]:
    """``visitor_stats(period=…)`` of these events computed from them: for each period and category, the
    visitors whose latest event of the period carried a choice for it (``total``) and granted it."""
    latest: dict[tuple[str, str], ConsentEvent] = {}
    for e in events:
        key = (period_of(e.timestamp_ms, period), e.consent_id)
        seen = latest.get(key)
        if seen is None or (e.timestamp_ms, e.event_id) > (seen.timestamp_ms, seen.event_id):
            latest[key] = e
    cells: dict[tuple[str, str], list[int]] = {}
    for (label, _), e in latest.items():
        for category, granted in e.categories.items():
            cell = cells.setdefault((label, category), [0, 0])
            cell[0] += 1
            cell[1] += 1 if granted else 0
    return [StatRow(group=g, category=c, total=t, granted=n) for (g, c), (t, n) in sorted(cells.items())]


def whole_periods(filters: EventFilter, period: str) -> tuple[str | None, str | None] | None:
    """As :func:`whole_days`, for the per-visitor counters of ``period``: a month's counters answer only a
    selection of whole months."""
    if period not in VISITOR_PERIODS:
        raise ValueError(f"visitor stats per {period!r}: expected one of {', '.join(VISITOR_PERIODS)}")
    days = whole_days(filters)
    if days is None or period == "day":
        return days
    bounds = (filters.since_ms, filters.until_ms)
    if any(b is not None and month_of(b)[2] != b for b in bounds):
        return None
    return days


#: The filters a count may read from the counters (see ``granted_cells``): each is named as its dimension.
_COUNTED_FILTERS: Final = ("country", "browser", "device", "policy_version")


def granted_cells(filters: EventFilter) -> GrantedCells | None:
    """``(days, dim, value, category)`` when the count of ``filters`` is the sum of the ``granted`` counters of
    one dimension, ``value`` and ``category`` over whole days (``value`` ``None``: dimension ``day``, every
    day's own cell); ``None`` when it needs a scan.

    A cell's ``granted`` counts the events of its day and group whose choice for the category is a grant,
    which is what the category filter selects. Only one dimension may be named (the counters do not cross
    two), and not ``unknown`` or an empty value: the counters file an event with no country (browser,
    device) under ``unknown``, where the filter would select only the events that say ``unknown``."""
    category = filters.category
    if category is None:
        return None
    named = [(dim, value) for dim in _COUNTED_FILTERS if (value := getattr(filters, dim)) is not None]
    if len(named) > 1:
        return None
    days = whole_days(dataclasses.replace(filters, category=None, **{dim: None for dim, _ in named}))
    if days is None:
        return None
    if not named:
        return days, "day", None, category
    dim, value = named[0]
    if dim != "policy_version" and value in ("", "unknown"):
        return None
    return days, dim, value, category


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


def profile_of(event: ConsentEvent) -> tuple[Any, ...]:
    """What an event's counters depend on: events with one profile share their increments."""
    return (
        event.timestamp_ms // DAY_MS,
        event.country,
        event.browser_family,
        event.device_type,
        event.policy_version,
        tuple(event.categories.items()),
        tuple(event.vendors.items()),
    )


class Cells:
    """Counter deltas of a batch of events, summed per cell before they reach the store (a batch of a
    thousand events touches a few hundred cells)."""

    def __init__(self) -> None:
        self.cells: dict[CellKey, list[int]] = {}

    def copy(self) -> Cells:
        copied = Cells()
        copied.cells = {key: [total, granted] for key, (total, granted) in self.cells.items()}
        return copied

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
        """Count stored events, as :meth:`add_event` does one by one (the SQL backends count every batch
        this way: the same counts in SQL cost several times more).

        Events are first grouped by what their counters depend on (day, country, browser, device, policy,
        choices): a batch of a thousand events has a few dozen such profiles, and each profile's cells are
        then added once, by its number of events."""
        profiles: dict[tuple[Any, ...], int] = {}
        for e in events:
            profile = profile_of(e)
            try:
                profiles[profile] = profiles.get(profile, 0) + 1
            except TypeError:  # a choice that is not a plain value (a hand-edited spool): counted alone
                self.add_event(e)
        cells = self.cells
        for (n, country, browser, device, policy, categories, vendors), count in profiles.items():
            day = day_of(n * DAY_MS)
            groups = (
                ("day", day),
                ("country", country or "unknown"),
                ("browser", browser or "unknown"),
                ("device", device or "unknown"),
                ("policy_version", policy),
            )
            for category, granted in categories:
                for dim, value in groups:
                    cell = cells.setdefault((day, dim, value, category), [0, 0])
                    cell[0] += count
                    if granted:
                        cell[1] += count
            for vendor, granted in vendors:
                cell = cells.setdefault((day, "vendor", vendor, VENDOR_CATEGORY), [0, 0])
                cell[0] += count
                if granted:
                    cell[1] += count
            cells.setdefault((day, EVENTS, "", ""), [0, 0])[0] += count

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
    #: the first day ``YYYY-MM-01`` of the UTC month of ``timestamp_ms``, and that month's bounds in ms
    month_day: str
    month_start: str
    month_end: str
    #: "the two sides differ, NULL being a value"
    differs: str
    #: the type of a JSON column, and the collation of an id column (to compare with the events' ids)
    json: str
    collate: str
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
    month_day="strftime('%Y-%m-01', timestamp_ms / 1000, 'unixepoch')",
    month_start="CAST(strftime('%s', timestamp_ms / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000",
    month_end=(
        "CAST(strftime('%s', timestamp_ms / 1000, 'unixepoch', 'start of month', '+1 month') AS INTEGER) * 1000"
    ),
    differs="IS NOT",
    json="text",
    collate="",
)
_PG_MONTH = "date_trunc('month', to_timestamp(timestamp_ms / 1000.0) AT TIME ZONE 'UTC')"
POSTGRES: Final = SqlDialect(
    day_at="to_char(to_timestamp({} / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    each="jsonb_each({}) AS j",
    granted="j.value = 'true'::jsonb",
    param="%s",
    month_day="to_char(to_timestamp(timestamp_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-01')",
    month_start=f"(extract(epoch FROM {_PG_MONTH}) * 1000)::bigint",
    month_end=f"(extract(epoch FROM {_PG_MONTH} + interval '1 month') * 1000)::bigint",
    differs="IS DISTINCT FROM",
    json="jsonb",
    collate=' COLLATE "C"',
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


def new_visitors_select(source: str, dialect: SqlDialect) -> str:
    """``SELECT day, 'visitors', '', '', count, 0``: the (consent id, day) pairs of ``source`` that no
    other stored event has.

    Pairs are taken by day number and the day's name is made once per day, not per event (the date
    functions cost more than the rest of the statement on both engines); the fence keeps each pair's test
    one probe of the consent index: PostgreSQL would otherwise turn NOT EXISTS into an anti-join and, on a
    partition it has no statistics for yet, hash the whole month for every batch."""
    return (
        f"SELECT {dialect.day_at.format(f'(v.n * {DAY_MS})')} AS day, '{VISITORS}' AS dim,"
        " '' AS value, '' AS category, count(*) AS total, 0 AS granted FROM"
        f" (SELECT DISTINCT consent_id, timestamp_ms / {DAY_MS} AS n FROM {source}) AS v"
        " WHERE NOT EXISTS (SELECT 1 FROM events AS o WHERE o.consent_id = v.consent_id"
        f" AND o.timestamp_ms >= v.n * {DAY_MS} AND o.timestamp_ms < (v.n + 1) * {DAY_MS}{dialect.fence})"
        " GROUP BY v.n"
    )


# -- per-visitor counters on the SQL backends: the periods a write touches go to a temporary table
# ``visitor_keys``, which gets each period's latest event before and after the write, and the difference
# goes to the counters.


def create_visitor_keys(dialect: SqlDialect, *, suffix: str = "") -> str:
    """The temporary table of the (visitor, period) pairs one write touches (``suffix``: PostgreSQL's
    ``ON COMMIT DELETE ROWS``)."""
    ids = f"text{dialect.collate} NOT NULL"
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS visitor_keys (consent_id {ids}, dim text NOT NULL, period text NOT NULL,"
        " label text NOT NULL, lo bigint NOT NULL, hi bigint NOT NULL,"
        f" old_id text{dialect.collate}, old_categories {dialect.json}, new_id text{dialect.collate},"
        f" new_categories {dialect.json}, PRIMARY KEY (consent_id, dim, period)){suffix}"
    )


def visitor_keys_select(source: str, dialect: SqlDialect) -> str:
    """``SELECT`` the ``VisitorKey`` rows of the events of ``source`` (with ``consent_id``, ``timestamp_ms``)."""
    start = f"timestamp_ms / {DAY_MS} * {DAY_MS}"
    return (
        f"SELECT consent_id, '{VISITOR_DAY}', {dialect.day}, {dialect.day}, {start}, {start} + {DAY_MS}"
        f" FROM {source} UNION SELECT consent_id, '{VISITOR_MONTH}', {dialect.month_day},"
        f" substr({dialect.month_day}, 1, 7), {dialect.month_start}, {dialect.month_end} FROM {source}"
    )


def fill_latest(which: str) -> str:
    """Set ``visitor_keys``' ``old_*`` or ``new_*`` (``which``) to each period's latest stored event now."""
    return (
        f"UPDATE visitor_keys SET ({which}_id, {which}_categories) = (SELECT e.event_id, e.categories"
        " FROM events AS e WHERE e.consent_id = visitor_keys.consent_id AND e.timestamp_ms >= visitor_keys.lo"
        " AND e.timestamp_ms < visitor_keys.hi ORDER BY e.timestamp_ms DESC, e.event_id DESC LIMIT 1)"
    )


def visitor_changes(dialect: SqlDialect) -> str:
    """Add to the counters the difference between each period's latest event before and after the write:
    the visitor leaves the old latest choice's cells and joins the new one's."""
    changed = f"old_id {dialect.differs} new_id"
    moves = (
        "SELECT period, dim, label, old_categories AS c, -1 AS sign FROM visitor_keys"
        f" WHERE old_id IS NOT NULL AND {changed} UNION ALL SELECT period, dim, label, new_categories, 1"
        f" FROM visitor_keys WHERE new_id IS NOT NULL AND {changed}"
    )
    select = (
        "SELECT s.period AS day, s.dim AS dim, s.label AS value, j.key AS category, sum(s.sign) AS total,"
        f" sum(CASE WHEN {dialect.granted} THEN s.sign ELSE 0 END) AS granted"
        f" FROM ({moves}) AS s, {dialect.each.format('s.c')} GROUP BY 1, 2, 3, 4"
    )
    return upsert(select)


def visitors_backfill(dialect: SqlDialect) -> str:
    """The per-visitor counters of every stored event (the migration that adds them)."""
    order = "ORDER BY timestamp_ms DESC, event_id DESC"
    latest = (
        f"SELECT {dialect.day} AS period, '{VISITOR_DAY}' AS dim, {dialect.day} AS label, categories,"
        f" row_number() OVER (PARTITION BY consent_id, {dialect.day} {order}) AS n FROM events"
        f" UNION ALL SELECT {dialect.month_day}, '{VISITOR_MONTH}', substr({dialect.month_day}, 1, 7), categories,"
        f" row_number() OVER (PARTITION BY consent_id, {dialect.month_day} {order}) FROM events"
    )
    select = (
        "SELECT s.period AS day, s.dim AS dim, s.label AS value, j.key AS category, count(*) AS total,"
        f" sum(CASE WHEN {dialect.granted} THEN 1 ELSE 0 END) AS granted"
        f" FROM (SELECT * FROM ({latest}) AS r WHERE n = 1) AS s, {dialect.each.format('s.categories')}"
        " GROUP BY 1, 2, 3, 4"
    )
    return upsert(select)


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


def read_granted(dialect: SqlDialect, cells: GrantedCells) -> tuple[str, list[Any]]:
    """The statement and params summing the ``granted`` counters of ``cells`` (see ``granted_cells``)."""
    days, dim, value, category = cells
    p = dialect.param
    sql = (
        "SELECT coalesce(sum(granted), 0) FROM aggregates"
        f" WHERE dim = {p} AND day >= {p} AND day < {p} AND category = {p}"
    )
    params: list[Any] = [dim, *day_range(days), category]
    if value is not None:
        sql += f" AND value = {p}"
        params.append(value)
    return sql, params


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
