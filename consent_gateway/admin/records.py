"""Reading the consent log: search, one event, one visitor's history, and the exports.

The exports are written by `consent_gateway.export`, as `logs export` writes them; each role chooses among
the column groups it may see (``personal=yes|no``, ``proof=yes|no``; by default every group it may see):
personal columns for a role that sees IP addresses (``roles.sees_ips``), proof columns for every role that
exports.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from consent_gateway.admin.filters import describe
from consent_gateway.admin.guard import root_of
from consent_gateway.admin.site import MAX_ID_LENGTH, DashboardSite
from consent_gateway.banner import archive_version
from consent_gateway.errors import StoreUnavailable
from consent_gateway.events import ACTIONS, DEVICE_TYPES, PERSONAL_FIELDS, ConsentEvent
from consent_gateway.export import MEDIA_TYPES, ExportColumns, ExportFormat, banner_versions_export, stream_export
from consent_gateway.responses import error_response

logger = logging.getLogger("consent_gateway.admin")

PAGE_SIZE: Final = 50
_CHOICES: Final = {"yes": True, "no": False}


class ExportInterrupted(Exception):
    """The log failed mid-export: the connection is cut so the download is seen to fail, not to end."""


def without_ips(events: Iterable[ConsentEvent]) -> list[ConsentEvent]:
    return [dataclasses.replace(e, ip=None) if e.ip is not None else e for e in events]


class RecordPages:
    def __init__(self, site: DashboardSite) -> None:
        self.site = site

    async def events(self, request: Request) -> Response:
        form = self.site.search_form(request)
        cursor = request.query_params.get("cursor") or None
        events: list[ConsentEvent] = []
        next_cursor = None
        total = None
        cursor_error = None
        if not form.errors:
            try:
                page = await self.site.log.query(form.filters, limit=PAGE_SIZE, cursor=cursor)
            except ValueError:
                cursor_error = self.site.t(request, "events.stale_cursor")
                cursor = None
                page = await self.site.log.query(form.filters, limit=PAGE_SIZE)
            events, next_cursor = page.events, page.next_cursor
            if not self.site.sees_ips(request):
                events = without_ips(events)
            total = await self.site.log.count(form.filters)
        await self.site.record(
            request, "search", describe(form), page="next" if cursor else "first", results=len(events)
        )
        return self.site.render(
            request,
            "events.html",
            400 if form.errors else 200,
            form=form,
            events=events,
            total=total,
            next_cursor=next_cursor,
            cursor=cursor,
            cursor_error=cursor_error,
            actions=ACTIONS,
            devices=DEVICE_TYPES,
            nav="events",
        )

    async def event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"][:MAX_ID_LENGTH]
        event = await self.site.log.get(event_id)
        await self.site.record(request, "view-event", event_id, outcome="ok" if event else "not-found")
        if event is None:
            return self.site.render(
                request,
                "error.html",
                404,
                title=self.site.t(request, "error.no_event_title"),
                message=self.site.t(request, "error.no_event", id=event_id),
            )
        if not self.site.sees_ips(request):
            event = without_ips([event])[0]
        shown, proven = await self._banner_shown(event.banner_version)
        return self.site.render(
            request,
            "event.html",
            event=event,
            personal=PERSONAL_FIELDS,
            shown=shown,
            shown_proven=proven,
            nav="events",
        )

    async def _banner_shown(self, version: str) -> tuple[dict[str, Any] | None, bool]:
        """The archived banner an event was shown, and whether the archive hashes to the event's version."""
        try:
            found = await self.site.log.banner_versions([version])
        except StoreUnavailable:
            return None, False
        if version not in found:
            return None, False
        shown: dict[str, Any] = json.loads(found[version])
        return shown, archive_version(shown) == version

    async def banner(self, request: Request) -> Response:
        """One archived banner version as JSON: exactly what the log keeps, hashing to its version."""
        version = request.path_params["version"][:MAX_ID_LENGTH]
        found = await self.site.log.banner_versions([version])
        await self.site.record(request, "view-banner", version, outcome="ok" if found else "not-found")
        if version not in found:
            return error_response(404, "not_found", f"no archived banner version {version!r}")
        return Response(
            found[version],
            media_type="application/json",
            headers={"Content-Disposition": f'inline; filename="banner-{version}.json"'},
        )

    async def export_banners(self, request: Request) -> Response:
        """The archived banner versions the selected events were shown, for the proof that goes with an export."""
        form = self.site.search_form(request, api=True)
        if form.errors:
            return error_response(400, "bad_filter", "; ".join(f"{k}: {v}" for k, v in form.errors.items()))
        if not await self.site.record(request, "export", describe(form), format="banners"):
            return error_response(503, "audit_unavailable", "the admin audit log cannot be written; export refused")
        found = await banner_versions_export(self.site.log, form.filters)
        stamp = datetime.fromtimestamp(self.site.clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
        return JSONResponse(
            found, headers={"Content-Disposition": f'attachment; filename="banner-versions-{stamp}.json"'}
        )

    async def visitor_lookup(self, request: Request) -> Response:
        consent_id = request.query_params.get("consent_id", "").strip()[:MAX_ID_LENGTH]
        if consent_id:
            return RedirectResponse(f"{root_of(request)}/visitors/{quote(consent_id, safe='')}", status_code=303)
        return self.site.render(request, "visitor.html", consent_id="", events=None, erased=None, nav="visitors")

    async def visitor(self, request: Request) -> Response:
        consent_id = request.path_params["consent_id"][:MAX_ID_LENGTH]
        events = await self.site.log.history(consent_id)
        if not self.site.sees_ips(request):
            events = without_ips(events)
        await self.site.record(request, "view-history", consent_id, events=len(events))
        erased = request.query_params.get("erased")
        return self.site.render(
            request,
            "visitor.html",
            200 if events else 404,
            consent_id=consent_id,
            events=events,
            erased=int(erased) if erased and erased.isdigit() else None,
            nav="visitors",
        )

    def export_columns(self, request: Request) -> ExportColumns | Response:
        """The columns asked for, within what the role may see; an error answer for a bad or refused choice."""
        may_personal = self.site.sees_ips(request)
        chosen: dict[str, bool] = {}
        for group, default in (("personal", may_personal), ("proof", True)):
            value = request.query_params.get(group, "").strip().lower()
            if value and value not in _CHOICES:
                return error_response(400, "bad_columns", f"{group}: expected yes or no")
            chosen[group] = _CHOICES[value] if value else default
        if chosen["personal"] and not may_personal:
            role = self.site.access(request).principal.role
            return error_response(
                403, "role_not_allowed", f"your role ({role}) may not export personal columns: it needs privacy-officer"
            )
        return ExportColumns(tuple(self.site.categories), personal=chosen["personal"], proof=chosen["proof"])

    async def export_form(self, request: Request) -> Response:
        form = self.site.search_form(request)
        columns = self.export_columns(request)
        if not isinstance(columns, ExportColumns):  # a choice the page would not offer: the role's default
            columns = ExportColumns(tuple(self.site.categories), personal=self.site.sees_ips(request))
        await self.site.record(request, "view-export")
        return self.site.render(
            request,
            "export.html",
            form=form,
            columns=columns,
            sees_personal=self.site.sees_ips(request),
            actions=ACTIONS,
            devices=DEVICE_TYPES,
            nav="export",
        )

    async def _export(self, request: Request, fmt: ExportFormat) -> Response:
        form = self.site.search_form(request, api=True)
        if form.errors:
            return error_response(400, "bad_filter", "; ".join(f"{k}: {v}" for k, v in form.errors.items()))
        columns = self.export_columns(request)
        if not isinstance(columns, ExportColumns):
            return columns
        audited = await self.site.record(
            request, "export", describe(form), format=fmt, personal=columns.personal, proof=columns.proof
        )
        if not audited:
            return error_response(503, "audit_unavailable", "the admin audit log cannot be written; export refused")
        stamp = datetime.fromtimestamp(self.site.clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
        source = self.site.log.export(form.filters)
        # A log that is down answers 503 here, before the first byte; later, the download breaks off.
        first = await anext(source, None)

        async def events() -> AsyncIterator[ConsentEvent]:
            if first is None:
                return
            yield first
            try:
                async for event in source:
                    yield event
            except StoreUnavailable as exc:
                logger.error("export broken off: %s", exc)
                raise ExportInterrupted("the consent log failed during an export") from exc

        return StreamingResponse(
            stream_export(events(), fmt, columns),
            media_type=MEDIA_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="consent-events-{stamp}.{fmt}"'},
        )

    async def export_csv(self, request: Request) -> Response:
        return await self._export(request, "csv")

    async def export_jsonl(self, request: Request) -> Response:
        return await self._export(request, "jsonl")
