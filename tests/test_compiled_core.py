"""The compiled rewriter core and the pure-Python one: which runs, and that both give the same bytes.

The path is chosen when the package is first imported, so the other path runs in a subprocess with
``CONSENT_GATEWAY_PURE=1``: the golden pages, the property test and real saved pages (when
``../shared/data/real-pages`` or ``$CG_REAL_PAGES`` is there; never required) are checked on both.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent_gateway.compiled import COMPILED_MODULES, PURE_ENV, core_path, running_compiled
from consent_gateway.html import holdback, scanner

ROOT = Path(__file__).resolve().parent.parent
REAL_PAGES = Path(os.environ.get("CG_REAL_PAGES") or ROOT.parent / "shared" / "data" / "real-pages")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _env(pure: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    return env


def _digests(pure: bool) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "core_digests.py"), "--real-pages", str(REAL_PAGES)],
        env=_env(pure), capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def _needs_compiled() -> None:
    path, reason = core_path()
    if path != "compiled":
        if IN_CI and PURE_ENV not in os.environ:
            pytest.fail(f"CI must run the compiled core (scripts/install builds it), but: {reason}")
        pytest.skip(f"the compiled core is not running here ({reason}): only the pure path can be checked")


def test_ci_runs_the_compiled_core_it_built() -> None:
    """A build that silently fell back to pure Python would leave the compiled core untested."""
    _needs_compiled()
    assert running_compiled()
    for module in COMPILED_MODULES:
        loaded = sys.modules.get(module) or __import__(module, fromlist=["_"])
        assert not str(loaded.__file__).endswith(".py"), module
    assert holdback._native_parse is not None  # the C readers built with them
    assert scanner._native_tag_rest_end is not None
    assert scanner._native_candidate_starts is not None


_TAG_BYTES = [b"<", b">", b"a", b"SRC", b"=", b"'", b'"', b" ", b"\t", b"\n", b"\f", b"\r", b"\x0b", b"/", b"x",
              b"\xc3\xa9", b"\x00", b"data-x", b"src", b"Href"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_TAG_BYTES), max_size=24), st.sampled_from([b"<img", b"<A", b"", b"<"]),
       st.sampled_from([b">", b""]))
def test_the_c_attribute_reader_reads_every_tag_as_the_python_one(parts: list[bytes], start: bytes,
                                                                  end: bytes) -> None:
    """Quotes left open, "=" starting a name, whitespace HTML does not count (\\x0b), bytes past ASCII, no
    closing ">": the same attributes, offsets and values as ``holdback._parse_attributes``."""
    _needs_compiled()
    tag = start + b"".join(parts) + end
    assert holdback._native_parse is not None
    native = holdback._native_parse(tag, holdback.Attribute)
    assert native == holdback._parse_attributes(tag)
    assert all(type(attribute) is holdback.Attribute for attribute in native[1])


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from([*_TAG_BYTES, b"=>", b' "a>b" ']), max_size=24), st.integers(0, 4),
       st.integers(0, 3))
def test_the_c_tag_end_reader_ends_every_tag_where_the_pattern_does(parts: list[bytes], pos: int,
                                                                    short: int) -> None:
    """Where a tag's rest ends (after its ">"), or that it is not complete (an open quote, no ">" yet),
    within the whole buffer or a shorter reach: as ``scanner.TAG_REST`` says."""
    _needs_compiled()
    data = b"".join(parts)
    assert scanner._native_tag_rest_end is not None
    endpos = max(0, len(data) - short)
    m = scanner.TAG_REST.match(data, pos, endpos)
    assert scanner.tag_rest_end(data, pos, endpos) == (-1 if m is None else m.end())


_CANDIDATE_PARTS = [b"<", b"</", b">", b"<!", b"<?", b" ", b"\t", b"\x0b", b"/", b"=", b"'", b"\x00", b"\xc3\xa9",
                    b"\xff", b"x", b"a", b"A", b"script", b"sCrIpT", b"img", b"svg", b"MATH", b"meta", b"td",
                    b"th", b"table", b"input", b"ping", b"PING", b"pin", b"refresh", b"image", b"Background"]


def _candidate_reference() -> re.Pattern[bytes]:
    """Every offset where the candidate pattern matches (a lookahead: overlapping starts too)."""
    pattern = scanner.candidate_pattern(scanner.HTML_STARTS, scanner.HTML_ENDS, scanner.CONDITIONAL)
    return re.compile(b"(?i)(?=(?:" + pattern + b"))", re.DOTALL)


_CANDIDATES = _candidate_reference()
_CANDIDATE_NAMES = (tuple(n.encode() for n in scanner.HTML_STARTS), tuple(n.encode() for n in scanner.HTML_ENDS),
                    tuple((name.encode(), word) for name, word in scanner.CONDITIONAL.items()))


@settings(max_examples=5000, deadline=None)
@given(st.lists(st.sampled_from(_CANDIDATE_PARTS), max_size=40))
def test_the_c_candidate_finder_finds_every_start_the_pattern_does(parts: list[bytes]) -> None:
    """Names in any case, cut by the end of the data, conditional words before or after the next "<" or ">",
    NULs and bytes past ASCII: the offsets where ``scanner.candidate_pattern`` matches (what hyperscan reports
    on the pure path). Each is a hint the tokenizer confirms, so a missing one would skip a tag."""
    _needs_compiled()
    data = b"".join(parts)
    assert scanner._native_candidate_starts is not None
    found = scanner._native_candidate_starts(data, *_CANDIDATE_NAMES)
    assert found == [m.start() for m in _CANDIDATES.finditer(data)]


def test_the_c_candidate_finder_stays_linear_on_hostile_input() -> None:
    """Conditional names without a ">" anywhere after them, with their word far away or nowhere: each looks
    ahead no further than the last one did (a search from every "<a" to the end would take minutes here)."""
    _needs_compiled()
    assert scanner._native_candidate_starts is not None
    cases = [(b"<a " * 300_000, []), (b"<a <a>" * 150_000, []),
             (b"<td x" * 200_000 + b" BackGround", list(range(0, 1_000_000, 5)))]
    for data, expected in cases:
        started = time.process_time()
        found = scanner._native_candidate_starts(data, *_CANDIDATE_NAMES)
        assert time.process_time() - started < 1.0
        assert found == expected


_PLAIN_PARTS = [b"text ", b"<p>", b"</p>", b'<a href="/x">', b"</a>", b'<input type="hidden" name="t" value="',
                b'">', b"<meta name=csrf content=", b">", b"<td class=c>", b"&amp;", b"&lp", b"ar;", b"a < b",
                b"<b", b"r>", b"<!--", b"(", b"<img src=/i.png>", b"ping", b"ima", b"ge", b"0", b"x1", b"Z", b"<i",
                b"x src=/i.png>", b"<p title=&lpa", b"x;>"]
_TOKEN_BYTES = [b"a", b"9", b"pin", b"g", b"im", b"age", b"refresh", b"BACKGROUND", b"lpar", b"script", b"<", b'"',
                b"&", b" ", b"x", b"mg", b"r"]


@settings(max_examples=4000, deadline=None)
@given(st.lists(st.sampled_from(_PLAIN_PARTS), max_size=8), st.integers(0, 80), st.integers(0, 6),
       st.lists(st.sampled_from(_TOKEN_BYTES), max_size=4))
def test_a_span_said_to_read_like_a_plain_one_reads_as_plain(parts: list[bytes], at: int, cut: int,
                                                              token: list[bytes]) -> None:
    """A changed span is known to pass as it is from the bytes that passed last time (``scanner.reads_like``,
    read in C): only when the scan itself reads it as plain text and tags that do not matter — whatever the
    change makes (a tag name, a conditional word, an ``&lpar;``)."""
    _needs_compiled()
    plain = b"".join(parts)
    if not scanner.reads_plain(plain):
        return
    at = min(at, len(plain))
    data = plain[:at] + b"".join(token) + plain[at + cut :]
    if scanner.reads_like(plain, data):
        assert scanner.reads_plain(data)


@pytest.mark.parametrize(("plain", "data"), [
    (b"<ix src=/i.png>", b"<img src=/i.png>"),  # a tag's name
    (b"a <1mg src=/i.png> b", b"a <img src=/i.png> b"),  # right after "<"
    (b"<p title=&lpax;>", b"<p title=&lpar;>"),  # a "(" in a style-capable tag
    (b'<input type="imagx" src=/i.png>', b'<input type="image" src=/i.png>'),  # a conditional word
    (b"<a href=/x>pinx</a>", b"<a href=/x>PING</a>"),
])
def test_a_change_that_makes_a_tag_matter_is_not_read_like_the_last_variant(plain: bytes, data: bytes) -> None:
    _needs_compiled()
    assert scanner.reads_plain(plain) and not scanner.reads_plain(data)
    assert not scanner.reads_like(plain, data)


def test_a_changed_token_in_a_value_or_text_reads_like_the_last_variant() -> None:
    _needs_compiled()
    # the C reader knows the conditional words by heart
    assert set(scanner.CONDITIONAL.values()) == {b"ping", b"refresh", b"image", b"background"}
    plain = b'<input type="hidden" name="t1" value="a1f8d3d88"> <p>Hello Camille</p>'
    assert scanner.reads_plain(plain)
    assert scanner.reads_like(plain, plain.replace(b"a1f8d3d88", b"07c4"))
    assert scanner.reads_like(plain, plain.replace(b"Camille", b"Dominique"))
    assert scanner.reads_like(plain, plain)


def test_pure_env_runs_the_python_modules() -> None:
    code = ("import consent_gateway, json, sys\n"
            "from consent_gateway.compiled import core_path, running_compiled\n"
            "import consent_gateway.html.tokenizer as t\n"
            "print(json.dumps([core_path(), running_compiled(), t.__file__]))")
    run = subprocess.run([sys.executable, "-c", code], env=_env(pure=True), capture_output=True, text=True,
                         timeout=120, check=True)
    path, compiled, tokenizer_file = json.loads(run.stdout)
    assert path == ["pure", f"{PURE_ENV}=1"]
    assert compiled is False
    assert tokenizer_file.endswith("tokenizer.py")


def test_both_cores_give_the_same_bytes_on_goldens_random_documents_and_real_pages() -> None:
    _needs_compiled()
    compiled, pure = _digests(pure=False), _digests(pure=True)
    assert compiled["compiled"] is True and pure["compiled"] is False
    assert compiled["digests"].keys() == pure["digests"].keys()
    differing = sorted(name for name, value in compiled["digests"].items() if pure["digests"][name] != value)
    assert not differing, f"{len(differing)} cases differ between the cores, e.g. {differing[:10]}"
    assert len(compiled["digests"]) > 3000


@pytest.mark.slow
def test_golden_and_property_tests_pass_on_the_pure_core_too(tmp_path: Path) -> None:
    """This run tests the compiled core; the same golden and property tests run again on the pure one (the
    property test with a fixed seed: this run's own property test explores at random)."""
    _needs_compiled()
    files = [str(ROOT / "tests" / name) for name in ("test_rewriter.py", "test_rewriter_property.py",
                                                       "test_rewriter_head.py")]
    # from a folder of its own: hypothesis keeps no example database there to replay
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
         "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "--hypothesis-seed=20261128", *files],
        cwd=tmp_path, env=_env(pure=True), capture_output=True, text=True, timeout=900, check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert "rewriter core: pure" in run.stdout
