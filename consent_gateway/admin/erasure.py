"""Erasure of a visitor's personal data: review, then confirm; audited before anything changes."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from consent_gateway.admin.guard import root_of
from consent_gateway.admin.site import MAX_ID_LENGTH, DashboardSite
from consent_gateway.errors import StoreUnavailable
from consent_gateway.events import PERSONAL_FIELDS


class ErasurePages:
    def __init__(self, site: DashboardSite) -> None:
        self.site = site

    async def _queue(self, request: Request, consent_id: str) -> Response:
        """The log is down: keep the request on disk (applied when the log answers), never refuse it."""
        user = self.site.access(request).principal.name
        try:
            await asyncio.to_thread(self.site.erasure_queue.add, consent_id, user)
        except OSError:
            await self.site.record(request, "erase", consent_id, outcome="failed")
            raise StoreUnavailable("the consent log is down and the erasure queue cannot be written") from None
        await self.site.record(request, "erase", consent_id, outcome="queued")
        return self.site.render(
            request,
            "error.html",
            202,
            title=self.site.t(request, "erase.queued_title"),
            message=self.site.t(request, "erase.queued", id=consent_id),
        )

    def _enter_id(self, request: Request) -> Response:
        error = self.site.t(request, "erase.enter_id")
        return self.site.render(request, "erase.html", 400, consent_id="", error=error, nav="erase")

    async def erase_form(self, request: Request) -> Response:
        consent_id = request.query_params.get("consent_id", "").strip()[:MAX_ID_LENGTH]
        return self.site.render(request, "erase.html", consent_id=consent_id, error=None, nav="erase")

    async def erase_review(self, request: Request) -> Response:
        """Step 1: show what will be erased and ask to confirm. Nothing changes yet."""
        consent_id = self.site.form(request).get("consent_id", "").strip()[:MAX_ID_LENGTH]
        if not consent_id:
            return self._enter_id(request)
        events = await self.site.log.history(consent_id)
        await self.site.record(request, "view-erase", consent_id, events=len(events))
        if not events:
            error = self.site.t(request, "erase.no_event")
            return self.site.render(request, "erase.html", 404, consent_id=consent_id, error=error, nav="erase")
        return self.site.render(
            request,
            "erase_confirm.html",
            consent_id=consent_id,
            events=events,
            personal=PERSONAL_FIELDS,
            error=None,
            nav="erase",
        )

    async def erase_confirm(self, request: Request) -> Response:
        """Step 2: the confirmed erasure, then back to the visitor's history (now without personal data)."""
        form = self.site.form(request)
        consent_id = form.get("consent_id", "").strip()[:MAX_ID_LENGTH]
        if not consent_id:
            return self._enter_id(request)
        if form.get("confirm") != "yes":
            events = await self.site.log.history(consent_id)
            return self.site.render(
                request,
                "erase_confirm.html",
                400,
                consent_id=consent_id,
                events=events,
                personal=PERSONAL_FIELDS,
                error=self.site.t(request, "erase.tick"),
                nav="erase",
            )
        if not await self.site.record(request, "erase", consent_id, outcome="started"):
            return self.site.render(
                request,
                "error.html",
                503,
                title=self.site.t(request, "erase.refused_title"),
                message=self.site.t(request, "erase.refused"),
            )
        try:
            erased = await self.site.log.erase(consent_id)
        except StoreUnavailable:
            return await self._queue(request, consent_id)
        await self.site.record(request, "erase", consent_id, outcome="ok", events=erased)
        return RedirectResponse(
            f"{root_of(request)}/visitors/{quote(consent_id, safe='')}?erased={erased}", status_code=303
        )
