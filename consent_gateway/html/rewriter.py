"""The driver: ``HoldbackRewriter.feed(chunk) -> bytes`` and ``close() -> bytes`` for one document.

It owns what lies between chunks: the bytes of an unfinished token (``_pending``), the prescan of the first
KiB (a UTF-16/32 BOM or NUL bytes the rewriter does not read; UTF-16 pages reach it as UTF-8, transcoded by
the responder), the chunk cache, and the error path.
An exception switches the rest of the document to a cheap mode that makes every
``<script``/``<iframe``/``<img``/``<link`` inert — the page is never truncated and no tracker runs.
"""

from __future__ import annotations

import collections
import functools
import logging
import re
from collections.abc import Callable, Sequence

from .. import metrics
from ..catalog import Catalog, VendorRule
from ..decision import Decision
from ..thirdparty import UNCLASSIFIED
from . import cache as _cache
from . import scanner as _scanner
from .cache import (
    CACHE_MIN_CHUNK_BYTES,
    CACHE_PIECE_BYTES,
    CACHE_SEGMENT_BYTES,
    CACHE_SEGMENT_MAX_BYTES,
    CACHE_WHOLE_AT_ONCE_BYTES,
    CHUNK_CACHE,
    LAYOUT_HEAD_BYTES,
    LAYOUT_RESYNC_BYTES,
    LINEAGE_BYTES,
    CachedChunk,
    ChunkCache,
    Layout,
    Sighting,
    Step,
    join_parts,
    piece_cuts,
    segment_cuts,
    segment_digests,
)
from .decisions import DocumentHoldback, inert_all
from .states import Mode
from .tokenizer import Tokenizer

logger = logging.getLogger("consent_gateway.html")

#: a span this short read again (a changed token) is first checked for passing as it is (see
#: Tokenizer.passes_unchanged): a long one seldom does, and the check would cost a second scan
SHORT_RUN_BYTES = 1024
#: bytes looked at for a BOM and a <meta charset> before anything is emitted (the HTML prescan's window)
PRESCAN_BYTES = 1024
#: a <meta> declaring the charset (charset=… or http-equiv content=…; charset=…), or one the end of the first
#: KiB cuts that may be one (what is after the KiB must not decide: it depends on the chunking); a <meta
#: name=…> or <meta property=…> is not
_META_CHARSET = re.compile(
    rb"<meta(?:[^>]*?charset|(?![^>]*?[\t\n\f\r /](?:name|property|itemprop)[\t\n\f\r ]*=)[^>]*+$)", re.IGNORECASE
)
#: the charset a <meta> of the first KiB declares (charset=… or http-equiv content=…; charset=…), first one wins
_DECLARED_CHARSET = re.compile(
    rb"<meta[\t\n\f\r /][^>]*?charset[\t\n\f\r ]*=[\t\n\f\r ]*[\"']?[\t\n\f\r ]*"
    rb"([A-Za-z0-9_.:-]+)(?=[\t\n\f\r \"'/>;])",
    re.IGNORECASE,
)
#: bytes read before the first output: the prescan's KiB and room for a <meta charset> it cuts
PRESCAN_WAIT_BYTES = PRESCAN_BYTES + 64
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\xfe\xff", b"\xff\xfe")


def use_accelerators(enabled: bool) -> None:
    """Switch the optional native helpers (xxhash, hyperscan) on or off, for rewriters created from now on
    (the tests prove both paths give the same bytes)."""
    _cache.use_xxhash(enabled)
    _scanner.use_native(enabled)


def _srcdoc_vendors(catalog: Catalog, decision: Decision, max_buffer_bytes: int, document: str, base: str
                    ) -> list[VendorRule]:
    """The vendors an iframe's inline document holds back, rewritten as a page of its own (its URLs resolve
    against this page's base, as about:srcdoc's do)."""
    inner = HoldbackRewriter(catalog, decision, b"", max_buffer_bytes=max_buffer_bytes, cache=None)
    inner._tokenizer.base = base or None
    inner.feed(document.encode("utf-8", "surrogatepass"))
    inner.close()
    return [catalog.vendors.get(vendor_id) or VendorRule(vendor_id, vendor_id) for vendor_id in inner.held_back]


