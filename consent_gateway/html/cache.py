"""The chunk cache: sites serve the same bytes again and again.

A bounded LRU keyed by (catalog, decision, tokenizer state at chunk start, hash of the chunk) returns the
rewritten chunk and the state at its end; the driver also caches a long chunk in ~8 KiB segments, so a page
that differs in one place (a CSRF token) is mostly served from it. The per-request banner block is not in
the cached bytes: only its insertion point is (``HEAD_MARK``).
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple

_xxhash: Any
try:  # optional accelerator: ~10x faster than blake2b for the cache key
    import xxhash as _xxhash
except ImportError:  # pragma: no cover - the pure-Python path is tested with use_accelerators(False)
    _xxhash = None

#: chunks shorter than this are rewritten without the cache (hashing would cost more than it saves)
CACHE_MIN_CHUNK_BYTES = 512
#: a chunk longer than twice this is cached in segments of about this size (cut after a newline)
CACHE_SEGMENT_BYTES = 8192
CACHE_MAX_BYTES = 32 * 1024 * 1024
CACHE_MAX_ENTRIES = 4096
#: tag decisions kept (see ChunkCache.tag_decisions), and the longest tag kept
TAG_CACHE_MAX_ENTRIES = 16384
TAG_CACHE_MAX_TAG_BYTES = 2048

#: stands for the per-request banner block in output part lists
HEAD_MARK = None

#: output parts: bytes, and HEAD_MARK where the banner block goes
Parts = Sequence[bytes | None]
#: one third-party element noted for the inventory: (host, vendor id or "unclassified", element kind, held back)
Sighting = tuple[str, str, str, bool]


class CachedChunk(NamedTuple):
    """A rewritten chunk as the cache keeps it."""

    parts: tuple[bytes | None, ...]  # compacted: one bytes, or (before, HEAD_MARK, after)
    state: Any  # the tokenizer state at the chunk's end
    pending: bytes  # the unfinished tail kept for the next chunk
    held: tuple[str, ...]  # vendor ids held back in the chunk
    #: the third-party elements of the chunk: noted again on every hit (the inventory counts page views)
    noted: tuple[Sighting, ...]
    memo: list[bytes | None]  # the last banner block and the output joined with it


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

    def put(self, key: Any, parts: Parts, state: Any, pending: bytes, held: Sequence[str],
            noted: Sequence[Sighting] = ()) -> None:
        compact = compact_parts(parts)
        size = sum(len(p) for p in compact if p) * (2 if len(compact) > 1 else 1) + len(pending) + 256
        if size > self.max_bytes // 4:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[1]
        self._entries[key] = (CachedChunk(compact, state, pending, tuple(held), tuple(noted), [None, None]), size)
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

    def clear(self) -> None:
        self._entries.clear()
        self._seen.clear()
        self.tag_decisions.clear()
        self.size = self.hits = self.misses = 0


CHUNK_CACHE = ChunkCache()


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
