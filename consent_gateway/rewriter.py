"""Streaming HTML rewriter: holds back trackers and inserts the banner block at the top of ``<head>``.

Why it looks like this:

* **Never tokenize everything in Python.** One compiled regex (``_Modes.loose``) consumes text and every
  tag that cannot matter in C; where a quoted attribute value holds "<" or ">", the exact ``_Modes.skip``
  (the tokenizer's quoting rules) takes over, so that a ``<!--`` or ``<script`` inside an attribute value
  is never mistaken for markup. Python only wakes up at *candidates*:
  ``<script``, ``<iframe``, ``<img``, ``<link``, ``<head``, ``<noscript``, comments, raw-text elements,
  ``<svg``/``<math`` (CDATA is only special in foreign content) and their ends.
* **The same bytes whatever the chunking.** Every decision is taken on complete tokens; a token cut by a
  chunk boundary is kept (``_pending``) until the next chunk completes it. Limits are applied to token
  lengths, not to buffer states, so a whole page and the same page fed byte by byte give identical output.
* **Memory is bounded and failure is closed.** Only a tag split across chunks, or the body of an inline
  script being classified, is buffered. A tag longer than ``max_buffer_bytes`` is made inert without being
  read and streamed; an inline script longer than that is held back unless its first ``max_buffer_bytes``
  show an allowed vendor only. An exception switches the rest of the document to a cheap mode that makes
  every ``<script``/``<iframe``/``<img``/``<link`` inert — the page is never truncated and no tracker runs.
* **Sites serve the same bytes again and again.** A bounded LRU cache keyed by (catalog, decision, state
  at chunk start, hash of the chunk) returns the rewritten chunk and the state at its end; a long chunk is
  also cached in ~8 KiB segments, so a page that differs in one place (a CSRF token) is mostly served from
  it. The per-request banner block is not in the cached bytes: only its insertion point is.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from . import _hsscan, metrics
from .catalog import Catalog, VendorRule
from .decision import Decision
from .holdback import INERT_ATTRS, hold_back_tag, parse_attributes, script_is_executable

_xxhash: Any
try:  # optional accelerator: ~10x faster than blake2b for the cache key
    import xxhash as _xxhash
except ImportError:  # pragma: no cover - the pure-Python path is tested with use_accelerators(False)
    _xxhash = None

logger = logging.getLogger("consent_gateway.rewriter")

#: bytes looked at for a BOM and a <meta charset> before anything is emitted (the HTML prescan's window)
PRESCAN_BYTES = 1024
#: chunks shorter than this are rewritten without the cache (hashing would cost more than it saves)
CACHE_MIN_CHUNK_BYTES = 512
#: a chunk longer than twice this is cached in segments of about this size (cut after a newline)
CACHE_SEGMENT_BYTES = 8192
CACHE_MAX_BYTES = 32 * 1024 * 1024
CACHE_MAX_ENTRIES = 4096
#: nested svg/math elements tracked (deeper ones are read as if the outer ones were closed)
_MAX_FOREIGN_DEPTH = 64

_WS = rb"\t\n\f\r "
#: the rest of a tag after its name, up to and including ">", with the HTML tokenizer's attribute rules.
#: An unclosed quoted value makes the match fail (more bytes needed) instead of matching short.
_TAG_REST_SRC = (
    rb"(?:[\t\n\f\r /]++|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)|(?![\t\n\f\r ]*+=)))*+>"
)
_TAG_REST = re.compile(_TAG_REST_SRC)
#: the common well-formed subset of a tag (quoted values, plain unquoted values, bare names), which `re` runs
#: several times faster; whenever it matches, the tokenizer reads the tag the same way, and when it does
#: not, the exact _TAG_REST_SRC is tried
_FAST_TAG_SRC = (
    rb"[^\t\n\f\r />\"'=]*+(?:[\t\n\f\r ]++[^\t\n\f\r />\"'=]++"
    rb"(?:=(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'=]++))?+)*+[\t\n\f\r /]*+>"
)
_DELIM = rb"(?=[\t\n\f\r />])"
#: a quoted attribute value holding "<" or ">" (a quote opens a value only after "="): where a tag does not
#: end at its first ">", or a "<" is not markup
_QUOTED_LT_GT = re.compile(rb"=[\t\n\f\r ]*+(?:\"[^\"<>]*+[<>]|'[^'<>]*+[<>])")

_RAWTEXT = ("style", "textarea", "title", "xmp", "noembed", "noframes", "iframe")
_HOLD_KINDS = ("script", "iframe", "img", "link")

# modes
_PRESCAN, _DATA, _COMMENT, _BOGUS, _CDATA, _RAWTEXT_MODE, _SCRIPT, _NOSCRIPT, _PLAINTEXT, _GTAG = range(10)
_BAILED, _PASSTHROUGH = 20, 21

# script data sub-states (the HTML tokenizer's escape states, so "<!--<script>" cannot end a script early)
_S_DATA, _S_ESCAPED, _S_DOUBLE = 0, 1, 2

# states of a long tag streamed without being buffered
_G_NAME, _G_BEFORE, _G_ATTR, _G_AFTER_ATTR, _G_BEFORE_VALUE, _G_DQ, _G_SQ, _G_UNQ = range(8)


def _trie(names: tuple[str, ...]) -> bytes:
    """A case-insensitive alternation of tag names as a trie of explicit character classes: `re` runs it
    much faster at every "<" than ``(?i:script|style|…)``."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name[0], []).append(name[1:])
    alternatives = []
    for first, rests in sorted(groups.items()):
        klass = b"[" + (first + first.upper()).encode() + b"]"
        longer = tuple(r for r in rests if r)
        if not longer:
            alternatives.append(klass)
        elif len(longer) < len(rests):
            alternatives.append(klass + b"(?:" + _trie(longer) + b")?")
        else:
            alternatives.append(klass + _trie(longer))
    return b"(?:" + b"|".join(alternatives) + b")"


