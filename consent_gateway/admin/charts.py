"""Server-rendered SVG charts of consent rates: no JavaScript, no chart library, nothing fetched.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that says in words what the chart
shows; the page adds the same numbers as a table. Series are told apart by colour *and* by dash pattern
and marker shape, so the charts read in greyscale and for colour-blind readers. Colours come from classes
styled in ``admin.css`` (no inline ``style``: the dashboard's CSP forbids it). Their words are in the
page's language (admin/i18n.py).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup

from consent_gateway.admin.i18n import Language, percent, translate, translate_plural
from consent_gateway.store import StatRow

#: How many series styles exist in admin.css (``series-0`` …); more categories reuse them in turn.
SERIES_STYLES: Final = 6
#: Groups shown in a bar chart; the rest are only in the table (a chart of 80 countries reads as noise).
MAX_BARS: Final = 12

_LINE_WIDTH: Final = 720
_LINE_HEIGHT: Final = 260
_LEFT: Final = 48
_RIGHT: Final = 16
_TOP: Final = 16
_BOTTOM: Final = 36
#: Bar charts sit two to a row, so they get a narrower canvas: their text then scales like the line chart's.
_BAR_WIDTH: Final = 480
_BAR_LABEL_WIDTH: Final = 130
_BAR_HEIGHT: Final = 10
_BAR_GAP: Final = 2
_GROUP_GAP: Final = 12


@dataclass(frozen=True, slots=True)
class RateTable:
    """StatRows pivoted: one row per group, one (granted, total) cell per category."""

    groups: list[str]
    categories: list[str]
    cells: dict[tuple[str, str], tuple[int, int]]

    def rate(self, group: str, category: str) -> float | None:
        granted, total = self.cells.get((group, category), (0, 0))
        return granted / total if total else None

    def volume(self, group: str) -> int:
        """Events in a group: the largest total of its categories (each event counts once per category)."""
        return max((self.cells.get((group, c), (0, 0))[1] for c in self.categories), default=0)

    def renamed(self, names: Callable[[str], str]) -> RateTable:
        """The same table with each group shown by another name (a device type in the page's language)."""
        return RateTable(
            groups=[names(g) for g in self.groups],
            categories=self.categories,
            cells={(names(g), c): cell for (g, c), cell in self.cells.items()},
        )

    def top(self, limit: int) -> RateTable:
        groups = sorted(self.groups, key=lambda g: (-self.volume(g), g))[:limit]
        return RateTable(groups=groups, categories=self.categories, cells=self.cells)


def pivot(rows: Iterable[StatRow], categories: Sequence[str], groups: Sequence[str] = ()) -> RateTable:
    """Rows of ``stats()`` for the given categories (in that order).

    ``groups`` fixes the groups and their order (every day of a period, so a day without events keeps its
    place on the axis); other groups follow in the order the store gave them.
    """
    cells: dict[tuple[str, str], tuple[int, int]] = {}
    found: dict[str, None] = dict.fromkeys(groups)
    wanted = set(categories)
    for row in rows:
        if row.category not in wanted:
            continue
        found.setdefault(row.group, None)
        granted, total = cells.get((row.group, row.category), (0, 0))
        cells[(row.group, row.category)] = (granted + row.granted, total + row.total)
    return RateTable(groups=list(found), categories=list(categories), cells=cells)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _series(index: int) -> str:
    return f"series-{index % SERIES_STYLES}"


def _marker(index: int, x: float, y: float, label: str) -> str:
    """A different shape per series, so the lines can be told apart without colour."""
    shape = index % 3
    tip = f"<title>{_e(label)}</title>"
    if shape == 0:
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5">{tip}</circle>'
    if shape == 1:
        return f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7">{tip}</rect>'
    triangle = f"M{x:.1f} {y - 4.5:.1f}L{x + 4.5:.1f} {y + 3.5:.1f}L{x - 4.5:.1f} {y + 3.5:.1f}Z"
    return f'<path d="{triangle}">{tip}</path>'


def line_chart(
    table: RateTable,
    *,
    chart_id: str,
    title: str,
    labels: dict[str, str],
    lang: Language = "en",
    summary: str = "chart.line_summary",
) -> Markup:
    """Consent rate per category (lines) over the groups of ``table`` (days, oldest first); ``summary`` is the
    text key of its description (what one unit of the rates is)."""
    days = table.groups
    plot_w = _LINE_WIDTH - _LEFT - _RIGHT
    plot_h = _LINE_HEIGHT - _TOP - _BOTTOM
    summary = _line_summary(table, labels, lang, summary)
    parts = [
        f'<svg class="chart" id="{_e(chart_id)}" viewBox="0 0 {_LINE_WIDTH} {_LINE_HEIGHT}" role="img" '
        f'aria-labelledby="{_e(chart_id)}-title {_e(chart_id)}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{_e(chart_id)}-title">{_e(title)}</title>',
        f'<desc id="{_e(chart_id)}-desc">{_e(summary)}</desc>',
    ]
    for tick in (0, 25, 50, 75, 100):
        y = _TOP + plot_h * (1 - tick / 100)
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        tick_text = _e(percent(lang, tick / 100))
        parts.append(f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick_text}</text>')
    if not days:
        parts.append(
            f'<text class="empty" x="{_LEFT + plot_w / 2}" y="{_TOP + plot_h / 2}" text-anchor="middle">'
            f"{_e(translate(lang, 'chart.empty'))}</text></svg>"
        )
        return Markup("".join(parts))  # noqa: S704 - every value above went through _e

    def x_of(i: int) -> float:
        return _LEFT + (plot_w / 2 if len(days) == 1 else plot_w * i / (len(days) - 1))

    step = max(1, -(-len(days) // 8))  # at most ~8 date labels
    for i, day in enumerate(days):
        if i % step == 0 or i == len(days) - 1:
            if i == len(days) - 1 and i % step and len(days) - 1 - (i - i % step) < step / 2:
                continue  # too close to the previous label
            parts.append(
                f'<text class="tick" x="{x_of(i):.1f}" y="{_TOP + plot_h + 18}" text-anchor="middle">'
                f"{_e(day[5:] if len(day) == 10 else day)}</text>"
            )
    for index, category in enumerate(table.categories):
        name = labels.get(category, category)
        points: list[tuple[float, float, str]] = []
        for i, day in enumerate(days):
            rate = table.rate(day, category)
            if rate is None:
                continue
            granted, total = table.cells[(day, category)]
            y = _TOP + plot_h * (1 - rate)
            point = translate(
                lang, "chart.point", name=name, group=day, rate=percent(lang, rate), granted=granted, total=total
            )
            points.append((x_of(i), y, point))
        if not points:
            continue
        parts.append(f'<g class="{_series(index)}">')
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            parts.append(f'<polyline class="line" points="{path}"/>')
        parts.extend(_marker(index, x, y, label) for x, y, label in points)
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above went through _e


def _line_summary(table: RateTable, labels: dict[str, str], lang: Language, key: str) -> str:
    if not table.groups:
        return translate(lang, "chart.empty_summary")
    pieces = []
    for category in table.categories:
        granted = sum(table.cells.get((d, category), (0, 0))[0] for d in table.groups)
        total = sum(table.cells.get((d, category), (0, 0))[1] for d in table.groups)
        rate = granted / total if total else None
        pieces.append(f"{labels.get(category, category)} {percent(lang, rate)}")
    overall = ", ".join(pieces)
    return translate(lang, key, first=table.groups[0], last=table.groups[-1], overall=overall)


def bar_chart(
    table: RateTable, *, chart_id: str, title: str, labels: dict[str, str], lang: Language = "en"
) -> Markup:
    """One group of horizontal bars per group of ``table`` (a country, a browser…), one bar per category."""
    shown = table.top(MAX_BARS)
    n_cat = max(1, len(shown.categories))
    group_h = n_cat * (_BAR_HEIGHT + _BAR_GAP) + _GROUP_GAP
    height = max(60, _TOP + group_h * len(shown.groups) + 24)
    plot_w = _BAR_WIDTH - _BAR_LABEL_WIDTH - _RIGHT - 36
    totals = {g: shown.volume(g) for g in shown.groups}
    hidden = len(table.groups) - len(shown.groups)
    desc = _bar_summary(shown, labels, hidden, lang)
    parts = [
        f'<svg class="chart" id="{_e(chart_id)}" viewBox="0 0 {_BAR_WIDTH} {height}" role="img" '
        f'aria-labelledby="{_e(chart_id)}-title {_e(chart_id)}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{_e(chart_id)}-title">{_e(title)}</title>',
        f'<desc id="{_e(chart_id)}-desc">{_e(desc)}</desc>',
    ]
    if not shown.groups:
        parts.append(
            f'<text class="empty" x="{_BAR_WIDTH / 2}" y="{height / 2}" text-anchor="middle">'
            f"{_e(translate(lang, 'chart.empty'))}</text></svg>"
        )
        return Markup("".join(parts))  # noqa: S704 - every value above went through _e
    for tick in (0, 50, 100):
        x = _BAR_LABEL_WIDTH + plot_w * tick / 100
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP - 6}" y2="{height - 20}"/>')
        tick_text = _e(percent(lang, tick / 100))
        parts.append(f'<text class="tick" x="{x:.1f}" y="{height - 6}" text-anchor="middle">{tick_text}</text>')
    for gi, group in enumerate(shown.groups):
        y0 = _TOP + gi * group_h
        label = group if len(group) <= 16 else group[:15] + "…"
        middle = y0 + (n_cat * (_BAR_HEIGHT + _BAR_GAP)) / 2
        events = translate_plural(lang, "chart.events", totals[group])
        parts.append(
            f'<text class="label" x="{_BAR_LABEL_WIDTH - 8}" y="{middle - 2:.1f}" text-anchor="end">{_e(label)}'
            f'<tspan class="count" x="{_BAR_LABEL_WIDTH - 8}" dy="13">{_e(events)}</tspan></text>'
        )
        for ci, category in enumerate(shown.categories):
            rate = shown.rate(group, category)
            y = y0 + ci * (_BAR_HEIGHT + _BAR_GAP)
            width = plot_w * (rate or 0.0)
            granted, total = shown.cells.get((group, category), (0, 0))
            tip = translate(
                lang,
                "chart.point",
                name=labels.get(category, category),
                group=group,
                rate=percent(lang, rate),
                granted=granted,
                total=total,
            )
            parts.append(
                f'<rect class="bar {_series(ci)}" x="{_BAR_LABEL_WIDTH}" y="{y}" width="{width:.1f}" '
                f'height="{_BAR_HEIGHT}"><title>{_e(tip)}</title></rect>'
            )
            parts.append(
                f'<text class="value" x="{_BAR_LABEL_WIDTH + width + 4:.1f}" y="{y + _BAR_HEIGHT - 1}">'
                f"{_e(percent(lang, rate))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above went through _e


def _bar_summary(table: RateTable, labels: dict[str, str], hidden: int, lang: Language) -> str:
    if not table.groups:
        return translate(lang, "chart.empty_summary")
    pieces = []
    for group in table.groups:
        rates = ", ".join(f"{labels.get(c, c)} {percent(lang, table.rate(group, c))}" for c in table.categories)
        events = translate_plural(lang, "chart.events", table.volume(group))
        pieces.append(translate(lang, "chart.bar_group", group=group, events=events, rates=rates))
    more = translate(lang, "chart.hidden", n=hidden) if hidden else ""
    return translate(lang, "chart.bar_summary", groups="; ".join(pieces)) + more


def daily_totals(table: RateTable) -> dict[str, int]:
    """Events per day (for the table under the line chart)."""
    return {day: table.volume(day) for day in table.groups}
