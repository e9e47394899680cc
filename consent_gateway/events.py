"""The consent event (the log's proof of each choice) and the hash chain that makes it tamper-evident.

Hash chain
----------
Each writer (gateway instance) keeps one chain. An event carries ``instance_id``, ``seq`` (1, 2, 3… per
instance), ``prev_hash`` (the ``hash`` of the previous event of that chain, ``""`` for the first) and
``hash``::

    hash = sha256(canonical(body)).hexdigest()
    canonical(x) = json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

``body`` is every field of the event except ``hash``, ``salts``, ``erased_at_ms``, ``mac`` and the personal fields
(:data:`PERSONAL_FIELDS`: IP, user agent, page path, referrer). The personal fields enter the hash through
``commitments``: for each one that has a value, ``sha256(salt + "\x00" + value)`` with a random per-field
salt kept in ``salts``. Erasure deletes a field's value *and* its salt and keeps the commitment, so the
chain still verifies while nothing left can be matched back to the erased value (no dictionary attack on
a truncated IP: the salt is gone).

Verification recomputes each hash, checks each commitment whose value is still there, and checks that
``seq`` and ``prev_hash`` follow on: an edited event fails its hash, a deleted one leaves a gap, an inserted
one breaks the link after it. A truncated tail is found only against a :class:`ChainHead` kept elsewhere
(a signed checkpoint). A retention purge deletes a chain's oldest events and leaves an *anchor* (the last
purged head) where the chain now starts.

Keyed chain
-----------
The hash is public (anyone with an export recomputes it), so by itself it stops nobody who can write to
the store: a forger recomputes the hashes of what they add. Each event therefore also carries ``mac``,
``"<key id>:" + HMAC-SHA256(log key, hash)``, with a log key kept apart from the cookie keys
(:class:`LogKeys`; ``CONSENT_GATEWAY_LOG_KEYS``, the first key writes, all verify). Since ``hash`` covers
``prev_hash``, one MAC per event authenticates the event *and* its place in the chain; anchors left by a
purge carry a MAC too. An auditor without the log key checks the public hashes against a checkpoint signed
with Ed25519 (``store/proof.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import orjson

CONSENT_GIVEN: Final = "consent-given"  # first choice of a consent id
CONSENT_UPDATED: Final = "consent-updated"  # a later choice of the same consent id
CONSENT_WITHDRAWN: Final = "consent-withdrawn"  # DELETE /_consent/choices
GPC_APPLIED: Final = "gpc-applied"  # a choice made while Sec-GPC: 1 narrowed it
SYNCED_FROM: Final = "synced-from"  # a choice made on a sister domain (named in referrer_host), carried here
SYNCED_FROM_ACCOUNT: Final = "synced-from-account"  # a logged-in user's latest choice, taken by another device
#: the visitor objected to (or asked to limit) the processing from their own page: every optional category is
#: refused and the record is flagged for the privacy team
PROCESSING_OBJECTED: Final = "processing-objected"
#: the visitor erased their consent data from their own page; the event itself holds no personal field
DATA_ERASED: Final = "data-erased"
ACTIONS: Final = (
    CONSENT_GIVEN,
    CONSENT_UPDATED,
    CONSENT_WITHDRAWN,
    GPC_APPLIED,
    SYNCED_FROM,
    SYNCED_FROM_ACCOUNT,
    PROCESSING_OBJECTED,
    DATA_ERASED,
)
#: What `enrich` reads from a user agent into `device_type`; the dashboard and `logs --device` offer the same.
DEVICE_TYPES: Final = ("desktop", "mobile", "tablet", "bot", "other")


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    event_id: str
    consent_id: str
    action: str
    #: category id → granted
    categories: dict[str, bool]
    #: vendor id → granted, only for vendors the visitor chose by name
    vendors: dict[str, bool]
    policy_version: str
    banner_version: str
    #: UTC, milliseconds since the epoch
    timestamp_ms: int
    page_path: str | None = None
    referrer_host: str | None = None
    #: already minimised per ``[privacy] ip_mode``: a full IP never reaches the log when truncation is on
    ip: str | None = None
    user_agent: str | None = None
    browser_family: str | None = None
    browser_version: str | None = None
    os_family: str | None = None
    os_version: str | None = None
    #: one of DEVICE_TYPES
    device_type: str | None = None
    country: str | None = None
    is_eu: bool | None = None
    #: the regional rule applied: "opt-in" | "opt-out" | "none"
    region_rule: str | None = None
    gpc: bool = False
    instance_id: str = ""
    prev_hash: str = ""
    hash: str = field(default="")
    #: position in the writer's chain, from 1
    seq: int = 0
    #: personal field → salted sha256 of its value (kept after erasure)
    commitments: dict[str, str] = field(default_factory=dict)
    #: personal field → the salt of its commitment (erased with the value)
    salts: dict[str, str] = field(default_factory=dict)
    #: when the personal fields were erased (not part of the hash)
    erased_at_ms: int | None = None
    #: ``"<log key id>:<HMAC-SHA256 of hash>"``: only the gateway's log key makes it (not part of the hash)
    mac: str = ""


#: Fields erased on request and committed to by salted hash rather than hashed in clear.
PERSONAL_FIELDS: Final = ("ip", "user_agent", "page_path", "referrer_host")
#: Every field name, in declaration order (the storage codec and CSV export use it).
EVENT_FIELDS: Final = tuple(ConsentEvent.__dataclass_fields__)
_UNHASHED: Final = frozenset({"hash", "salts", "erased_at_ms", "mac", *PERSONAL_FIELDS})
_HASHED_FIELDS: Final = tuple(name for name in EVENT_FIELDS if name not in _UNHASHED)
# C-level getters: chaining runs once per event on the event loop, so it is kept lean.
_all_values = operator.attrgetter(*EVENT_FIELDS)
_hashed_values = operator.itemgetter(*_HASHED_FIELDS)
_I_EVENT_ID, _I_INSTANCE, _I_SEQ, _I_PREV_HASH, _I_COMMITMENTS, _I_SALTS, _I_HASH, _I_MAC, _I_TIMESTAMP = (
    EVENT_FIELDS.index(name)
    for name in ("event_id", "instance_id", "seq", "prev_hash", "commitments", "salts", "hash", "mac", "timestamp_ms")
)
#: (name, index in EVENT_FIELDS) of each personal field, and a getter of the hashed values from a value list:
#: verification works on the stored values without building an event per row.
_PERSONAL_INDEXES: Final = tuple((name, EVENT_FIELDS.index(name)) for name in PERSONAL_FIELDS)
_hashed_items = operator.itemgetter(*(EVENT_FIELDS.index(name) for name in _HASHED_FIELDS))
_sha256 = hashlib.sha256
#: (name, index in EVENT_FIELDS, offset of its salt in the hex entropy) of each personal field
_SALT_SLOTS: Final = tuple((name, index, 32 * n) for n, (name, index) in enumerate(_PERSONAL_INDEXES))


def _compile_builder() -> Any:
    """``build(values) -> ConsentEvent`` setting each slot in one straight line of code (as ``dataclasses``
    generates ``__init__``): a loop over the setters costs twice as much, and every event read or chained
    goes through it."""
    setters = {f"_set{i}": ConsentEvent.__dict__[name].__set__ for i, name in enumerate(EVENT_FIELDS)}
    lines = [f"    _set{i}(event, values[{i}])" for i in range(len(EVENT_FIELDS))]
    source = "\n".join(["def build(values):", "    event = _new(ConsentEvent)", *lines, "    return event"])
    namespace: dict[str, Any] = {"_new": object.__new__, "ConsentEvent": ConsentEvent, **setters}
    exec(source, namespace)  # noqa: S102 - constant source built from the field names above
    return namespace["build"]


_build_event = _compile_builder()


def event_from_values(values: Iterable[Any]) -> ConsentEvent:
    """Build an event from every field's value, in :data:`EVENT_FIELDS` order.

    Same result as ``ConsentEvent(*values)`` at a third of the cost: a frozen dataclass's ``__init__``
    goes through ``object.__setattr__`` per field, which dominates chaining and reading thousands of
    events. Nothing is checked but the count: callers pass complete, well-typed values.
    """
    if not isinstance(values, (list, tuple)):
        values = tuple(values)
    if len(values) != len(EVENT_FIELDS):
        raise ValueError(f"an event has {len(EVENT_FIELDS)} fields, got {len(values)} values")
    event: ConsentEvent = _build_event(values)
    return event


_canonical_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _canonical_stdlib(value: Any) -> bytes:
    return _canonical_encode(value).encode("utf-8")


def canonical(value: Any) -> bytes:
    """The byte form that is hashed: sorted-key compact JSON in UTF-8.

    Defined by `_canonical_stdlib`; orjson gives the same bytes for the types an event holds (str, int,
    bool, None, dicts of them; tests/test_events.py checks it) five times faster, which grouped commits need.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def commit(salt: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()


def event_hash(event: ConsentEvent) -> str:
    return _hash_of(event_to_dict(event))


def _hash_of(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(zip(_HASHED_FIELDS, _hashed_values(data), strict=True)))).hexdigest()


