"""CSS fetches in markup: ``url(…)`` and ``@import "…"`` in a ``style`` attribute or a ``<style>`` element's
text. A held one is replaced by ``url(data:,cg;<category>;<vendor>;<the original token, percent-encoded>)``:
a data URL loads nothing from the network, the rest of the CSS stays live, and the banner puts the original
token back once the visitor allows the vendor (static/banner/banner.js ``css``).

Tokens are found by their bytes alone (in comments and strings too: holding more, never less), never
across a "<", and only within ``MAX_TOKEN_BYTES`` of their start, so every chunking reads the same tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

#: the longest token read (a longer one, such as an inline data: image, is left as it is)
MAX_TOKEN_BYTES = 4096
#: the longest a token's opening ("url(" or "@import", each letter possibly escaped) can be: the bytes a
#: streamed <style> keeps back so that an opening cut by a chunk boundary is read whole
OPENING_MAX_BYTES = 7 * 9 + 1


def _letters(word: str) -> bytes:
    """``word`` as CSS reads it in an identifier: any case, each letter possibly a hex or plain escape."""
    out = []
    for c in word:
        low, up = c.lower(), c.upper()
        hexes = f"{ord(low):x}|{ord(up):x}"  # read in any case, as hex digits are
        out.append(f"(?i:{low}|\\\\0{{0,4}}(?:{hexes})(?:\\r\\n|[ \\t\\n\\r\\f])?|\\\\{low})")
    return "".join(out).encode()


_URL_OPEN = _letters("url") + rb"\("
_IMPORT = b"@" + _letters("import")
_WS = rb"[ \t\n\r\f]*+"
#: (runs of plain bytes matched as one possessive run: the same matches as one byte per loop, which `re` runs
#: several times slower on long data: URLs)
_STRING = rb"\"(?:[^\"\\\n\r\f<]++|\\[^<])*+\"|'(?:[^'\\\n\r\f<]++|\\[^<])*+'"
_UNQUOTED = (rb"(?:[^\"'()\\ \t\n\r\f<\x00-\x08\x0b\x0e-\x1f\x7f]++"
             rb"|\\[0-9a-fA-F]{1,6}(?:\r\n|[ \t\n\r\f])?|\\[^\n\r\f<])*+")
#: where a token may start
TRIGGER = re.compile(_URL_OPEN + b"|" + _IMPORT)
#: a whole token: url(…) with its URL in ``s`` (a string) or ``u``; @import with a string in ``s``, or
#: followed by something else (``url(…)``, read as a token of its own)
TOKEN = re.compile(
    b"(?:" + _URL_OPEN + _WS + b"(?:(?P<s>" + _STRING + b")|(?P<u>" + _UNQUOTED + b"))" + _WS + rb"\)"
    + b"|" + _IMPORT + _WS + b"(?:(?P<i>" + _STRING + rb")|(?=[^\"' \t\n\r\f])))"
)
_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})(?:\r\n|[ \t\n\r\f])?|(\r\n|[\n\r\f])|(.))", re.S)


def _unescaped(match: re.Match[str]) -> str:
    hexes, newline, char = match.groups()
    if hexes is not None:
        code = int(hexes, 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
    return "" if newline is not None else char


def token_url(token: re.Match[bytes]) -> str | None:
    """The URL a token loads (CSS escapes decoded, not yet resolved); None for ``@import url(…)``'s opening."""
    raw = token.group("s") or token.group("i")
    if raw is not None:
        raw = raw[1:-1]
    else:
        raw = token.group("u")
        if raw is None:
            return None
    text = raw.decode("utf-8", "replace")
    return _ESCAPE.sub(_unescaped, text) if "\\" in text else text


def held_token(token: re.Match[bytes], category: str, vendor_id: str) -> bytes:
    """The replacement of a held token: a data URL that names who it waits for and carries the original.
    Of an ``@import "…"`` only the string is replaced (``@import url(…)`` is a rule a browser reads)."""
    start = token.start("i")
    kept = token.string[token.start() : start] if start >= 0 else b""
    original = quote(token.string[max(start, token.start()) : token.end()].decode("utf-8", "replace"), safe="")
    return kept + f"url(data:,cg;{quote(category, safe='')};{quote(vendor_id, safe='')};{original})".encode()


