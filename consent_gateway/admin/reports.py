"""The dashboard's summaries: consent rates over time, chain integrity, the cookie inventory."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from consent_gateway.admin import charts, i18n
from consent_gateway.admin.filters import day_start_ms
from consent_gateway.admin.site import DashboardSite
from consent_gateway.errors import ConfigError
from consent_gateway.events import PROCESSING_OBJECTED
from consent_gateway.inventory.records import COOKIE, MAX_PAGE, InventoryEntry, InventoryQuery
from consent_gateway.store import Checkpoint, EventFilter, VerifyResult
from consent_gateway.store.base import VENDOR_CATEGORY
from consent_gateway.store.proof import find_checkpoint_key, is_signed_by

OVERVIEW_DAYS: Final = (7, 30, 90, 365)
#: the overview's bar charts, in order (their titles are in admin/i18n.py, ``chart.by.<group>``)
_BAR_CHARTS: Final = ("country", "browser", "device", "policy_version", "vendor")


class ReportPages:
    def __init__(self, site: DashboardSite) -> None:
        self.site = site

    async def _figures(self, request: Request) -> dict[str, Any]:
        """What the overview shows, for the page and its JSON: the last ``days`` whole UTC days, every figure
        read from the store's counters (whole days and nothing else), not from a scan of the events."""
        try:
            days = int(request.query_params.get("days", "30"))
        except ValueError:
            days = 30
        if days not in OVERVIEW_DAYS:
            days = 30
        today = datetime.fromtimestamp(self.site.clock(), UTC).date()
        first = today - timedelta(days=days - 1)
        filters = EventFilter(since_ms=day_start_ms(first), until_ms=day_start_ms(today + timedelta(days=1)))
        all_days = [(first + timedelta(days=i)).isoformat() for i in range(days)]
        categories = self.site.categories
        per_day = charts.pivot(await self.site.log.stats(filters, by="day"), categories, all_days)
        # per visitor: each visitor once a day, with the last choice they made that day (store/aggregates.py)
        per_visitor = charts.pivot(await self.site.log.visitor_stats(filters, period="day"), categories, all_days)
        groups = {}
        for by in ("country", "browser", "device", "policy_version"):
            groups[by] = charts.pivot(await self.site.log.stats(filters, by=by), categories)
        groups["vendor"] = charts.pivot(await self.site.log.stats(filters, by="vendor"), [VENDOR_CATEGORY])
        days_counted = {d.day: d for d in await self.site.log.daily_counts(filters)}
        # visitors who objected to (or asked to limit) the processing from their own page: for the team to act on
        objections = await self.site.log.count(dataclasses.replace(filters, action=PROCESSING_OBJECTED))
        return {
            "days": days,
            "first": first.isoformat(),
            "today": today.isoformat(),
            "per_day": per_day,
            "per_visitor": per_visitor,
            "groups": groups,
            "days_counted": days_counted,
            "total": sum(d.events for d in days_counted.values()),
            "visitors": sum(d.visitors for d in days_counted.values()),
            "objections": objections,
            "overall": {c: _overall(per_day, c) for c in categories},
            "overall_visitors": {c: _overall(per_visitor, c) for c in categories},
        }

    async def overview(self, request: Request) -> Response:
        figures = await self._figures(request)
        days, per_day, per_visitor, groups = (figures[k] for k in ("days", "per_day", "per_visitor", "groups"))
        lang = self.site.language(request)
        groups["device"] = groups["device"].renamed(lambda device: i18n.label(lang, "device", device))
        health = await self.site.log.health()
        titles = {by: self.site.t(request, f"chart.by.{by}") for by in _BAR_CHARTS}
        labels = {**self.site.labels[lang], VENDOR_CATEGORY: self.site.t(request, "overview.vendor_granted")}
        bar_charts = [
            (
                by,
                titles[by],
                charts.bar_chart(groups[by], chart_id=f"chart-{by}", title=titles[by], labels=labels, lang=lang),
                groups[by],
            )
            for by in titles
        ]
        line = charts.line_chart(
            per_day,
            chart_id="chart-day",
            title=self.site.t(request, "overview.line_title", days=days),
            labels=self.site.labels[lang],
            lang=lang,
        )
        visitor_line = charts.line_chart(
            per_visitor,
            chart_id="chart-day-visitors",
            title=self.site.t(request, "overview.visitor_line_title", days=days),
            labels=self.site.labels[lang],
            lang=lang,
            summary="chart.visitor_line_summary",
        )
        await self.site.record(request, "view-overview", f"last {days} days")
        return self.site.render(
            request,
            "overview.html",
            **figures,
            day_choices=OVERVIEW_DAYS,
            objection_action=PROCESSING_OBJECTED,
            chart_labels=labels,
            health=health,
            line=line,
            visitor_line=visitor_line,
            daily_totals=charts.daily_totals(per_day),
            bar_charts=bar_charts,
            nav="overview",
        )

    async def overview_json(self, request: Request) -> Response:
        """The overview's figures for scripts: per day, events and visitors, and each category's rate per event
        and per visitor (see the page's "How these figures are counted")."""
        figures = await self._figures(request)
        per_day, per_visitor = figures["per_day"], figures["per_visitor"]

        def rates(table: charts.RateTable, group: str) -> dict[str, dict[str, Any]]:
            return {c: _rate(*table.cells.get((group, c), (0, 0))) for c in table.categories}

        counted = figures["days_counted"]
        await self.site.record(request, "view-overview", f"last {figures['days']} days, json")
        return JSONResponse({
            "first_day": figures["first"],
            "last_day": figures["today"],
            "events": figures["total"],
            "visitor_days": figures["visitors"],
            "objections": figures["objections"],
            "units": {
                "per_event": "consent events carrying a choice for the category",
                "per_visitor": "visitors counted once a day, with the last choice they made that day",
            },
            "categories": {
                c: {"per_event": _rate(*figures["overall"][c]), "per_visitor": _rate(*figures["overall_visitors"][c])}
                for c in per_day.categories
            },
            "days": [
                {
                    "day": day,
                    "events": counted[day].events if day in counted else 0,
                    "visitors": counted[day].visitors if day in counted else 0,
                    "per_event": rates(per_day, day),
                    "per_visitor": rates(per_visitor, day),
                }
                for day in per_day.groups
            ],
        })  # fmt: skip

    async def integrity(self, request: Request) -> Response:
        heads = await self.site.log.chain_heads()
        health = await self.site.log.health()
        await self.site.record(request, "view-integrity")
        return self.site.render(request, "integrity.html", heads=heads, health=health, result=None, nav="integrity")

    async def verify(self, request: Request) -> Response:
        started = time.perf_counter()
        checkpoint, checkpoint_problem = await asyncio.to_thread(self._signed_checkpoint)
        result: VerifyResult = await self.site.log.verify(checkpoint)
        seconds = time.perf_counter() - started
        heads = await self.site.log.chain_heads()
        unproven = list(result.unproven)
        if checkpoint_problem is not None:
            unproven.insert(0, checkpoint_problem)
        # "Verified" only when a signed checkpoint covers every chain to its current head.
        covered = checkpoint is not None and all(
            head.seq <= (checkpoint.heads[inst].seq if inst in checkpoint.heads else 0) for inst, head in heads.items()
        )
        await self.site.record(
            request,
            "verify",
            outcome="ok" if result.ok else "broken",
            events=result.events_checked,
            first_broken=result.first_broken,
            reason=result.reason,
            proven=covered,
        )
        health = await self.site.log.health()
        return self.site.render(
            request,
            "integrity.html",
            heads=heads,
            health=health,
            result=result,
            seconds=seconds,
            proven=covered and checkpoint_problem is None,
            unproven=unproven,
            nav="integrity",
        )

    def _signed_checkpoint(self) -> tuple[Checkpoint | None, str | None]:
        """The gateway's latest checkpoint when its signature verifies, and what is wrong with it otherwise."""
        path = self.site.config.checkpoint_path
        if not path.is_file():
            return None, None
        try:
            checkpoint = Checkpoint.load(path)
            key = find_checkpoint_key(self.site.config.data_path)
        except (OSError, ValueError, KeyError, ConfigError) as exc:
            return None, f"the checkpoint at {path} could not be read ({exc}), so it was not used"
        if key is None or not checkpoint.signature or not is_signed_by(checkpoint, key.public_key()):
            return None, f"the checkpoint at {path} is not signed by this gateway's checkpoint key, so it was not used"
        return checkpoint, None

    async def cookies(self, request: Request) -> Response:
        # the shared inventory in the store: every instance's Set-Cookie filter, kept across restarts
        page = await self.site.log.read_inventory(InventoryQuery(kind=COOKIE, limit=MAX_PAGE))
        unknown = _cookie_table([e for e in page.entries if not e.vendor], "count")
        dropped = _cookie_table([e for e in page.entries if e.dropped], "dropped")
        await self.site.record(request, "view-cookies")
        return self.site.render(
            request,
            "cookies.html",
            unknown=unknown,
            dropped=dropped,
            nav="cookies",
            unknown_policy=self.site.config.gateway.unknown_cookies,
        )


def _cookie_table(entries: list[InventoryEntry], counter: str) -> dict[str, Any]:
    """Cookie entries → a table (name, domain, vendor; the ``counter`` as count), largest count first."""
    rows = sorted(
        (([e.name, str(e.detail.get("domain", "")), e.vendor], int(getattr(e, counter))) for e in entries),
        key=lambda row: (-row[1], row[0]),
    )
    return {"columns": ["cookie", "domain", "vendor"], "rows": rows, "total": sum(count for _, count in rows)}


def _rate(granted: int, total: int) -> dict[str, Any]:
    return {"granted": granted, "total": total, "rate": round(granted / total, 4) if total else None}


def _overall(table: charts.RateTable, category: str) -> tuple[int, int]:
    granted = sum(table.cells.get((d, category), (0, 0))[0] for d in table.groups)
    total = sum(table.cells.get((d, category), (0, 0))[1] for d in table.groups)
    return granted, total
