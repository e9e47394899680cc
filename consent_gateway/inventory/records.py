"""What the inventory keeps: one `InventoryEntry` per thing the site really uses, and how two merge.

Four kinds of entries, one shape (so every backend stores them in one table or hash per kind):

- ``host``: a third-party host an HTML page made the browser contact (``name`` the host; ``vendor`` the
  catalog vendor or ``unclassified``; ``held``/``allowed`` how many elements were held back or let through;
  ``elements`` the element kinds; ``samples`` a few page paths, without query strings). A vendor's inline
  snippet names no host: it is the entry ``inline:<vendor id>``;
- ``cookie``: a cookie a response set (``name``; ``detail`` its domain, path, lifetime in seconds, HttpOnly,
  Secure, SameSite; ``vendor`` or "" for unknown; ``dropped``/``passed`` and, of the passed, ``capped``);
- ``storage``: a cookie or storage key *name* a visitor's browser reported after consent (``detail.area``:
  ``cookie``, ``localStorage`` or ``sessionStorage``; never a value);
- ``violation``: a load the CSP backstop reported without consent (``name`` the blocked host; ``detail`` the
  directive, page path and the visitor's consent state).

Merging is commutative and associative, so instances flush in any order and the store ends the same:
counts add, ``first_seen`` is the min and ``last_seen`` the max, element kinds are a union, samples keep
the :data:`MAX_SAMPLES` smallest distinct paths, and what describes the thing (vendor, name, detail) comes
from the more recent sighting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

HOST: Final = "host"
COOKIE: Final = "cookie"
STORAGE: Final = "storage"
VIOLATION: Final = "violation"
KINDS: Final = (HOST, COOKIE, STORAGE, VIOLATION)
Kind = Literal["host", "cookie", "storage", "violation"]
#: the vendor of a third-party host or blocked load nobody classified (thirdparty.UNCLASSIFIED)
UNCLASSIFIED: Final = "unclassified"
#: the vendor of a cookie or storage name the catalog does not know
UNKNOWN: Final = ""
#: where a browser-reported name lives
AREAS: Final = ("cookie", "localStorage", "sessionStorage")
#: the counters an entry adds up, besides ``count``
COUNTERS: Final = ("held", "allowed", "dropped", "passed", "capped")
#: sample page paths kept per entry (the smallest, so any merge order keeps the same ones)
MAX_SAMPLES: Final = 5
MAX_PATH_CHARS: Final = 256
MAX_NAME_CHARS: Final = 256
#: element kinds as bits of ``element_kinds``: stored, so only ever append to this tuple
ELEMENT_KINDS: Final = (
    "script", "svg:script", "iframe", "frame", "object", "embed", "meta", "img", "svg:image", "video", "audio",
    "source", "track", "input", "body", "table", "td", "th", "use", "feimage", "a", "link", "other", "css",
)  # fmt: skip
_ELEMENT_BITS: Final = {name: 1 << i for i, name in enumerate(ELEMENT_KINDS)}
#: separates the parts of a key (a character no host, cookie name or path carries)
KEY_SEPARATOR: Final = "\x1f"


def element_bit(kind: str) -> int:
    return _ELEMENT_BITS.get(kind, _ELEMENT_BITS["other"])


def element_names(bits: int) -> tuple[str, ...]:
    return tuple(name for name, bit in _ELEMENT_BITS.items() if bits & bit)


def page_path(path: str) -> str:
    """A sample page path as kept: no query string or fragment, bounded."""
    return (path.partition("?")[0].partition("#")[0] or "/")[:MAX_PATH_CHARS]


def merged_samples(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({s for group in groups for s in group})[:MAX_SAMPLES])


@dataclass(slots=True)
class InventoryEntry:
    """One thing the site uses, with what was counted of it (see the module docstring for each kind).

    ``key`` identifies the entry within its kind (opaque: the parts of ``key_of`` joined); the other fields
    are what the UI shows.
    """

    kind: str
    key: str
    name: str
    vendor: str = UNKNOWN
    count: int = 0
    held: int = 0
    allowed: int = 0
    dropped: int = 0
    passed: int = 0
    capped: int = 0
    element_kinds: int = 0
    samples: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    first_seen_ms: int = 0
    last_seen_ms: int = 0

    @property
    def elements(self) -> tuple[str, ...]:
        return element_names(self.element_kinds)

    @property
    def is_unclassified(self) -> bool:
        """A host or blocked load nobody classified, or a cookie or storage name no vendor is known for."""
        return self.vendor in (UNCLASSIFIED, UNKNOWN)

    def merge(self, other: InventoryEntry) -> None:
        """Add ``other`` (the same kind and key) into this entry."""
        if other.last_seen_ms >= self.last_seen_ms:
            self.name, self.vendor, self.detail = other.name, other.vendor, other.detail
        self.count += other.count
        self.held += other.held
        self.allowed += other.allowed
        self.dropped += other.dropped
        self.passed += other.passed
        self.capped += other.capped
        self.element_kinds |= other.element_kinds
        if other.samples:
            self.samples = merged_samples(self.samples, other.samples)
        self.first_seen_ms = min(self.first_seen_ms, other.first_seen_ms)
        self.last_seen_ms = max(self.last_seen_ms, other.last_seen_ms)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (admin pages, the CLI): every field, element kinds by name."""
        return {
            "kind": self.kind,
            "key": self.key,
            "name": self.name,
            "vendor": self.vendor,
            "count": self.count,
            **{name: getattr(self, name) for name in COUNTERS},
            "elements": list(self.elements),
            "samples": list(self.samples),
            "detail": dict(self.detail),
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
        }

    def stored_fields(self) -> dict[str, Any]:
        """What a backend keeps besides kind and key (the Redis hash value; SQL columns of the same names)."""
        return {
            "name": self.name,
            "vendor": self.vendor,
            "count": self.count,
            **{name: getattr(self, name) for name in COUNTERS},
            "element_kinds": self.element_kinds,
            "samples": list(merged_samples(self.samples)),
            "detail": self.detail,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
        }

    @classmethod
    def from_stored(cls, kind: str, key: str, data: Mapping[str, Any]) -> InventoryEntry:
        samples = data.get("samples") or ()
        detail = data.get("detail") or {}
        return cls(
            kind=kind,
            key=key,
            name=str(data["name"]),
            vendor=str(data.get("vendor") or ""),
            count=int(data.get("count") or 0),
            held=int(data.get("held") or 0),
            allowed=int(data.get("allowed") or 0),
            dropped=int(data.get("dropped") or 0),
            passed=int(data.get("passed") or 0),
            capped=int(data.get("capped") or 0),
            element_kinds=int(data.get("element_kinds") or 0),
            # an empty list comes back from Redis' cjson as {} (it cannot tell them apart)
            samples=tuple(samples) if isinstance(samples, list | tuple) else (),
            detail=dict(detail) if isinstance(detail, dict) else {},
            first_seen_ms=int(data.get("first_seen_ms") or 0),
            last_seen_ms=int(data.get("last_seen_ms") or 0),
        )


