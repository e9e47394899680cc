"""What every consent log backend shares: the `ConsentLog` Protocol and the values it takes and gives.

Backends (`sqlite.py`, `redis.py`) and the recorder import this module, never the package, so the package
can import them without a cycle.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from consent_gateway.events import (
    EVENT_FIELDS,
    ChainHead,
    ChainVerifier,
    ConsentEvent,
    LogKeys,
    anchor_text,
    event_values,
)
from consent_gateway.inventory.records import InventoryEntry, InventoryPage, InventoryQuery, InventorySize

FORGED_ANCHOR = "forged purge anchor: its MAC does not verify, so the events before it were not purged by retention"
OUTSIDE_CHAINS = "event outside any chain: no writer's chain holds it, so nothing proves it was recorded"

INSTANCE_INDEX = EVENT_FIELDS.index("instance_id")
#: Keys ``stats(by=…)`` accepts.
STAT_GROUPS = ("day", "country", "browser", "device", "policy_version", "vendor")
#: Periods ``visitor_stats(period=…)`` accepts.
VISITOR_PERIODS = ("day", "month")
#: The category of ``stats(by="vendor")`` rows: a vendor's grant rate is not per category.
VENDOR_CATEGORY = "vendor"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What ``query``, ``stats`` and ``export`` select. ``None`` means any; UTC ms, ``until`` exclusive."""

    since_ms: int | None = None
    until_ms: int | None = None
    action: str | None = None
    #: only events where this category was granted
    category: str | None = None
    country: str | None = None
    browser: str | None = None
    device: str | None = None
    policy_version: str | None = None
    consent_id: str | None = None
    #: the IP as the log keeps it (truncated, hashed or full, per ``[privacy] ip_mode``): a personal field,
    #: kept apart from the record on some backends, so each writes its own test
    ip: str | None = None

    def sql_conditions(self) -> list[tuple[str, str, Any]]:
        """``(column, operator, value)`` of every set filter but the category and the IP, for the SQL
        backends (each writes its own placeholders and its own category and IP tests)."""
        conditions: list[tuple[str, str, Any]] = [
            (column, "=", value)
            for column, value in (
                ("action", self.action),
                ("country", self.country),
                ("browser_family", self.browser),
                ("device_type", self.device),
                ("policy_version", self.policy_version),
                ("consent_id", self.consent_id),
            )
            if value is not None
        ]
        if self.since_ms is not None:
            conditions.append(("timestamp_ms", ">=", self.since_ms))
        if self.until_ms is not None:
            conditions.append(("timestamp_ms", "<", self.until_ms))
        return conditions

    def matches(self, event: ConsentEvent) -> bool:
        """The same selection in Python (the Redis backend filters this way; tests compare both)."""
        return (
            (self.since_ms is None or event.timestamp_ms >= self.since_ms)
            and (self.until_ms is None or event.timestamp_ms < self.until_ms)
            and (self.action is None or event.action == self.action)
            and (self.category is None or event.categories.get(self.category) is True)
            and (self.country is None or event.country == self.country)
            and (self.browser is None or event.browser_family == self.browser)
            and (self.device is None or event.device_type == self.device)
            and (self.policy_version is None or event.policy_version == self.policy_version)
            and (self.consent_id is None or event.consent_id == self.consent_id)
            and (self.ip is None or event.ip == self.ip)
        )


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of ``query``, newest first; pass ``next_cursor`` back for the next (``None``: last page)."""

    events: list[ConsentEvent]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StatRow:
    """Consent rate of one category within one group (a day ``YYYY-MM-DD``, a country, a browser…)."""

    group: str
    category: str
    #: events that carried a choice for this category
    total: int
    #: of which granted it
    granted: int

    @property
    def rate(self) -> float:
        return self.granted / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class DayCount:
    """One UTC day of the log: events stored, and distinct visitors (consent ids) among them."""

    day: str
    events: int
    visitors: int


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A named document shared by every instance (the classification overlay), with its version: 1 for the
    first write, one more for each later one."""

    version: int
    body: str


