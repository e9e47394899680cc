"""The one strict JSON reader for request bodies the gateway accepts.

A lenient parser is an attack surface: with "last key wins", `{"analytics": false, "analytics": true}`
reads as a grant to the gateway while a log reader or a WAF may see a refusal; deep nesting exhausts the
parser's recursion (a 500 with a traceback); `NaN`, a BOM or UTF-16 are not JSON (RFC 8259) and no
browser's `JSON.stringify` sends them. So a body must be UTF-8 without a BOM, at most `MAX_DEPTH` deep,
with unique keys and finite numbers; anything else is an `APIError` 400 whose code names the problem.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import APIError

#: Deeper than any consent body needs (they are two levels deep), far below the parser's recursion limit.
MAX_DEPTH = 16

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_OPENERS = frozenset(b"[{")


def _refuse(code: str, message: str) -> APIError:
    return APIError(400, code, message)


def _depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects, brackets inside strings not counted."""
    deepest = depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub(b'""', body)):
        if bracket[0] in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _refuse("json_duplicate_key", f"the key {key!r} appears twice in one object")
            seen.add(key)
    return result


def _non_finite(name: str) -> Any:
    raise _refuse("json_non_finite_number", f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # 1e999 overflows to Infinity
        raise _refuse("json_non_finite_number", f"{text[:32]} is too large for a JSON number")
    return number


def _check_strings(value: Any) -> None:
    """Lone surrogates (`"\\ud800"`) parse in Python but cannot be stored or echoed as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _refuse("json_invalid_string", "a string holds an unpaired surrogate escape") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse_json(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The value of a strict JSON body, or an `APIError` 400 naming what is wrong with it."""
    if body.startswith(_BOMS):
        raise _refuse("json_bom", "the body starts with a byte order mark; send UTF-8 without one")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("json_not_utf8", "the body is not UTF-8") from None
    if "\x00" in text:  # UTF-16 without a BOM decodes as "UTF-8" full of NULs, which JSON never holds raw
        raise _refuse("json_not_utf8", "the body is not UTF-8 (it holds NUL bytes, like UTF-16)")
    if _depth(body) > max_depth:
        raise _refuse("json_too_deep", f"the body nests more than {max_depth} arrays or objects")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_non_finite, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise _refuse("malformed_json", "the body is not valid JSON") from None
    _check_strings(value)
    return value