def key_of(*parts: str) -> str:
    return KEY_SEPARATOR.join(parts)


def merge_all(entries: Iterable[InventoryEntry]) -> list[InventoryEntry]:
    """Entries of one batch with each (kind, key) once: what a backend writes in one statement or script."""
    merged: dict[tuple[str, str], InventoryEntry] = {}
    for entry in entries:
        found = merged.get((entry.kind, entry.key))
        if found is None:
            merged[(entry.kind, entry.key)] = InventoryEntry(**{
                **{name: getattr(entry, name) for name in InventoryEntry.__dataclass_fields__},
                "detail": dict(entry.detail),
            })  # fmt: skip
        else:
            found.merge(entry)
    return list(merged.values())


@dataclass(frozen=True, slots=True)
class InventoryQuery:
    """What ``read_inventory`` selects, most recently seen first. ``None`` means any."""

    kind: str | None = None
    #: one vendor id ("unclassified" for hosts nobody classified, "" for unknown cookies)
    vendor: str | None = None
    #: only what no vendor is known for (``vendor`` "unclassified" or "")
    unclassified_only: bool = False
    #: only entries seen since (ms)
    seen_since_ms: int | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"unknown inventory kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        if self.offset < 0:
            raise ValueError("offset must not be negative")

    def matches(self, entry: InventoryEntry) -> bool:
        """The same selection in Python (the Redis backend filters this way; tests compare backends)."""
        return (
            (self.kind is None or entry.kind == self.kind)
            and (self.vendor is None or entry.vendor == self.vendor)
            and (not self.unclassified_only or entry.is_unclassified)
            and (self.seen_since_ms is None or entry.last_seen_ms >= self.seen_since_ms)
        )


#: the most entries one read returns
MAX_PAGE: Final = 1000


def sort_key(entry: InventoryEntry) -> tuple[int, str, str]:
    """Most recently seen first, then by kind and key: a stable order every backend gives."""
    return (-entry.last_seen_ms, entry.kind, entry.key)


@dataclass(frozen=True, slots=True)
class InventoryPage:
    entries: list[InventoryEntry]
    #: entries matching the query, on every page
    total: int


@dataclass(frozen=True, slots=True)
class InventorySize:
    """How big the stored inventory is: entries per kind, and hosts nobody classified."""

    by_kind: dict[str, int]
    unclassified_hosts: int

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


class InventoryStore(Protocol):
    """The inventory's side of a consent log backend (SQLite, Redis and Redis Cluster, PostgreSQL).

    Every method may raise :class:`~consent_gateway.errors.StoreUnavailable`.
    """

    async def merge_inventory(self, entries: Iterable[InventoryEntry]) -> None:
        """Merge a batch into the stored inventory, atomically (see the module docstring for how)."""

    async def read_inventory(self, query: InventoryQuery) -> InventoryPage:
        """The selected entries, most recently seen first (then kind, key), one page of them."""

    async def inventory_size(self) -> InventorySize: ...

    async def prune_inventory(self, *, seen_before_ms: int) -> int:
        """Remove the entries last seen before ``seen_before_ms`` (retention); returns how many."""
