"""Aggregated statistics that identify no one: consent rates per category and month, for anyone to read.

Off unless `[privacy] public_statistics = true`. Read from the counters the dashboard uses
(`store/aggregates.py`: whole UTC days, no scan of events), summed per month over the last
`MONTHS` months. A month's figure for a category is published only when at least
`[privacy] statistics_min_group_size` choices (20 by default) make it: below that, a rate could say what a
handful of people chose, so the cell says "not published" and gives neither the rate nor the count. The
unit is the choice (a consent event carrying that category), as the counters keep it. Computed at most every
`CACHE_SECONDS` per instance, whatever the traffic on the page.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .config import Config
from .errors import APIError
from .store.aggregates import DAY_MS
from .store.base import EventFilter
from .store.keeper import LogKeeper
from .visitor_space import VisitorSpace

MONTHS: Final = 12
CACHE_SECONDS: Final = 600.0


@dataclass(frozen=True, slots=True)
class MonthRate:
    month: str
    category: str
    #: None when the group is under the minimum size (then ``granted`` is None too)
    choices: int | None
    granted: int | None

    @property
    def published(self) -> bool:
        return self.choices is not None

    @property
    def rate_percent(self) -> int | None:
        if not self.choices or self.granted is None:
            return None
        return round(100 * self.granted / self.choices)


def month_start_ms(year: int, month: int) -> int:
    return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000


def months_back(now_s: float, count: int) -> tuple[int, int]:
    """``[start of the month `count - 1` months ago, start of tomorrow)`` in ms: whole UTC days."""
    today = datetime.fromtimestamp(now_s, UTC)
    year, month = today.year, today.month - (count - 1)
    while month < 1:
        year, month = year - 1, month + 12
    tomorrow = (int(now_s * 1000) // DAY_MS + 1) * DAY_MS
    return month_start_ms(year, month), tomorrow


class PublicStatistics:
    def __init__(self, config: Config, keeper: LogKeeper) -> None:
        self.min_group = config.privacy.statistics_min_group_size
        self.categories = tuple(c.id for c in config.categories if not c.required)
        self._keeper = keeper
        self._cached: tuple[float, list[MonthRate]] | None = None
        self._lock = asyncio.Lock()

    async def rates(self, *, now_s: float | None = None) -> list[MonthRate]:
        """Every (month, category) of the period, oldest month first, small groups withheld."""
        async with self._lock:
            if self._cached is not None and now_s is None and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            found = await self._compute(time.time() if now_s is None else now_s)
            self._cached = (time.monotonic(), found)
            return found

    async def _compute(self, now_s: float) -> list[MonthRate]:
        since, until = months_back(now_s, MONTHS)
        await self._keeper.ensure_started()
        rows = await self._keeper.log.stats(EventFilter(since_ms=since, until_ms=until), by="day")
        cells: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            if row.category in self.categories:
                cell = cells.setdefault((row.group[:7], row.category), [0, 0])
                cell[0] += row.total
                cell[1] += row.granted
        rates = []
        for (month, category), (total, granted) in sorted(cells.items()):
            if total >= self.min_group:
                rates.append(MonthRate(month, category, total, granted))
            else:
                rates.append(MonthRate(month, category, None, None))
        return rates

    def as_json(self, rates: list[MonthRate]) -> dict[str, Any]:
        return {
            "unit": "choices (consent events carrying a choice for the category)",
            "min_group_size": self.min_group,
            "months": [
                {
                    "month": r.month,
                    "category": r.category,
                    "published": r.published,
                    "choices": r.choices,
                    "granted": r.granted,
                    "rate": None if r.rate_percent is None else r.rate_percent / 100,
                }
                for r in rates
            ],
        }


class StatisticsPages:
    """`GET /_consent/statistics` (HTML, the visitor's language) and `/_consent/statistics.json`."""

    def __init__(self, statistics: PublicStatistics, space: VisitorSpace) -> None:
        self.statistics = statistics
        self.space = space

    def routes(self) -> list[BaseRoute]:
        prefix = self.space.prefix
        return [
            Route(f"{prefix}/statistics", self.html, methods=["GET"]),
            Route(f"{prefix}/statistics.json", self.json, methods=["GET"]),
        ]

    async def _rates(self) -> list[MonthRate]:
        try:
            return await self.statistics.rates()
        except Exception:
            raise APIError(503, "store_unavailable", "the statistics cannot be read right now, please retry") from None

    async def html(self, request: Request) -> Response:
        rates = await self._rates()
        return self.space.render(
            request,
            "statistics.html",
            lang=self.space.language(request),
            months=sorted({r.month for r in rates}, reverse=True),
            cells={(r.month, r.category): r for r in rates},
            min_group=self.statistics.min_group,
        )

    async def json(self, request: Request) -> Response:
        rates = await self._rates()
        return JSONResponse(self.statistics.as_json(rates), headers={"Cache-Control": "public, max-age=600"})
