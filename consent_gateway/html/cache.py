"""The chunk cache: sites serve the same bytes again and again.

A bounded LRU keyed by (catalog, decision, tokenizer state at chunk start, hash of the chunk) returns the
rewritten chunk and the state at its end. The driver also caches a long chunk in segments of ~1 KiB whose
cut points depend only on the bytes around them (:func:`segment_cuts`): a page that differs from request to
request in a few places (CSRF tokens, a user name, timestamps) is served from the cache but for the
segments holding the changes, wherever they are and whatever their length; a segment holding a change is
read in pieces of ~100 bytes (:func:`piece_cuts`), so only the piece holding it is read again. A chunk read in
segments leaves its layout (:meth:`ChunkCache.layouts`): the next variant of it is read along it, each run of
unchanged segments checked by one digest and replayed at once. The per-request banner block is not in the
cached bytes: only its insertion point is (``HEAD_MARK``).
"""

from __future__ import annotations

import collections
import hashlib
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from .states import TokenizerState

_xxhash: Any
try:  # optional accelerator: ~10x faster than blake2b for the cache key
    import xxhash as _xxhash
except ImportError:  # pragma: no cover - the pure-Python path is tested with use_accelerators(False)
    _xxhash = None

#: chunks shorter than this are rewritten without the cache (hashing would cost more than it saves)
CACHE_MIN_CHUNK_BYTES = 512
#: a chunk shorter than this is cached whole the first time it is rewritten, a longer one the second time
CACHE_WHOLE_AT_ONCE_BYTES = 16384
#: a chunk longer than twice this is cached in segments of at least this size (see segment_cuts)
CACHE_SEGMENT_BYTES = 512
#: ...and at most this size
CACHE_SEGMENT_MAX_BYTES = 4096
#: a segment never seen before (it holds a change) is read in pieces of at least this size (see piece_cuts)
CACHE_PIECE_BYTES = 64
#: a chunk's layout (see ChunkCache.layouts) is found by the digest of its first bytes, besides its key's prefix
LINEAGE_BYTES = 256
#: layouts kept per lineage (pages of one site share their first bytes)
LAYOUT_WAYS = 4
#: when none of a lineage's layouts fits a chunk, a layout is made of it every this many times (more pages
#: of a site than ways, or a page that changed for good), not every time: making one costs a rewrite's worth
LAYOUT_RETRY = 16
#: what one layout item costs (a tuple, its key's, its first bytes), counted against the layouts' budget
#: (max_bytes // 8)
LAYOUT_ITEM_BYTES = 192
#: a run of a layout is found again by this many of its first bytes after a change of another length...
LAYOUT_HEAD_BYTES = 32
#: ...at most this far after where it was
LAYOUT_RESYNC_BYTES = 1024
CACHE_MAX_BYTES = 32 * 1024 * 1024
CACHE_MAX_ENTRIES = 32768
#: content digests of segments remembered (see ChunkCache.seen_segments); cleared when full
SEEN_SEGMENTS_MAX = 32768
#: values numbered by ChunkCache.intern (tokenizer states, catalog and decision pairs); forgotten when this
#: many, or when they hold a quarter of the cache's byte budget
INTERNED_MAX = 65536
#: what an entry costs besides its bytes (key, state, entry objects, LRU links), counted in its size
CACHE_ENTRY_OVERHEAD_BYTES = 512
#: tag decisions kept (see ChunkCache.tag_decisions), and the longest tag kept
TAG_CACHE_MAX_ENTRIES = 16384
TAG_CACHE_MAX_TAG_BYTES = 2048

#: stands for the per-request banner block in output part lists
HEAD_MARK = None

#: output parts: bytes, and HEAD_MARK where the banner block goes
Parts = Sequence[bytes | None]
#: one third-party element noted for the inventory: (host, vendor id or "unclassified", element kind, held back)
Sighting = tuple[str, str, str, bool]
#: how a chunk was read last time, span by span: (length, None, its bytes when they passed as they are, else
#: b"") read again, (length, key, first bytes) found in the cache
Layout = tuple[tuple[int, "tuple[object, ...] | None", bytes], ...]