def event_values(event: ConsentEvent) -> tuple[Any, ...]:
    """Every field's value, in :data:`EVENT_FIELDS` order."""
    return _all_values(event)


def event_to_dict(event: ConsentEvent) -> dict[str, Any]:
    return dict(zip(EVENT_FIELDS, _all_values(event), strict=True))


def values_from_dict(data: Mapping[str, Any]) -> Sequence[Any]:
    """A stored dict's values in :data:`EVENT_FIELDS` order, as :func:`event_from_dict` reads them (what
    verification walks, without building the event when the dict holds exactly every field)."""
    if len(data) == len(EVENT_FIELDS):
        try:
            return [data[name] for name in EVENT_FIELDS]
        except KeyError:
            pass
    return event_values(event_from_dict(data))


def event_from_dict(data: Mapping[str, Any]) -> ConsentEvent:
    """Build an event from stored data, ignoring unknown keys (a newer writer may have added fields)."""
    if len(data) == len(EVENT_FIELDS):
        try:
            return event_from_values([data[name] for name in EVENT_FIELDS])
        except KeyError:
            pass
    return ConsentEvent(**{k: v for k, v in data.items() if k in ConsentEvent.__dataclass_fields__})


def erase_personal(event: ConsentEvent, *, fields: Iterable[str] = PERSONAL_FIELDS, now_ms: int) -> ConsentEvent:
    """The event without the given personal fields and their salts; commitments stay."""
    names = tuple(fields)
    salts = {k: v for k, v in event.salts.items() if k not in names}
    changes: dict[str, Any] = dict.fromkeys(names)
    erased_at = now_ms if set(names) == set(PERSONAL_FIELDS) else event.erased_at_ms
    return replace(event, salts=salts, erased_at_ms=erased_at, **changes)