class HoldbackRewriter:
    """Rewrites one HTML document, chunk by chunk.

    :param catalog: the vendors to recognise.
    :param decision: what this visitor allows.
    :param head_html: the banner block, inserted once right after the ``<head …>`` start tag (or before
        the first element / text when the document has no head).
    :param max_buffer_bytes: the longest tag or classified inline script kept in memory.
    """

    def __init__(self, catalog: Catalog, decision: Decision, head_html: bytes, *,
                 max_buffer_bytes: int = 65536, cache: ChunkCache | None = CHUNK_CACHE) -> None:
        self.catalog = catalog
        self.decision = decision
        self.head_html = head_html
        self.max_buffer_bytes = max(64, max_buffer_bytes)
        #: the vendor of each tag held back so far: extended per run or cache hit, counted when asked
        self._held: list[str] = []
        self._held_counted: tuple[int, collections.Counter[str]] | None = None
        #: every third-party element of the page, cached chunks included: what the inventory counts
        self.third_parties: list[Sighting] = []
        #: called with ``third_parties`` when the page ends (``close``): the inventory's collector
        self.on_close: Callable[[list[Sighting]], None] | None = None
        self._cache = cache
        self._cache_prefix = (catalog.token, decision.key, self.max_buffer_bytes)
        #: the prefix of this document's cache keys, and the tokenizer state's number when known (after a hit)
        self._prefix_id = cache.intern(self._cache_prefix) if cache is not None else -1
        self._state_id: int | None = None
        self._pending = b""
        self._closed = False
        #: the charset the page's first KiB declares in a <meta> (lowercased), known once the first KiB is
        #: in: the responder states it in Content-Type when the site did not, since held-back attributes may
        #: push the <meta> out of the KiB a browser looks at
        self.declared_charset: str | None = None
        self._holdback = DocumentHoldback(catalog, decision, cache.tag_decisions if cache is not None else None,
                                          self._prefix_id)
        # a partial of what it reads, not a bound method: that would tie the rewriter into a reference cycle,
        # left for the garbage collector after each page
        self._holdback.srcdoc_vendors = functools.partial(_srcdoc_vendors, catalog, decision, self.max_buffer_bytes)
        self._tokenizer = Tokenizer(catalog, self._holdback, self.max_buffer_bytes)

    # -- public API ---------------------------------------------------------------------------------------

    @property
    def held_back(self) -> collections.Counter[str]:
        """How many tags of each vendor were held back so far (a Counter updated per cache hit costs more than
        the hit's list extended, and most pages ask once, at their end)."""
        held = self._held
        counted = self._held_counted
        if counted is None or counted[0] != len(held):
            # counted in a plain dict (a Counter's own update and item access are Python-level: ten times the
            # cost), then handed over as the Counter callers expect
            counts: dict[str, int] = {}
            for vendor in held:
                counts[vendor] = counts.get(vendor, 0) + 1
            counter: collections.Counter[str] = collections.Counter()
            dict.update(counter, counts)
            counted = self._held_counted = (len(held), counter)
        return counted[1]

    def feed(self, chunk: bytes) -> bytes:
        if self._closed:
            raise RuntimeError("feed() after close()")
        if not chunk:
            return b""
        return self._guarded(chunk, final=False)

    def close(self) -> bytes:
        if self._closed:
            return b""
        if not self._pending and not self._tokenizer.has_unfinished_tokens():
            out = b""  # nothing held: the common end of a page (and an empty body stays empty)
        else:
            out = self._guarded(b"", final=True)
        self._closed = True
        on_close = self.on_close
        if on_close is not None:  # the page's last bytes are read: its third parties are all noted
            self.on_close = None
            on_close(self.third_parties)
        return out

    # -- driver ---------------------------------------------------------------------------------------------

    def _guarded(self, chunk: bytes, final: bool) -> bytes:
        # what is not yet emitted when this step starts: the step only commits it at its end
        held, pending = self._tokenizer.script_open, self._pending
        self._state_id = None
        try:
            return self._step(chunk, final)
        except Exception:
            self._tokenizer.script_open = None
            self._pending = b""
            rest = (held or b"") + pending + chunk
            if self._holdback.allows_everything():  # nothing to hold back for this visitor: the page as it is
                logger.exception("HTML rewrite failed; the rest of the page passes (everything is allowed)")
                metrics.inc("rewrite_passthrough_total", reason="error")
                self._tokenizer.mode = Mode.PASSTHROUGH
                return rest
            logger.exception("HTML rewrite failed; holding back every tag of the rest of the page")
            metrics.inc("rewrite_bailouts_total", reason="error")
            self._tokenizer.mode = Mode.BAILED
            return self._inert_rest(rest, final)

    def _inert_rest(self, data: bytes, final: bool) -> bytes:
        out: list[bytes | None] = []
        self._pending = data[inert_all(data, 0, final, out):]
        return self._join(out)

    def _step(self, chunk: bytes, final: bool) -> bytes:
        mode = self._tokenizer.mode
        if mode == Mode.PASSTHROUGH:
            return chunk
        if mode == Mode.PRESCAN:
            return self._prescan_step(chunk, final)
        if mode == Mode.BAILED:
            return self._inert_rest(self._pending + chunk, final)
        if final or self._cache is None or len(chunk) < CACHE_MIN_CHUNK_BYTES:
            return self._join(self._rewrite(chunk, final))
        return self._cached_step(self._cache, chunk)

    def _prescan_step(self, chunk: bytes, final: bool) -> bytes:
        """Nothing is emitted before the first KiB is in: it decides whether the page is read at all."""
        data = self._pending + chunk if self._pending else chunk
        if len(data) < PRESCAN_WAIT_BYTES and not final:
            self._pending = data
            return b""
        self._pending = b""
        reason = self._prescan(data)
        if reason is not None:
            self._tokenizer.mode = Mode.PASSTHROUGH
            metrics.inc("rewrite_passthrough_total", reason=reason)
            return data
        self._tokenizer.mode = Mode.DATA
        # both regexes match from a "<meta" only: they start at the first one (most pages have one early, and
        # a page without one in its first KiB is not searched at all; ignoring case, a search tries every byte)
        meta_at = data[:PRESCAN_WAIT_BYTES].lower().find(b"<meta")
        if meta_at != -1:
            declared = _DECLARED_CHARSET.search(data, meta_at, PRESCAN_WAIT_BYTES)
            if declared is not None and declared.start() < PRESCAN_BYTES:
                self.declared_charset = declared.group(1).decode("ascii").lower()
            self._tokenizer.charset_ahead = self._banner_would_push_out_charset(data, meta_at)
        if data.startswith(_UTF8_BOM):
            return _UTF8_BOM + self._step(data[3:], final)
        return self._step(data, final)

    def _banner_would_push_out_charset(self, data: bytes, meta_at: int) -> bool:
        """Whether the banner block, inserted before the first KiB's <meta charset>, would push it out of the
        KiB, where a browser looks for it: then it goes right after that <meta> instead (``meta_at``: where
        the first "<meta" of the prescan's bytes is, in any case)."""
        meta = _META_CHARSET.search(data, meta_at, PRESCAN_BYTES)
        if meta is None:
            return False
        end = data.find(b">", meta.start(), PRESCAN_BYTES)
        if end == -1 and len(data) <= PRESCAN_BYTES:
            return False  # cut by the end of the document: not an element
        meta_end = PRESCAN_BYTES if end == -1 else end + 1
        return meta_end + len(self.head_html) > PRESCAN_BYTES

    @staticmethod
    def _prescan(data: bytes) -> str | None:
        if data.startswith(_WIDE_BOMS):
            return "encoding"
        # NUL bytes without a BOM are no reason to pass: a browser reads UTF-16 only by a BOM or a charset
        # (the gateway transcodes those before this), so it reads these bytes as ASCII-compatible, ignores
        # the NULs and runs the tags after them, which the byte tokenizer sees the same way.
        # A <meta> naming UTF-16 or UTF-32 is no reason to pass: a browser reads UTF-8 then (HTML's prescan
        # turns UTF-16 into UTF-8 and does not know UTF-32), and runs the trackers.
        return None

    # -- the chunk cache ---------------------------------------------------------------------------------

    def _key(self, cache: ChunkCache, chunk: bytes, chunk_digest: bytes | None = None) -> tuple[object, ...]:
        """(catalog and decision, tokenizer state, pending length, digest of pending + chunk), as numbers
        where they can be; ``chunk_digest``: the chunk's own digest when already known."""
        state_id = self._state_id
        if state_id is None:
            state = self._tokenizer.state()
            state_id = self._state_id = cache.intern(state, _cache.state_bytes(state))
        pending = self._pending
        if pending or chunk_digest is None:
            chunk_digest = _cache.digest(pending, chunk)
        return (self._prefix_id, state_id, len(pending), chunk_digest)

    def _cached_step(self, cache: ChunkCache, chunk: bytes) -> bytes:
        # A chunk is looked up whole first (a page served again). A long chunk whose bytes were mostly seen
        # before (a variant of a page: CSRF tokens, a user name, timestamps) is then rewritten in
        # content-defined segments (see segment_cuts), found in the cache but around each change. Bytes never
        # seen are rewritten in one run, which costs much less than segment by segment. The rewriter gives
        # the same bytes whatever the chunking, so none of this can change the output.
        whole_key = self._key(cache, chunk)
        hit = cache.get(whole_key)
        if hit is not None:
            return self._replayed_bytes(hit)
        if len(chunk) < 2 * CACHE_SEGMENT_BYTES:
            return self._uncached_run(cache, chunk, whole_key)
        parts: list[bytes | None] = []
        held: list[str] = []
        noted: list[Sighting] = []
        trail: list[Step] = []
        # The layout of the chunk's last variant (same catalog, decision, state and first bytes): its runs of
        # unchanged segments are checked with one digest each, its changed spans read again.
        lineage = (*whole_key[:3], _cache.digest(self._pending, chunk[:LINEAGE_BYTES]))
        layout: Layout | None = None
        ends: list[int] | None = None
        ways = cache.layouts(lineage)
        for way in ways:
            ends = self._fit(chunk, way)
            if ends is not None:
                layout = way
                break
        start, cacheable, same = 0, True, False
        if layout is not None and ends is not None:
            start, cacheable, same = self._follow(cache, chunk, layout, ends, parts, held, noted, trail)
        else:
            same = not cache.layout_wanted(lineage, len(ways))
        if start < len(chunk):
            cuts = segment_cuts(chunk)  # from the chunk's start, so they fall where they fell before
            if start:
                cuts = [cut for cut in cuts if cut > start]
            digests = segment_digests(chunk, cuts, start)
            known = cache.seen_segments(digests)
            if known is None:  # mostly never seen: one run (start == 0: the chunk as it is)
                if start == 0:
                    return self._uncached_run(cache, chunk, whole_key)
                parts.extend(self._rewrite(chunk[start:], False))
                held.extend(self._holdback.held)
                noted.extend(self._holdback.noted)
                cacheable = cacheable and self._holdback.cacheable
                trail = []  # no layout: the rest was not read in segments
                same = True
            else:
                cacheable = self._segments(cache, chunk, start, cuts, digests, known, parts, held, noted,
                                           trail) and cacheable
                same = same and layout is None  # (a layout followed part of the way is made again)
        if not same:
            cache.set_layout(lineage, self._layout(cache, chunk, trail), layout)
        # Kept whole from its second time on: a page that varies from request to request never comes back.
        if cacheable and cache.seen_before(whole_key):
            cache.put(whole_key, parts, self._tokenizer.state(), self._pending, held, noted)
        return self._join(parts)

    def _uncached_run(self, cache: ChunkCache, chunk: bytes, whole_key: tuple[object, ...]) -> bytes:
        """A chunk rewritten in one run; a long one is kept from its second time on (a page that varies by
        request never comes back)."""
        chunk_parts = self._rewrite(chunk, False)
        if self._holdback.cacheable and (len(chunk) < CACHE_WHOLE_AT_ONCE_BYTES or cache.seen_before(whole_key)):
            cache.put(whole_key, chunk_parts, self._tokenizer.state(), self._pending, self._holdback.held,
                      self._holdback.noted)
        return self._join(chunk_parts)

    def _fit(self, chunk: bytes, layout: Layout) -> list[int] | None:
        """Where each span of the layout ends in this chunk, when every run of it is there (checked by its
        digest; a changed span ends where the run after it is found): else None, and the layout (of another
        page of the same site, say) is not followed."""
        ends: list[int] = []
        pos, n = 0, len(chunk)
        last = len(layout) - 1
        for i, (length, key, _) in enumerate(layout):
            end = pos + length
            if key is None:
                end = self._run_after(chunk, pos, end, layout[i + 1]) if i < last else n
                if end < 0:
                    return None
            elif i == 0 or layout[i - 1][1] is not None:  # (else checked with the span before it)
                if end > n:
                    return None
                if i == 0:
                    if key[2] != len(self._pending) or key[3] != _cache.digest(self._pending, chunk[:end]):
                        return None
                elif key[2] == 0 and key[3] != _cache.digest(b"", chunk[pos:end]):
                    return None
            ends.append(end)
            pos = end
        return ends if pos == n else None

    def _follow(self, cache: ChunkCache, chunk: bytes, layout: Layout, ends: list[int], parts: list[bytes | None],
                held: list[str], noted: list[Sighting], trail: list[Step]) -> tuple[int, bool, bool]:
        """Rewrite the chunk along the layout of its last variant: each run of segments found then is checked
        by the digest of its bytes (``ends``: see _fit) and replayed at once; each span read again then (a
        change) is looked up, else read again. Stops where the tokenizer's state is not the run's: (where,
        cacheable so far, whether the layout still describes the chunk)."""
        cacheable, same = True, True
        tokenizer = self._tokenizer
        restore: CachedChunk | None = None
        pos, n = 0, len(chunk)
        for i, (_, key, plain) in enumerate(layout):
            end = ends[i]
            if key is None:  # read again last time (a change): read again up to where the run after it starts
                if end - pos > CACHE_SEGMENT_MAX_BYTES:
                    break  # more than a change: the segment walk takes over
                if restore is not None:
                    tokenizer.restore(restore.state)
                    restore = None
                if plain and not self._pending:  # it passed as it was last time: maybe again (a token)
                    span = chunk[pos:end]
                    if tokenizer.passes_unchanged(span, plain):
                        trail.append(Step(pos, end, (), None, False))
                        parts.append(span)
                        pos = end
                        continue
                if end > pos:
                    before = len(trail)
                    segment_digest = _cache.digest(b"", chunk[pos:end])
                    cacheable = self._segments(cache, chunk, pos, (end,), (segment_digest,),
                                               cache.seen_pieces((segment_digest,)), parts, held, noted,
                                               trail) and cacheable
                    if len(trail) != before + 1 or trail[before].hit is not None or trail[before].kept:
                        same = False  # found, kept or read in pieces now: the layout changes
                pos = end
                continue
            pending = self._pending
            state_id = self._state_id
            if state_id is None:
                state = tokenizer.state()
                state_id = self._state_id = cache.intern(state, _cache.state_bytes(state))
            if key[1] != state_id or key[2] != len(pending) or (
                    pending and key[3] != _cache.digest(pending, chunk[pos:end])):  # (else checked by _fit)
                break
            hit = cache.get(key)
            if hit is None:
                break
            restore = hit
            trail.append(Step(pos, end, key, hit, False))
            self._take_hit(hit, parts, held, noted)
            pos = end
        if restore is not None:
            tokenizer.restore(restore.state)
        return pos, cacheable, same and pos == n

    def _segments(self, cache: ChunkCache, chunk: bytes, start: int, cuts: Sequence[int], digests: Sequence[bytes],
                  keep: Sequence[bool], parts: list[bytes | None], held: list[str], noted: list[Sighting],
                  trail: list[Step], split: bool = True) -> bool:
        """Rewrite ``chunk[start:cuts[-1]]`` segment by segment (``cuts``: their ends, ``digests``: of their
        bytes, ``keep``: seen before, so kept when rewritten), each found in the cache or rewritten; append
        their output parts, vendors held back and third parties noted, and each span to ``trail``. Whether all
        of it may be cached.

        A run of hits only hands on the state's number and the pending bytes: the tokenizer's state is restored
        once, before the next rewrite or at the end. A segment never seen before (it holds a change) is read
        in pieces of ~100 bytes cut the same way (``piece_cuts``): the pieces before and after the change are
        found in the cache as soon as the tokenizer's state there is one it had before, so only the piece
        holding the change is read again."""
        cacheable = True
        prefix_id = self._prefix_id
        tokenizer = self._tokenizer
        restore: CachedChunk | None = None  # the last hit, its tokenizer state not restored yet
        for end, segment_digest, seen in zip(cuts, digests, keep, strict=True):
            state_id = self._state_id
            if self._pending or state_id is None:
                key = self._key(cache, chunk[start:end], segment_digest)
            else:
                key = (prefix_id, state_id, 0, segment_digest)
            hit = cache.get(key)
            if hit is not None:
                restore = hit
                trail.append(Step(start, end, key, hit, False))
                self._take_hit(hit, parts, held, noted)
                start = end
                continue
            if restore is not None:
                tokenizer.restore(restore.state)
                restore = None
            if split and not seen and end - start >= 2 * CACHE_PIECE_BYTES:
                piece_ends = piece_cuts(chunk, start, end)
                if len(piece_ends) > 1:
                    piece_digests = segment_digests(chunk, piece_ends, start)
                    cacheable = self._segments(cache, chunk, start, piece_ends, piece_digests,
                                               cache.seen_pieces(piece_digests), parts, held, noted,
                                               trail) and cacheable
                    start = end
                    continue
            segment_parts = self._rewrite(chunk[start:end], False)
            holdback = self._holdback
            kept = holdback.cacheable and seen
            if kept:
                cache.put(key, segment_parts, tokenizer.state(), self._pending, holdback.held, holdback.noted)
            trail.append(Step(start, end, key, None, kept))
            cacheable = cacheable and holdback.cacheable
            parts.extend(segment_parts)
            held.extend(holdback.held)
            noted.extend(holdback.noted)
            start = end
        if restore is not None:
            tokenizer.restore(restore.state)
        return cacheable

    @staticmethod
    def _run_after(chunk: bytes, pos: int, end: int, run: tuple[int, tuple[object, ...] | None, bytes]) -> int:
        """Where the run after a changed span starts in the chunk (the span started at ``pos`` and ended at
        ``end`` last time): there again, or where its first bytes are found, its digest checked; -1: not found."""
        length, key, head = run
        if key is None or key[2] != 0:
            return -1
        n = len(chunk)
        if end + length <= n and key[3] == _cache.digest(b"", chunk[end : end + length]):
            return end
        search = pos  # the change is of another length this time
        for _ in range(4):
            found = chunk.find(head, search, end + LAYOUT_RESYNC_BYTES + len(head))
            if found < 0:
                return -1
            if found != end and found + length <= n and key[3] == _cache.digest(b"", chunk[found : found + length]):
                return found
            search = found + 1
        return -1

    def _layout(self, cache: ChunkCache, chunk: bytes, trail: list[Step]) -> Layout:
        """The layout of a chunk read in segments: each span read again as (length, None), each run of spans
        found in the cache as (length, key), the run kept as one entry (its bytes were all kept before: a
        token that changes on every request is never in a run)."""
        layout: list[tuple[int, tuple[object, ...] | None, bytes]] = []
        i, count = 0, len(trail)
        while i < count:
            step = trail[i]
            if step.hit is None:  # spans read again side by side: one changed span
                j = i + 1
                while j < count and trail[j].hit is None:
                    j += 1
                # its bytes, when they pass as they are: the next variant's may be known to pass from them
                span = chunk[step.start : trail[j - 1].end]
                plain = span if len(span) <= SHORT_RUN_BYTES and _scanner.reads_plain(span) else b""
                layout.append((len(span), None, plain))
                i = j
                continue
            j = i + 1
            while j < count and trail[j].hit is not None:
                j += 1
            key = step.key
            if j - i > 1 and key[2] == 0:  # a run of hits, from a state without pending bytes
                run_parts: list[bytes | None] = []
                run_held: list[str] = []
                run_noted: list[Sighting] = []
                for run_step in trail[i:j]:
                    hit = run_step.hit
                    assert hit is not None
                    run_parts.extend(hit.parts)
                    run_held.extend(hit.held)
                    run_noted.extend(hit.noted)
                last = trail[j - 1].hit
                assert last is not None
                key = (key[0], key[1], 0, _cache.digest(b"", chunk[step.start : trail[j - 1].end]))
                cache.put(key, run_parts, last.state, last.pending, run_held, run_noted)
                layout.append((trail[j - 1].end - step.start, key, chunk[step.start : step.start + LAYOUT_HEAD_BYTES]))
                i = j
            else:
                layout.append((step.end - step.start, key, chunk[step.start : step.start + LAYOUT_HEAD_BYTES]))
                i += 1
        if all(key is None for _, key, _ in layout):
            return ()  # nothing found in the cache: nothing to follow
        return tuple(layout)

    def _replayed_bytes(self, hit: CachedChunk) -> bytes:
        """The output of a cached chunk as one bytes object, reused as it is when it can be: building a new
        half-megabyte string per request costs more than the whole rewrite (fresh pages for each copy)."""
        parts = self._replay(hit)
        if len(parts) == 1:
            return parts[0]  # type: ignore[return-value]  # no banner block in this chunk
        memo = hit.memo
        if memo[0] == self.head_html:  # the same banner block as last time (visitors without consent)
            return memo[1]  # type: ignore[return-value]
        out = self._join(parts)
        memo[0], memo[1] = self.head_html, out
        return out

    def _take_hit(self, hit: CachedChunk, parts: list[bytes | None], held: list[str], noted: list[Sighting]
                  ) -> None:
        """A span found in the cache, within a run of hits: its output, vendors and third parties appended,
        its end state's number and pending bytes handed on (the tokenizer's state is restored once, later)."""
        self._state_id = hit.state_id
        self._pending = hit.pending
        parts.extend(hit.parts)
        if hit.held:
            held.extend(hit.held)
            self._held.extend(hit.held)
        if hit.noted:
            noted.extend(hit.noted)
            self._note(hit.noted)

    def _replay(self, hit: CachedChunk) -> Sequence[bytes | None]:
        self._tokenizer.restore(hit.state)
        self._state_id = hit.state_id
        self._pending = hit.pending
        if hit.held:
            self._held.extend(hit.held)
        if hit.noted:
            self._note(hit.noted)
        return hit.parts

    def _note(self, noted: Sequence[Sighting]) -> None:
        """Third parties are counted per page view, served from the cache or not."""
        self.third_parties.extend(noted)
        note_seen = self.catalog.third_parties.note_seen
        for host, vendor, _, held in noted:
            if vendor == UNCLASSIFIED:
                note_seen(host, held)

    def _join(self, parts: Sequence[bytes | None]) -> bytes:
        return join_parts(parts, self.head_html)

    # -- one run of the tokenizer ------------------------------------------------------------------------

    def _rewrite(self, chunk: bytes, final: bool) -> list[bytes | None]:
        """Run the tokenizer over pending + chunk; keep the unfinished tail as the new pending."""
        data = self._pending + chunk if self._pending else chunk
        self._holdback.start_run()
        if not final and len(data) <= SHORT_RUN_BYTES and self._tokenizer.passes_unchanged(data):
            self._pending = b""  # the state (and its number) stays as it is
            return [data]
        out: list[bytes | None] = []
        self._state_id = None
        pos = self._tokenizer.run(data, final, out)
        self._pending = data[pos:] if pos < len(data) else b""
        if self._holdback.held:
            self._held.extend(self._holdback.held)
        if self._holdback.noted:
            self.third_parties.extend(self._holdback.noted)
        return out
