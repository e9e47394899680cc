"""The tokenizer: a state machine over one buffer that reads only the candidates the scanner finds.

Every decision is taken on complete tokens; a token cut by the end of the buffer is reported with
:class:`~consent_gateway.html.states.NeedMore` and the driver keeps it until the next chunk completes it.
Limits are applied to token lengths, not to buffer states, so a whole page and the same page fed byte by
byte give identical output. The data state (tags, svg/math foreign content, where the banner block goes)
lives here; the states whose content is text are in ``text_states``.
"""

from __future__ import annotations

import html
import re

from ..catalog import Catalog
from ..urls import attribute_url, base_url
from .css import has_css_fetch_hint
from .decisions import DocumentHoldback, inert_all
from .head import HeadPlacement
from .holdback import first_value, parse_attributes, script_is_executable
from .scanner import (
    BREAKOUT,
    CONDITIONAL,
    DELIM,
    FOREIGN_MODES,
    HEAD_INTEGRATION_MODES,
    HEAD_MODES,
    HOLD_KINDS,
    HTML_MODES,
    INTEGRATION_MODES,
    INTEGRATION_POINTS,
    MARKUP_IN_SELECT,
    MIN_SCAN_BYTES,
    RAWTEXT,
    TOO_LONG_INERT,
    Modes,
    native_scanner_for,
    reads_like,
    tag_rest_end,
    text_end,
)
from .states import LongTag, Mode, NeedMore, ScriptState, TokenizerState
from .text_states import Out

#: nested svg/math elements tracked (deeper ones are read as if the outer ones were closed)
_MAX_FOREIGN_DEPTH = 64
_SCRIPT_END = re.compile(rb"</(?i:script)" + DELIM)
_GENERIC_NAME = re.compile(rb"</?[a-zA-Z][^\t\n\f\r />]*+")
# enum members as module constants: looking one up on its class costs ten times more in the hot loops
_DATA = Mode.DATA
_SCRIPT = Mode.SCRIPT
_RAWTEXT = Mode.RAWTEXT
_COMMENT = Mode.COMMENT
_BOGUS = Mode.BOGUS
_NOSCRIPT = Mode.NOSCRIPT
_LONG_TAG = Mode.LONG_TAG
_CDATA = Mode.CDATA
#: membership tests at every candidate tag: a set, not the ordered tuple the scanner's patterns are built from
_HOLD_KIND_SET = frozenset(HOLD_KINDS)
#: the svg/math elements whose content the tree builder reads as HTML: the end tag of one leads back
_INTEGRATION_NAMES = frozenset().union(*INTEGRATION_POINTS.values())
#: in svg/math content in doubt: self-closing start tags an HTML reading opens with text to read
_DOUBTFUL = frozenset(("script", "style"))
#: HTML elements never open when the tree builder reads a tag: void ones, and those whose text ends only at
#: their end tag (and svg/math, never HTML): an end tag of theirs in svg/math content closes no HTML element
_NEVER_OPEN = frozenset((
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "hr", "image", "img", "input", "keygen", "link",
    "meta", "param", "source", "track", "wbr", "script", "style", "title", "textarea", "xmp", "iframe", "noembed",
    "noframes", "noscript", "svg", "math",
))


#: in an svg/math script's content: its end tag, a CDATA section (text to the tree builder), or other markup
_FOREIGN_SCRIPT_MARKUP = re.compile(rb"<(?:(/(?i:script)[\t\n\f\r />])|(!\[CDATA\[)|[a-zA-Z!?/])")
#: what a "<" near the end of the bytes at hand may still turn into: the end tag or a CDATA section
_UNDECIDED_TAIL = len(b"<![CDATA[")
_FOREIGN_SCRIPT_MARKUP_FOUND = -2
#: a tag or comment, as far as the text between them goes (what an svg script's text is, roughly)
_TAG = re.compile(rb"<[a-zA-Z!?/][^>]*+>?")