class CachedChunk(NamedTuple):
    """A rewritten chunk as the cache keeps it."""

    parts: tuple[bytes | None, ...]  # compacted: one bytes, or (before, HEAD_MARK, after)
    state: TokenizerState  # the tokenizer state at the chunk's end
    state_id: int  # ...as ChunkCache.intern numbers it: the next segment's key without hashing the state again
    pending: bytes  # the unfinished tail kept for the next chunk
    held: tuple[str, ...]  # vendor ids held back in the chunk
    #: the third-party elements of the chunk: noted again on every hit (the inventory counts page views)
    noted: tuple[Sighting, ...]
    memo: list[bytes | None]  # the last banner block and the output joined with it


class Step(NamedTuple):
    """One span of a chunk read segment by segment: found in the cache (``hit``) or read again (``kept``: and
    put in the cache)."""

    start: int
    end: int
    key: tuple[object, ...]
    hit: CachedChunk | None
    kept: bool


class ChunkCache:
    """A bounded LRU of rewritten chunks, shared by every rewriter of the process (one event loop)."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES, max_entries: int = CACHE_MAX_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: collections.OrderedDict[Any, tuple[CachedChunk, int]] = collections.OrderedDict()
        self._seen: collections.OrderedDict[Any, None] = collections.OrderedDict()
        self._seen_segments: set[bytes] = set()
        #: the layout of each chunk read in segments, by its lineage (see layout); an LRU within max_bytes // 8
        self._layouts: collections.OrderedDict[Any, tuple[Layout, ...]] = collections.OrderedDict()
        self._layouts_bytes = 0
        #: chunks of each lineage that none of its layouts fitted (see layout_missed)
        self._layout_misses: dict[Any, int] = {}
        #: small numbers standing for the values keys are made of (see intern); never given twice
        self._ids: dict[Any, int] = {}
        self._ids_bytes = 0
        self._next_id = 0
        #: what one start tag became, keyed by (catalog, decision, buffer, base, kind, tag): a page whose bytes
        #: change on every request (a CSRF token, a user name) still repeats its tags, so only the chunk
        #: around the change is read again, not every tag's decision. Bounded: cleared when full.
        self.tag_decisions: dict[Any, Any] = {}

    def get(self, key: Any) -> CachedChunk | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: Any, parts: Parts, state: TokenizerState, pending: bytes, held: Sequence[str],
            noted: Sequence[Sighting] = ()) -> None:
        compact = compact_parts(parts)
        size = (sum(len(p) for p in compact if p) * (2 if len(compact) > 1 else 1) + len(pending)
                + state_bytes(state) + CACHE_ENTRY_OVERHEAD_BYTES)
        if size > self.max_bytes // 4:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[1]
        entry = CachedChunk(compact, state, self.intern(state, state_bytes(state)), pending, tuple(held),
                            tuple(noted), [None, None])
        self._entries[key] = (entry, size)
        self.size += size
        while self.size > self.max_bytes or len(self._entries) > self.max_entries:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.size -= dropped

    def seen_before(self, key: Any) -> bool:
        """Whether this key was asked about recently (remembers the last `max_entries` keys asked)."""
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return False

    def intern(self, value: Any, size: int = 0) -> int:
        """A number for a hashable value (a tokenizer state, a catalog and decision) of ``size`` bytes besides
        its fixed part: keys made of it hash in a few nanoseconds, where the value itself takes a
        microsecond. Bounded in count and bytes: forgotten when full, and a number is never given to another
        value (the keys made of a forgotten one are then never asked)."""
        known = self._ids.get(value)
        if known is None:
            if len(self._ids) >= INTERNED_MAX or self._ids_bytes >= self.max_bytes // 4:
                self._ids.clear()
                self._ids_bytes = 0
            known = self._ids[value] = self._next_id
            self._next_id += 1
            self._ids_bytes += size + CACHE_ENTRY_OVERHEAD_BYTES
        return known

    def seen_segments(self, digests: Sequence[bytes]) -> list[bool] | None:
        """Which segments of a chunk (their ``segment_digests``) were seen in earlier chunks, when most were;
        else None. Notes them all. A chunk mostly never seen is rewritten in one run, which costs much less
        than segment by segment: only bytes that come back (the same page, or a variant of it) are worth
        caching in segments, and only the segments seen before (a token that changes on every request never
        comes back: caching it would only push out what does)."""
        known = self.seen_pieces(digests)
        return known if 2 * sum(known) > len(digests) else None

    def seen_pieces(self, digests: Sequence[bytes]) -> list[bool]:
        """Which of these digests were seen before (not in this list); notes them all."""
        seen = self._seen_segments
        if len(seen) + len(digests) > SEEN_SEGMENTS_MAX:
            seen.clear()
        known = [segment_digest in seen for segment_digest in digests]  # before, not in this chunk
        seen.update(digests)
        return known

    def layouts(self, lineage: Any) -> tuple[Layout, ...]:
        """How the last chunks of this lineage (catalog, decision, state, first bytes: pages of one site share
        it) were read, the latest first, at most ``LAYOUT_WAYS``: the runs of segments found in the cache are
        checked next time with one digest each, without cutting them again. A hint only: every run is looked
        up by its key as any entry."""
        ways = self._layouts.get(lineage)
        if ways is None:
            return ()
        self._layouts.move_to_end(lineage)
        return ways

    def layout_wanted(self, lineage: Any, ways: int) -> bool:
        """Whether to make a layout of a chunk of this lineage that no layout fitted (``ways``: the lineage's
        layouts): on its second sighting (a lineage seen once, e.g. the later chunks of a stream whose first
        bytes shift, never comes back), in a free way, or every ``LAYOUT_RETRY``-th time."""
        if not ways:
            return self.seen_before(("layout", lineage))
        if ways < LAYOUT_WAYS:
            return True
        misses = self._layout_misses.get(lineage, 0) + 1
        self._layout_misses[lineage] = misses
        return misses % LAYOUT_RETRY == 0

    def set_layout(self, lineage: Any, layout: Layout, replacing: Layout | None = None) -> None:
        """Keep a chunk's layout first among its lineage's, in place of the one it was read along (if any)."""
        old = self._layouts.pop(lineage, ())
        self._layouts_bytes -= sum(layout_bytes(way) for way in old)
        ways = [way for way in old if way is not replacing]
        if layout and layout_bytes(layout) <= self.max_bytes // 64:
            ways.insert(0, layout)
        kept = tuple(ways[:LAYOUT_WAYS])
        if not kept:
            return
        self._layouts[lineage] = kept
        self._layouts_bytes += sum(layout_bytes(way) for way in kept)
        while self._layouts_bytes > self.max_bytes // 8:  # one at a time: never a long pause
            dropped_lineage, dropped = self._layouts.popitem(last=False)
            self._layouts_bytes -= sum(layout_bytes(way) for way in dropped)
            self._layout_misses.pop(dropped_lineage, None)

    def clear(self) -> None:
        self._layouts.clear()
        self._layout_misses.clear()
        self._layouts_bytes = 0
        self._entries.clear()
        self._seen.clear()
        self._seen_segments.clear()
        self._ids.clear()
        self._ids_bytes = 0
        self.tag_decisions.clear()
        self.size = self.hits = self.misses = 0


CHUNK_CACHE = ChunkCache()


def layout_bytes(layout: Layout) -> int:
    """What a layout costs against the layouts' budget: its items, and the bytes of its changed spans kept."""
    return len(layout) * LAYOUT_ITEM_BYTES + sum(len(item[2]) for item in layout if item[1] is None)


