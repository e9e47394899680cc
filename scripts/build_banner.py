#!/usr/bin/env python3
"""Build the minified banner served to visitors: static/banner/banner.min.{js,css}.

The sources (banner.js, banner.css) stay readable; this conservative minifier only drops comments and
whitespace that carries no meaning, so the output is reproducible from the repo with the standard library
alone (no Node tool at run time or in CI). ``tests/test_banner.py`` checks that the committed files equal
a fresh build.

    python scripts/build_banner.py          # write the .min files
    python scripts/build_banner.py --check  # exit 1 when they are stale
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BANNER_DIR = Path(__file__).resolve().parent.parent / "static" / "banner"
_IDENT = re.compile(r"[A-Za-z0-9_$\\]")
# After one of these characters (or keywords) a "/" starts a regular expression, not a division.
_REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^")
_REGEX_AFTER_WORDS = ("return", "typeof", "case", "in", "of")


def minify_js(source: str) -> str:
    """Drop comments and meaningless whitespace; keep one newline where a line break was (ASI-safe)."""
    out: list[str] = []
    i, n = 0, len(source)
    pending_space = ""  # "", " " or "\n": whitespace seen since the last token

    def last_significant() -> str:
        return out[-1][-1] if out and out[-1] else ""

    def emit(token: str) -> None:
        nonlocal pending_space
        if pending_space and out:
            prev = last_significant()
            if pending_space == "\n":
                if prev not in "{(,;[" and token[0] not in "}),;]":
                    out.append("\n")
                elif _IDENT.match(prev) and _IDENT.match(token[0]):
                    out.append(" ")
            elif _IDENT.match(prev) and _IDENT.match(token[0]):
                out.append(" ")
            elif prev in "+-" and token[0] == prev:
                out.append(" ")  # a + +b, a - -b
        pending_space = ""
        out.append(token)

    while i < n:
        c = source[i]
        if c in " \t\r\n":
            j = i
            while j < n and source[j] in " \t\r\n":
                j += 1
            pending_space = "\n" if ("\n" in source[i:j] or pending_space == "\n") else (pending_space or " ")
            i = j
        elif source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            j = source.index("*/", i + 2)
            if "\n" in source[i:j]:
                pending_space = "\n"
            i = j + 2
        elif c in "'\"`":
            j = i + 1
            while source[j] != c:
                j += 2 if source[j] == "\\" else 1
            emit(source[i : j + 1])
            i = j + 1
        elif c == "/" and _starts_regex("".join(out)):
            j, in_class = i + 1, False
            while in_class or source[j] != "/":
                if source[j] == "\\":
                    j += 1
                elif source[j] == "[":
                    in_class = True
                elif source[j] == "]":
                    in_class = False
                j += 1
            j += 1
            while j < n and source[j].isalpha():
                j += 1
            emit(source[i:j])
            i = j
        else:
            j = i + 1
            if _IDENT.match(c):
                while j < n and _IDENT.match(source[j]):
                    j += 1
            emit(source[i:j])
            i = j
    return "".join(_renamed_locals(out)).strip() + "\n"


#: words never renamed (keywords and literals): a local is never named like one
_RESERVED = frozenset(
    "break case catch class const continue debugger default delete do else export extends false finally for "
    "function if import in instanceof let new null return super switch this throw true try typeof undefined "
    "var void while with yield arguments eval".split()
)
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def _renamed_locals(tokens: list[str]) -> list[str]:
    """Give the script's own variables, functions and parameters short names (what most of a minifier's
    gain is). Only a name declared in the script (after ``var``, ``function`` or in a parameter list) is
    renamed, everywhere it appears, and only when it never appears as a property (after ".") or before ":"
    (an object key, or a ternary's branch: left alone, to stay simple): so every use of a name keeps meaning
    the same thing, whatever scope it is in, and no global or property is touched."""
    words = [i for i, t in enumerate(tokens) if _NAME.fullmatch(t)]
    significant = [t for t in tokens if t.strip()]
    declared = _var_lists(tokens)
    in_params = False
    for i, token in enumerate(significant):
        before = significant[i - 1] if i else ""
        if in_params:
            if token == ")":
                in_params = False
            elif _NAME.fullmatch(token):
                declared.add(token)
        elif _NAME.fullmatch(token) and before in ("var", "function"):
            declared.add(token)
        if token == "(" and (before == "function" or before == "catch"
                             or i > 1 and significant[i - 2] == "function" and _NAME.fullmatch(before)):
            in_params = True
    unsafe = {significant[i + 1] for i, t in enumerate(significant[:-1]) if t == "."}
    unsafe |= {t for i, t in enumerate(significant[:-1]) if significant[i + 1] == ":"}
    counts: dict[str, int] = {}
    for i in words:
        name = tokens[i]
        if name in declared and name not in unsafe and name not in _RESERVED:
            counts[name] = counts.get(name, 0) + 1
    taken = {tokens[i] for i in words} | _RESERVED
    fresh = (a + b for a in ("", *_LETTERS) for b in _LETTERS)
    names: dict[str, str] = {}
    for name in sorted(counts, key=lambda n: (-counts[n], n)):
        short = next(f for f in fresh if f not in taken)
        if len(short) < len(name):
            names[name] = short
    return [names.get(t, t) for t in tokens]


def _var_lists(tokens: list[str]) -> set[str]:
    """The names a ``var`` statement declares after a comma (``var a = 1, b = f(x, y), c``): a comma at the
    statement's own depth. The statement ends at ";", a line break, "in" (``for (var k in o)``) or a closing
    bracket it did not open."""
    declared: set[str] = set()
    depth = -1  # -1: not in a var statement
    after_comma = False
    for token in tokens:
        if token == "var":
            depth, after_comma = 0, False
            continue
        if depth < 0 or token == " ":
            continue
        if after_comma and _NAME.fullmatch(token):
            declared.add(token)
        after_comma = False
        if token in ("(", "[", "{"):
            depth += 1
        elif token in (")", "]", "}"):
            depth -= 1
        elif depth == 0 and token in (";", "\n", "in"):
            depth = -1
        elif depth == 0 and token == ",":
            after_comma = True
    return declared


_LETTERS = tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _starts_regex(before: str) -> bool:
    stripped = before.rstrip()
    if not stripped:
        return True
    if stripped[-1] in _REGEX_AFTER:
        return True
    return any(
        stripped.endswith(word) and not _IDENT.match(stripped[-len(word) - 1 : -len(word)] or " ")
        for word in _REGEX_AFTER_WORDS
    )


def minify_css(source: str) -> str:
    """Drop comments and whitespace around punctuation. A space before ":" is kept: it is a combinator."""
    text = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*([{};,>])\s*", r"\1", text)
    text = re.sub(r":\s+", ":", text)
    text = text.replace(";}", "}")
    return text.strip() + "\n"


def build(banner_dir: Path = BANNER_DIR) -> dict[str, str]:
    """The minified files' names and contents, built from the sources in ``banner_dir``."""
    return {
        "banner.min.js": minify_js((banner_dir / "banner.js").read_text(encoding="utf-8")),
        "banner.min.css": minify_css((banner_dir / "banner.css").read_text(encoding="utf-8")),
    }


def main(argv: list[str]) -> int:
    stale = []
    for name, text in build().items():
        path = BANNER_DIR / name
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run python scripts/build_banner.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
