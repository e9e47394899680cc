"""The scanner: finds *candidates* (the few tokens the tokenizer must read) and skips everything else in C.

Two paths behind one interface, :func:`text_end`:

* **Pure Python.** One compiled regex per flavour of data state (``Modes.loose``) consumes text and every
  tag that cannot matter; where a quoted attribute value holds "<" or ">", the exact ``Modes.skip`` (the
  tokenizer's quoting rules) takes over, so that a ``<!--`` or ``<script`` inside an attribute value is never
  mistaken for markup.
* **Hyperscan (optional).** One pass over a buffer finds every candidate token, catalog host/path string,
  inline-script signature and quoted attribute value holding "<" or ">" (a :class:`BufferScan`). Everything
  it reports is a *hint*: the tokenizer confirms each one with the code the pure path runs, and only skips
  work where the scan proves there is nothing to find. So both paths give the same bytes (the tests run both).
  On the compiled core, a C finder (``_attrs.c``) reports the candidates instead: the same offsets, without
  hyperscan's start-of-match tracking (which had made them the slowest part of its scan).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any

from ..compiled import native_function
from .holdback import HOLD_TAG_NAMES

_hs: Any
try:
    import hyperscan as _hs
except ImportError:  # pragma: no cover - the pure-Python path is tested with use_accelerators(False)
    _hs = None

#: below this many bytes a buffer is not worth a native scan (the call costs a few microseconds)
MIN_SCAN_BYTES = 2048

#: the rest of a tag after its name, up to and including ">", with the HTML tokenizer's attribute rules.
#: An unclosed quoted value makes the match fail (more bytes needed) instead of matching short.
TAG_REST_SRC = (
    rb"(?:[\t\n\f\r /]++|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)|(?![\t\n\f\r ]*+=)))*+>"
)
TAG_REST = re.compile(TAG_REST_SRC)


#: the C reader of a tag's rest built beside the compiled core (``_attrs.c``); None on the pure path
_native_tag_rest_end: Callable[[bytes, int, int], int] | None = native_function("tag_rest_end")


def tag_rest_end(data: bytes, pos: int, endpos: int = -1) -> int:
    """Where ``TAG_REST`` matched at ``pos`` (within ``data[:endpos]``) ends, after the tag's ">"; -1 where it
    does not match (the tag is not complete there)."""
    if endpos < 0:
        endpos = len(data)
    if _native_tag_rest_end is not None:
        return _native_tag_rest_end(data, pos, endpos)
    m = TAG_REST.match(data, pos, endpos)
    return -1 if m is None else m.end()

#: the common well-formed subset of a tag (quoted values, plain unquoted values, bare names), which `re` runs
#: several times faster; whenever it matches, the tokenizer reads the tag the same way, and when it does
#: not, the exact TAG_REST_SRC is tried
_FAST_TAG_SRC = (
    rb"[^\t\n\f\r />\"'=]*+(?:[\t\n\f\r ]++[^\t\n\f\r />\"'=]++"
    rb"(?:=(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'=]++))?+)*+[\t\n\f\r /]*+>"
)
DELIM = rb"(?=[\t\n\f\r />])"
#: a quoted attribute value holding "<" or ">" (a quote opens a value only after "="): where a tag does not
#: end at its first ">", or a "<" is not markup
_QUOTED_LT_GT = re.compile(rb"=[\t\n\f\r ]*+(?:\"[^\"<>]*+[<>]|'[^'<>]*+[<>])")

#: elements whose content is raw text or escapable raw text (iframe content is never rendered as markup)
RAWTEXT = ("style", "textarea", "title", "xmp", "noembed", "noframes", "iframe")
#: raw-text elements a <select> ignores (its content is then markup): all but <textarea>, which closes it
MARKUP_IN_SELECT = frozenset((*RAWTEXT, "plaintext")) - {"textarea"}
#: the elements that can fetch or run something (what a hold-back decision is asked about)
HOLD_KINDS = HOLD_TAG_NAMES
#: ...but some of them only matter with one attribute value and are among the most common tags of a page:
#: they are candidates only when that word follows before the next "<" (a superset of the tags that matter,
#: found in C like the others: <a ping>, <meta http-equiv=refresh>, <input type=image>)
CONDITIONAL = {"a": b"ping", "meta": b"refresh", "input": b"image",
               "table": b"background", "td": b"background", "th": b"background"}


def _word_ahead(word: bytes) -> bytes:
    """After a tag name: a delimiter, then ``word`` (any case) before the next "<", written as an unrolled
    loop of possessive runs (``[^<p]*+(?:p(?!ing)[^<p]*+)*+ping``): `re` runs it several times faster than
    ``[^<]*?ping`` at every such tag."""
    first = word[:1].lower() + word[:1].upper()
    rest = b"".join(b"[" + bytes([c]).lower() + bytes([c]).upper() + b"]" for c in word[1:])

    def before(stop: bytes) -> bytes:
        run = b"[^" + stop + first + b"]*+"
        return run + b"(?:[" + first + b"](?!" + rest + b")" + run + b")*+[" + first + b"]" + rest

    # before the next "<", or before the next ">": a quoted value may hold a "<" ("<a href='<x' ping=…>")
    return rb"[\t\n\f\r /](?:" + before(b"<") + b"|" + before(b">") + b")"


_CONDITIONAL_AHEAD = {name: _word_ahead(word) for name, word in CONDITIONAL.items()}
#: the hold kinds made inert when too long to read (not the conditional ones: whether they are candidates
#: depends on the bytes at hand, and one streamed unread must give the same bytes at every chunking)
TOO_LONG_INERT = frozenset(HOLD_KINDS) - set(CONDITIONAL)
#: start tags the HTML data state stops at (besides the conditional ones), and end tags (only foreign
#: content's ends matter there)
HTML_STARTS = tuple(dict.fromkeys((
    *(name for name in HOLD_KINDS if name not in CONDITIONAL), "base", "head", "noscript", "style", "textarea",
    "title", "xmp", "noembed", "noframes", "plaintext", "svg", "math",
)))
HTML_ENDS = ("svg", "math")
#: HTML start tags that end foreign content (the tree builder's breakout list; <font> only with attributes)
_BREAKOUT = ("b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em", "embed", "h1",
             "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li", "listing", "menu", "meta", "nobr", "ol",
             "p", "pre", "ruby", "s", "small", "span", "strong", "strike", "sub", "sup", "table", "tt", "u", "ul",
             "var")
BREAKOUT = frozenset(_BREAKOUT)
#: svg/math elements whose content the parser reads with HTML rules. Their end tag leads back to the svg/math
#: content (the tokenizer then reads it in doubt: see Tokenizer)
_INTEGRATION_NAMES = ("foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext", "annotation-xml")
INTEGRATION_POINTS = {"svg": frozenset(("foreignobject", "desc", "title")),
                      "math": frozenset(("mi", "mo", "mn", "ms", "mtext", "annotation-xml"))}
#: every hold kind too, though svg/math have no such elements: where the tokenizer's view of foreign content
#: and the tree builder's differ ("<math></a>" ends it for the tree builder), they are HTML elements, and
#: over-matching fails closed
_FOREIGN_STARTS = tuple(dict.fromkeys((
    *(name for name in HOLD_KINDS if name not in CONDITIONAL), "image", "svg", "math", "style", *_BREAKOUT,
    *_INTEGRATION_NAMES,
)))


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


def names_re(names: tuple[str, ...]) -> bytes:
    """A case-insensitive alternation of tag names, for patterns that are not run at every "<"."""
    return b"(?i:" + b"|".join(n.encode() for n in names) + b")"


class Modes:
    """The compiled scanners of one flavour of data state (HTML, or svg/math foreign content)."""

    def __init__(self, starts: tuple[str, ...], ends: tuple[str, ...], *, cdata: bool,
                 conditional: dict[str, bytes] | None = None, any_end: bool = False) -> None:
        start_re = _trie(starts) + DELIM
        # a conditional name: the name, then its lookahead (which starts with the delimiter)
        cond_re = b"".join(
            b"|(?i:" + name.encode() + b")(?=" + ahead + b")" for name, ahead in (conditional or {}).items()
        )
        # ...and without it: the exact scanner (`skip`, run where a quoted value holds "<" or ">", which the
        # lookaheads cannot see past) stops at every such tag, and `cand` reads them all
        bare_re = b"".join(b"|(?i:" + name.encode() + b")" + DELIM for name in (conditional or {}))
        exact_start_re = b"(?:" + start_re + bare_re + b")"
        if cond_re:
            start_re = b"(?:" + start_re + cond_re + b")"
        end_re = _trie(ends) + DELIM if ends else None
        any_tag = b"(?:" + _FAST_TAG_SRC + rb"|[^\t\n\f\r />]*+" + TAG_REST_SRC + b")"
        # a start tag that may hold a CSS url() (a "(" or "&") is a candidate: the same tag with neither
        styleless_tag = any_tag.replace(b"[^", b"[^(&")
        generic_start = b"<(?!" + exact_start_re + b")[a-zA-Z]" + styleless_tag
        # ``any_end``: every end tag is a candidate (none is skipped as one that does not matter)
        generic_end = b"|</" + (b"(?!" + end_re + b")" if end_re else b"") + b"[a-zA-Z]" + any_tag
        generic_end = b"" if any_end else generic_end
        text_lt = rb"<(?=[^a-zA-Z!?/])"
        self.skip = re.compile(rb"(?:[^<]++|" + generic_start + generic_end + b"|" + text_lt + b")*+")
        # The same, ending every tag at its first ">": several times faster, and the same as `skip` unless a
        # quoted attribute value holds a "<" or ">" — which `_QUOTED_LT_GT` detects, sending the region to `skip`.
        loose_tag = rb"[^>]*+>"
        # ...and in the loose scan, one with a "(", "&#" or "&lpar;" (what a url( in a style needs)
        styleless_loose_tag = rb"[^>(&]*+(?:&(?!#|lpar;)[^>(&]*+)*+>"
        self.loose = re.compile(
            rb"(?:[^<]++|<(?!" + start_re + rb")[a-zA-Z]" + styleless_loose_tag
            + (b"" if any_end else b"|</" + (b"(?!" + end_re + b")" if end_re else b"") + b"[a-zA-Z]" + loose_tag)
            + b"|" + text_lt + b")*+"
        )
        alternatives = [b"(?P<tag>" + names_re(starts) + DELIM + bare_re + b")"]
        if any_end:
            alternatives.append(rb"/(?P<etag>[a-zA-Z][^\t\n\f\r />]*+)" + DELIM)
        elif end_re:
            alternatives.append(b"/(?P<etag>" + names_re(ends) + b")" + DELIM)
        #: any other start tag the scanners stop at: one that may carry a CSS url() in its style
        alternatives.append(rb"(?P<styled>[a-zA-Z][^\t\n\f\r />]*+)")
        alternatives.append(b"(?P<comment>!--)")
        if cdata:
            alternatives.append(rb"(?P<cdata>!\[CDATA\[)")
        alternatives.append(rb"(?P<bogus>![^-]|!-[^-]|\?|/[^a-zA-Z])")
        #: what the candidate at a "<" is (a named group per kind)
        self.cand = re.compile(b"<(?:" + b"|".join(alternatives) + b")")


HTML_MODES = Modes(HTML_STARTS, HTML_ENDS, cdata=False, conditional=_CONDITIONAL_AHEAD)
_HEAD_CONDITIONAL = {name: ahead for name, ahead in _CONDITIONAL_AHEAD.items() if name != "meta"}
#: while the banner block waits for a <meta charset> in the first KiB: every <meta>, <body> and </head> too
HEAD_MODES = Modes(tuple(dict.fromkeys((*HTML_STARTS, "meta", "body"))), (*HTML_ENDS, "head"), cdata=False,
                   conditional=_HEAD_CONDITIONAL)
#: the same inside an svg/math integration point: the end tag of one leads back to the svg/math content
INTEGRATION_MODES = Modes(HTML_STARTS, (*HTML_ENDS, *_INTEGRATION_NAMES), cdata=False, conditional=_CONDITIONAL_AHEAD)
HEAD_INTEGRATION_MODES = Modes(tuple(dict.fromkeys((*HTML_STARTS, "meta", "body"))),
                               (*HTML_ENDS, "head", *_INTEGRATION_NAMES), cdata=False,
                               conditional=_HEAD_CONDITIONAL)
# raw-text elements are not raw text in svg/math: their content is markup there. Every end tag is read: one
# that closes no open svg/math element may close an HTML element below them, and so the foreign content
FOREIGN_MODES = Modes(_FOREIGN_STARTS, (), cdata=True,
                      conditional={name: ahead for name, ahead in _CONDITIONAL_AHEAD.items() if name != "meta"},
                      any_end=True)


def text_end(data: bytes, pos: int, n: int, modes: Modes, hints: BufferScan | None,
             exact_until: int = -1) -> tuple[int, int]:
    """Where the text (and the tags that do not matter) starting at ``pos`` ends: the next candidate, or
    ``n``; and how far the exact scanner is to be used from now on in this buffer (pass it back in).

    The native hints answer when they prove the text before their next candidate is plain (no quoted value
    holds "<" or ">" and every "<" in it is closed): exactly where the regexes would stop. Where a quoted
    value holds "<" or ">", the exact ``skip`` decides; it stops at every conditional name (``<a``, ``<td``…)
    the loose scan reads past, so the region the loose scan covered is remembered (``exact_until``) and not
    scanned again from each of those stops: that made a page of links quadratic."""
    if hints is not None:
        p = hints.next_candidate(pos, n)
        if not hints.quoted_between(pos, p + 1):
            last_lt = data.rfind(b"<", pos, p)
            if last_lt == -1 or data.find(b">", last_lt, p) != -1:
                return p, exact_until
    if pos < exact_until:
        return modes.skip.match(data, pos).end(), exact_until  # type: ignore[union-attr]
    end: int = modes.loose.match(data, pos).end()  # type: ignore[union-attr]  # matches the empty string
    if end > pos and _QUOTED_LT_GT.search(data, pos, end + 1) is not None:
        return modes.skip.match(data, pos).end(), end  # type: ignore[union-attr]
    return end, exact_until


#: the C reader telling a span that reads like its last variant (``_attrs.c``); None on the pure path
_native_reads_like: Callable[[bytes, bytes], bool] | None = native_function("reads_like")


def reads_plain(data: bytes) -> bool:
    """Whether the HTML data state's loose scan reads all of ``data`` as text and tags that do not matter, with
    no quoted value holding "<" or ">" (which would send it to the exact scan)."""
    return HTML_MODES.loose.match(data).end() == len(data) and _QUOTED_LT_GT.search(data) is None  # type: ignore[union-attr]


def reads_like(plain: bytes, data: bytes) -> bool:
    """Whether ``data`` reads as ``plain`` (of which reads_plain holds) does, known from how they differ: in one
    run of letters and digits (a token) on both sides, not in a tag's name nor right after "<" or "</",
    without an "&" in the five bytes before it (``&lpar;``) and making no word of a conditional tag
    (``CONDITIONAL``: ping, refresh, image, background, in any case) within reach of it. Then every "<", ">",
    "(", "&", quote and tag name is where it was, in the same order: each tag that did not matter still does
    not, and reads_plain holds of ``data`` too. Read in C (``_attrs.c``), a few hundred instructions against
    a scan's thousands; False on the pure path, where the scan decides."""
    native = _native_reads_like
    return native is not None and native(plain, data)


