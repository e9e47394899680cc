"""The privacy team's dashboard: a Starlette app the gateway mounts at ``{prefix}/admin``.

Every route but the login form and the stylesheet sits behind :class:`~consent_gateway.admin.guard.Guard`,
and every action on the consent log is written to the admin audit log before its answer goes out. Pages
are plain server-rendered HTML (jinja2, autoescaped) with SVG charts: no script, nothing fetched from
another site, so the CSP can forbid both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from consent_gateway import metrics
from consent_gateway._types import ASGIApp
from consent_gateway.admin import charts
from consent_gateway.admin.audit import AUDIT_FILE_NAME, AuditLog
from consent_gateway.admin.auth import Authenticator, Principal, tokens_from_env
from consent_gateway.admin.filters import SearchForm, day_start_ms, describe, parse_search
from consent_gateway.admin.guard import (
    Access,
    Guard,
    Handler,
    forbidden,
    root_of,
    safe_next,
    with_security_headers,
)
from consent_gateway.admin.ratelimit import LoginLimiter
from consent_gateway.admin.sessions import SessionManager
from consent_gateway.config import Config
from consent_gateway.csrf import is_same_origin
from consent_gateway.errors import StoreUnavailable
from consent_gateway.events import ACTIONS, DEVICE_TYPES, PERSONAL_FIELDS, ConsentEvent
from consent_gateway.export import MEDIA_TYPES, ExportFormat, stream_export
from consent_gateway.responses import error_response
from consent_gateway.store import ConsentLog, EventFilter, VerifyResult

logger = logging.getLogger("consent_gateway.admin")

PAGE_SIZE: Final = 50
OVERVIEW_DAYS: Final = (7, 30, 90, 365)
_TEMPLATES: Final = Path(__file__).with_name("templates")
_STYLESHEET: Final = Path(__file__).with_name("static") / "admin.css"
_MAX_CONSENT_ID: Final = 200
_LOGIN_FAILED: Final = "Wrong user name or password."


class ExportInterrupted(Exception):
    """The log failed mid-export: the connection is cut so the download is seen to fail, not to end."""


def build_admin_app(
    config: Config,
    log: ConsentLog,
    secret_keys: Sequence[str],
    *,
    clock: Callable[[], float] = time.time,
    environ: Mapping[str, str] | None = None,
) -> ASGIApp:
    """The dashboard as an ASGI app, to be mounted at ``{prefix}/admin`` (it reads its own mount point
    from ``root_path``).

    :param log: the consent log, already opened by the gateway.
    :param secret_keys: the gateway's signing keys; the first signs sessions, all verify.
    :param clock: seconds since the epoch (tests move it to expire sessions and lockouts).
    :param environ: where ``CONSENT_GATEWAY_ADMIN_TOKENS`` is read (default: the process environment).
    """
    return with_security_headers(_Dashboard(config, log, secret_keys, clock=clock, environ=environ).app)


class _Dashboard:
    def __init__(
        self,
        config: Config,
        log: ConsentLog,
        secret_keys: Sequence[str],
        *,
        clock: Callable[[], float],
        environ: Mapping[str, str] | None,
    ) -> None:
        admin = config.admin
        self.config = config
        self.log = log
        self.clock = clock
        self.categories = [c.id for c in config.categories if not c.required]
        self.labels = {c.id: c.label.get("en") or c.id.title() for c in config.categories}
        users = {user.name: user.password_hash for user in admin.users}
        self.authenticator = Authenticator(users, tokens_from_env(environ, admin.tokens_env))
        self.sessions = SessionManager(
            secret_keys,
            idle_timeout_seconds=admin.session_idle_minutes * 60,
            max_age_seconds=admin.session_max_hours * 3600,
            clock=clock,
        )
        self.limiter = LoginLimiter(
            max_failures=admin.login_max_failures,
            window_seconds=admin.lockout_minutes * 60,
            lockout_seconds=admin.lockout_minutes * 60,
            clock=clock,
        )
        audit_path = Path(admin.audit_log) if admin.audit_log else config.data_path / AUDIT_FILE_NAME
        self.audit = AuditLog(audit_path, clock=clock)
        self.guard = Guard(
            sessions=self.sessions,
            authenticator=self.authenticator,
            limiter=self.limiter,
            trusted_proxies=config.gateway.trusted_proxies,
            secure_cookie=config.cookie.secure,
            on_bad_token=self._audit_bad_token,
        )
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["utc"] = _utc
        self.stylesheet = _STYLESHEET.read_bytes()
        self.login_lock = asyncio.Lock()
        page = self.guard.protect

        def data(handler: Handler) -> Handler:
            return self.guard.protect(handler, kind="data")

        routes = [
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/admin.css", self.css, methods=["GET"]),
            Route("/logout", page(self.logout), methods=["POST"]),
            Route("/", page(self.overview), methods=["GET"]),
            Route("/events", page(self.events), methods=["GET"]),
            Route("/events/{event_id}", page(self.event), methods=["GET"]),
            Route("/visitors", page(self.visitor_lookup), methods=["GET"]),
            Route("/visitors/{consent_id}", page(self.visitor), methods=["GET"]),
            Route("/export", page(self.export_form), methods=["GET"]),
            Route("/export.csv", data(self.export_csv), methods=["GET"]),
            Route("/export.jsonl", data(self.export_jsonl), methods=["GET"]),
            Route("/erase", page(self.erase_form), methods=["GET"]),
            Route("/erase", page(self.erase_review), methods=["POST"]),
            Route("/erase/confirm", page(self.erase_confirm), methods=["POST"]),
            Route("/integrity", page(self.integrity), methods=["GET"]),
            Route("/integrity", page(self.verify), methods=["POST"]),
            Route("/cookies", page(self.cookies), methods=["GET"]),
            # Anything else: still login first, so the dashboard does not tell which routes exist.
            Route("/{rest:path}", page(self.not_found), methods=["GET", "POST"]),
        ]
        self.app = Starlette(routes=routes, exception_handlers={StoreUnavailable: self.store_unavailable})

    # -- helpers -----------------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
        access: Access | None = getattr(request.state, "access", None)
        session = access.session if access else None
        context.setdefault("csrf_token", session.csrf if session else "")
        context.setdefault("user", access.principal.name if access else None)
        html = self.templates.get_template(template).render(
            root=root_of(request), labels=self.labels, categories=self.categories, **context
        )
        return HTMLResponse(html, status_code=status)

    async def record(self, request: Request, action: str, target: str | None = None, **extra: Any) -> bool:
        access: Access | None = getattr(request.state, "access", None)
        return await self.audit.write(
            action,
            user=access.principal.name if access else extra.pop("user", None),
            target=target,
            ip=self.guard.client_ip(request),
            **extra,
        )

    async def _audit_bad_token(self, request: Request, scheme: str | None) -> None:
        await self.audit.write(
            "token-failed",
            user=None,
            target=request.url.path,
            ip=self.guard.client_ip(request),
            outcome="refused",
            scheme=scheme,
        )

    def access(self, request: Request) -> Access:
        access: Access = request.state.access
        return access

    def form(self, request: Request) -> dict[str, str]:
        form: dict[str, str] = getattr(request.state, "form", {})
        return form

    async def store_unavailable(self, request: Request, exc: Exception) -> Response:
        logger.warning("consent log unavailable for the dashboard: %s", exc)
        if request.url.path.endswith((".csv", ".jsonl")):
            return error_response(503, "store_unavailable", "the consent log is unavailable; try again shortly")
        return self.render(
            request,
            "error.html",
            503,
            title="Consent log unavailable",
            message="The consent log cannot be reached right now. Try again in a moment.",
        )

    async def not_found(self, request: Request) -> Response:
        return self.render(request, "error.html", 404, title="Not found", message="There is no such page.")

    async def css(self, request: Request) -> Response:
        return Response(self.stylesheet, media_type="text/css")

    # -- login -------------------------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        session = self.guard.session_of(request)
        if session is not None and session.user is not None:
            return RedirectResponse(f"{root_of(request)}/", status_code=303)
        anonymous = session or self.sessions.new(None)
        response = self.render(
            request,
            "login.html",
            csrf_token=anonymous.csrf,
            next=safe_next(request.query_params.get("next")),
            error=None,
            no_credentials=not self.authenticator.has_credentials,
        )
        self.guard.set_session_cookie(response, request, anonymous)
        return response

    async def login(self, request: Request) -> Response:
        session = self.guard.session_of(request)
        form = await self.guard.read_form(request)
        if (
            not is_same_origin(request)
            or session is None
            or form is None
            or not self.sessions.is_valid_csrf(session, form.get("csrf_token"))
        ):
            return forbidden()
        name = form.get("name", "").strip()
        password = form.get("password", "")
        next_path = safe_next(form.get("next"))
        ip = self.guard.client_ip(request)
        keys = [f"user:{name.casefold()}", f"ip:{ip}"]

        def again(status: int, error: str) -> Response:
            response = self.render(
                request,
                "login.html",
                status,
                csrf_token=session.csrf,
                next=next_path,
                error=error,
                no_credentials=not self.authenticator.has_credentials,
                name=name,
            )
            return response

        # One check at a time: a burst of parallel guesses is counted in order, so the lockout stops it
        # at the limit instead of after every guess already in flight (and memory-hard hashes do not pile up).
        principal: Principal | None = None
        async with self.login_lock:
            locked = self.limiter.locked_for(keys)
            if not locked:
                if name:
                    principal = await run_in_threadpool(self.authenticator.check_password, name, password)
                else:  # an API token typed as the password: lets a token-only setup use the pages too
                    principal = self.authenticator.check_token(password)
                if principal is None:
                    self.limiter.record_failure(keys)
        if locked:
            await self.audit.write("login-locked", user=name or None, ip=ip, outcome="refused")
            minutes = max(1, round(locked / 60))
            return again(429, f"Too many failed attempts. Try again in {minutes} minutes.")
        if principal is None:
            await self.audit.write("login-failed", user=name or None, ip=ip, outcome="refused")
            return again(401, _LOGIN_FAILED)
        self.limiter.record_success(keys[:1])
        self.sessions.revoke(session)
        fresh = self.sessions.new(principal.name)
        await self.audit.write("login", user=principal.name, ip=ip, via="token" if principal.via_token else "password")
        response = RedirectResponse(root_of(request) + next_path, status_code=303)
        self.guard.set_session_cookie(response, request, fresh)
        return response

    async def logout(self, request: Request) -> Response:
        access = self.access(request)
        if access.session is not None:
            self.sessions.revoke(access.session)
        await self.record(request, "logout")
        response = RedirectResponse(f"{root_of(request)}/login", status_code=303)
        self.guard.clear_session_cookie(response, request)
        return response

    # -- overview ----------------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        try:
            days = int(request.query_params.get("days", "30"))
        except ValueError:
            days = 30
        if days not in OVERVIEW_DAYS:
            days = 30
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        first = today - timedelta(days=days - 1)
        filters = EventFilter(since_ms=day_start_ms(first), until_ms=day_start_ms(today + timedelta(days=1)))
        all_days = [(first + timedelta(days=i)).isoformat() for i in range(days)]
        per_day = charts.pivot(await self.log.stats(filters, by="day"), self.categories, all_days)
        groups = {}
        for by in ("country", "browser", "device", "policy_version"):
            groups[by] = charts.pivot(await self.log.stats(filters, by=by), self.categories)
        total = await self.log.count(filters)
        health = await self.log.health()
        overall = {c: _overall(per_day, c) for c in self.categories}
        titles = {
            "country": "Consent rate by country",
            "browser": "Consent rate by browser",
            "device": "Consent rate by device type",
            "policy_version": "Consent rate by policy version",
        }
        bar_charts = [
            (
                by,
                titles[by],
                charts.bar_chart(groups[by], chart_id=f"chart-{by}", title=titles[by], labels=self.labels),
                groups[by],
            )
            for by in titles
        ]
        line = charts.line_chart(
            per_day, chart_id="chart-day", title=f"Consent rate per category, last {days} days", labels=self.labels
        )
        await self.record(request, "view-overview", f"last {days} days")
        return self.render(
            request,
            "overview.html",
            days=days,
            day_choices=OVERVIEW_DAYS,
            total=total,
            health=health,
            overall=overall,
            line=line,
            per_day=per_day,
            daily_totals=charts.daily_totals(per_day),
            bar_charts=bar_charts,
            first=first.isoformat(),
            today=today.isoformat(),
            nav="overview",
        )

    # -- search and detail -------------------------------------------------------------------------------

    def search_form(self, request: Request) -> SearchForm:
        return parse_search(request.query_params, self.categories)

    async def events(self, request: Request) -> Response:
        form = self.search_form(request)
        cursor = request.query_params.get("cursor") or None
        events: list[ConsentEvent] = []
        next_cursor = None
        total = None
        cursor_error = None
        if not form.errors:
            try:
                page = await self.log.query(form.filters, limit=PAGE_SIZE, cursor=cursor)
            except ValueError:
                cursor_error = "This page link is no longer valid; showing the first page."
                cursor = None
                page = await self.log.query(form.filters, limit=PAGE_SIZE)
            events, next_cursor = page.events, page.next_cursor
            total = await self.log.count(form.filters)
        await self.record(request, "search", describe(form), page="next" if cursor else "first", results=len(events))
        return self.render(
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
        event_id = request.path_params["event_id"][:_MAX_CONSENT_ID]
        event = await self.log.get(event_id)
        await self.record(request, "view-event", event_id, outcome="ok" if event else "not-found")
        if event is None:
            return self.render(
                request, "error.html", 404, title="No such event", message=f"No event has the id {event_id}."
            )
        return self.render(request, "event.html", event=event, personal=PERSONAL_FIELDS, nav="events")

    async def visitor_lookup(self, request: Request) -> Response:
        consent_id = request.query_params.get("consent_id", "").strip()[:_MAX_CONSENT_ID]
        if consent_id:
            return RedirectResponse(f"{root_of(request)}/visitors/{quote(consent_id, safe='')}", status_code=303)
        return self.render(request, "visitor.html", consent_id="", events=None, erased=None, nav="visitors")

    async def visitor(self, request: Request) -> Response:
        consent_id = request.path_params["consent_id"][:_MAX_CONSENT_ID]
        events = await self.log.history(consent_id)
        await self.record(request, "view-history", consent_id, events=len(events))
        erased = request.query_params.get("erased")
        return self.render(
            request,
            "visitor.html",
            200 if events else 404,
            consent_id=consent_id,
            events=events,
            erased=int(erased) if erased and erased.isdigit() else None,
            nav="visitors",
        )

    # -- export ------------------------------------------------------------------------------------------

    async def export_form(self, request: Request) -> Response:
        form = self.search_form(request)
        await self.record(request, "view-export")
        return self.render(request, "export.html", form=form, actions=ACTIONS, devices=DEVICE_TYPES, nav="export")

    async def _export(self, request: Request, fmt: ExportFormat) -> Response:
        form = self.search_form(request)
        if form.errors:
            return error_response(400, "bad_filter", "; ".join(f"{k}: {v}" for k, v in form.errors.items()))
        if not await self.record(request, "export", describe(form), format=fmt):
            return error_response(503, "audit_unavailable", "the admin audit log cannot be written; export refused")
        stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
        source = self.log.export(form.filters)
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
            stream_export(events(), fmt, self.categories),
            media_type=MEDIA_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="consent-events-{stamp}.{fmt}"'},
        )

    async def export_csv(self, request: Request) -> Response:
        return await self._export(request, "csv")

    async def export_jsonl(self, request: Request) -> Response:
        return await self._export(request, "jsonl")

    # -- erasure -----------------------------------------------------------------------------------------

    async def erase_form(self, request: Request) -> Response:
        consent_id = request.query_params.get("consent_id", "").strip()[:_MAX_CONSENT_ID]
        return self.render(request, "erase.html", consent_id=consent_id, error=None, nav="erase")

    async def erase_review(self, request: Request) -> Response:
        """Step 1: show what will be erased and ask to confirm. Nothing changes yet."""
        consent_id = self.form(request).get("consent_id", "").strip()[:_MAX_CONSENT_ID]
        if not consent_id:
            return self.render(request, "erase.html", 400, consent_id="", error="Enter a consent id.", nav="erase")
        events = await self.log.history(consent_id)
        await self.record(request, "view-erase", consent_id, events=len(events))
        if not events:
            return self.render(
                request, "erase.html", 404, consent_id=consent_id, error="No event has this consent id.", nav="erase"
            )
        return self.render(
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
        form = self.form(request)
        consent_id = form.get("consent_id", "").strip()[:_MAX_CONSENT_ID]
        if not consent_id:
            return self.render(request, "erase.html", 400, consent_id="", error="Enter a consent id.", nav="erase")
        if form.get("confirm") != "yes":
            events = await self.log.history(consent_id)
            return self.render(
                request,
                "erase_confirm.html",
                400,
                consent_id=consent_id,
                events=events,
                personal=PERSONAL_FIELDS,
                error="Tick the box to confirm the erasure.",
                nav="erase",
            )
        if not await self.record(request, "erase", consent_id, outcome="started"):
            return self.render(
                request,
                "error.html",
                503,
                title="Erasure refused",
                message="The admin audit log cannot be written, so nothing was erased.",
            )
        try:
            erased = await self.log.erase(consent_id)
        except StoreUnavailable:
            await self.record(request, "erase", consent_id, outcome="failed")
            raise
        await self.record(request, "erase", consent_id, outcome="ok", events=erased)
        return RedirectResponse(
            f"{root_of(request)}/visitors/{quote(consent_id, safe='')}?erased={erased}", status_code=303
        )

    # -- integrity and cookies ---------------------------------------------------------------------------

    async def integrity(self, request: Request) -> Response:
        heads = await self.log.chain_heads()
        health = await self.log.health()
        await self.record(request, "view-integrity")
        return self.render(request, "integrity.html", heads=heads, health=health, result=None, nav="integrity")

    async def verify(self, request: Request) -> Response:
        started = time.perf_counter()
        result: VerifyResult = await self.log.verify()
        seconds = time.perf_counter() - started
        await self.record(
            request,
            "verify",
            outcome="ok" if result.ok else "broken",
            events=result.events_checked,
            first_broken=result.first_broken,
            reason=result.reason,
        )
        heads = await self.log.chain_heads()
        health = await self.log.health()
        return self.render(
            request, "integrity.html", heads=heads, health=health, result=result, seconds=seconds, nav="integrity"
        )

    async def cookies(self, request: Request) -> Response:
        unknown = _inventory(metrics.labelled("unknown_cookies_total"))
        dropped = _inventory(metrics.labelled("dropped_cookies_total"))
        await self.record(request, "view-cookies")
        return self.render(
            request,
            "cookies.html",
            unknown=unknown,
            dropped=dropped,
            nav="cookies",
            unknown_policy=self.config.gateway.unknown_cookies,
        )


def _inventory(counts: Mapping[tuple[tuple[str, str], ...], int]) -> dict[str, Any]:
    """Label sets → a table: the label names as columns, one row per label set, largest count first."""
    columns = sorted({name for labels in counts for name, _ in labels})
    rows = [
        ([dict(labels).get(c, "") for c in columns], count)
        for labels, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
    return {"columns": columns, "rows": rows, "total": sum(counts.values())}


def _overall(table: charts.RateTable, category: str) -> tuple[int, int]:
    granted = sum(table.cells.get((d, category), (0, 0))[0] for d in table.groups)
    total = sum(table.cells.get((d, category), (0, 0))[1] for d in table.groups)
    return granted, total


def _utc(timestamp_ms: int | None) -> str:
    if timestamp_ms is None:
        return ""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
