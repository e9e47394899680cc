"""The privacy team's dashboard: a Starlette app the gateway mounts at ``{prefix}/admin``.

Every route but the login form and the stylesheet sits behind :class:`~consent_gateway.admin.guard.Guard`,
and every action on the consent log is written to the admin audit log before its answer goes out. Pages
are plain server-rendered HTML (jinja2, autoescaped) with SVG charts: no script, nothing fetched from
another site, so the CSP can forbid both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from consent_gateway._types import ASGIApp
from consent_gateway.admin import i18n
from consent_gateway.admin.erasure import ErasurePages
from consent_gateway.admin.guard import Handler, root_of, safe_next, with_security_headers
from consent_gateway.admin.inventory import InventoryPages
from consent_gateway.admin.login import LoginPages
from consent_gateway.admin.records import RecordPages
from consent_gateway.admin.reports import ReportPages
from consent_gateway.admin.roles import Role
from consent_gateway.admin.site import DashboardSite
from consent_gateway.admin.users import UserPages
from consent_gateway.config import Config
from consent_gateway.errors import StoreUnavailable
from consent_gateway.responses import error_response
from consent_gateway.store import ConsentLog

logger = logging.getLogger("consent_gateway.admin")

_STYLESHEET: Final = Path(__file__).with_name("static") / "admin.css"
#: How long the language switch's choice is kept.
_LANGUAGE_COOKIE_SECONDS: Final = 365 * 86400


def build_admin_app(
    config: Config,
    log: ConsentLog,
    secret_keys: Sequence[str],
    *,
    clock: Callable[[], float] = time.time,
    environ: Mapping[str, str] | None = None,
    on_classified: Callable[[], Awaitable[object]] | None = None,
) -> ASGIApp:
    """The dashboard as an ASGI app, to be mounted at ``{prefix}/admin`` (it reads its own mount point
    from ``root_path``).

    :param log: the consent log, already opened by the gateway.
    :param secret_keys: the gateway's signing keys; the first signs sessions, all verify.
    :param clock: seconds since the epoch (tests move it to expire sessions and lockouts).
    :param environ: where ``CONSENT_GATEWAY_ADMIN_TOKENS`` is read (default: the process environment).
    :param on_classified: called after a classification is stored, so the gateway applies it at once.
    """
    dashboard = _Dashboard(config, log, secret_keys, clock=clock, environ=environ, on_classified=on_classified)
    app = with_security_headers(dashboard.app)
    app.routes = dashboard.app.routes  # type: ignore[attr-defined]  # each with its needed role, for tests
    return app


class _Dashboard:
    """The route table: which page group answers which path, and behind which guard."""

    def __init__(
        self,
        config: Config,
        log: ConsentLog,
        secret_keys: Sequence[str],
        *,
        clock: Callable[[], float],
        environ: Mapping[str, str] | None,
        on_classified: Callable[[], Awaitable[object]] | None,
    ) -> None:
        self.site = site = DashboardSite(
            config, log, secret_keys, clock=clock, environ=environ, on_classified=on_classified
        )
        self.stylesheet = _STYLESHEET.read_bytes()
        login, records, reports, erasure = LoginPages(site), RecordPages(site), ReportPages(site), ErasurePages(site)
        inventory, users = InventoryPages(site), UserPages(site)
        protect = site.guard.protect

        def page(needs: Role, handler: Handler) -> Handler:
            return protect(handler, needs=needs)

        def data(needs: Role, handler: Handler) -> Handler:
            return protect(handler, needs=needs, kind="data")

        # The least role of each route (admin/roles.py); every route but the login form and the stylesheet
        # has one, and tests/admin/test_roles.py checks each against its own table.
        routes = [
            Route("/login", login.login_form, methods=["GET"]),
            Route("/login", login.login, methods=["POST"]),
            Route("/admin.css", self.css, methods=["GET"]),
            Route("/language", self.choose_language, methods=["GET"]),
            Route("/logout", page("viewer", login.logout), methods=["POST"]),
            Route("/", page("viewer", reports.overview), methods=["GET"]),
            Route("/overview.json", data("viewer", reports.overview_json), methods=["GET"]),
            Route("/cookies", page("viewer", reports.cookies), methods=["GET"]),
            Route("/integrity", page("viewer", reports.integrity), methods=["GET"]),
            Route("/integrity", page("analyst", reports.verify), methods=["POST"]),
            Route("/events", page("analyst", records.events), methods=["GET"]),
            Route("/events/{event_id}", page("analyst", records.event), methods=["GET"]),
            Route("/visitors", page("analyst", records.visitor_lookup), methods=["GET"]),
            Route("/visitors/{consent_id}", page("analyst", records.visitor), methods=["GET"]),
            Route("/export", page("analyst", records.export_form), methods=["GET"]),
            Route("/export.csv", data("analyst", records.export_csv), methods=["GET"]),
            Route("/export.jsonl", data("analyst", records.export_jsonl), methods=["GET"]),
            Route("/export.banners.json", data("analyst", records.export_banners), methods=["GET"]),
            Route("/banners/{version}.json", data("analyst", records.banner), methods=["GET"]),
            Route("/erase", page("privacy-officer", erasure.erase_form), methods=["GET"]),
            Route("/erase", page("privacy-officer", erasure.erase_review), methods=["POST"]),
            Route("/erase/confirm", page("privacy-officer", erasure.erase_confirm), methods=["POST"]),
            Route("/inventory", page("viewer", inventory.inventory), methods=["GET"]),
            Route("/inventory.json", data("viewer", inventory.inventory_json), methods=["GET"]),
            Route("/inventory/classify", page("privacy-officer", inventory.classify), methods=["POST"]),
            Route("/inventory/unclassify", page("privacy-officer", inventory.unclassify), methods=["POST"]),
            Route("/inventory/export.toml", data("viewer", inventory.export), methods=["GET"]),
            Route("/enforcement", page("viewer", inventory.enforcement), methods=["GET"]),
            Route("/enforcement.json", data("viewer", inventory.enforcement_json), methods=["GET"]),
            Route("/users", page("admin", users.users), methods=["GET"]),
            Route("/users/create", page("admin", users.create_user), methods=["POST"]),
            Route("/users/update", page("admin", users.update_user), methods=["POST"]),
            Route("/tokens/create", page("admin", users.create_token), methods=["POST"]),
            Route("/tokens/revoke", page("admin", users.revoke_token), methods=["POST"]),
            # Anything else: still login first, so the dashboard does not tell which routes exist.
            Route("/{rest:path}", page("viewer", self.not_found), methods=["GET", "POST"]),
        ]
        self.app = Starlette(routes=routes, exception_handlers={StoreUnavailable: self.store_unavailable})

    async def store_unavailable(self, request: Request, exc: Exception) -> Response:
        logger.warning("consent log unavailable for the dashboard: %s", exc)
        if request.scope["path"].endswith((".csv", ".jsonl", ".json", ".toml")):
            return error_response(503, "store_unavailable", "the consent log is unavailable; try again shortly")
        return self.site.render(
            request,
            "error.html",
            503,
            title=self.site.t(request, "error.unavailable_title"),
            message=self.site.t(request, "error.unavailable"),
        )

    async def not_found(self, request: Request) -> Response:
        return self.site.render(
            request,
            "error.html",
            404,
            title=self.site.t(request, "error.not_found_title"),
            message=self.site.t(request, "error.not_found"),
        )

    async def choose_language(self, request: Request) -> Response:
        """The language switch: keeps the choice in a cookie and goes back to the page it was made on.

        Open before login (the login form has the switch too); it changes nothing but the words shown."""
        chosen = request.query_params.get("set", "")
        response = RedirectResponse(root_of(request) + safe_next(request.query_params.get("next")), status_code=303)
        if chosen in i18n.LANGUAGES:
            response.set_cookie(
                i18n.COOKIE,
                chosen,
                max_age=_LANGUAGE_COOKIE_SECONDS,
                path=root_of(request) or "/",
                secure=self.site.guard.is_secure(request),
                httponly=True,
                samesite="lax",
            )
        return response

    async def css(self, request: Request) -> Response:
        return Response(self.stylesheet, media_type="text/css")
