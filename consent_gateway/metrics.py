"""Process-wide counters, rendered as Prometheus text at ``/_consent/metrics``.

Counting must cost next to nothing on the request path: a dict increment, no locks (one event loop).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

#: name → help text. A counter not listed here is refused, so a typo cannot create a silent series.
COUNTERS: dict[str, str] = {
    "consent_events_total": "Consent events recorded, by action.",
    "consent_grants_total": "Categories granted in recorded consent events, by category.",
    "consent_cookie_rejected_total": "Consent cookies treated as no consent, by reason.",
    "consent_sync_total": "Choices and withdrawals taken from a sister domain's sync token, by kind.",
    "consent_sync_rejected_total": "Sync tokens not applied (forged, expired, replayed, not for here…), by reason.",
    "held_back_tags_total": "Tags held back in HTML, by vendor.",
    "dropped_cookies_total": "Set-Cookie headers dropped for lack of consent, by vendor.",
    "unknown_cookies_total": "Set-Cookie headers of cookies the catalog does not know, by name.",
    "rewrite_bailouts_total": "HTML rewrites that gave up and held back the rest of the page, by reason.",
    "rewrite_passthrough_total": "HTML bodies passed through unrewritten, by reason.",
    "sniffed_html_total": "Responses without a Content-Type that a browser reads as HTML, rewritten as pages.",
    "html_refused_total": "HTML responses answered 502 (or cut off) because their body could not be read, by reason.",
    "store_errors_total": "Consent log operations that failed, by operation.",
    "banner_versions_archived_total": "Banner versions this instance archived first in the consent log.",
    "retention_refused_total": "Retention purges refused because the clock is far ahead of the newest event.",
    "clock_corrections_total": "Consent events stamped with the store's (or monotonic) time: the wall clock stepped.",
    "spooled_events_total": "Consent events written to the local spool.",
    "replayed_events_total": "Spooled consent events replayed into the log.",
    "upstream_errors_total": "Proxied requests that failed upstream, by kind.",
    "requests_refused_total": "Requests refused by a limit (header size, slow body, consent rate…), by reason.",
    "csp_policies_skipped_total": "HTML pages sent without the CSP backstop policy, by reason.",
    "csp_reports_total": "CSP violation reports of loads without consent, by effective directive and blocked host.",
    "csp_reports_discarded_total": "CSP violation reports not counted as loads without consent, by reason.",
    "capped_cookies_total": "Tracker Set-Cookie lifetimes shortened to cookie.tracker_max_age_days, by vendor.",
}

_counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
#: a plain dict, not a Counter: `Counter.__iadd__` of an item costs ~2.5x a `dict.get` and a store (once a page)
_tallies: dict[tuple[str, str, tuple[tuple[str, int], ...]], int] = {}
#: the last tally counted by `inc_each`: its key, counter, label and counts (pages repeat)
_last_tally: tuple[tuple[str, str, tuple[tuple[str, int], ...]], str, str, dict[str, int]] | None = None
_gauges: dict[str, Callable[[], float]] = {}
#: name → (render lines, forget): series whose labels a module bounds itself (e.g. the top unclassified hosts)
_collectors: dict[str, tuple[Callable[[], list[str]], Callable[[], None]]] = {}


def inc(counter: str, amount: int = 1, /, **labels: str) -> None:
    if counter not in COUNTERS:
        raise KeyError(f"unknown counter {counter!r}")
    _counts[(counter, tuple(sorted(labels.items())))] += amount


def inc_each(counter: str, label: str, counts: Mapping[str, int]) -> None:
    """Many increments of one single-label counter at once: a page's tally of held-back tags.

    Pages repeat, so the whole tally is counted as one key and spread over its labels only when read.
    """
    global _last_tally
    last = _last_tally
    # the same tally as the last page (a dict comparison, nothing allocated); `dict.__eq__`, since a
    # Counter's own `==` is Python code
    if last is not None and last[1] is counter and last[2] is label and dict.__eq__(last[3], counts) is True:
        key = last[0]
    else:
        if counter not in COUNTERS:
            raise KeyError(f"unknown counter {counter!r}")
        key = (counter, label, tuple(counts.items()))
        _last_tally = (key, counter, label, dict(counts))
    _tallies[key] = _tallies.get(key, 0) + 1


def _spread_tallies() -> None:
    for (counter, label, counts), times in _tallies.items():
        for label_value, amount in counts:
            _counts[(counter, ((label, label_value),))] += amount * times
    _tallies.clear()


def value(counter: str, /, **labels: str) -> int:
    _spread_tallies()
    return _counts[(counter, tuple(sorted(labels.items())))]


def labelled(name: str) -> dict[tuple[tuple[str, str], ...], int]:
    """Every label set of one counter with its count (for the dashboard's cookie inventory)."""
    _spread_tallies()
    return {labels: count for (n, labels), count in _counts.items() if n == name}


def register_gauge(name: str, read: Callable[[], float]) -> None:
    """A value read at scrape time, such as the spool depth."""
    _gauges[name] = read


def register_collector(name: str, render_lines: Callable[[], list[str]], forget: Callable[[], None]) -> None:
    """Series rendered by their owner, with labels it keeps bounded (the top N of something)."""
    _collectors[name] = (render_lines, forget)


def reset() -> None:
    """Forget every count (tests)."""
    _counts.clear()
    _tallies.clear()
    for _, forget in _collectors.values():
        forget()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render() -> str:
    _spread_tallies()
    lines: list[str] = []
    for name, help_text in COUNTERS.items():
        lines.append(f"# HELP consent_gateway_{name} {help_text}")
        lines.append(f"# TYPE consent_gateway_{name} counter")
        for (n, labels), count in sorted(_counts.items()):
            if n != name:
                continue
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(
                f"consent_gateway_{name}{{{label_text}}} {count}" if label_text else f"consent_gateway_{name} {count}"
            )
    for name, read in sorted(_gauges.items()):
        lines.append(f"# TYPE consent_gateway_{name} gauge")
        lines.append(f"consent_gateway_{name} {read()}")
    for _, (render_lines, _) in sorted(_collectors.items()):
        lines.extend(render_lines())
    return "\n".join(lines) + "\n"
