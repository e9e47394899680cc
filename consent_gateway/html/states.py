"""The tokenizer's named states, its state as one value (what the chunk cache keys and restores), and the
two small state machines that run byte by byte: script data's escape states and a long tag streamed unread.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple


class Mode(enum.IntEnum):
    """Where the document stands between two tokens."""

    PRESCAN = 0  # the first KiB is not yet in: BOM and <meta charset> not looked at
    DATA = 1
    COMMENT = 2
    BOGUS = 3  # bogus comment, doctype, processing instruction
    CDATA = 4  # only in svg/math
    RAWTEXT = 5  # style, textarea, title, xmp, noembed, noframes, iframe
    SCRIPT = 6
    NOSCRIPT = 7
    PLAINTEXT = 8  # the rest of the document is text
    LONG_TAG = 9  # a tag too long to buffer, streamed while tracking where it ends
    BAILED = 20  # after a failure: every loading tag is made inert unread
    PASSTHROUGH = 21  # an encoding the rewriter does not read (UTF-16/32): bytes pass untouched


class ScriptState(enum.IntEnum):
    """The HTML tokenizer's script-data escape states, so "<!--<script>" cannot end a script early."""

    DATA = 0
    ESCAPED = 1
    DOUBLE_ESCAPED = 2


class LongTag(enum.IntEnum):
    """Where a long tag streamed unread stands: only what decides where it ends is tracked."""

    NAME = 0
    BEFORE_ATTR = 1
    ATTR = 2
    AFTER_ATTR = 3
    BEFORE_VALUE = 4
    DOUBLE_QUOTED = 5
    SINGLE_QUOTED = 6
    UNQUOTED = 7


class TokenizerState(NamedTuple):
    """Everything the output of the rest of a document depends on, besides the bytes not yet emitted."""

    mode: Mode
    head_pending: bool  # the place of the banner block is not found yet
    charset_ahead: bool  # the banner block goes after a <meta charset> still ahead (see Tokenizer)
    foreign: tuple[str, ...]  # the open svg/math elements
    foreign_doubt: bool  # in svg/math content, the tree builder may have left it already (see Tokenizer)
    foreign_left: tuple[str, ...]  # the svg/math elements open around the integration points entered
    raw_name: str  # the raw-text element open in Mode.RAWTEXT
    comment_fresh: bool  # right after "<!--" ("<!-->" is a whole comment)
    script_state: ScriptState
    script_open: bytes | None  # the open tag of an inline script being classified
    script_scan: int  # where the script scan resumes, relative to the body start
    long_tag_state: LongTag
    long_tag_then: Mode  # the mode after the long tag
    base: str | None  # the first <base href> (urls.base_url; "" for the page's own host), None before it


class NeedMore(Exception):
    """Not an error: the token at `pos` continues in the next chunk."""

    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


# -- script data --------------------------------------------------------------------------------------------

#: the tokens that move script data between its escape states, and "</script"
SCRIPT_TOKENS = re.compile(rb"<!--|-->|<(/?)(?i:script)[\t\n\f\r />]")
#: ...the only ones that matter in the data state ("-->" and "<script" change nothing there): a pattern
#: starting with "<", which `re` finds ten times faster in a long script than the one above
SCRIPT_DATA_TOKENS = re.compile(rb"<(?:!--|(/)(?i:script)[\t\n\f\r />])")
_S_DATA, _S_ESCAPED, _S_DOUBLE = ScriptState.DATA, ScriptState.ESCAPED, ScriptState.DOUBLE_ESCAPED


def script_escape_step(data: bytes, token: re.Match[bytes], state: ScriptState) -> tuple[ScriptState, int] | None:
    """(new state, where to search on) after a "<!--", "-->", "<script" or a double-escaped "</script";
    None when the buffer ends in "<!--" and dashes (a "<!-->" may still be coming)."""
    text = token.group()
    if text == b"<!--":
        if state != _S_DATA:
            return state, token.start() + 2  # a "-->" may overlap "<!-->"
        j, n = token.end(), len(data)
        while j < n and data[j] == 0x2D:
            j += 1
        if j >= n:
            return None
        if data[j] == 0x3E:
            return state, j + 1  # "<!-->", "<!--->": an empty comment, no escape
        return _S_ESCAPED, token.end()
    if text == b"-->":
        return _S_DATA, token.end()
    if token.group(1):  # "</script" while double-escaped
        return _S_ESCAPED, token.end() - 1
    return (_S_DOUBLE if state == _S_ESCAPED else state), token.end() - 1


# -- long tags --------------------------------------------------------------------------------------------------

_WS, _SLASH, _EQ, _DQ, _SQ, _OTHER = range(6)
_BYTE_CLASS = bytes(
    _WS if c in b"\t\n\f\r " else _SLASH if c == 0x2F else _EQ if c == 0x3D else _DQ if c == 0x22
    else _SQ if c == 0x27 else _OTHER
    for c in range(256)
)
_L = LongTag
#: next state by (state, byte class) for every byte but ">" (which ends the tag outside quotes)
_NEXT: tuple[tuple[LongTag, ...], ...] = (
    #        ws              /                 =                  "                   '                  other
    (_L.BEFORE_ATTR, _L.BEFORE_ATTR, _L.NAME, _L.NAME, _L.NAME, _L.NAME),  # NAME
    (_L.BEFORE_ATTR, _L.BEFORE_ATTR, _L.ATTR, _L.ATTR, _L.ATTR, _L.ATTR),  # BEFORE_ATTR
    (_L.AFTER_ATTR, _L.BEFORE_ATTR, _L.BEFORE_VALUE, _L.ATTR, _L.ATTR, _L.ATTR),  # ATTR
    (_L.AFTER_ATTR, _L.BEFORE_ATTR, _L.BEFORE_VALUE, _L.ATTR, _L.ATTR, _L.ATTR),  # AFTER_ATTR
    (_L.BEFORE_VALUE, _L.UNQUOTED, _L.UNQUOTED, _L.DOUBLE_QUOTED, _L.SINGLE_QUOTED, _L.UNQUOTED),  # BEFORE_VALUE
    (_L.DOUBLE_QUOTED,) * 6,  # DOUBLE_QUOTED: left by the quote search, never by this table
    (_L.SINGLE_QUOTED,) * 6,  # SINGLE_QUOTED: idem
    (_L.BEFORE_ATTR, _L.UNQUOTED, _L.UNQUOTED, _L.UNQUOTED, _L.UNQUOTED, _L.UNQUOTED),  # UNQUOTED
)
#: runs of bytes that do not change the state, skipped in C
_RUNS = {_L.UNQUOTED: re.compile(rb"[^\t\n\f\r >]++"), _L.ATTR: re.compile(rb"[^\t\n\f\r />=]++")}
_QUOTES = {_L.DOUBLE_QUOTED: b'"', _L.SINGLE_QUOTED: b"'"}


def stream_long_tag(data: bytes, pos: int, state: LongTag) -> tuple[int, LongTag]:
    """Follow a tag from ``pos``: (the offset after its ">", state), or (-1, state) when ``data`` ends inside."""
    i, n = pos, len(data)
    while i < n:
        quote = _QUOTES.get(state)
        if quote is not None:
            j = data.find(quote, i)
            if j == -1:
                return -1, state
            state, i = _L.BEFORE_ATTR, j + 1
            continue
        run = _RUNS.get(state)
        if run is not None:
            m = run.match(data, i)
            if m is not None:
                i = m.end()
                continue
        c = data[i]
        if c == 0x3E:
            return i + 1, state
        state = _NEXT[state][_BYTE_CLASS[c]]
        i += 1
    return -1, state