def _next_opening(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start, end) of the first opening ("url(" or "@import", see TRIGGER) starting in [pos, end), or
    (-1, -1). Found by its "(" or "@", which byte searches find many times faster than the pattern (what
    keeps a page's long inline CSS cheap): every "url(" ends at a "(", written plainly or escaped."""
    stop = end + OPENING_MAX_BYTES
    paren = _next_paren(data, pos, stop)
    at = data.find(b"@", pos, end)
    while paren != -1 or at != -1:
        if at != -1 and (paren == -1 or at < paren):
            import_opening = TRIGGER.match(data, at) if data[at + 1 : at + 2] in _IMPORT_SECOND else None
            if import_opening is not None:
                return at, import_opening.end()
            at = data.find(b"@", at + 1, end)
            continue
        start = paren - 3
        if start >= pos and data[start:paren].lower() == b"url":
            return (start, paren + 1) if start < end else (-1, -1)
        window = max(pos, paren - OPENING_MAX_BYTES + 1)
        if b"\\" in data[window:paren]:  # an escaped letter: read by the pattern
            for opening in TRIGGER.finditer(data, window, paren + 1):
                if opening.end() == paren + 1:
                    return (opening.start(), opening.end()) if opening.start() < end else (-1, -1)
        paren = _next_paren(data, paren + 1, stop)
    return -1, -1


#: what may follow the "@" of an "@import" (its "i", or an escape)
_IMPORT_SECOND = (b"i", b"I", b"\\")


def _next_paren(data: bytes, start: int, stop: int) -> int:
    """The first "(" in [start, stop) that may end a "url(": right after an "l" or "L", or within
    OPENING_MAX_BYTES after a backslash (an escaped letter); -1 when there is none."""
    low = data.find(b"l(", max(0, start - 1), stop)
    up = data.find(b"L(", max(0, start - 1), stop if low == -1 else low)
    plain = up + 1 if up != -1 else low + 1 if low != -1 else -1
    limit = stop if plain == -1 else plain
    backslash = data.find(b"\\", max(0, start - OPENING_MAX_BYTES), limit)
    while backslash != -1:
        escaped = data.find(b"(", max(backslash, start), min(limit, backslash + OPENING_MAX_BYTES))
        if escaped != -1:
            return escaped
        backslash = data.find(b"\\", backslash + 1, limit)
    return plain


def hold_back_css(data: bytes, pos: int, end: int, bound: int, whole: bool,
                  judge: Callable[[re.Match[bytes]], bytes | None], out: list[bytes | None]) -> int:
    """Emit ``data[pos:end]`` (CSS text) with each token ``judge`` replaces replaced; return where the
    emitted text ends: ``end``, past it when a token crossing ``end`` was read whole, or before it, at a token
    whose end is not in yet. ``bound``: how far a token may reach; ``whole``: nothing after ``bound`` can
    complete a token (the end of the text or of the document), else more bytes may come."""
    last = reach = pos
    while True:
        start, opening_end = _next_opening(data, pos, min(end, bound))
        if start < 0:
            break
        token = TOKEN.match(data, start, min(bound, start + MAX_TOKEN_BYTES))
        if token is None:
            if not whole and start + MAX_TOKEN_BYTES > bound:  # its end may be in the next chunk
                end = start
                break
            pos = opening_end
            continue
        pos = reach = token.end()
        replacement = judge(token)
        if replacement is not None:
            out.append(data[last:start])
            out.append(replacement)
            last = pos
    end = max(end, reach)  # a token read whole is emitted whole: the next run starts after it
    if end > last:
        out.append(data[last:end])
    return end


def has_css_fetch_hint(value: bytes) -> bool:
    """Whether an attribute's raw bytes may hold a ``url(``: a "(" as it is or as a character reference."""
    return b"(" in value or b"&#" in value or b"&lpar" in value