def _names(names: tuple[str, ...]) -> bytes:
    return b"(?i:" + b"|".join(n.encode() for n in names) + b")"


class _Modes:
    """The compiled scanners of one flavour of data state."""

    def __init__(self, starts: tuple[str, ...], ends: tuple[str, ...], *, cdata: bool) -> None:
        start_re = _trie(starts) + _DELIM
        end_re = _trie(ends) + _DELIM if ends else None
        any_tag = b"(?:" + _FAST_TAG_SRC + rb"|[^\t\n\f\r />]*+" + _TAG_REST_SRC + b")"
        generic_start = b"<(?!" + start_re + b")[a-zA-Z]" + any_tag
        generic_end = b"</" + (b"(?!" + end_re + b")" if end_re else b"") + b"[a-zA-Z]" + any_tag
        text_lt = rb"<(?=[^a-zA-Z!?/])"
        self.skip = re.compile(rb"(?:[^<]++|" + generic_start + b"|" + generic_end + b"|" + text_lt + b")*+")
        # The same, ending every tag at its first ">": several times faster, and the same as `skip` unless a
        # quoted attribute value holds a "<" or ">" — which `_QUOTED_LT_GT` detects, sending the region to `skip`.
        loose_tag = rb"[^>]*+>"
        self.loose = re.compile(
            rb"(?:[^<]++|<(?!" + start_re + rb")[a-zA-Z]" + loose_tag + b"|</"
            + (b"(?!" + end_re + b")" if end_re else b"") + b"[a-zA-Z]" + loose_tag + b"|" + text_lt + b")*+"
        )
        alternatives = [b"(?P<tag>" + _names(starts) + b")" + _DELIM]
        if end_re:
            alternatives.append(b"/(?P<etag>" + _names(ends) + b")" + _DELIM)
        alternatives.append(b"(?P<comment>!--)")
        if cdata:
            alternatives.append(rb"(?P<cdata>!\[CDATA\[)")
        alternatives.append(rb"(?P<bogus>![^-]|!-[^-]|\?|/[^a-zA-Z])")
        self.cand = re.compile(b"<(?:" + b"|".join(alternatives) + b")")


_HTML_STARTS = ("script", "iframe", "img", "link", "head", "noscript", "style", "textarea", "title", "xmp",
                "noembed", "noframes", "plaintext", "svg", "math")
_HTML_ENDS = ("svg", "math")
_HTML = _Modes(_HTML_STARTS, _HTML_ENDS, cdata=False)
#: characters that make a URL in a tag differ from its bytes (entities, percent-escapes, stripped whitespace)
_ESCAPES = re.compile(rb"[&%\\\t\n\r]")
#: HTML start tags that end foreign content (the tree builder's breakout list; <font> only with attributes)
_BREAKOUT = ("b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em", "embed", "h1",
             "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li", "listing", "menu", "meta", "nobr", "ol",
             "p", "pre", "ruby", "s", "small", "span", "strong", "strike", "sub", "sup", "table", "tt", "u", "ul",
             "var")
_BREAKOUT_SET = frozenset(_BREAKOUT)
#: svg/math elements whose content the parser reads with HTML rules. Past one, the rest is read as HTML
#: (the way back to svg after it is not tracked: reading more as HTML only ever finds more tags)
_INTEGRATION_POINTS = ("foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext", "annotation-xml")
_INTEGRATION_SET = {"svg": frozenset(("foreignobject", "desc", "title")),
                    "math": frozenset(("mi", "mo", "mn", "ms", "mtext", "annotation-xml"))}
_FOREIGN = _Modes(
    # raw-text elements are not raw text in svg/math: their content is markup there
    tuple(dict.fromkeys(("script", "iframe", "img", "link", "svg", "math", *_BREAKOUT, *_INTEGRATION_POINTS))),
    ("svg", "math", "p", "br"),  # </p> and </br> end foreign content too
    cdata=True,
)
_NOSCRIPT_CAND = re.compile(b"<(?P<tag>" + _names(_HOLD_KINDS) + b")" + _DELIM)
_NOSCRIPT_END = re.compile(rb"</(?i:noscript)" + _DELIM)
_PRE_WS = re.compile(rb"[\t\n\f\r ]*+")
_PRE_CAND = re.compile(
    rb"<(?:(?P<html>(?i:html))" + _DELIM + rb"|(?P<head>(?i:head))" + _DELIM
    + rb"|(?P<comment>!--)|(?P<bogus>![^-]|!-[^-]|\?|/[^a-zA-Z])|(?P<other>/?[a-zA-Z])|(?P<text>[^a-zA-Z!?/]))"
)
_COMMENT_END = re.compile(rb"--!?>")
_SCRIPT_END = re.compile(rb"</(?i:script)" + _DELIM)
_SCRIPT_TOKENS = re.compile(rb"<!--|-->|<(/?)(?i:script)[\t\n\f\r />]")
_RAWTEXT_END = {name: re.compile(b"</(?i:" + name.encode() + b")" + _DELIM) for name in (*_RAWTEXT, "noscript")}
_INERT_ALL = re.compile(b"<(" + _names(_HOLD_KINDS) + b")" + _DELIM)
_GTAG_UNQ = re.compile(rb"[^\t\n\f\r >]*+")
_GTAG_ATTR = re.compile(rb"[^\t\n\f\r />=]*+")
_GENERIC_NAME = re.compile(rb"</?[a-zA-Z][^\t\n\f\r />]*+")
_META_UTF16 = re.compile(
    rb"<meta[^>]*?charset[\t\n\f\r ]*=[\t\n\f\r \"']*(?:utf-?16|utf-?32|ucs-?2|ucs-?4)", re.IGNORECASE
)
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\xfe\xff", b"\xff\xfe")

