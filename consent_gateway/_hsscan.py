"""Optional native scanner for the rewriter, on hyperscan: one pass over a buffer finds every candidate
token, catalog host/path string, inline-script signature and quoted attribute value holding "<" or ">".

Everything it reports is a *hint*: the rewriter confirms each one with the same code its pure-Python path
runs, and only skips work where the scan proves there is nothing to find. So both paths give the same bytes
(the tests run both). Without the ``hyperscan`` package, ``scanner_for`` returns None.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from typing import Any

_hs: Any
try:
    import hyperscan as _hs
except ImportError:  # pragma: no cover - the pure-Python path is tested with use_accelerators(False)
    _hs = None

#: below this many bytes a buffer is not worth a scan (the call costs a few microseconds)
MIN_SCAN_BYTES = 2048

_CANDIDATE, _QUOTED, _NEEDLE, _SIGNATURE = 0, 1, 2, 3


class BufferScan:
    """What one scan found in one buffer, as sorted offsets."""

    __slots__ = ("candidates", "quoted_ends", "needles", "signatures")

    def __init__(self) -> None:
        self.candidates: list[int] = []  # start offsets of candidate tokens
        self.quoted_ends: list[int] = []  # end offsets of quoted values holding "<" or ">"
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


class Scanner:
    """A compiled hyperscan database for one catalog and one set of candidate names."""

    def __init__(self, start_names: tuple[str, ...], end_names: tuple[str, ...], needles: list[bytes],
                 signatures: list[bytes]) -> None:
        assert _hs is not None
        candidate = (
            b"<(?:" + b"|".join(n.encode() for n in start_names) + rb")[\t\n\f\r />]"
            + b"|</(?:" + b"|".join(n.encode() for n in end_names) + rb")[\t\n\f\r />]"
            + rb"|<[!?]|</[^a-zA-Z]"
        )
        quoted = rb"""=[\t\n\f\r ]*(?:"[^"<>]*[<>]|'[^'<>]*[<>])"""
        expressions = [candidate, quoted]
        flags = [_hs.HS_FLAG_CASELESS | _hs.HS_FLAG_SOM_LEFTMOST, 0]
        self._kinds = [_CANDIDATE, _QUOTED]
        self._lengths = [0, 0]
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
        # matches arrive in order of their end; the candidates and spans are wanted by start
        candidates.sort()
        needles.sort()
        signatures.sort()
        return result


def scanner_for(catalog: Any, start_names: tuple[str, ...], end_names: tuple[str, ...]) -> Scanner | None:
    """The scanner of a catalog (compiled once per catalog), or None without hyperscan."""
    if _hs is None:
        return None
    scanner: Scanner | None = getattr(catalog, "_hs_scanner", None)
    if scanner is None:
        needles, signatures = catalog.scan_strings()
        scanner = Scanner(start_names, end_names, needles, signatures)
        catalog._hs_scanner = scanner
    return scanner