def erase_late(event: ConsentEvent, erasures: Mapping[str, int]) -> ConsentEvent:
    """``event`` as it must be stored when it arrives after its consent id was erased (``erasures``:
    consent id → erasure time): erased if it happened before the erasure, unchanged otherwise."""
    erased_at = erasures.get(event.consent_id)
    if erased_at is None or event.timestamp_ms > erased_at or event.erased_at_ms is not None:
        return event
    return erase_personal(event, now_ms=erased_at)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last event of one writer's chain: its position and hash."""

    seq: int
    hash: str


class LogKeys:
    """The log's HMAC keys: the first one writes, every one verifies (rotation: put the new key first)."""

    def __init__(self, keys: Iterable[str | bytes]) -> None:
        raw = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
        if not raw:
            raise ValueError("at least one log key is needed")
        #: key id (public: the first 8 hex digits of the key's sha256) → key
        self.by_id = {hashlib.sha256(k).hexdigest()[:8]: k for k in reversed(raw)}
        self.writing_id = hashlib.sha256(raw[0]).hexdigest()[:8]
        self._pads = {key_id: _hmac_pads(k) for key_id, k in self.by_id.items()}
        self._writing_pads = _hmac_pads(raw[0])

    def mac(self, text: str) -> str:
        return f"{self.writing_id}:{_hmac_hex(self._writing_pads, text.encode())}"

    def check(self, text: str, mac: str) -> bool:
        key_id, _, digest = mac.partition(":")
        pads = self._pads.get(key_id)
        if pads is None:
            return False
        return hmac.compare_digest(_hmac_hex(pads, text.encode()), digest)


_IPAD: Final = bytes(b ^ 0x36 for b in range(256))
_OPAD: Final = bytes(b ^ 0x5C for b in range(256))
_Pads = tuple[Any, Any]


def _hmac_pads(key: bytes) -> _Pads:
    """HMAC-SHA256's inner and outer hashes with the key's block already absorbed (RFC 2104).

    Copying them per message gives ``hmac.digest``'s bytes at half its cost: OpenSSL 3's one-shot HMAC
    looks its algorithm up and keys it again on every call, and chaining and verifying make one per event.
    """
    if len(key) > 64:  # SHA-256's block size
        key = _sha256(key).digest()
    block = key.ljust(64, b"\0")
    return _sha256(block.translate(_IPAD)), _sha256(block.translate(_OPAD))


def _hmac_hex(pads: _Pads, data: bytes) -> str:
    inner = pads[0].copy()
    inner.update(data)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return str(outer.hexdigest())


def anchor_text(instance_id: str, head: ChainHead) -> str:
    """What an anchor's MAC covers: a forged anchor cannot claim that a chain starts later than it does."""
    return f"anchor\x00{instance_id}\x00{head.seq}\x00{head.hash}"


