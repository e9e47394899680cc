"""The tokenizer states whose content is text to the tokenizer: comments, bogus comments, CDATA, raw text,
``<noscript>``, script data and a long tag streamed unread. Each finds where its content ends; only
``<noscript>`` (markup to a browser without scripts) and an inline script (classified on its body) ask the
holdback layer anything.
"""

from __future__ import annotations

import re

from .css import OPENING_MAX_BYTES, hold_back_css
from .decisions import DocumentHoldback, may_hold_css
from .scanner import DELIM, HOLD_KINDS, RAWTEXT, BufferScan, names_re, tag_rest_end
from .states import (
    SCRIPT_DATA_TOKENS,
    SCRIPT_TOKENS,
    LongTag,
    Mode,
    NeedMore,
    ScriptState,
    script_escape_step,
    stream_long_tag,
)

_COMMENT_END = re.compile(rb"--!?>")
_RAWTEXT_END = {
    name: re.compile(b"</(?i:" + name.encode() + b")" + DELIM) for name in (*RAWTEXT, "noscript", "plaintext")
}
_NOSCRIPT_CAND = re.compile(b"<(?P<tag>" + names_re(HOLD_KINDS) + b")" + DELIM)
#: what the end of a buffer may hold of a candidate start tag ("<" + the longest name + a delimiter) or of
#: the end tag: kept for the next chunk, so a tag cut by the chunking is found whole
_NOSCRIPT_TAIL = max(len(name) for name in HOLD_KINDS) + 2
#: ...and in a <style> in svg/math content, whose content is markup there: any start tag too (a <span> ends
#: the svg content, and its style attribute applies), up to a name length that keeps the tail kept short
_FOREIGN_STYLE_CAND = re.compile(
    b"<(?:(?P<tag>" + names_re(HOLD_KINDS) + b")" + DELIM + rb"|(?P<styled>[a-zA-Z][^\t\n\f\r />]{0,15})" + DELIM + b")"
)
_FOREIGN_STYLE_TAIL = 18
#: characters that make a URL in a tag differ from its bytes (entities, percent-escapes, stripped whitespace)
_ESCAPES = re.compile(rb"[&%\\\t\n\r]")
_DATA = Mode.DATA
_S_DATA, _S_DOUBLE = ScriptState.DATA, ScriptState.DOUBLE_ESCAPED

#: the output of a run: bytes, and None where the banner block goes
Out = list[bytes | None]


