"""Aggregated statistics that identify no one: consent rates per category and month, for anyone to read.

Off unless `[privacy] public_statistics = true`. Read from the per-visitor counters the dashboard uses
(`store/aggregates.py`: whole UTC months, no scan of events) over the last `MONTHS` months. The unit is the
**visitor**: each consent id counts once a month, with the last choice it made that month (a visitor who
grants then refuses counts once, as refusing; one who erased their data from their own page and made no
choice since counts for no category). A month's figure for a category is published only when at least
`[privacy] statistics_min_group_size` visitors (20 by default) made a choice for it: below that, a rate could
say what a handful of people chose, so the cell says "not published" and gives neither the rate nor the
count. (Counting choices instead would let one visitor clicking twenty times make a "group" of twenty.)
Computed at most every `CACHE_SECONDS` per instance, whatever the traffic on the page.
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
from .store.base import EventFilter
from .store.keeper import LogKeeper
from .visitor_space import VisitorSpace

MONTHS: Final = 12
CACHE_SECONDS: Final = 600.0


@dataclass(frozen=True, slots=True)
class MonthRate:
    month: str
    category: str
    #: visitors whose last choice of the month carried the category; None when under the minimum group size
    #: (then ``granted`` is None too)
    visitors: int | None
    granted: int | None

    @property
    def published(self) -> bool:
        return self.visitors is not None

    @property
    def rate_percent(self) -> int | None:
        if not self.visitors or self.granted is None:
            return None
        return round(100 * self.granted / self.visitors)


def month_start_ms(year: int, month: int) -> int:
    return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000


def months_back(now_s: float, count: int) -> tuple[int, int]:
    """``[start of the month `count - 1` months ago, start of next month)`` in ms: whole UTC months."""
    today = datetime.fromtimestamp(now_s, UTC)
    year, month = today.year, today.month - (count - 1)
    while month < 1:
        year, month = year - 1, month + 12
    next_month = month_start_ms(today.year + today.month // 12, today.month % 12 + 1)
    return month_start_ms(year, month), next_month


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
        rows = await self._keeper.log.visitor_stats(EventFilter(since_ms=since, until_ms=until), period="month")
        rates = []
        for row in rows:
            if row.category not in self.categories:
                continue
            if row.total >= self.min_group:
                rates.append(MonthRate(row.group, row.category, row.total, row.granted))
            else:
                rates.append(MonthRate(row.group, row.category, None, None))
        return rates

    def as_json(self, rates: list[MonthRate]) -> dict[str, Any]:
        return {
            "unit": "visitors (distinct consent ids, each with the last choice it made in the month)",
            "min_group_size": self.min_group,
            "months": [
                {
                    "month": r.month,
                    "category": r.category,
                    "published": r.published,
                    "visitors": r.visitors,
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