# -- the native path --------------------------------------------------------------------------------------

_CANDIDATE, _QUOTED, _NEEDLE, _SIGNATURE = 0, 1, 2, 3
_native_enabled = True


class BufferScan:
    """What one native scan found in one buffer, as sorted offsets."""

    __slots__ = ("candidates", "quoted_ends", "needles", "signatures")

    def __init__(self) -> None:
        self.candidates: list[int] = []  # start offsets of candidate tokens
        self.quoted_ends: list[int] = []  # end offsets of quoted values holding "<" or ">", and of "style…("
        self.needles: list[tuple[int, int]] = []  # (start, end) of catalog host/path strings, any case
        self.signatures: list[tuple[int, int]] = []  # (start, end) of inline signatures

    def next_candidate(self, pos: int, default: int) -> int:
        i = bisect_left(self.candidates, pos)
        return self.candidates[i] if i < len(self.candidates) else default

    def quoted_between(self, start: int, end: int) -> bool:
        """A quoted value with "<" or ">" ending in (start, end]."""
        i = bisect_right(self.quoted_ends, start)
        return i < len(self.quoted_ends) and self.quoted_ends[i] <= end

    @staticmethod
    def _any_within(spans: list[tuple[int, int]], start: int, end: int) -> bool:
        i = bisect_left(spans, (start, -1))
        while i < len(spans) and spans[i][0] < end:
            if spans[i][1] <= end:
                return True
            i += 1
        return False

    def needle_within(self, start: int, end: int) -> bool:
        return self._any_within(self.needles, start, end)

    def signature_within(self, start: int, end: int) -> bool:
        return self._any_within(self.signatures, start, end)

    def signatures_in_order(self, start: int, end: int) -> list[tuple[int, int]]:
        """The signature matches inside [start, end) that a left-to-right search for the longest signature
        at each position finds (leftmost, then longest, never overlapping): what ``re.finditer`` finds."""
        spans = self.signatures
        i = bisect_left(spans, (start, -1))
        inside = []
        while i < len(spans) and spans[i][0] < end:
            if spans[i][1] <= end:
                inside.append(spans[i])
            i += 1
        inside.sort(key=lambda span: (span[0], span[0] - span[1]))
        chosen, last_end = [], start
        for span in inside:
            if span[0] >= last_end:
                chosen.append(span)
                last_end = span[1]
        return chosen