def foreign_script_text(data: bytes, start: int, stop: int, final: bool) -> tuple[int, bytes]:
    """The text of an svg/math script whose content starts at ``start``, read within ``data[:stop]`` as the
    tree builder reads it: CDATA sections are text (a "</script>" in one does not end the script), character
    references are decoded. Returns (where its end tag starts, the text), (-1, the text so far) when the end
    is not within ``stop``, or (``_FOREIGN_SCRIPT_MARKUP_FOUND``, b"") when the content holds markup: a
    nested element (another script, whose end tag ends it and not this one), a comment, an end tag. The
    script's text is then its children's text around them, which this reading cannot tell.
    Unless ``final``, a "<" too near ``stop`` to be told apart is not read (the caller waits or cuts)."""
    parts: list[bytes] = []
    i = start
    while True:
        m = _FOREIGN_SCRIPT_MARKUP.search(data, i, stop)
        if (m is not None and not final and m.lastindex is None and data[m.start() + 1] in b"/!"
                and m.start() + _UNDECIDED_TAIL > stop):
            m = None  # "</scr" or "<![CDA" at the edge: the end tag or a CDATA section may follow
        if m is None:
            lt = data.find(b"<", max(i, stop - _UNDECIDED_TAIL), stop)
            edge = stop if final or lt < 0 else lt
            parts.append(_decoded(data[i:edge]))
            return -1, b"".join(parts)
        parts.append(_decoded(data[i : m.start()]))
        if m.group(1) is not None:
            return m.start(), b"".join(parts)
        if m.group(2) is None:
            return _FOREIGN_SCRIPT_MARKUP_FOUND, b""
        close = data.find(b"]]>", m.end(), stop)
        if close < 0:
            parts.append(data[m.end() : stop])
            return -1, b"".join(parts)
        parts.append(data[m.end() : close])
        i = close + 3