def state_bytes(state: TokenizerState) -> int:
    """What a tokenizer state holds besides its fixed part: an open script's start tag, the <base> URL."""
    return len(state.script_open or b"") + len(state.base or "")


def compact_parts(parts: Parts) -> tuple[bytes | None, ...]:
    """Join output parts into as few byte strings as possible, keeping the banner insertion point."""
    if HEAD_MARK not in parts:
        return (b"".join(parts),)  # type: ignore[arg-type]  # no None in it
    i = parts.index(HEAD_MARK)
    return (b"".join(parts[:i]), HEAD_MARK, b"".join(parts[i + 1 :]))  # type: ignore[arg-type]


def join_parts(parts: Parts, head_html: bytes) -> bytes:
    """The output bytes, with the banner block at its insertion point."""
    if HEAD_MARK in parts:
        return b"".join(head_html if p is HEAD_MARK else p for p in parts)
    return b"".join(parts)  # type: ignore[arg-type]  # no None in it


def _anchor_pattern() -> re.Pattern[bytes]:
    """A ">" whose two bytes before it each fall in a pseudo-random half of the byte values (one fixed
    linear congruential sequence): about one ">" in four, chosen by the bytes around it."""
    halves, x = [], 0x2545F491
    for _ in range(2):
        members = []
        for c in range(256):
            x = (x * 1103515245 + 12345) % (1 << 31)
            if x >> 30:
                members.append(re.escape(bytes([c])))
        halves.append(b"[" + b"".join(members) + b"]")
    return re.compile(b">(?<=" + b"".join(halves) + b">)")