class EventChain:
    """One writer's chain: stamps events with ``seq``, commitments, ``prev_hash`` and ``hash``, in order.

    Not thread-safe and not shared between processes: each gateway instance needs its own instance id.
    """

    #: events whose salts one read of the system's random source provides (one system call per event
    #: cost as much as a commitment); the bytes are used once each, in order, and never kept anywhere else
    ENTROPY_EVENTS: Final = 256

    def __init__(self, instance_id: str, head: ChainHead | None = None, *, keys: LogKeys | None = None) -> None:
        if not instance_id:
            raise ValueError("a chain needs a non-empty instance id")
        self.instance_id = instance_id
        self.head = head or ChainHead(seq=0, hash="")
        self.keys = keys
        self._entropy = ""
        self._entropy_at = 0

    @property
    def head(self) -> ChainHead:
        """The last event chained: what the next one follows."""
        return ChainHead(seq=self._seq, hash=self._hash)

    @head.setter
    def head(self, head: ChainHead) -> None:
        # two plain attributes: a ChainHead per event costs more than a commitment
        self._seq, self._hash = head.seq, head.hash

    def append(self, event: ConsentEvent, *, timestamp_ms: int | None = None) -> ConsentEvent:
        """``event`` chained after the head (stamped ``timestamp_ms`` instead of its own time when given)."""
        size = 32 * len(PERSONAL_FIELDS)
        at = self._entropy_at
        if at + size > len(self._entropy):
            self._entropy = os.urandom(16 * len(PERSONAL_FIELDS) * self.ENTROPY_EVENTS).hex()
            at = 0
        self._entropy_at = at + size
        seq = self._seq + 1
        keys = self.keys
        chained: ConsentEvent = _chain_one(
            event, timestamp_ms, self.instance_id, seq, self._hash, self._entropy, at, keys.mac if keys else None
        )
        self._seq, self._hash = seq, chained.hash
        return chained


def _compile_chainer() -> Any:
    """``chain_one(event, timestamp_ms, instance_id, seq, prev_hash, entropy, at, mac) -> ConsentEvent``:
    :meth:`EventChain.append`'s work in one straight line of code, generated from the field names as
    ``_build_event`` is: each personal field's salt (32 hex digits of ``entropy`` from ``at``, in
    :data:`PERSONAL_FIELDS` order) and commitment, the hashed fields read as attributes into a dict display
    (no value list, no ``zip``), its canonical JSON's sha256, the MAC, and the chained event's slots set
    from the event's own attributes. Same values, same dict orders, same bytes as the loop it replaces
    (tests/test_events.py chains the golden record and compares both with the reference)."""
    lines = [
        "def chain_one(event, timestamp_ms, instance_id, seq, prev_hash, entropy, at, mac):",
        "    salts = {}",
        "    commitments = {}",
    ]
    for n, name in enumerate(PERSONAL_FIELDS):
        lines += [
            f"    value = event.{name}",
            "    if value is not None:",
            f"        salt = entropy[at + {32 * n} : at + {32 * (n + 1)}]",
            f"        salts[{name!r}] = salt",
            f"        commitments[{name!r}] = _sha256(f'{{salt}}\\x00{{value}}'.encode()).hexdigest()",
        ]
    replaced = {
        "timestamp_ms": "timestamp_ms",
        "instance_id": "instance_id",
        "seq": "seq",
        "prev_hash": "prev_hash",
        "commitments": "commitments",
        "salts": "salts",
        "hash": "digest",
        "mac": "mac(digest) if mac is not None else ''",
    }
    body = ", ".join(f"{name!r}: {replaced.get(name, f'event.{name}')}" for name in _HASHED_FIELDS)
    lines += [
        "    if timestamp_ms is None:",
        "        timestamp_ms = event.timestamp_ms",
        f"    digest = _sha256(_dumps({{{body}}}, option=_SORT_KEYS)).hexdigest()",
        "    chained = _new(ConsentEvent)",
    ]
    lines += [f"    _set{i}(chained, {replaced.get(name, f'event.{name}')})" for i, name in enumerate(EVENT_FIELDS)]
    lines.append("    return chained")
    setters = {f"_set{i}": ConsentEvent.__dict__[name].__set__ for i, name in enumerate(EVENT_FIELDS)}
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "ConsentEvent": ConsentEvent,
        "_sha256": _sha256,
        "_dumps": orjson.dumps,
        "_SORT_KEYS": orjson.OPT_SORT_KEYS,
        **setters,
    }
    exec("\n".join(lines), namespace)  # noqa: S102 - constant source built from the field names above
    return namespace["chain_one"]


_chain_one = _compile_chainer()


