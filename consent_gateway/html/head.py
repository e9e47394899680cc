"""Where the banner block goes: right after the ``<head …>`` start tag, or before the first content when the
document has none — and never in front of a ``<meta charset>`` it would push out of the first KiB (a browser
looks for it only there). Decided on complete tokens, so every chunking agrees."""

from __future__ import annotations

import re

from .cache import HEAD_MARK
from .scanner import DELIM, tag_rest_end
from .states import Mode, NeedMore
from .text_states import Out, TextStates

_PRE_WS = re.compile(rb"[\t\n\f\r ]*+")
_PRE_CAND = re.compile(
    rb"<(?:(?P<html>(?i:html))" + DELIM + rb"|(?P<head>(?i:head))" + DELIM
    + rb"|(?P<comment>!--)|(?P<bogus>![^-]|!-[^-]|\?|/[^a-zA-Z])|(?P<other>/?[a-zA-Z])|(?P<text>[^a-zA-Z!?/]))"
)


def _may_become_html_or_head(data: bytes, pos: int) -> bool:
    """Whether the buffer ends in what the next chunk may complete into "<html" or "<head" + delimiter."""
    rest = data[pos + 1 :].lower()
    return len(rest) <= 4 and (b"html".startswith(rest) or b"head".startswith(rest))



class HeadPlacement(TextStates):
    """The banner block's placement, a base of :class:`~consent_gateway.html.tokenizer.Tokenizer`."""

    head_pending: bool
    charset_ahead: bool

    def _pre_head(self, data: bytes, pos: int, final: bool, out: Out) -> int:
        """Before the banner block is placed: skip what may precede <head>, place it at the first content."""
        n = len(data)
        while True:
            end = _PRE_WS.match(data, pos).end()  # type: ignore[union-attr]
            if end > pos:
                out.append(data[pos:end])
                pos = end
            if pos >= n:
                if final:
                    self.head_pending = False
                    self._place_deferred_mark(out)
                raise NeedMore(pos)
            if data[pos] != 0x3C:  # text first: the banner goes before it
                break
            m = _PRE_CAND.match(data, pos)
            if m is None or (m.lastgroup == "other" and not final and _may_become_html_or_head(data, pos)):
                if final:
                    break
                raise NeedMore(pos)
            group = m.lastgroup
            if group == "html" or group == "head":
                end = self._pre_head_tag_end(data, pos, m.end(), final)
                if end < 0:
                    break  # too long to keep (whatever the chunking): the banner block goes before it
                out.append(data[pos:end])
                pos = end
                if group == "head":
                    self._place_mark(out)
                    return pos
            elif group == "comment":
                out.append(b"<!--")
                self.mode, self._comment_fresh = Mode.COMMENT, True
                return m.end()
            elif group == "bogus":
                self.mode = Mode.BOGUS
                return pos
            else:
                break
        self._place_mark(out)
        return pos

    def _pre_head_tag_end(self, data: bytes, pos: int, name_end: int, final: bool) -> int:
        """The end of an <html> or <head> start tag, or -1 when it is longer than the buffer: decided on
        the tag's length, not on how much of it this buffer holds, so that any chunking agrees."""
        rest = tag_rest_end(data, name_end)
        if rest < 0 and len(data) - pos <= self.max_buffer_bytes and not final:
            raise NeedMore(pos)
        if rest < 0 or rest - pos > self.max_buffer_bytes:
            return -1
        return rest

    def _place_mark(self, out: Out) -> None:
        """The banner block goes here, or after the <meta charset> still ahead."""
        self.head_pending = False
        if not self.charset_ahead:
            out.append(HEAD_MARK)

    def _place_deferred_mark(self, out: Out) -> None:
        self.charset_ahead = False
        out.append(HEAD_MARK)