#: where a segment may end (see segment_cuts)
_ANCHOR = _anchor_pattern()


def segment_cuts(chunk: bytes) -> list[int]:
    """Where a long chunk is cut into cache segments: the end offset of each (the last is ``len(chunk)``).

    A cut goes right after the first anchor (``_ANCHOR``: a ">" chosen by the two bytes before it) at least
    ``CACHE_SEGMENT_BYTES`` into the segment — content-defined chunking, as backup tools cut files: the cuts
    depend on the bytes around them, not on their offset, so the cuts after a change (a token inserted,
    lengthened or shortened) fall where they fell before, and the segments after it are found in the cache
    again. A run of ``CACHE_SEGMENT_MAX_BYTES`` without an anchor is cut there. The cuts only choose what is
    cached together: the rewriter gives the same bytes at every chunking."""
    cuts: list[int] = []
    n = len(chunk)
    start = 0
    search = _ANCHOR.search
    while n - start >= 2 * CACHE_SEGMENT_BYTES:
        limit = min(start + CACHE_SEGMENT_MAX_BYTES, n - CACHE_SEGMENT_BYTES)
        anchor = search(chunk, start + CACHE_SEGMENT_BYTES, limit)
        start = anchor.end() if anchor is not None else limit
        cuts.append(start)
    cuts.append(n)
    return cuts


def piece_cuts(chunk: bytes, start: int, end: int) -> list[int]:
    """Where ``chunk[start:end]``, a segment never seen before, is cut into pieces: after each anchor (as in
    segment_cuts) at least ``CACHE_PIECE_BYTES`` into the piece and before the segment's last
    ``CACHE_PIECE_BYTES``; the last cut is ``end``. A change (a token) is then read again with the ~100 bytes
    around it, not the whole segment: the pieces around it come from the cache."""
    cuts: list[int] = []
    limit = end - CACHE_PIECE_BYTES
    find = chunk.find
    while True:
        anchor = find(b">", start + CACHE_PIECE_BYTES, limit)
        if anchor == -1:
            break
        start = anchor + 1
        cuts.append(start)
    cuts.append(end)
    return cuts


def segment_digests(chunk: bytes, cuts: Sequence[int], start: int = 0) -> list[bytes]:
    """The digest of each segment's bytes (its cache key's, when no pending bytes come before it); the first
    segment starts at ``start``."""
    digests = []
    for end in cuts:
        digests.append(_digest(b"", chunk[start:end]))
        start = end
    return digests


def _digest_blake2(pending: bytes, chunk: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(pending)
    h.update(chunk)
    return h.digest()


def _digest_xxh(pending: bytes, chunk: bytes) -> bytes:
    if not pending:
        return _xxhash.xxh3_128_digest(chunk)  # type: ignore[no-any-return]
    h = _xxhash.xxh3_128()
    h.update(pending)
    h.update(chunk)
    return h.digest()  # type: ignore[no-any-return]


_digest = _digest_xxh if _xxhash is not None else _digest_blake2


def digest(pending: bytes, chunk: bytes) -> bytes:
    """The cache key's hash of the bytes a chunk is rewritten from."""
    return _digest(pending, chunk)


def use_xxhash(enabled: bool) -> None:
    """Hash with xxhash (when installed) or blake2b; clears the cache (the keys change)."""
    global _digest
    _digest = _digest_xxh if enabled and _xxhash is not None else _digest_blake2
    CHUNK_CACHE.clear()