@dataclass(frozen=True, slots=True)
class PurgeResult:
    events_deleted: int
    ips_removed: int


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """``ok`` is False when a chain is broken; ``first_broken`` names the first event found broken and why."""

    ok: bool
    events_checked: int
    chains: int
    #: event id (or ``"<instance>@<seq>"`` for an event missing at a chain's tail)
    first_broken: str | None = None
    reason: str | None = None
    #: every problem found, in chain order (``first_broken`` is ``problems[0]``)
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: what this verification could not prove (no log key, no checkpoint…): never empty-handed "OK"
    unproven: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        problems: list[tuple[str, str]],
        *,
        events_checked: int,
        chains: int,
        unproven: tuple[str, ...] = (),
    ) -> VerifyResult:
        first_broken, reason = problems[0] if problems else (None, None)
        return cls(not problems, events_checked, chains, first_broken, reason, problems, unproven)


def unproven_by(checkpoint: Checkpoint | None, keys: LogKeys | None) -> tuple[str, ...]:
    """What a verification with (or without) this checkpoint and these log keys cannot prove."""
    limits: list[str] = []
    if keys is None:
        limits.append(
            "no log key: events were checked against their public hashes only, so events added or rewritten "
            "with recomputed hashes by someone with write access to the store would pass"
        )
    if checkpoint is None:
        limits.append(
            "no checkpoint: the newest events of a chain, or whole chains, removed from the store cannot be "
            "detected (each chain is proven only up to its last stored event)"
        )
    else:
        limits.append(
            "events written after the checkpoint of "
            + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(checkpoint.created_at_ms / 1000))
            + " are proven by the log key only: removing the newest of them cannot be detected"
        )
    return tuple(limits)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Chain heads at one moment, kept *outside* the store so a truncated tail is noticed."""

    heads: dict[str, ChainHead]
    created_at_ms: int
    #: where purged chains started then (an auditor tells a retention purge from a deletion by them)
    anchors: dict[str, ChainHead] = field(default_factory=dict)
    #: ``"ed25519:<key id>:<base64 signature of signed_bytes()>"``; empty when unsigned
    signature: str = ""

    def signed_bytes(self) -> bytes:
        """What the signature covers: the heads, anchors and time, as sorted compact JSON."""
        return json.dumps(self._body(), sort_keys=True, separators=(",", ":")).encode()

    def _body(self) -> dict[str, Any]:
        def table(heads: dict[str, ChainHead]) -> dict[str, dict[str, Any]]:
            return {inst: {"seq": h.seq, "hash": h.hash} for inst, h in sorted(heads.items())}

        return {"created_at_ms": self.created_at_ms, "heads": table(self.heads), "anchors": table(self.anchors)}

    def to_json(self) -> str:
        body = self._body()
        if self.signature:
            body["signature"] = self.signature
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        def table(raw: dict[str, Any]) -> dict[str, ChainHead]:
            return {inst: ChainHead(seq=int(h["seq"]), hash=str(h["hash"])) for inst, h in raw.items()}

        return cls(
            heads=table(data["heads"]),
            created_at_ms=int(data["created_at_ms"]),
            anchors=table(data.get("anchors", {})),
            signature=str(data.get("signature", "")),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = Path(f"{path}.tmp")
        # readable by this user only, like every other file of the data folder
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            f.write(self.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def encode_cursor(timestamp_ms: int, event_id: str) -> str:
    """A page cursor both backends read: the last event's time and id, URL-safe."""
    return base64.urlsafe_b64encode(json.dumps([timestamp_ms, event_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        ts, event_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(ts), str(event_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc


def group_of(event: ConsentEvent, by: str) -> str:
    """The group of one event in ``stats(by=…)``, computed in Python (the SQLite backend does it in SQL)."""
    if by == "day":
        return time.strftime("%Y-%m-%d", time.gmtime(event.timestamp_ms / 1000))
    if by == "country":
        return event.country or "unknown"
    if by == "browser":
        return event.browser_family or "unknown"
    if by == "device":
        return event.device_type or "unknown"
    return event.policy_version


def stats_of(events: Iterable[ConsentEvent], by: str) -> list[StatRow]:
    """``stats(by=…)`` of these events computed in Python: what a scan answers (the Redis backend's scan
    path, and what the tests hold the counters to)."""
    cells: dict[tuple[str, str], list[int]] = {}
    for e in events:
        if by == "vendor":
            choices: Iterable[tuple[str, str, bool]] = ((v, VENDOR_CATEGORY, g) for v, g in e.vendors.items())
        else:
            group = group_of(e, by)
            choices = ((group, c, g) for c, g in e.categories.items())
        for group, category, granted in choices:
            cell = cells.setdefault((group, category), [0, 0])
            cell[0] += 1
            cell[1] += 1 if granted else 0
    return [StatRow(group=g, category=c, total=t, granted=n) for (g, c), (t, n) in sorted(cells.items())]


def day_counts_of(events: Iterable[ConsentEvent]) -> list[DayCount]:
    """``daily_counts`` of these events computed in Python."""
    days: dict[str, tuple[int, set[str]]] = {}
    for e in events:
        count, visitors = days.get(group_of(e, "day"), (0, set()))
        visitors.add(e.consent_id)
        days[group_of(e, "day")] = (count + 1, visitors)
    return [DayCount(day, n, len(v)) for day, (n, v) in sorted(days.items())]


#: What ``prepare_append(events)`` returns, on a log that has it: the append itself, its arguments built already
#: (sent when called). The recorder prepares a batch while the log still writes the one before it, so the
#: building overlaps the store's work; a log without ``prepare_append`` is sent ``append(events)``.
SendAppend = Callable[[], Coroutine[Any, Any, None]]


@runtime_checkable
class ConsentLog(Protocol):
    """The consent log. Every method may raise :class:`~consent_gateway.errors.StoreUnavailable`."""

    url: str

    async def open(self) -> None:
        """Connect, create or migrate the schema; Redis: check persistence and warn loudly if off."""

    async def close(self) -> None: ...

    async def append(self, events: Sequence[ConsentEvent]) -> None:
        """Store a batch, durable on return. Idempotent by event id: an event already stored is skipped."""

    async def history(self, consent_id: str) -> list[ConsentEvent]:
        """Every event of one consent id, oldest first (right of access)."""

    async def get(self, event_id: str) -> ConsentEvent | None: ...

    async def query(self, filters: EventFilter, *, limit: int = 50, cursor: str | None = None) -> EventPage:
        """Newest first, ``limit`` per page, cursor-paginated."""

    async def count(self, filters: EventFilter) -> int: ...

    async def stats(self, filters: EventFilter, *, by: str) -> list[StatRow]:
        """Consent rate per category grouped ``by`` one of :data:`STAT_GROUPS`, sorted by group, category
        (``by="vendor"``: grant rate per vendor, category :data:`VENDOR_CATEGORY`). Whole UTC days with no
        other filter are read from counters kept on write (``store/aggregates.py``)."""

    async def daily_counts(self, filters: EventFilter) -> list[DayCount]:
        """Events and distinct visitors per UTC day, oldest first (days without events left out)."""

    async def visitor_stats(self, filters: EventFilter, *, period: str) -> list[StatRow]:
        """Consent rate per category **per visitor**: for each UTC ``period`` (``"day"``: group ``YYYY-MM-DD``;
        ``"month"``: ``YYYY-MM``) and category, the distinct visitors whose latest event in the period carried a
        choice for it (``total``) and of which granted it (``aggregates.visitor_stats_of`` says it in code).
        Whole periods with no other filter are read from counters kept on write."""

    def export(self, filters: EventFilter) -> AsyncIterator[ConsentEvent]:
        """Every selected event, oldest first, streamed (constant memory)."""

    async def erase(self, consent_id: str) -> int:
        """Remove the personal fields (IP, UA, page, referrer) of a consent id's events; returns the count.

        The chain still verifies: each event keeps a salted commitment whose salt is erased too.
        """

    async def purge(self, *, events_before_ms: int, ip_before_ms: int) -> PurgeResult:
        """Retention: delete events before ``events_before_ms``; drop IPs of those before ``ip_before_ms``."""

    async def verify(self, checkpoint: Checkpoint | None = None) -> VerifyResult:
        """Walk every chain; with a checkpoint, also check that no chain lost its tail since."""

    async def chain_heads(self) -> dict[str, ChainHead]:
        """Instance id → last event of its chain (what a :class:`Checkpoint` keeps)."""

    async def chain_anchors(self) -> dict[str, ChainHead]:
        """Instance id → the last event a retention purge deleted (where the chain now starts)."""

    async def health(self) -> dict[str, Any]:
        """``{"backend": …, "ok": bool, "events": int, …}`` for ``/_consent/health`` and the dashboard."""

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        """True the first time ``key`` is claimed, False while an earlier claim lives (``ttl_seconds``): what
        makes a sync token single-use across every instance sharing the log."""

    async def user_choice(self, user_key: str) -> tuple[str, str] | None:
        """A logged-in user's latest choice, ``(consent_id, signed cookie value or "")``, or None."""

    async def remember_user_choice(self, user_key: str, consent_id: str, value: str, at_ms: int) -> None:
        """Keep a user's latest choice (an older one arriving late does not replace a newer one)."""

    async def archive_banner(self, version: str, document: str) -> bool:
        """Keep what banner ``version`` showed (its canonical JSON); True when this call archived it, False
        when it was there already (the first archive of a version is kept, never replaced)."""

    async def banner_versions(self, versions: Sequence[str]) -> dict[str, str]:
        """Version → archived JSON, for those of ``versions`` the archive holds."""

    async def server_time_ms(self) -> int | None:
        """The store server's own clock (ms since the epoch), or None when it has none apart from this
        machine's (SQLite): the reference `store/clock.py` measures this machine's clock against."""

    async def write_probe(self) -> None:
        """Check that the log takes writes now, cheaply, leaving nothing behind that counts; raises
        `StoreUnavailable` when it does not (file locked or read-only, Redis MISCONF, a read-only server)."""

    # -- coordination between instances (leases, shared state: see store/coordination.py) ---------------

    async def lease(self, name: str, holder: str, ttl_ms: int, *, take_from: str | None = None) -> str:
        """Take or renew lease ``name`` for ``ttl_ms`` if it is free, expired, already ``holder``'s or held by
        ``take_from``; returns who holds it afterwards (``holder`` when it was taken)."""

    async def release_lease(self, name: str, holder: str) -> None:
        """Give lease ``name`` back, if ``holder`` still holds it."""

    async def state_get(self, names: Sequence[str]) -> dict[str, str]:
        """The unexpired values of ``names`` (missing or expired names are left out)."""

    async def state_put(self, name: str, value: str, ttl_ms: int) -> None:
        """Set ``name`` to ``value`` for ``ttl_ms``."""

    async def state_delete(self, names: Sequence[str]) -> None: ...

    async def state_incr(self, name: str, ttl_ms: int) -> int:
        """Add one to the counter ``name`` and return it; a missing or expired counter starts at 1 and
        expires ``ttl_ms`` later (a fixed window)."""

    # -- the inventory of what the site uses (inventory/records.py): shared by every instance -------------

    async def merge_inventory(self, entries: Iterable[InventoryEntry]) -> None:
        """Merge a batch of sightings, atomically and commutatively (counts add, first seen min, last seen
        max, element kinds OR, the smallest sample paths, descriptions from the latest sighting)."""

    async def read_inventory(self, query: InventoryQuery) -> InventoryPage:
        """The selected entries, most recently seen first (then kind, key), one page of them."""

    async def inventory_size(self) -> InventorySize:
        """Entries per kind, and third-party hosts nobody classified."""

    async def prune_inventory(self, *, seen_before_ms: int) -> int:
        """Remove the entries last seen before ``seen_before_ms`` (retention: what the site stopped using);
        an entry seen again meanwhile by another instance is kept. Returns how many were removed."""

    # -- shared documents: settings the privacy team edits, read by every instance ---------------------------

    async def document_get(self, name: str) -> StoredDocument | None:
        """The document ``name`` and its version, or None when it was never written. Never expires."""

    async def document_version(self, name: str) -> int:
        """The version of ``name`` (0 when it was never written): what an instance polls, cheaply."""

    async def document_put(self, name: str, body: str, *, expected_version: int) -> bool:
        """Write ``name`` if its version is still ``expected_version`` (0: not written yet), making it one more;
        False, changing nothing, when another writer got there first (read again and retry)."""


class ChainWalk:
    """One sorted pass over every chain of a log (events ordered by instance, then seq), the way the SQL
    backends verify: each chain checked from its purge anchor (whose MAC must verify) to the log's head record
    and the checkpoint's head; chains those know of but which have no event left are checked too."""

    def __init__(
        self,
        anchor_rows: Iterable[tuple[str, int, str, str]],
        recorded: dict[str, ChainHead],
        keys: LogKeys | None,
        checkpoint: Checkpoint | None,
    ) -> None:
        self._keys, self._checkpoint, self._recorded = keys, checkpoint, recorded
        self._problems: list[tuple[str, str]] = []
        self._anchors: dict[str, ChainHead] = {}
        for inst, seq, h, mac in anchor_rows:
            anchor = ChainHead(seq=int(seq), hash=h)
            if keys is not None and not keys.check(anchor_text(inst, anchor), mac):
                self._problems.append((f"{inst}@{seq}", FORGED_ANCHOR))
                continue  # the chain must then start at seq 1
            self._anchors[inst] = anchor
        self._walked: set[str] = set()
        self._checked = 0
        self._current: ChainVerifier | None = None

    def feed(self, event: ConsentEvent) -> None:
        self.feed_values(event_values(event))

    def feed_values(self, values: Sequence[Any]) -> None:
        """:meth:`feed` on an event's values in ``EVENT_FIELDS`` order (see ``ChainVerifier.feed_values``)."""
        instance = values[INSTANCE_INDEX]
        current = self._current
        if current is None or instance != current.instance_id:
            if current is not None:
                self._finish(current)
            current = self._current = self._verifier_for(instance)
            self._walked.add(instance)
        current.feed_values(values)

    def result(self) -> VerifyResult:
        if self._current is not None:
            self._finish(self._current)
            self._current = None
        checkpoint = self._checkpoint
        instances = self._walked | set(self._recorded) | set(checkpoint.heads if checkpoint else ())
        for instance in sorted(instances - self._walked):
            self._finish(self._verifier_for(instance))
        return VerifyResult.of(
            self._problems,
            events_checked=self._checked,
            chains=len(instances),
            unproven=unproven_by(checkpoint, self._keys),
        )

    def _verifier_for(self, instance: str) -> ChainVerifier:
        checkpoint = self._checkpoint
        ends = [h for h in (self._recorded.get(instance), checkpoint and checkpoint.heads.get(instance)) if h]
        return ChainVerifier(instance, self._anchors.get(instance), heads=ends, keys=self._keys)

    def _finish(self, verifier: ChainVerifier) -> None:
        verifier.finish(self._recorded.get(verifier.instance_id), source="the log's head record")
        verifier.finish(self._checkpoint.heads.get(verifier.instance_id) if self._checkpoint else None)
        self._checked += verifier.checked
        self._problems.extend(verifier.problems)