def candidate_pattern(start_names: tuple[str, ...], end_names: tuple[str, ...],
                      conditional: dict[str, bytes]) -> bytes:
    """Where a candidate token starts (matched in any case): a start tag of ``start_names``, an end tag of
    ``end_names``, a comment, doctype, processing instruction or bogus comment, and a conditional name whose
    word follows before the next "<" or the next ">" (what the ``Modes`` lookaheads accept)."""
    return (
        b"<(?:" + b"|".join(n.encode() for n in start_names) + rb")[\t\n\f\r />]"
        + b"|</(?:" + b"|".join(n.encode() for n in end_names) + rb")[\t\n\f\r />]"
        + rb"|<[!?]|</[^a-zA-Z]"
        + b"".join(b"|<" + name.encode() + rb"[\t\n\f\r /][^" + stop + b"]*" + word
                   for name, word in conditional.items() for stop in (b"<", b">"))
    )


#: the C finder of candidate starts built beside the compiled core (``_attrs.c``); None on the pure path,
#: where hyperscan finds them with the other strings (its start-of-match tracking made that the slow part
#: of the scan: the C finder is a memchr for "<" and a look at the name after it)
_native_candidate_starts: Callable[[bytes, tuple[bytes, ...], tuple[bytes, ...],
                                    tuple[tuple[bytes, bytes], ...]], list[int]] | None = native_function(
    "candidate_starts")