def check_event(event: ConsentEvent) -> str | None:
    """Why one event does not match its own hash and commitments, or ``None`` when it does."""
    return _problem_of_values(_all_values(event))


def _problem_of_values(values: Sequence[Any]) -> str | None:
    """:func:`check_event` on an event's values in :data:`EVENT_FIELDS` order (as decoded from storage)."""
    salts = values[_I_SALTS]
    commitments = values[_I_COMMITMENTS]
    for name, index in _PERSONAL_INDEXES:
        value = values[index]
        if value is None:
            if salts.get(name) is not None:
                return f"personal field {name!r} removed without erasure"
            continue
        salt = salts.get(name)
        committed = commitments.get(name)
        if salt is None or committed is None or _sha256(f"{salt}\x00{value}".encode()).hexdigest() != committed:
            return f"personal field {name!r} altered"
    body = dict(zip(_HASHED_FIELDS, _hashed_items(values), strict=True))
    if _sha256(canonical(body)).hexdigest() != values[_I_HASH]:
        return "content altered (hash mismatch)"
    return None


class ChainVerifier:
    """Walks one chain in ``seq`` order (streaming) and collects what is broken.

    :param anchor: where the chain starts after a retention purge (``None``: at seq 1).
    """

    def __init__(
        self,
        instance_id: str,
        anchor: ChainHead | None = None,
        *,
        heads: Iterable[ChainHead] = (),
        keys: LogKeys | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.keys = keys
        start = anchor or ChainHead(seq=0, hash="")
        # the last event walked (two plain attributes: a ChainHead per event would cost more than a hash)
        self._seq, self._hash = start.seq, start.hash
        self.checked = 0
        self.problems: list[tuple[str, str]] = []
        #: hashes seen at the seqs of the heads ``finish`` will compare with (not every hash: memory)
        self._seen: dict[int, str | None] = dict.fromkeys(h.seq for h in heads)
        self._anchor = anchor

    @property
    def expected(self) -> ChainHead:
        """The last event walked (or the anchor): what the next one must follow."""
        return ChainHead(seq=self._seq, hash=self._hash)

    def feed(self, event: ConsentEvent) -> None:
        self.feed_values(_all_values(event))

    def feed_values(self, values: Sequence[Any]) -> None:
        """:meth:`feed` on an event's values in :data:`EVENT_FIELDS` order, JSON fields decoded and booleans
        as ``bool`` (what a backend reads), without building the event: verification's per-row cost."""
        self.checked += 1
        problem = _problem_of_values(values)
        digest = values[_I_HASH]
        seq = values[_I_SEQ]
        keys = self.keys
        if problem is None and keys is not None and not keys.check(digest, values[_I_MAC]):
            problem = "forged or altered: its MAC does not verify under any log key"
        if problem:
            self.problems.append((values[_I_EVENT_ID], problem))
        elif seq == self._seq:
            self.problems.append((values[_I_EVENT_ID], f"inserted event: seq {seq} appears twice"))
        elif seq != self._seq + 1:
            missing = f"seq {self._seq + 1}" + (f"..{seq - 1}" if seq - 1 > self._seq + 1 else "")
            reason = f"event(s) deleted before it ({self.instance_id} {missing})"
            self.problems.append((values[_I_EVENT_ID], reason))
        elif values[_I_PREV_HASH] != self._hash:
            reason = "prev_hash does not match the previous event (previous event altered or inserted)"
            self.problems.append((values[_I_EVENT_ID], reason))
        if seq in self._seen:
            self._seen[seq] = digest
        # Resynchronise on this event so one break is reported once, not for every event after it.
        self._seq, self._hash = seq, digest

    def finish(self, checkpoint_head: ChainHead | None, *, source: str = "the checkpoint") -> None:
        """Compare the chain's end with a head recorded earlier (truncated tail, rewritten history)."""
        if checkpoint_head is None:
            return
        if self._anchor is not None and self._anchor.seq >= checkpoint_head.seq:
            return  # purged by retention since the checkpoint
        if self._seq < checkpoint_head.seq:
            first_missing = self._seq + 1
            self.problems.append(
                (
                    f"{self.instance_id}@{first_missing}",
                    f"chain truncated: events {first_missing}..{checkpoint_head.seq} of {self.instance_id} "
                    f"are missing ({source} saw them)",
                )
            )
            return
        seen = self._seen.get(checkpoint_head.seq)
        if seen is not None and seen != checkpoint_head.hash:
            reason = f"chain rewritten since {source} was taken (head differs)"
            self.problems.append((f"{self.instance_id}@{checkpoint_head.seq}", reason))