def _decoded(text: bytes) -> bytes:
    """Text with its character references decoded, as a script element's text holds it."""
    if b"&" not in text:
        return text
    return html.unescape(text.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


class Tokenizer(HeadPlacement):
    """The tokenizer state of one document, and the state machine that advances it over a buffer."""

    def __init__(self, catalog: Catalog, holdback: DocumentHoldback, max_buffer_bytes: int) -> None:
        self.max_buffer_bytes = max_buffer_bytes
        self.mode = Mode.PRESCAN
        self.head_pending = True
        #: set by the driver when the banner block would push the first KiB's <meta charset> out of that KiB
        #: (a browser only looks for it there): the block then goes right after the first charset-declaring
        #: <meta> in the data state (failing that: before </head> or <body>, or at the end)
        self.charset_ahead = False
        self.script_open = None
        self.base = None
        self._holdback = holdback
        self._native = native_scanner_for(catalog)
        self._hints = None
        #: within the current buffer: up to where the exact scanner runs, for which modes (see text_end)
        self._exact_until = -1
        self._exact_modes: Modes | None = None
        self._foreign: tuple[str, ...] = ()
        #: an end tag in svg/math content closed none of its open elements: the tree builder closes them all
        #: when an HTML element of that name is open below (``<template><svg></template>``), which is not
        #: tracked. Until the content ends, what either reading would run is held (``<script/>`` may be
        #: an HTML script, ``<style>`` HTML CSS text).
        self._foreign_doubt = False
        #: the svg/math elements open around the integration points entered (``<svg><title>``), outermost
        #: first: an end tag of an integration point's name leads back to them (``<svg><title></title><script>``
        #: is an svg script). Which integration point, if any, it closes is not tracked (``<svg><title><div>
        #: </title>`` is still HTML): the content after it is read in doubt, all of them open
        self._foreign_left: tuple[str, ...] = ()
        self._raw_name = ""
        self._comment_fresh = False
        self._script_state = ScriptState.DATA
        self._script_scan = 0
        self._long_tag_state = LongTag.NAME
        self._long_tag_then = Mode.DATA

    def state(self) -> TokenizerState:
        return TokenizerState(self.mode, self.head_pending, self.charset_ahead, self._foreign,
                              self._foreign_doubt and bool(self._foreign), self._foreign_left, self._raw_name,
                              self._comment_fresh, self._script_state, self.script_open, self._script_scan,
                              self._long_tag_state, self._long_tag_then, self.base)

    def restore(self, state: TokenizerState) -> None:
        (self.mode, self.head_pending, self.charset_ahead, self._foreign, self._foreign_doubt, self._foreign_left,
         self._raw_name, self._comment_fresh,
         self._script_state, self.script_open, self._script_scan, self._long_tag_state,
         self._long_tag_then, self.base) = state

    def has_unfinished_tokens(self) -> bool:
        """Whether the end of the document still has something to emit besides the pending bytes."""
        return self.script_open is not None or ((self.head_pending or self.charset_ahead) and self.mode == _DATA)

    def passes_unchanged(self, data: bytes, like: bytes = b"") -> bool:
        """Whether a run over ``data`` (not the document's end) would emit it as it is and leave the state as
        it is: the data state, and nothing but text and tags that do not matter up to its end — what a token
        of a personalised page read again usually is. Decided by the scanner the run starts with, so the
        driver may skip the run (its per-run cost is most of what a short span costs); ``like``: bytes of
        which ``scanner.reads_plain`` holds (the span's last variant), which ``data`` may read like."""
        if self.mode != _DATA or self.head_pending or self.charset_ahead or self._foreign or self._foreign_left:
            return False
        n = len(data)
        if self._native is not None and n >= MIN_SCAN_BYTES:
            return False  # the run would read it with the native hints: left to the run
        if like and reads_like(like, data):
            return True
        return text_end(data, 0, n, HTML_MODES, None)[0] == n

    def run(self, data: bytes, final: bool, out: Out) -> int:
        """Advance over ``data``; return where the unfinished token starts (``len(data)`` if none)."""
        if self._native is not None and len(data) >= MIN_SCAN_BYTES:
            self._hints = self._native.scan(data)
        self._exact_until = -1
        try:
            return self._run(data, final, out)
        finally:
            self._hints = None

    def _run(self, data: bytes, final: bool, out: Out) -> int:
        pos = 0
        n = len(data)
        while True:
            mode = self.mode
            if mode == Mode.PLAINTEXT:
                if pos < n:
                    out.append(data[pos:])
                return n
            if mode == Mode.BAILED:
                return inert_all(data, pos, final, out)
            try:
                pos = self._handle(mode, data, pos, final, out)
            except NeedMore as stop:
                return self._need_more(data, stop.pos, final, out)

    def _handle(self, mode: Mode, data: bytes, pos: int, final: bool, out: Out) -> int:
        """The state's handler over ``data`` from ``pos``, until the mode changes or the data ends. Chosen
        here, not from a dict of bound methods: that dict would tie every tokenizer into a reference cycle,
        left for the garbage collector after each page."""
        if mode == _DATA:
            return self._data(data, pos, final, out)
        if mode == _SCRIPT:
            return self._script(data, pos, final, out)
        if mode == _RAWTEXT:
            return self._rawtext(data, pos, final, out)
        if mode == _COMMENT:
            return self._comment(data, pos, final, out)
        if mode == _BOGUS:
            return self._bogus(data, pos, final, out)
        if mode == _NOSCRIPT:
            return self._noscript(data, pos, final, out)
        if mode == _LONG_TAG:
            return self._long_tag(data, pos, final, out)
        if mode == _CDATA:
            return self._cdata(data, pos, final, out)
        raise KeyError(mode)

    def _need_more(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        """The token at ``pos`` is unfinished. At the end of the document, emit it as it is."""
        n = len(data)
        if not final:
            return pos
        if self.mode == Mode.SCRIPT and self.script_open is not None:
            # an inline script cut by the end of the document: classify what there is
            self._emit_classified(data, pos, n, out)
            return n
        if (self.head_pending or self.charset_ahead) and self.mode == _DATA:
            self.head_pending = False
            self._place_deferred_mark(out)
        if pos < n:
            out.append(data[pos:])
        return n

    # data ------------------------------------------------------------------------------------------------

    def _data(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        if self.head_pending:
            return self._pre_head(data, pos, final, out)
        foreign = self._foreign
        ahead = self.charset_ahead
        left = self._foreign_left
        if foreign:
            modes: Modes = FOREIGN_MODES
        elif left:
            modes = HEAD_INTEGRATION_MODES if ahead else INTEGRATION_MODES
        else:
            modes = HEAD_MODES if ahead else HTML_MODES
        hints = None if foreign or ahead or left else self._hints
        n = len(data)
        exact_until = self._exact_until if self._exact_modes is modes else -1
        self._exact_modes = modes
        while True:
            end, exact_until = text_end(data, pos, n, modes, hints, exact_until)
            self._exact_until = exact_until
            if end > pos:
                out.append(data[pos:end])
                pos = end
            if pos >= n:
                raise NeedMore(pos)
            m = modes.cand.match(data, pos)
            if m is None:
                return self._not_a_candidate(data, pos, final, out)
            group = m.lastgroup
            if group == "tag" or group == "styled":
                if group == "styled" and tag_rest_end(data, m.end()) < 0:
                    return self._not_a_candidate(data, pos, final, out)  # cut or long: streamed as it is
                name = m.group(group).lower().decode("latin-1")
                pos = self._start_tag(data, pos, m.end(), name, final, out)
                if self.mode != _DATA or bool(self._foreign) != bool(foreign) or self.charset_ahead != ahead:
                    return pos
            elif group == "etag":
                pos = self._end_tag(data, pos, m.end(), m.group("etag").lower().decode("latin-1"), out)
                if self._foreign != foreign or self.charset_ahead != ahead:
                    return pos
            elif (group == "comment" or group == "cdata") and foreign and self._foreign_doubt:
                # In doubt, what hides its content in svg/math may start inside an HTML element's text (a
                # script's, an <xmp>'s) and hide tags after its end: read on, as markup
                out.append(data[pos : m.end()])
                pos = m.end()
            elif group == "comment":
                out.append(b"<!--")
                self.mode, self._comment_fresh = Mode.COMMENT, True
                return m.end()
            elif group == "cdata":
                out.append(data[pos : m.end()])
                self.mode = Mode.CDATA
                return m.end()
            else:  # bogus comment, doctype, processing instruction, "</" + non-letter
                return self._bogus_start(data, pos, final)

    def _not_a_candidate(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        """A "<" the candidate patterns do not read: a tag that does not matter, still incomplete."""
        generic = _GENERIC_NAME.match(data, pos)
        if not final and len(data) - pos > self.max_buffer_bytes and generic:
            name_end = generic.end()
            name = data[pos + 1 : name_end].lower().decode("latin-1")
            if name in CONDITIONAL and self._shows_conditional_word(data, pos, name_end, name):
                return self._too_long_tag(data, pos, name_end, name, out)
            if data[pos + 1] != 0x2F and self._may_hold_css(data, pos, name_end):
                return self._long_styled_tag(data, pos, name_end, out)
            if self._foreign and data[pos + 1] == 0x2F:
                self._foreign_doubt = True  # an end tag of a name too long to read: it may close an HTML one
            # nothing to read in it: stream it while tracking its end
            self.mode, self._long_tag_state, self._long_tag_then = Mode.LONG_TAG, LongTag.NAME, _DATA
            return pos
        raise NeedMore(pos)

    def _shows_conditional_word(self, data: bytes, pos: int, name_end: int, name: str) -> bool:
        """Whether a long <a>/<input>/<meta> shows its word (ping, image, refresh) in its first buffer's worth
        of bytes: decided on those bytes only, so that a whole tag and a cut one agree. A long <a> is taken
        as showing it whatever its bytes: a ping only ever reports a click, so an empty one written first
        costs the page nothing, where one past the first buffer would reach its tracker unread."""
        return name == "a" or CONDITIONAL[name] in data[name_end : pos + self.max_buffer_bytes].lower()

    def _bogus_start(self, data: bytes, pos: int, final: bool) -> int:
        if self._foreign and not final and data[pos + 1 : pos + 2] == b"!":
            rest = data[pos + 2 : pos + 9]
            if len(rest) < 7 and b"[CDATA["[: len(rest)] == rest:
                raise NeedMore(pos)  # might still become a CDATA section
        self.mode = Mode.BOGUS
        return pos

    def _end_tag(self, data: bytes, pos: int, after_name: int, closed: str, out: Out) -> int:
        """An end tag that may close svg/math content."""
        tag_end = tag_rest_end(data, after_name)
        if tag_end < 0:
            raise NeedMore(pos)
        if closed == "head" and not self._foreign:  # a candidate while the banner block waits for a <meta charset>
            self._place_deferred_mark(out)
        out.append(data[pos:tag_end])
        if closed in ("p", "br") and self._foreign:
            self._foreign = ()
        elif closed in self._foreign:
            self._foreign = self._foreign[: len(self._foreign) - 1 - self._foreign[::-1].index(closed)]
        elif self._foreign and closed not in _NEVER_OPEN:
            # ignored, or it closes an HTML element below the svg/math ones, and them with it
            self._foreign_doubt = True
        if closed in _INTEGRATION_NAMES and self._foreign_left:
            # it may close an integration point: back in the svg/math content around it, in doubt (it may also
            # be ignored, or close another one)
            self._foreign = (*self._foreign_left, *self._foreign)[-_MAX_FOREIGN_DEPTH:]
            self._foreign_left = ()
            self._foreign_doubt = True
        return tag_end

    def _landmark(self, tag: bytes, name: str, pos: int, end: int, out: Out) -> int:
        """<meta> or <body> while the banner block waits for a <meta charset>: it goes after the first
        charset-declaring <meta>, and at the latest right before <body>."""
        if name == "body":
            self._place_deferred_mark(out)
        self._emit_start_tag(tag, name, pos, out)
        if name == "meta" and b"charset" in tag.lower():
            self._place_deferred_mark(out)
        self.mode = self._mode_after(name, tag)
        return end

    # start tags ------------------------------------------------------------------------------------------

    def _start_tag(self, data: bytes, pos: int, name_end: int, name: str, final: bool, out: Out) -> int:
        """Handle a complete candidate start tag at ``pos``; return where scanning resumes."""
        end = tag_rest_end(data, name_end)
        if end < 0:
            return self._unfinished_start_tag(data, pos, name_end, name, out)
        if end - pos > self.max_buffer_bytes:  # as if the buffer had cut it: the same at every chunking
            return self._start_tag_too_long(data, pos, name_end, name, out)
        tag = data[pos:end]
        if self._foreign:
            if self._foreign_start_tag(tag, name, pos, out):
                return end
            if self._foreign and name == "script":
                return self._foreign_script(data, pos, end, final, out)
        if name == "script":
            return self._script_start(tag, pos, end, out)
        if self.charset_ahead and name in ("meta", "body"):
            return self._landmark(tag, name, pos, end, out)
        self._emit_start_tag(tag, name, pos, out)
        self.mode = self._mode_after(name, tag)
        return end

    def _emit_start_tag(self, tag: bytes, name: str, pos: int, out: Out) -> None:
        if name in _HOLD_KIND_SET:
            out.append(self._hold(tag, self._kind(name), pos))
            return
        if name == "base" and self.base is None and not self._foreign:
            href = first_value(parse_attributes(tag)[1], b"href")
            if href is not None:  # only the first <base> with an href counts
                self.base = base_url(attribute_url(href))
        out.append(self._styled(tag))

    def _kind(self, name: str) -> str:
        """The holdback kind of a tag name here: svg's own script and image; HTML reads <image> as <img>."""
        if name == "image":
            return "svg:image" if self._foreign else "img"
        return "svg:script" if name == "script" and self._foreign else name

    def _unfinished_start_tag(self, data: bytes, pos: int, name_end: int, name: str, out: Out) -> int:
        if len(data) - pos <= self.max_buffer_bytes:
            raise NeedMore(pos)
        return self._start_tag_too_long(data, pos, name_end, name, out)

    def _start_tag_too_long(self, data: bytes, pos: int, name_end: int, name: str, out: Out) -> int:
        """A candidate start tag longer than the buffer, read or not: inert when it can fetch, else streamed
        unread (its attributes are never looked at, as where a chunk boundary cut it)."""
        if name in TOO_LONG_INERT or (name in CONDITIONAL and self._shows_conditional_word(data, pos, name_end, name)):
            return self._too_long_tag(data, pos, name_end, name, out)
        if self._foreign and name in BREAKOUT:
            self._foreign = ()
        then = self._mode_after(name, None)
        if self._may_hold_css(data, pos, name_end):
            return self._long_styled_tag(data, pos, name_end, out, then)
        out.append(data[pos:name_end])
        self.mode, self._long_tag_state, self._long_tag_then = Mode.LONG_TAG, LongTag.BEFORE_ATTR, then
        return name_end

    def _may_hold_css(self, data: bytes, pos: int, name_end: int) -> bool:
        """Whether a start tag too long to read may carry a CSS url() in a style attribute, decided on its first
        buffer's worth of bytes ("style" and a "(" or what encodes one), so that a whole tag and a cut one
        agree (a tag whose first "(" comes later is streamed unread: see the README's limits)."""
        first = data[name_end : pos + self.max_buffer_bytes]
        return has_css_fetch_hint(first) and b"style" in first.lower()

    def _long_styled_tag(self, data: bytes, pos: int, name_end: int, out: Out, then: Mode = _DATA) -> int:
        """A start tag too long to read that may carry CSS: streamed unread, its style attribute shadowed by
        an empty one written first (first duplicate wins)."""
        out.append(data[pos:name_end])
        out.append(self._holdback.inert_attributes(None, "tag_too_long"))
        self.mode, self._long_tag_state, self._long_tag_then = Mode.LONG_TAG, LongTag.BEFORE_ATTR, then
        return name_end

    def _foreign_start_tag(self, tag: bytes, name: str, pos: int, out: Out) -> bool:
        """A start tag inside svg/math; True when it is emitted already."""
        if name in INTEGRATION_POINTS[self._foreign[-1]] and not tag.endswith(b"/>"):
            self._foreign_left = (*self._foreign_left, *self._foreign)[-_MAX_FOREIGN_DEPTH:]
            self._foreign = ()
            out.append(tag)
            return True  # its content is markup with HTML rules (an svg <title> is not RCDATA)
        if name in BREAKOUT:
            self._foreign = ()  # an HTML element closes every open svg/math element
            return False
        if tag.endswith(b"/>") and name not in ("svg", "math") and not (self._foreign_doubt and name in _DOUBTFUL):
            # self-closing is honoured in foreign content: no text follows
            out.append(self._hold(tag, self._kind(name), pos) if name in _HOLD_KIND_SET else self._styled(tag))
            return True
        return False

    def _script_start(self, tag: bytes, pos: int, end: int, out: Out) -> int:
        _, attrs = parse_attributes(tag)
        self._script_state = ScriptState.DATA
        self._script_scan = 0
        self.mode = Mode.SCRIPT
        if script_is_executable(attrs) and not any(a.name == b"src" for a in attrs):
            self.script_open = tag  # classified once its body is complete
        else:
            out.append(self._hold(tag, "script", pos))
        return end

    def _foreign_script(self, data: bytes, pos: int, end: int, final: bool, out: Out) -> int:
        """An svg/math <script>: its content is markup to the parser (scanned as such), but it runs."""
        out.append(self._foreign_script_tag(data, pos, end, final))
        return end

    def _foreign_script_tag(self, data: bytes, pos: int, end: int, final: bool) -> bytes:
        """The start tag of an svg/math script at ``pos``, classified by its text (``foreign_script_text``) up
        to its end tag. The end tag is looked for only within ``max_buffer_bytes`` of the start tag: how far
        the buffer reaches must not change the decision. Content holding markup is classified on that much of
        it, as written and without its tags, like the first part of a long script."""
        limit = pos + self.max_buffer_bytes
        n = len(data)
        stop = min(n, limit)
        close, text = foreign_script_text(data, end, stop, final and n <= limit)
        if close < 0 and n < limit and not final:
            raise NeedMore(pos)
        tag = data[pos:end]
        if close == _FOREIGN_SCRIPT_MARKUP_FOUND:
            written = data[end:stop]
            return self._holdback.inline_script(tag, written + b"\n" + _TAG.sub(b"", written), kind="svg:script",
                                                base=self.base or "", too_long=True)
        written = data[end : close if close >= 0 else stop]
        if text != written:
            text += b"\n" + written  # as written too: fail closed
        return self._holdback.inline_script(tag, text, kind="svg:script", base=self.base or "",
                                            too_long=close < 0 and (n > limit or not final))

    def _mode_after(self, name: str, tag: bytes | None) -> Mode:
        """The mode after a start tag (``tag`` is None for a long one streamed unread)."""
        if name in ("svg", "math"):
            if tag is None or not tag.endswith(b"/>"):
                if not self._foreign:
                    self._foreign_doubt = False
                self._foreign = (*self._foreign, name)[-_MAX_FOREIGN_DEPTH:]
            return _DATA
        if self._foreign:
            if name == "style" and (self._foreign_doubt or self._foreign[-1] == "svg"):
                # an svg <style> applies its text as CSS, and so does an HTML one to a tree builder that left
                # the svg/math content: read both ways, as in a <select> (tags held, CSS fetches held)
                self._raw_name = name
                return Mode.NOSCRIPT
            return _DATA
        if name == "script":
            self.script_open, self._script_state, self._script_scan = None, ScriptState.DATA, 0
            return Mode.SCRIPT
        if name == "noscript" or name in MARKUP_IN_SELECT:
            # In a <select>, a browser ignores <xmp>, <style>, <plaintext>…: what follows is markup
            # (<select><xmp><script src=…> runs). Outside, it is text. Read both ways, like <noscript>:
            # tracker tags held (and <plaintext> ends at a </plaintext> only here: holding more, never less).
            self._raw_name = name
            return Mode.NOSCRIPT
        if name in RAWTEXT:
            self._raw_name = name
            return Mode.RAWTEXT
        return _DATA

    def _too_long_tag(self, data: bytes, pos: int, name_end: int, name: str, out: Out) -> int:
        """Fail closed on a tracker-capable tag too long to read: make it inert, stream the rest of it."""
        out.append(data[pos:name_end])
        out.append(self._holdback.inert_attributes(name, "tag_too_long"))
        if self._foreign and name in BREAKOUT:  # <img>, <meta>, <embed>… end svg/math content
            self._foreign = ()
        then = self._mode_after(name, None)
        self.mode, self._long_tag_state, self._long_tag_then = Mode.LONG_TAG, LongTag.BEFORE_ATTR, then
        return name_end