class TextStates:
    """The text-content states of :class:`~consent_gateway.html.tokenizer.Tokenizer` (its base class)."""

    max_buffer_bytes: int
    mode: Mode
    script_open: bytes | None
    base: str | None
    _holdback: DocumentHoldback
    _hints: BufferScan | None
    _comment_fresh: bool
    _raw_name: str
    _foreign: tuple[str, ...]
    _script_state: ScriptState
    _script_scan: int
    _long_tag_state: LongTag
    _long_tag_then: Mode

    def _hold(self, tag: bytes, kind: str, at: int = -1) -> bytes:
        """The tag or its held-back form; ``at`` is its offset in the current buffer, for the native hints."""
        may: bool | None = None
        if self._hints is not None and at >= 0 and not _ESCAPES.search(tag):
            may = self._hints.needle_within(at, at + len(tag))
        return self._holdback.tag(tag, kind, may, self.base or "")

    def _foreign_script_tag(self, data: bytes, pos: int, end: int, final: bool) -> bytes:
        """The start tag of an svg/math script, classified (see Tokenizer)."""
        raise NotImplementedError

    def _styled(self, tag: bytes) -> bytes:
        """A start tag that fetches nothing itself, with the CSS url()s of its style attribute held back."""
        return self._holdback.tag(tag, "", None, self.base or "") if may_hold_css(tag) else tag

    def _css_text(self, data: bytes, pos: int, end: int, out: Out, bound: int = -1) -> int:
        """Emit the text ``data[pos:end]`` of a <style> element (the raw text in ``_raw_name``) with the
        CSS fetches this visitor does not allow held back; return where the emitted text ends (see
        ``css.hold_back_css``). ``bound`` -1: ``end`` ends the text; else a token may reach up to ``bound``,
        the end of the buffer, and more may follow."""
        if self._raw_name != "style" or self.mode != Mode.NOSCRIPT:
            out.append(data[pos:end])
            return end
        base = self.base or ""
        return hold_back_css(data, pos, end, end if bound < 0 else bound, bound < 0,
                             lambda token: self._holdback.css_token(token, base), out)

    # comments and friends -------------------------------------------------------------------------------

    def _comment(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        n = len(data)
        if self._comment_fresh:
            # "<!-->" and "<!--->" are complete (empty) comments
            if pos >= n:
                raise NeedMore(pos)
            if data[pos] == 0x3E:
                return self._end_special(data, pos, pos + 1, out)
            if data[pos] == 0x2D:
                if pos + 1 >= n:
                    raise NeedMore(pos)
                if data[pos + 1] == 0x3E:
                    return self._end_special(data, pos, pos + 2, out)
            self._comment_fresh = False
        m = _COMMENT_END.search(data, pos)
        if m is not None:
            return self._end_special(data, pos, m.end(), out)
        keep = max(pos, n - 3)
        if keep > pos:
            out.append(data[pos:keep])
        raise NeedMore(keep)

    def _end_special(self, data: bytes, pos: int, end: int, out: Out) -> int:
        out.append(data[pos:end])
        self.mode = _DATA
        self._comment_fresh = False
        return end

    def _bogus(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        end = data.find(b">", pos)
        if end == -1:
            # nothing inside a bogus comment needs a look-ahead: emit it all, keep going
            out.append(data[pos:])
            raise NeedMore(len(data))
        return self._end_special(data, pos, end + 1, out)

    def _cdata(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        end = data.find(b"]]>", pos)
        if end == -1:
            keep = max(pos, len(data) - 2)
            out.append(data[pos:keep])
            raise NeedMore(keep)
        return self._end_special(data, pos, end + 3, out)

    def _rawtext(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        m = _RAWTEXT_END[self._raw_name].search(data, pos)
        if m is None:
            keep = max(pos, len(data) - len(self._raw_name) - 3)
            if keep > pos:
                out.append(data[pos:keep])
            raise NeedMore(keep)
        if m.start() > pos:
            out.append(data[pos : m.start()])
        tag_end = tag_rest_end(data, m.end())
        if tag_end < 0:
            raise NeedMore(m.start())
        out.append(data[m.start() : tag_end])
        self.mode = _DATA
        return tag_end

    def _noscript(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        """<noscript> content is text to a browser that runs scripts (so only </noscript> ends it) and
        markup to one that does not: rewrite the tracker tags in it as tags, and find the end as text. The
        same for raw-text elements a <select> may ignore (`_raw_name`: xmp, style…); a <style>'s text has
        its CSS fetches held back too (``_css_text``: a CSS token never holds a "<", so a tag ends it)."""
        n = len(data)
        end_m = _RAWTEXT_END[self._raw_name].search(data, pos)
        foreign = bool(self._foreign)  # a <style> in svg/math content (see Tokenizer._mode_after)
        cand = _FOREIGN_STYLE_CAND if foreign else _NOSCRIPT_CAND
        cand_tail = _FOREIGN_STYLE_TAIL if foreign else _NOSCRIPT_TAIL
        if end_m is not None:
            limit = end_m.start()
        elif final:
            limit = n
        else:
            tail = OPENING_MAX_BYTES if self._raw_name == "style" else 0
            limit = max(pos, n - max(len(self._raw_name) + 2, cand_tail, tail))
        # a candidate starting before the limit ends within cand_tail bytes of it: the search stops
        # there, not at the next tracker tag of the page (which may be far beyond this element)
        search_end = min(n, limit + cand_tail)
        while True:
            m = cand.search(data, pos, search_end)
            if m is None or m.start() >= limit:
                break
            # A tag is read only within max_buffer_bytes of its "<" (and before the end tag): how far the
            # buffer reaches must not change what is read.
            reach = m.start() + self.max_buffer_bytes
            rest = tag_rest_end(data, m.end(), min(end_m.start() if end_m is not None else n, reach))
            if rest < 0:
                if end_m is None and n < reach and not final:
                    self._css_text(data, pos, m.start(), out)
                    raise NeedMore(m.start())
                # cut by the end tag (text to a scripting browser), or too long: not a tag here. Look for
                # tags after its name all the same (an unclosed quote may hide them: hold more, never less).
                self._css_text(data, pos, m.start(), out)
                out.append(data[m.start() : m.end()])
                pos = m.end()
                continue
            self._css_text(data, pos, m.start(), out)
            if m.group("tag") is None:  # any other start tag, in svg/math content
                held = self._styled(data[m.start() : rest])
                self._css_text(held, 0, len(held), out)
                pos = rest
                continue
            name = m.group("tag").lower().decode()
            if name == "script" and self._foreign:
                # a <style> in svg content, or in svg/math content in doubt (see Tokenizer): to a tree builder
                # in that content, an svg script that runs its text (read on here as the style's)
                held = self._foreign_script_tag(data, m.start(), rest, final)
            else:
                held = self._hold(data[m.start() : rest], "img" if name == "image" else name, m.start())
            # to a browser outside a <select>, a <style>'s "tag" is CSS text too: its url()s are read as such
            self._css_text(held, 0, len(held), out)
            pos = rest
        if end_m is None:
            if final:
                raise NeedMore(self._css_text(data, pos, n, out))
            raise NeedMore(self._css_text(data, pos, max(pos, limit), out, n))
        self._css_text(data, pos, end_m.start(), out)
        tag_end = tag_rest_end(data, end_m.end())
        if tag_end < 0:
            raise NeedMore(end_m.start())
        out.append(data[end_m.start() : tag_end])
        self.mode = _DATA
        return tag_end

    # scripts --------------------------------------------------------------------------------------------

    def _script(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        """Find the end of a script element's text with the tokenizer's escape states. While the script is
        being classified (``script_open``), nothing of it is emitted until its end or the buffer limit."""
        n = len(data)
        classify = self.script_open is not None
        scan = pos + self._script_scan
        state = self._script_state
        limit = self.max_buffer_bytes
        search, data_search = SCRIPT_TOKENS.search, SCRIPT_DATA_TOKENS.search
        while True:
            if classify and scan - pos > limit:
                # too long to keep: decide on the first `limit` bytes, then stream the rest
                self._emit_classified(data, pos, pos + limit, out, too_long=True)
                out.append(data[pos + limit : scan])
                classify = False
                pos = scan
            m = data_search(data, scan) if state == _S_DATA else search(data, scan)
            if m is None:
                keep = max(scan, n - 9)
                break
            start = m.start()
            if m.group(1) and state != _S_DOUBLE:  # "</script": the end, once complete
                if classify and start - pos > limit:
                    scan = start
                    continue  # handled by the too-long branch above
                tag_end = tag_rest_end(data, m.end() - 1)
                if tag_end < 0:
                    keep = start
                    break
                return self._end_script(data, pos, start, tag_end, classify, out)
            step = script_escape_step(data, m, state)
            if step is None:
                keep = start
                break
            state, scan = step
        self._script_state = state
        return self._script_cut(data, pos, keep, classify, out)

    def _end_script(self, data: bytes, pos: int, start: int, end: int, classify: bool, out: Out) -> int:
        """Emit a script's text up to its end tag at ``start`` and the end tag itself."""
        if classify:
            self._emit_classified(data, pos, start, out)
        elif start > pos:
            out.append(data[pos:start])
        out.append(data[start:end])
        self.mode = _DATA
        self._script_state, self._script_scan = _S_DATA, 0
        return end

    def _script_cut(self, data: bytes, pos: int, keep: int, classify: bool, out: Out) -> int:
        """The buffer ends inside a script's text: emit what is decided, keep the rest."""
        limit = self.max_buffer_bytes
        if classify:
            if keep - pos > limit:
                self._emit_classified(data, pos, pos + limit, out, too_long=True)
                out.append(data[pos + limit : keep])
                self._script_scan = 0
                raise NeedMore(keep)
            self._script_scan = keep - pos
            raise NeedMore(pos)
        self._script_scan = 0
        if keep > pos:
            out.append(data[pos:keep])
        raise NeedMore(keep)

    def _emit_classified(self, data: bytes, body_start: int, body_end: int, out: Out, *,
                         too_long: bool = False) -> None:
        """Decide on an inline script from its body and emit the open tag and the body."""
        tag = self.script_open or b"<script>"
        self.script_open = None
        signatures = None
        if self._hints is not None:
            signatures = [data[s:e] for s, e in self._hints.signatures_in_order(body_start, body_end)]
        body = data[body_start:body_end]
        out.append(self._holdback.inline_script(tag, body, signatures, too_long=too_long))
        out.append(body)

    # long tags ------------------------------------------------------------------------------------------

    def _long_tag(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        """Stream a tag too long to buffer, tracking only what decides where it ends."""
        end, self._long_tag_state = stream_long_tag(data, pos, self._long_tag_state)
        if end < 0:
            out.append(data[pos:])
            raise NeedMore(len(data))
        out.append(data[pos:end])
        self.mode = self._long_tag_then
        return end