#: stands for the per-request banner block in output part lists
_HEAD_MARK = None


class _NeedMore(Exception):
    """Not an error: the token at `pos` continues in the next chunk."""

    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


class _ChunkCache:
    """A bounded LRU of rewritten chunks, shared by every rewriter of the process (one event loop)."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES, max_entries: int = CACHE_MAX_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: collections.OrderedDict[Any, tuple[Any, int]] = collections.OrderedDict()
        self._seen: collections.OrderedDict[Any, None] = collections.OrderedDict()

    def get(self, key: Any) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: Any, value: Any, size: int) -> None:
        if size > self.max_bytes // 4:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[1]
        self._entries[key] = (value, size)
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
        self.size = self.hits = self.misses = 0


CHUNK_CACHE = _ChunkCache()


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


_digest: Callable[[bytes, bytes], bytes] = _digest_xxh if _xxhash is not None else _digest_blake2
_native_scan = True


def use_accelerators(enabled: bool) -> None:
    """Switch the optional native helpers (xxhash, hyperscan) on or off, for rewriters created from now on
    (the tests prove both paths give the same bytes)."""
    global _digest, _native_scan
    _digest = _digest_xxh if enabled and _xxhash is not None else _digest_blake2
    _native_scan = enabled
    CHUNK_CACHE.clear()


class HoldbackRewriter:
    """Rewrites one HTML document, chunk by chunk.

    :param catalog: the vendors to recognise.
    :param decision: what this visitor allows.
    :param head_html: the banner block, inserted once right after the ``<head …>`` start tag (or before
        the first element / text when the document has no head).
    :param max_buffer_bytes: the longest tag or classified inline script kept in memory.
    """

    def __init__(self, catalog: Catalog, decision: Decision, head_html: bytes, *,
                 max_buffer_bytes: int = 65536, cache: _ChunkCache | None = CHUNK_CACHE) -> None:
        self.catalog = catalog
        self.decision = decision
        self.head_html = head_html
        self.max_buffer_bytes = max(64, max_buffer_bytes)
        self.held_back: collections.Counter[str] = collections.Counter()
        self._cache = cache
        self._cache_prefix = (catalog.token, decision.key, self.max_buffer_bytes)
        self._mode = _PRESCAN
        self._pending = b""
        self._head_pending = True
        self._foreign: tuple[str, ...] = ()  # the open svg/math elements
        self._raw_name = ""
        self._comment_fresh = False
        self._script_state = _S_DATA
        self._script_open: bytes | None = None  # open tag of an inline script being classified
        self._script_scan = 0  # where the script scan resumes, relative to the body start
        self._gtag_state = _G_NAME
        self._gtag_then = _DATA
        self._closed = False
        self._scanner = _hsscan.scanner_for(catalog, _HTML_STARTS, _HTML_ENDS) if _native_scan else None
        self._scan: _hsscan.BufferScan | None = None  # what the scanner found in the current buffer
        # per-run scratch
        self._held: list[str] = []
        self._cacheable = True

    # -- public API ---------------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        if self._closed:
            raise RuntimeError("feed() after close()")
        if not chunk:
            return b""
        return self._guarded(chunk, final=False)

    def close(self) -> bytes:
        if self._closed:
            return b""
        if not self._pending and self._script_open is None and not (self._head_pending and self._mode == _DATA):
            self._closed = True
            return b""  # nothing held: the common end of a page (and an empty body stays empty)
        out = self._guarded(b"", final=True)
        self._closed = True
        return out

    # -- driver ---------------------------------------------------------------------------------------------

    def _guarded(self, chunk: bytes, final: bool) -> bytes:
        # what is not yet emitted when this step starts: the step only commits it at its end
        held, pending = self._script_open, self._pending
        try:
            return self._step(chunk, final)
        except Exception:
            logger.exception("HTML rewrite failed; holding back every tag of the rest of the page")
            metrics.inc("rewrite_bailouts_total", reason="error")
            data = (held or b"") + pending + chunk
            self._script_open = None
            self._pending = b""
            self._mode = _BAILED
            out: list[bytes | None] = []
            self._pending = data[self._inert_all(data, 0, final, out):]
            return self._join(out)

    def _step(self, chunk: bytes, final: bool) -> bytes:
        mode = self._mode
        if mode == _PASSTHROUGH:
            return chunk
        if mode == _PRESCAN:
            data = self._pending + chunk if self._pending else chunk
            if len(data) < PRESCAN_BYTES and not final:
                self._pending = data
                return b""
            self._pending = b""
            reason = self._prescan(data)
            if reason is not None:
                self._mode = _PASSTHROUGH
                metrics.inc("rewrite_passthrough_total", reason=reason)
                return data
            self._mode = _DATA
            if data.startswith(_UTF8_BOM):
                return _UTF8_BOM + self._step(data[3:], final)
            return self._step(data, final)
        if mode == _BAILED:
            data = self._pending + chunk
            out: list[bytes | None] = []
            self._pending = data[self._inert_all(data, 0, final, out):]
            return self._join(out)
        if final or self._cache is None or len(chunk) < CACHE_MIN_CHUNK_BYTES:
            return self._join(self._rewrite(chunk, final))
        if len(chunk) < 2 * CACHE_SEGMENT_BYTES:
            key = (self._cache_prefix, self._state(), len(self._pending), _digest(self._pending, chunk))
            hit = self._cache.get(key)
            if hit is not None:
                return self._replayed_bytes(hit)
            parts = self._rewrite(chunk, False)
            if self._cacheable:
                self._store(key, parts, self._held)
            return self._join(parts)
        # A long chunk is looked up whole first (a page served again), then in segments cut after a newline:
        # a page that differs in one place from request to request (a CSRF token, a user name) still finds
        # its other segments in the cache. The rewriter gives the same bytes whatever the chunking, so the
        # cut points cannot change the output.
        whole_key = (self._cache_prefix, self._state(), len(self._pending), _digest(self._pending, chunk))
        hit = self._cache.get(whole_key)
        if hit is not None:
            return self._replayed_bytes(hit)
        parts = []
        held: list[str] = []
        cacheable = True
        start, n = 0, len(chunk)
        while start < n:
            cut = chunk.find(b"\n", start + CACHE_SEGMENT_BYTES)
            end = n if cut == -1 or n - cut < CACHE_SEGMENT_BYTES else cut + 1
            segment_parts, segment_held, hit_or_cacheable = self._cached_rewrite(chunk[start:end])
            parts.extend(segment_parts)
            held.extend(segment_held)
            cacheable = cacheable and hit_or_cacheable is not False
            start = end
        # Kept whole from its second time on: a page that varies from request to request never comes back.
        if cacheable and self._cache.seen_before(whole_key):
            self._store(whole_key, parts, held)
        return self._join(parts)

    def _cached_rewrite(self, chunk: bytes) -> tuple[Sequence[bytes | None], Sequence[str], bool | None]:
        """(output parts, vendors held back, cacheable or None for a cache hit) of one chunk."""
        assert self._cache is not None
        key = (self._cache_prefix, self._state(), len(self._pending), _digest(self._pending, chunk))
        hit = self._cache.get(key)
        if hit is not None:
            return self._replay(hit), hit[3], None
        parts = self._rewrite(chunk, False)
        if self._cacheable:
            self._store(key, parts, self._held)
        return parts, self._held, self._cacheable

    def _replayed_bytes(self, hit: Any) -> bytes:
        """The output of a cached chunk as one bytes object, reused as it is when it can be: building a new
        half-megabyte string per request costs more than the whole rewrite (fresh pages for each copy)."""
        parts = self._replay(hit)
        if len(parts) == 1:
            return parts[0]  # type: ignore[return-value]  # no banner block in this chunk
        memo = hit[4]
        if memo[0] == self.head_html:  # the same banner block as last time (visitors without consent)
            return memo[1]  # type: ignore[no-any-return]
        out = self._join(parts)
        memo[0], memo[1] = self.head_html, out
        return out

    def _replay(self, hit: Any) -> Sequence[bytes | None]:
        parts, state, pending, held, _ = hit
        self._restore(state)
        self._pending = pending
        if held:
            self.held_back.update(held)
        return parts  # type: ignore[no-any-return]

    def _store(self, key: Any, parts: list[bytes | None], held: list[str]) -> None:
        assert self._cache is not None
        compact = _compact(parts)
        size = sum(len(p) for p in compact if p) * (2 if len(compact) > 1 else 1) + len(self._pending) + 256
        memo: list[bytes | None] = [None, None]  # the last banner block and the output joined with it
        self._cache.put(key, (compact, self._state(), self._pending, tuple(held), memo), size)

    def _join(self, parts: Sequence[bytes | None]) -> bytes:
        if _HEAD_MARK in parts:
            return b"".join(self.head_html if p is _HEAD_MARK else p for p in parts)
        return b"".join(parts)  # type: ignore[arg-type]  # no None in it

    def _state(self) -> tuple[Any, ...]:
        return (self._mode, self._head_pending, self._foreign, self._raw_name, self._comment_fresh,
                self._script_state, self._script_open, self._script_scan, self._gtag_state, self._gtag_then)

    def _restore(self, state: tuple[Any, ...]) -> None:
        (self._mode, self._head_pending, self._foreign, self._raw_name, self._comment_fresh,
         self._script_state, self._script_open, self._script_scan, self._gtag_state, self._gtag_then) = state

    @staticmethod
    def _prescan(data: bytes) -> str | None:
        head = data[:PRESCAN_BYTES]
        if head.startswith(_WIDE_BOMS) or b"\x00" in head[:4]:
            return "encoding"
        lowered = head.lower()
        if (b"16" in lowered or b"32" in lowered or b"ucs" in lowered) and _META_UTF16.search(head):
            return "encoding"
        return None

    def _rewrite(self, chunk: bytes, final: bool) -> list[bytes | None]:
        """Run the state machine over pending + chunk; keep the unfinished tail as the new pending."""
        data = self._pending + chunk if self._pending else chunk
        out: list[bytes | None] = []
        self._held = []
        self._cacheable = True
        if self._scanner is not None and len(data) >= _hsscan.MIN_SCAN_BYTES:
            self._scan = self._scanner.scan(data)
        try:
            pos = self._run(data, final, out)
        finally:
            self._scan = None
        self._pending = data[pos:] if pos < len(data) else b""
        if self._held:
            self.held_back.update(self._held)
        return out

    # -- the state machine -------------------------------------------------------------------------------

    def _run(self, data: bytes, final: bool, out: list[bytes | None]) -> int:
        pos = 0
        n = len(data)
        handlers = {
            _DATA: self._data,
            _COMMENT: self._comment,
            _BOGUS: self._bogus,
            _CDATA: self._cdata,
            _RAWTEXT_MODE: self._rawtext,
            _SCRIPT: self._script,
            _NOSCRIPT: self._noscript,
            _GTAG: self._gtag,
        }
        while True:
            mode = self._mode
            if mode == _PLAINTEXT:
                if pos < n:
                    out.append(data[pos:])
                return n
            if mode == _BAILED:
                return self._inert_all(data, pos, final, out)
            try:
                pos = handlers[mode](data, pos, final, out)
            except _NeedMore as stop:
                return self._need_more(data, stop.pos, final, out)

    def _need_more(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        """The token at ``pos`` is unfinished. At the end of the document, emit it as it is."""
        n = len(data)
        if not final:
            return pos
        if self._mode == _SCRIPT and self._script_open is not None:
            # an inline script cut by the end of the document: classify what there is
            self._emit_classified(data, pos, n, out)
            return n
        if self._head_pending and self._mode == _DATA:
            out.append(_HEAD_MARK)
            self._head_pending = False
        if pos < n:
            out.append(data[pos:])
        return n

    # data ------------------------------------------------------------------------------------------------

    def _data(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        if self._head_pending:
            return self._pre_head(data, pos, final, out)
        modes = _FOREIGN if self._foreign else _HTML
        scan = None if self._foreign else self._scan
        n = len(data)
        while True:
            end = -1
            if scan is not None:
                # the scanner's next candidate; the text before it is plain when no quoted value holds "<"
                # or ">" and every "<" in it is closed: exactly where the regexes below would stop
                p = scan.next_candidate(pos, n)
                if not scan.quoted_between(pos, p + 1):
                    last_lt = data.rfind(b"<", pos, p)
                    if last_lt == -1 or data.find(b">", last_lt, p) != -1:
                        end = p
            if end < 0:
                end = modes.loose.match(data, pos).end()  # type: ignore[union-attr]
                if end > pos and _QUOTED_LT_GT.search(data, pos, end + 1) is not None:
                    end = modes.skip.match(data, pos).end()  # type: ignore[union-attr]
            if end > pos:
                out.append(data[pos:end])
                pos = end
            if pos >= n:
                raise _NeedMore(pos)
            m = modes.cand.match(data, pos)
            if m is None:
                if not final and n - pos > self.max_buffer_bytes and _GENERIC_NAME.match(data, pos):
                    # a tag that does not matter, too long to keep: stream it while tracking its end
                    self._mode, self._gtag_state, self._gtag_then = _GTAG, _G_NAME, _DATA
                    return pos
                raise _NeedMore(pos)
            group = m.lastgroup
            if group == "bogus" and modes is _FOREIGN and not final and data[pos + 1 : pos + 2] == b"!":
                rest = data[pos + 2 : pos + 9]
                if len(rest) < 7 and b"[CDATA["[: len(rest)] == rest:
                    raise _NeedMore(pos)  # might still become a CDATA section
            if group == "tag":
                name = m.group("tag").lower().decode()
                pos = self._start_tag(data, pos, m.end(), name, final, out)
                if self._mode != _DATA or bool(self._foreign) != (modes is _FOREIGN):
                    return pos
            elif group == "etag":
                tag_end = self._tag_end(data, m.end(), pos)
                out.append(data[pos:tag_end])
                pos = tag_end
                closed = m.group("etag").lower().decode()
                if closed in ("p", "br") and self._foreign:
                    self._foreign = ()
                    return pos
                if closed in self._foreign:  # an end tag without its start tag open is ignored
                    self._foreign = self._foreign[: len(self._foreign) - 1 - self._foreign[::-1].index(closed)]
                    return pos
            elif group == "comment":
                out.append(b"<!--")
                self._mode, self._comment_fresh = _COMMENT, True
                return m.end()
            elif group == "cdata":
                out.append(data[pos : m.end()])
                self._mode = _CDATA
                return m.end()
            else:  # bogus comment, doctype, processing instruction, "</" + non-letter
                self._mode = _BOGUS
                return pos

    def _tag_end(self, data: bytes, after_name: int, start: int) -> int:
        m = _TAG_REST.match(data, after_name)
        if m is None:
            raise _NeedMore(start)
        return m.end()

    def _start_tag(self, data: bytes, pos: int, name_end: int, name: str, final: bool,
                   out: list[bytes | None]) -> int:
        """Handle a complete candidate start tag at ``pos``; return where scanning resumes."""
        m = _TAG_REST.match(data, name_end)
        if m is None:
            if len(data) - pos > self.max_buffer_bytes and name in _HOLD_KINDS:
                return self._too_long_tag(data, pos, name_end, name, out)
            if len(data) - pos > self.max_buffer_bytes:
                out.append(data[pos:name_end])
                if self._foreign and name in _BREAKOUT_SET:
                    self._foreign = ()
                self._mode, self._gtag_state, self._gtag_then = _GTAG, _G_BEFORE, self._mode_after(name, None)
                return name_end
            raise _NeedMore(pos)
        end = m.end()
        if end - pos > self.max_buffer_bytes and name in _HOLD_KINDS:
            return self._too_long_tag(data, pos, name_end, name, out)
        tag = data[pos:end]
        if self._foreign:
            if name in _INTEGRATION_SET[self._foreign[-1]] and not tag.endswith(b"/>"):
                self._foreign = ()
                out.append(tag)
                return end  # its content is markup with HTML rules (an svg <title> is not RCDATA)
            if name in _BREAKOUT_SET:
                self._foreign = ()  # an HTML element closes every open svg/math element
            elif tag.endswith(b"/>") and name not in ("svg", "math"):
                # self-closing is honoured in foreign content: no text follows
                out.append(self._hold(tag, name, pos) if name in _HOLD_KINDS else tag)
                return end
        if name == "script" and self._foreign:
            return self._foreign_script(data, pos, end, final, out)
        if name == "script":
            _, attrs = parse_attributes(tag)
            self._script_state = _S_DATA
            self._script_scan = 0
            self._mode = _SCRIPT
            if script_is_executable(attrs) and not any(a.name == b"src" for a in attrs):
                self._script_open = tag  # classified once its body is complete
            else:
                out.append(self._hold(tag, "script", pos))
            return end
        if name in _HOLD_KINDS:
            out.append(self._hold(tag, name, pos))
        else:
            out.append(tag)
        self._mode = self._mode_after(name, tag)
        return end

    def _foreign_script(self, data: bytes, pos: int, end: int, final: bool, out: list[bytes | None]) -> int:
        """An svg/math <script>: its content is markup to the parser (scanned as such), but it runs, so it
        is classified by the text up to its end tag."""
        close = _SCRIPT_END.search(data, end)
        tag = data[pos:end]
        if close is None and not final:
            if len(data) - pos <= self.max_buffer_bytes:
                raise _NeedMore(pos)
            metrics.inc("rewrite_bailouts_total", reason="inline_script_too_long")
            self._cacheable = False
            name_end, _ = parse_attributes(tag)
            out.append(tag[:name_end] + INERT_ATTRS["script"] + tag[name_end:])
            return end
        body = data[end : close.start() if close is not None else len(data)]
        held = hold_back_tag(tag, "script", self.catalog, self.decision, body)
        if held is not None:
            self._held.append(held.vendor.id)
            tag = held.tag
        out.append(tag)
        return end

    def _mode_after(self, name: str, tag: bytes | None) -> int:
        """The mode after a start tag (``tag`` is None for a long one streamed unread)."""
        if name in ("svg", "math"):
            if tag is None or not tag.endswith(b"/>"):
                self._foreign = (*self._foreign, name)[-_MAX_FOREIGN_DEPTH:]
            return _DATA
        if self._foreign:
            return _DATA
        if name == "script":
            self._script_open, self._script_state, self._script_scan = None, _S_DATA, 0
            return _SCRIPT
        if name == "noscript":
            return _NOSCRIPT
        if name == "plaintext":
            return _PLAINTEXT
        if name in _RAWTEXT:
            self._raw_name = name
            return _RAWTEXT_MODE
        return _DATA

    def _too_long_tag(self, data: bytes, pos: int, name_end: int, name: str, out: list[bytes | None]) -> int:
        """Fail closed on a tracker-capable tag too long to read: make it inert, stream the rest of it."""
        metrics.inc("rewrite_bailouts_total", reason="tag_too_long")
        self._cacheable = False
        out.append(data[pos:name_end])
        out.append(INERT_ATTRS[name])
        if self._foreign and name == "img":
            self._foreign = ()
        self._mode, self._gtag_state, self._gtag_then = _GTAG, _G_BEFORE, self._mode_after(name, None)
        return name_end

    def _hold(self, tag: bytes, kind: str, at: int = -1) -> bytes:
        """The tag or its held-back form; ``at`` is its offset in the current buffer, for the scanner."""
        may: bool | None = None
        if self._scan is not None and at >= 0 and not _ESCAPES.search(tag):
            may = self._scan.needle_within(at, at + len(tag))
        held = hold_back_tag(tag, kind, self.catalog, self.decision, may_name_vendor=may)
        if held is None:
            return tag
        self._held.append(held.vendor.id)
        return held.tag

    def _pre_head(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        """Before the banner block is placed: skip what may precede <head>, place it at the first content."""
        n = len(data)
        while True:
            end = _PRE_WS.match(data, pos).end()  # type: ignore[union-attr]
            if end > pos:
                out.append(data[pos:end])
                pos = end
            if pos >= n:
                if final:
                    out.append(_HEAD_MARK)
                    self._head_pending = False
                raise _NeedMore(pos)
            if data[pos] != 0x3C:  # text first: the banner goes before it
                break
            m = _PRE_CAND.match(data, pos)
            if m is None:
                if final:
                    break
                raise _NeedMore(pos)
            group = m.lastgroup
            if group == "html":
                rest = _TAG_REST.match(data, m.end())
                if rest is None:
                    if len(data) - pos <= self.max_buffer_bytes and not final:
                        raise _NeedMore(pos)
                    break
                out.append(data[pos : rest.end()])
                pos = rest.end()
            elif group == "head":
                rest = _TAG_REST.match(data, m.end())
                if rest is None:
                    if len(data) - pos <= self.max_buffer_bytes and not final:
                        raise _NeedMore(pos)
                    break
                out.append(data[pos : rest.end()])
                out.append(_HEAD_MARK)
                self._head_pending = False
                return rest.end()
            elif group == "comment":
                out.append(b"<!--")
                self._mode, self._comment_fresh = _COMMENT, True
                return m.end()
            elif group == "bogus":
                self._mode = _BOGUS
                return pos
            else:
                break
        out.append(_HEAD_MARK)
        self._head_pending = False
        return pos

    # comments and friends -------------------------------------------------------------------------------

    def _comment(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        n = len(data)
        if self._comment_fresh:
            # "<!-->" and "<!--->" are complete (empty) comments
            if pos >= n:
                raise _NeedMore(pos)
            if data[pos] == 0x3E:
                return self._end_special(data, pos, pos + 1, out)
            if data[pos] == 0x2D:
                if pos + 1 >= n:
                    raise _NeedMore(pos)
                if data[pos + 1] == 0x3E:
                    return self._end_special(data, pos, pos + 2, out)
            self._comment_fresh = False
        m = _COMMENT_END.search(data, pos)
        if m is not None:
            return self._end_special(data, pos, m.end(), out)
        keep = max(pos, n - 3)
        if keep > pos:
            out.append(data[pos:keep])
        raise _NeedMore(keep)

    def _end_special(self, data: bytes, pos: int, end: int, out: list[bytes | None]) -> int:
        out.append(data[pos:end])
        self._mode = _DATA
        self._comment_fresh = False
        return end

    def _bogus(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        end = data.find(b">", pos)
        if end == -1:
            # nothing inside a bogus comment needs a look-ahead: emit it all, keep going
            out.append(data[pos:])
            raise _NeedMore(len(data))
        return self._end_special(data, pos, end + 1, out)

    def _cdata(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        end = data.find(b"]]>", pos)
        if end == -1:
            keep = max(pos, len(data) - 2)
            out.append(data[pos:keep])
            raise _NeedMore(keep)
        return self._end_special(data, pos, end + 3, out)

    def _rawtext(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        m = _RAWTEXT_END[self._raw_name].search(data, pos)
        if m is None:
            keep = max(pos, len(data) - len(self._raw_name) - 3)
            if keep > pos:
                out.append(data[pos:keep])
            raise _NeedMore(keep)
        if m.start() > pos:
            out.append(data[pos : m.start()])
        tag_end = _TAG_REST.match(data, m.end())
        if tag_end is None:
            raise _NeedMore(m.start())
        out.append(data[m.start() : tag_end.end()])
        self._mode = _DATA
        return tag_end.end()

    def _noscript(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        """<noscript> content is text to a browser that runs scripts (so only </noscript> ends it) and
        markup to one that does not: rewrite the tracker tags in it as tags, and find the end as text."""
        n = len(data)
        end_m = _NOSCRIPT_END.search(data, pos)
        limit = end_m.start() if end_m is not None else max(pos, n - len(b"</noscript"))
        while True:
            m = _NOSCRIPT_CAND.search(data, pos)
            if m is None or m.start() >= limit:
                break
            rest = _TAG_REST.match(data, m.end(), end_m.start() if end_m is not None else n)
            if rest is None:
                if end_m is None and n - m.start() <= self.max_buffer_bytes:
                    if m.start() > pos:
                        out.append(data[pos : m.start()])
                    raise _NeedMore(m.start())
                break  # cut by </noscript> (it is text to a scripting browser) or too long: leave it
            if m.start() > pos:
                out.append(data[pos : m.start()])
            out.append(self._hold(data[m.start() : rest.end()], m.group("tag").lower().decode(), m.start()))
            pos = rest.end()
        if end_m is None:
            if limit > pos:
                out.append(data[pos:limit])
            raise _NeedMore(max(pos, limit))
        tag_end = _TAG_REST.match(data, end_m.end())
        if tag_end is None:
            if end_m.start() > pos:
                out.append(data[pos : end_m.start()])
            raise _NeedMore(end_m.start())
        out.append(data[pos : tag_end.end()])
        self._mode = _DATA
        return tag_end.end()

    # scripts --------------------------------------------------------------------------------------------

    def _script(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        """Find the end of a script element's text with the tokenizer's escape states."""
        n = len(data)
        classify = self._script_open is not None
        scan = pos + self._script_scan
        state = self._script_state
        limit = self.max_buffer_bytes
        search = _SCRIPT_TOKENS.search
        while True:
            if classify and scan - pos > limit:
                # too long to keep: decide on the first `limit` bytes, then stream the rest
                self._emit_classified(data, pos, pos + limit, out, too_long=True)
                out.append(data[pos + limit : scan])
                classify = False
                pos = scan
            m = search(data, scan)
            if m is None:
                keep = max(scan, n - 9)
                break
            token = m.group()
            start = m.start()
            if token == b"<!--":
                if state == _S_DATA:
                    j = m.end()
                    while j < n and data[j] == 0x2D:
                        j += 1
                    if j >= n:
                        keep = start
                        break
                    if data[j] == 0x3E:
                        scan = j + 1
                    else:
                        state, scan = _S_ESCAPED, m.end()
                else:
                    scan = start + 2  # a "-->" may overlap "<!-->"
            elif token == b"-->":
                if state != _S_DATA:
                    state = _S_DATA
                scan = m.end()
            elif m.group(1):  # </script
                if state == _S_DOUBLE:
                    state, scan = _S_ESCAPED, m.end() - 1
                    continue
                if classify and start - pos > limit:
                    scan = start
                    continue  # handled by the too-long branch above
                tag_end = _TAG_REST.match(data, m.end() - 1)
                if tag_end is None:
                    keep = start
                    break
                if classify:
                    self._emit_classified(data, pos, start, out)
                elif start > pos:
                    out.append(data[pos:start])
                out.append(data[start : tag_end.end()])
                self._mode = _DATA
                self._script_state, self._script_scan = _S_DATA, 0
                return tag_end.end()
            else:  # <script
                if state == _S_ESCAPED:
                    state = _S_DOUBLE
                scan = m.end() - 1
        self._script_state = state
        if classify:
            if keep - pos > limit:
                scan = keep
                self._emit_classified(data, pos, pos + limit, out, too_long=True)
                out.append(data[pos + limit : keep])
                pos = keep
                self._script_scan = 0
                raise _NeedMore(pos)
            self._script_scan = keep - pos
            raise _NeedMore(pos)
        self._script_scan = 0
        if keep > pos:
            out.append(data[pos:keep])
        raise _NeedMore(keep)

    def _emit_classified(self, data: bytes, body_start: int, body_end: int, out: list[bytes | None], *,
                         too_long: bool = False) -> None:
        """Decide on an inline script from its body and emit the open tag and the body."""
        tag = self._script_open or b"<script>"
        self._script_open = None
        body = data[body_start:body_end]
        if self._scan is not None:
            vendors: list[VendorRule] = []
            for start, end in self._scan.signatures_in_order(body_start, body_end):
                vendor = self.catalog.vendor_for_signature(data[start:end])
                if vendor not in vendors:
                    vendors.append(vendor)
            held = hold_back_tag(tag, "script", self.catalog, self.decision, body, inline_vendors=vendors)
        else:
            held = hold_back_tag(tag, "script", self.catalog, self.decision, body)
        if held is not None:
            self._held.append(held.vendor.id)
            tag = held.tag
        elif too_long:
            # nothing disallowed in what could be read, but the rest is unknown: fail closed
            metrics.inc("rewrite_bailouts_total", reason="inline_script_too_long")
            self._cacheable = False
            name_end, _ = parse_attributes(tag)
            tag = tag[:name_end] + INERT_ATTRS["script"] + tag[name_end:]
        out.append(tag)
        out.append(body)

    # long tags ------------------------------------------------------------------------------------------

    def _gtag(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        """Stream a tag too long to buffer, tracking only what decides where it ends."""
        n = len(data)
        state = self._gtag_state
        i = pos
        while i < n:
            c = data[i]
            if state == _G_DQ or state == _G_SQ:
                j = data.find(b'"' if state == _G_DQ else b"'", i)
                if j == -1:
                    i = n
                    break
                state, i = _G_BEFORE, j + 1
                continue
            if state == _G_UNQ or state == _G_ATTR:
                j = (_GTAG_UNQ if state == _G_UNQ else _GTAG_ATTR).match(data, i).end()  # type: ignore[union-attr]
                if j > i:
                    i = j
                    continue
            if c == 0x3E:
                out.append(data[pos : i + 1])
                self._mode = self._gtag_then
                return i + 1
            ws = c in b"\t\n\f\r "
            if state == _G_NAME:
                if ws or c == 0x2F:
                    state = _G_BEFORE
            elif state == _G_BEFORE:
                if not ws and c != 0x2F:
                    state = _G_ATTR
            elif state == _G_ATTR:
                if ws:
                    state = _G_AFTER_ATTR
                elif c == 0x2F:
                    state = _G_BEFORE
                elif c == 0x3D:
                    state = _G_BEFORE_VALUE
            elif state == _G_AFTER_ATTR:
                if c == 0x3D:
                    state = _G_BEFORE_VALUE
                elif c == 0x2F:
                    state = _G_BEFORE
                elif not ws:
                    state = _G_ATTR
            elif state == _G_BEFORE_VALUE:
                if c == 0x22:
                    state = _G_DQ
                elif c == 0x27:
                    state = _G_SQ
                elif not ws:
                    state = _G_UNQ
            elif state == _G_UNQ and ws:
                state = _G_BEFORE
            i += 1
        out.append(data[pos:n])
        self._gtag_state = state
        raise _NeedMore(n)

    # bail-out -------------------------------------------------------------------------------------------

    def _inert_all(self, data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
        """After a failure: make every tracker-capable tag inert without reading it, cheaply."""
        n = len(data)
        end = n
        if not final:
            cut = data.rfind(b"<", max(pos, n - 8))
            if cut != -1:
                end = cut
        last = pos
        for m in _INERT_ALL.finditer(data, pos, end):
            out.append(data[last : m.end()])
            out.append(INERT_ATTRS[m.group(1).lower().decode()])
            last = m.end()
        out.append(data[last:end])
        return end


def _compact(parts: list[bytes | None]) -> tuple[bytes | None, ...]:
    """Join output parts into as few byte strings as possible, keeping the banner insertion point."""
    if _HEAD_MARK not in parts:
        return (b"".join(parts),)  # type: ignore[arg-type]
    i = parts.index(_HEAD_MARK)
    return (b"".join(parts[:i]), _HEAD_MARK, b"".join(parts[i + 1 :]))  # type: ignore[arg-type]


def make_inert(chunk: bytes) -> bytes:
    """Make every ``<script``/``<iframe``/``<img``/``<link`` of a chunk inert without reading it.

    Stateless, for callers that lost the rewriter; a tag cut by the chunk boundary is not seen (a
    ``HoldbackRewriter`` that fails handles that itself, keeping the tail for the next chunk).
    """
    return _INERT_ALL.sub(lambda m: m.group() + INERT_ATTRS[m.group(1).lower().decode()], chunk)