class NativeScanner:
    """A compiled hyperscan database for one catalog and one set of candidate names (and, on the compiled
    core, the C candidate finder's arguments)."""

    def __init__(self, start_names: tuple[str, ...], end_names: tuple[str, ...], needles: list[bytes],
                 signatures: list[bytes], conditional: dict[str, bytes] | None = None) -> None:
        if _hs is None:
            raise RuntimeError("hyperscan is not installed")
        conditional = conditional or {}
        self._names = (tuple(n.encode() for n in start_names), tuple(n.encode() for n in end_names),
                       tuple((name.encode(), word.lower()) for name, word in conditional.items()))
        self._c_candidates = _native_candidate_starts is not None
        quoted = rb"""=[\t\n\f\r ]*(?:"[^"<>]*[<>]|'[^'<>]*[<>])"""
        # "style", then a "(" (or what may encode one) before the next "<" or ">": a start tag that may carry a
        # CSS url() (Modes.loose stops at it). Reported like a quoted "<": the text around it is read by the
        # regexes, a pattern with a literal start that keeps this scan fast (a tag's own start would not)
        styled = rb"style[^<>]*(?:\(|&#|&lpar;)"
        expressions = [quoted, styled]
        flags = [0, _hs.HS_FLAG_CASELESS]
        self._kinds = [_QUOTED, _QUOTED]
        self._lengths = [0, 0]
        if not self._c_candidates:
            expressions.append(candidate_pattern(start_names, end_names, conditional))
            flags.append(_hs.HS_FLAG_CASELESS | _hs.HS_FLAG_SOM_LEFTMOST)
            self._kinds.append(_CANDIDATE)
            self._lengths.append(0)
        for needle in needles:
            expressions.append(re.escape(needle))
            flags.append(_hs.HS_FLAG_CASELESS)
            self._kinds.append(_NEEDLE)
            self._lengths.append(len(needle))
        for signature in signatures:
            expressions.append(re.escape(signature))
            flags.append(0)
            self._kinds.append(_SIGNATURE)
            self._lengths.append(len(signature))
        self._db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        self._db.compile(expressions=expressions, ids=list(range(len(expressions))), elements=len(expressions),
                         flags=flags)

    def scan(self, data: bytes) -> BufferScan:
        result = BufferScan()
        kinds, lengths = self._kinds, self._lengths
        candidates, quoted = result.candidates, result.quoted_ends
        needles, signatures = result.needles, result.signatures

        def on_match(ident: int, start: int, end: int, _flags: int, _context: Any) -> None:
            kind = kinds[ident]
            if kind == _CANDIDATE:
                candidates.append(start)
            elif kind == _QUOTED:
                quoted.append(end)
            elif kind == _NEEDLE:
                needles.append((end - lengths[ident], end))
            else:
                signatures.append((end - lengths[ident], end))

        self._db.scan(data, match_event_handler=on_match)
        if _native_candidate_starts is not None and self._c_candidates:
            result.candidates = _native_candidate_starts(data, *self._names)  # ascending
        # matches arrive in order of their end; the candidates and spans are wanted by start
        candidates.sort()
        needles.sort()
        signatures.sort()
        return result


def native_scanner_for(catalog: Any, start_names: tuple[str, ...] = HTML_STARTS,
                       end_names: tuple[str, ...] = HTML_ENDS,
                       conditional: dict[str, bytes] = CONDITIONAL) -> NativeScanner | None:
    """The native scanner of a catalog (compiled once per catalog), or None without hyperscan or when the
    accelerators are switched off."""
    if _hs is None or not _native_enabled:
        return None
    scanner: NativeScanner | None = getattr(catalog, "_hs_scanner", None)
    if scanner is None:
        needles, signatures = catalog.scan_strings()
        scanner = NativeScanner(start_names, end_names, needles, signatures, conditional)
        catalog._hs_scanner = scanner
    return scanner


def use_native(enabled: bool) -> None:
    """Switch the native path on or off for scanners asked for from now on."""
    global _native_enabled
    _native_enabled = enabled
