"""What the site really uses, and its classification: the inventory, enforcement and export pages.

* ``GET /inventory`` (+ ``.json``): third-party hosts, cookies and storage keys the inventory recorded, each
  with its vendor by the catalog in force (or "unclassified"), held back or let through, counts and first and
  last seen; a one-step form beside each to classify it (privacy officers and admins; viewers read);
* ``POST /inventory/classify`` and ``/inventory/unclassify``: a decision taken or undone, written to the
  admin audit log *before* it is stored (refused when the audit log cannot be written), then applied by
  this instance at once and by the others within seconds (`site_rules.RulesWatcher`);
* ``GET /inventory/export.toml``: the classifications as ``[[vendors]]`` the config accepts as they are;
* ``GET /enforcement`` (+ ``.json``): loads the CSP backstop reported without consent — host, page path,
  count, the visitor's consent state — the proof that enforcement holds, or a list of what to classify.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from consent_gateway.admin.guard import root_of
from consent_gateway.admin.roles import allows
from consent_gateway.admin.site import DashboardSite
from consent_gateway.catalog import Catalog
from consent_gateway.classification import (
    ClassificationError,
    DecisionRequest,
    Overlay,
    apply_overlay,
    decide,
    to_toml,
    vendor_tables,
)
from consent_gateway.inventory.records import COOKIE, HOST, STORAGE, VIOLATION
from consent_gateway.responses import error_response
from consent_gateway.site_rules import ClassificationStore
from consent_gateway.thirdparty import UNCLASSIFIED, site_catalog
from consent_gateway.usage import EntryRow, entry_rows, in_thread, lifetime_text, read_entries

logger = logging.getLogger("consent_gateway.admin")

#: rows shown per kind on the page (the JSON has up to the inventory's read limit)
PAGE_ROWS: Final = 500
_FORM_FIELDS: Final = ("kind", "subject", "action", "vendor_id", "vendor_name", "category", "policy_url", "reason",
                       "lifetime")
#: the page's sections, in order (their titles are in admin/i18n.py, ``inventory.section.<kind>``)
_SECTIONS: Final = (HOST, COOKIE, STORAGE)


@dataclass(frozen=True, slots=True)
class RulesView:
    overlay: Overlay
    catalog: Catalog


class Classifications:
    """The overlay in the store and the catalog it gives, for the dashboard (kept per overlay version)."""

    def __init__(self, site: DashboardSite) -> None:
        self.site = site
        self.store = ClassificationStore(site.log)
        self._base: Catalog | None = None
        self._view: RulesView | None = None

    def base(self) -> Catalog:
        if self._base is None:
            self._base = site_catalog(self.site.config)
        return self._base

    async def view(self) -> RulesView:
        version = await self.store.version()
        view = self._view
        if view is None or view.overlay.version != version:
            overlay = await self.store.load()
            view = self._view = RulesView(overlay, apply_overlay(self.base(), overlay))
        return view


class InventoryPages:
    def __init__(self, site: DashboardSite) -> None:
        self.site = site
        self.classifications = Classifications(site)

    # -- reading ---------------------------------------------------------------------------------------------

    async def _rows(self, view: RulesView, *, unclassified_only: bool,
                    kinds: tuple[str, ...] = (HOST, COOKIE, STORAGE)) -> dict[str, list[EntryRow]]:
        entries = {kind: await read_entries(self.site.log, kind) for kind in kinds}

        def join(catalog: Catalog) -> dict[str, list[EntryRow]]:
            rows: dict[str, list[EntryRow]] = {}
            for kind, found in entries.items():
                joined = entry_rows(found, catalog, view.overlay)
                rows[kind] = [row for row in joined if row.vendor is None] if unclassified_only else joined
            return rows

        return await in_thread(join, view.catalog)

    async def inventory(self, request: Request) -> Response:
        return await self._page(request)

    async def _page(self, request: Request, status: int = 200, *, error: ClassificationError | None = None,
                    form: dict[str, str] | None = None) -> Response:
        view = await self.classifications.view()
        unclassified_only = request.query_params.get("show") == "unclassified"
        rows = await self._rows(view, unclassified_only=unclassified_only)
        size = await self.site.log.inventory_size()
        if status == 200:
            await self.site.record(request, "view-inventory", "unclassified" if unclassified_only else "all")
        return self.site.render(
            request,
            "inventory.html",
            status,
            sections=[(kind, rows[kind][:PAGE_ROWS], len(rows[kind])) for kind in _SECTIONS],
            size=size,
            unclassified_only=unclassified_only,
            nav="inventory",
            **self._form_context(request, view, error, form),
        )

    def _form_context(self, request: Request, view: RulesView, error: ClassificationError | None = None,
                      form: dict[str, str] | None = None) -> dict[str, Any]:
        """What the classification forms need (templates/_classify.html)."""
        access = self.site.access(request)
        return {
            "vendors": sorted(view.catalog.vendors.values(), key=lambda v: (v.name or v.id).lower()),
            "choosable": [c for c in self.site.config.categories if not c.required and c.id != UNCLASSIFIED],
            "overlay": view.overlay,
            "may_classify": allows(access.principal.role, "privacy-officer"),
            "error": error,
            "form": form or {},
            "done": request.query_params.get("done", "")[:200],
            "lifetime_of": lambda row: lifetime_text(row.entry.detail.get("max_age_s")),
        }

    async def inventory_json(self, request: Request) -> Response:
        view = await self.classifications.view()
        rows = await self._rows(view, unclassified_only=request.query_params.get("show") == "unclassified")
        size = await self.site.log.inventory_size()
        await self.site.record(request, "view-inventory", "json")
        return JSONResponse({
            "size": {"by_kind": size.by_kind, "unclassified_hosts": size.unclassified_hosts, "total": size.total},
            "hosts": [row.as_dict() for row in rows[HOST]],
            "cookies": [row.as_dict() for row in rows[COOKIE]],
            "storage": [row.as_dict() for row in rows[STORAGE]],
            "classifications": _decisions(view.overlay),
            "classifications_version": view.overlay.version,
        })  # fmt: skip

    async def enforcement(self, request: Request) -> Response:
        view = await self.classifications.view()
        rows = (await self._rows(view, unclassified_only=False, kinds=(VIOLATION,)))[VIOLATION]
        await self.site.record(request, "view-enforcement")
        return self.site.render(request, "enforcement.html", rows=rows[:PAGE_ROWS], total=len(rows),
                                csp_mode=self.site.config.csp.mode, nav="enforcement",
                                **self._form_context(request, view))

    async def enforcement_json(self, request: Request) -> Response:
        view = await self.classifications.view()
        rows = (await self._rows(view, unclassified_only=False, kinds=(VIOLATION,)))[VIOLATION]
        await self.site.record(request, "view-enforcement", "json")
        return JSONResponse({
            "csp_mode": self.site.config.csp.mode,
            "violations": [{**row.as_dict(), **{k: row.entry.detail.get(k) for k in
                                                ("directive", "page_path", "consent_state")}} for row in rows],
        })  # fmt: skip

    async def export(self, request: Request) -> Response:
        view = await self.classifications.view()
        await self.site.record(request, "export-classifications", decisions=len(view.overlay.decisions))
        text = to_toml(vendor_tables(self.classifications.base().vendors, view.overlay), view.overlay)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.site.clock()))
        return Response(text, media_type="application/toml; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="classified-vendors-{stamp}.toml"'})

    # -- deciding --------------------------------------------------------------------------------------------

    async def classify(self, request: Request) -> Response:
        form = self.site.form(request)
        fields = {name: form.get(name, "")[:400] for name in _FORM_FIELDS}
        access = self.site.access(request)
        required = next((c.id for c in self.site.config.categories if c.required), None)
        view = await self.classifications.view()
        request_ = DecisionRequest(**fields)
        try:  # checked against the overlay in force first: a bad form changes nothing, audits nothing
            decide(request_, view.catalog, view.overlay, categories=self.site.config.category_ids,
                   required_category=required, by=access.principal.name, at_ms=0)
        except ClassificationError as exc:
            return await self._refused(request, exc, fields)
        target = f"{fields['kind']}:{fields['subject'].strip()}"
        if not await self.site.record(request, "classify", target, decision=fields["action"],
                                      vendor=fields["vendor_id"] or fields["vendor_name"], reason=fields["reason"]):
            return self._audit_down(request)
        now_ms = int(self.site.clock() * 1000)

        def change(overlay: Overlay) -> Overlay:
            same = overlay.version == view.overlay.version  # as checked above: no catalog to build again
            catalog = view.catalog if same else apply_overlay(self.classifications.base(), overlay)
            decision = decide(request_, catalog, overlay, categories=self.site.config.category_ids,
                              required_category=required, by=access.principal.name, at_ms=now_ms)
            return overlay.with_decision(decision)

        try:
            await self.classifications.store.change(change)
        except ClassificationError as exc:  # another officer's decision, taken meanwhile, conflicts
            return await self._refused(request, exc, fields)
        await self._applied()
        back = "enforcement" if form.get("back") == "enforcement" else "inventory"
        return RedirectResponse(f"{root_of(request)}/{back}?done={quote(target, safe='')}", status_code=303)

    async def unclassify(self, request: Request) -> Response:
        form = self.site.form(request)
        kind, subject = form.get("kind", "")[:20], form.get("subject", "").strip()[:400]
        view = await self.classifications.view()
        if view.overlay.get(kind, subject) is None:
            refusal = ClassificationError("subject", "no classification to undo", "nothing_to_undo")
            return await self._refused(request, refusal, {})
        try:
            view.overlay.without(kind, subject)
        except ClassificationError as exc:
            return await self._refused(request, exc, {})
        if not await self.site.record(request, "unclassify", f"{kind}:{subject}"):
            return self._audit_down(request)
        try:
            await self.classifications.store.change(lambda overlay: overlay.without(kind, subject))
        except ClassificationError as exc:
            return await self._refused(request, exc, {})
        await self._applied()
        return RedirectResponse(f"{root_of(request)}/inventory?done={quote(f'{kind}:{subject}', safe='')}",
                                status_code=303)

    async def _applied(self) -> None:
        """This instance applies the change now; the others on their next check."""
        if self.site.on_classified is not None:
            try:
                await self.site.on_classified()
            except Exception:  # the others still pick it up; this one on its next check
                logger.exception("classification stored, not applied at once on this instance")

    async def _refused(self, request: Request, exc: ClassificationError, fields: dict[str, str]) -> Response:
        if request.headers.get("authorization"):
            return error_response(400, "bad_classification", exc.message)
        return await self._page(request, 400, error=exc, form=fields)

    def _audit_down(self, request: Request) -> Response:
        if request.headers.get("authorization"):
            message = "the admin audit log cannot be written; nothing was changed"
            return error_response(503, "audit_unavailable", message)
        return self.site.render(request, "error.html", 503, title=self.site.t(request, "error.audit_title"),
                                message=self.site.t(request, "error.audit"))


def _decisions(overlay: Overlay) -> list[dict[str, Any]]:
    return [
        {"kind": d.kind, "subject": d.subject, "action": d.action, "vendor": d.vendor_id, "reason": d.reason,
         "by": d.by, "at_ms": d.at_ms}
        for d in overlay.decisions
    ]
