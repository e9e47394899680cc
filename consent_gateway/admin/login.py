"""Logging in and out of the dashboard: password or API token, rate-limited, audited."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from consent_gateway.admin.auth import Principal
from consent_gateway.admin.guard import forbidden, root_of, safe_next
from consent_gateway.admin.site import DashboardSite
from consent_gateway.csrf import is_same_origin


class LoginPages:
    def __init__(self, site: DashboardSite) -> None:
        self.site = site

    async def login_form(self, request: Request) -> Response:
        session = self.site.guard.session_of(request)
        if await self.site.guard.user_of(session) is not None:
            return RedirectResponse(f"{root_of(request)}/", status_code=303)
        anonymous = session if session is not None and session.user is None else self.site.sessions.new(None)
        response = self.site.render(
            request,
            "login.html",
            csrf_token=anonymous.csrf,
            next=safe_next(request.query_params.get("next")),
            error=None,
            no_credentials=not self.site.authenticator.has_credentials(await self.site.directory.current()),
        )
        self.site.guard.set_session_cookie(response, request, anonymous)
        return response

    async def login(self, request: Request) -> Response:
        session = self.site.guard.session_of(request)
        form = await self.site.guard.read_form(request)
        if (
            not is_same_origin(request)
            or session is None
            or form is None
            or not self.site.sessions.is_valid_csrf(session, form.get("csrf_token"))
        ):
            return forbidden(request)
        name = form.get("name", "").strip()
        password = form.get("password", "")
        next_path = safe_next(form.get("next"))
        ip = self.site.guard.client_ip(request)
        keys = [f"user:{name.casefold()}", f"ip:{ip}"]

        has_credentials = self.site.authenticator.has_credentials(await self.site.directory.current())

        def again(status: int, error: str) -> Response:
            response = self.site.render(
                request,
                "login.html",
                status,
                csrf_token=session.csrf,
                next=next_path,
                error=error,
                no_credentials=not has_credentials,
                name=name,
            )
            return response

        locked, principal = await self._check(name, password, keys)
        if locked:
            await self.site.audit.write("login-locked", user=name or None, ip=ip, outcome="refused")
            minutes = max(1, round(locked / 60))
            return again(429, self.site.t(request, "login.locked", minutes=minutes))
        if principal is None:
            await self.site.audit.write("login-failed", user=name or None, ip=ip, outcome="refused")
            return again(401, self.site.t(request, "login.failed"))
        await self.site.limiter.record_success(keys[:1])
        if session.user is not None:
            await self.site.registry.remove(session)
        fresh = self.site.sessions.new(principal.name)
        await self.site.registry.add(fresh)
        await self.site.audit.write(
            "login", user=principal.name, ip=ip, via="token" if principal.via_token else "password"
        )
        response = RedirectResponse(root_of(request) + next_path, status_code=303)
        self.site.guard.set_session_cookie(response, request, fresh)
        return response

    async def _check(self, name: str, password: str, keys: list[str]) -> tuple[float, Principal | None]:
        """Seconds the keys stay locked (0: not locked), and who logged in (None: wrong credentials).

        One check at a time: a burst of parallel guesses is counted in order, so the lockout stops it at the
        limit instead of after every guess already in flight (and memory-hard hashes do not pile up).
        """
        async with self.site.login_lock:
            locked = await self.site.limiter.locked_for(keys)
            if locked:
                return locked, None
            stored = await self.site.directory.current()
            if name:
                principal = await run_in_threadpool(self.site.authenticator.check_password, name, password, stored)
            else:  # an API token typed as the password: lets a token-only setup use the pages too
                principal = self.site.authenticator.check_token(password, stored)
            if principal is None:
                await self.site.limiter.record_failure(keys)
            return 0, principal

    async def logout(self, request: Request) -> Response:
        access = self.site.access(request)
        if access.session is not None:
            await self.site.registry.remove(access.session)
        await self.site.record(request, "logout")
        response = RedirectResponse(f"{root_of(request)}/login", status_code=303)
        self.site.guard.clear_session_cookie(response, request)
        return response
