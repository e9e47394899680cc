"""The gate in front of every dashboard route: who is asking, may they, and did the form come from us.

A request is let in with a live session cookie or an ``Authorization: Bearer`` token. Without either, a
page answers a redirect to the login form and a data route (the exports) a 401 JSON error. An unsafe
method must come from this origin (``Sec-Fetch-Site``/``Origin``, the same check as the consent API) and,
with a session, carry the session's CSRF token: SameSite=Strict alone does not cover a sibling subdomain
or an old browser. Security headers go on every answer, whichever route or error produced it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from consent_gateway._types import ASGIApp, Message, Receive, Scope, Send
from consent_gateway.admin import i18n
from consent_gateway.admin.auth import Authenticator, Principal
from consent_gateway.admin.directory import DirectoryStore
from consent_gateway.admin.roles import Role, allows
from consent_gateway.admin.sessions import COOKIE_NAME, AdminSession, SessionManager
from consent_gateway.admin.shared_state import LoginLimiter, SessionRegistry
from consent_gateway.csrf import is_same_origin
from consent_gateway.network import Network, client_ip
from consent_gateway.responses import error_response

#: The dashboard has no script at all, and nothing it shows may be framed or cached.
SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'none'; img-src 'self' data:; frame-ancestors 'none'; "
        b"base-uri 'none'; form-action 'self'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
#: Forms are a few short fields; a bigger body is not a form of ours.
MAX_FORM_BYTES: Final = 16_384
_MAX_FORM_FIELDS: Final = 32
_SAFE_NEXT: Final = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")

Handler = Callable[[Request], Awaitable[Response]]


def with_security_headers(app: ASGIApp) -> ASGIApp:
    """Wrap ``app`` so every response carries :data:`SECURITY_HEADERS` (unless it set one itself)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_security_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in SECURITY_HEADERS if name not in present)
                message["headers"] = headers
            await send(message)

        await app(scope, receive, send_with_security_headers)

    return wrapped


@dataclass(frozen=True, slots=True)
class Access:
    """Who is acting on this request, with the session when they came with a cookie."""

    principal: Principal
    session: AdminSession | None


def root_of(request: Request) -> str:
    """The admin prefix as mounted (``/_consent/admin``), from the scope's ``root_path``."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def local_path(request: Request) -> str:
    """The request's path and query inside the admin app (for ``?next=``)."""
    path: str = request.scope["path"]  # not request.url: a malformed Host header would make it raise
    root = root_of(request)
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    query = request.scope.get("query_string", b"").decode("latin-1")
    return path + ("?" + query if query else "")


def safe_next(value: str | None) -> str:
    """A ``next`` target inside the admin app; anything else (another host, ``//evil``) becomes ``/``."""
    if not value or value.startswith("//") or "\\" in value or not _SAFE_NEXT.match(value):
        return "/"
    return value


class Guard:
    """Authentication, CSRF and throttling shared by every route of one admin app."""

    def __init__(
        self,
        *,
        sessions: SessionManager,
        registry: SessionRegistry,
        authenticator: Authenticator,
        limiter: LoginLimiter,
        directory: DirectoryStore,
        trusted_proxies: tuple[str, ...],
        secure_cookie: Literal["auto", "always", "never"] = "auto",
        on_bad_token: Callable[[Request, str | None], Awaitable[None]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.authenticator = authenticator
        self.limiter = limiter
        self.directory = directory
        self._trusted: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)
        self._secure_cookie = secure_cookie
        self._on_bad_token = on_bad_token

    # -- request facts -----------------------------------------------------------------------------------

    def client_ip(self, request: Request) -> str:
        return client_ip(request.scope, self._trusted) or "unknown"

    def session_of(self, request: Request) -> AdminSession | None:
        """The session in the cookie, signed and within its lifetimes (logged in or not: see ``user_of``)."""
        return self.sessions.loads(request.cookies.get(COOKIE_NAME))

    async def user_of(self, session: AdminSession | None) -> Principal | None:
        """Who is logged in with ``session``: None for an anonymous, logged-out or removed user's session."""
        if session is None or session.user is None:
            return None
        principal = self.authenticator.principal(session.user, await self.directory.current())
        if principal is None:  # removed from the config or the dashboard, or disabled: their sessions end
            await self.registry.remove(session)
            return None
        return principal if await self.registry.is_live(session) else None

    async def read_form(self, request: Request) -> dict[str, str] | None:
        """The urlencoded body as a dict (first value per name), or None when it is not a small form."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return None
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
        except (UnicodeDecodeError, ValueError):
            return None
        form: dict[str, str] = {}
        for name, value in pairs:
            form.setdefault(name, value)
        return form

    # -- cookies -----------------------------------------------------------------------------------------

    def is_secure(self, request: Request) -> bool:
        mode = self._secure_cookie
        return mode == "always" or (mode == "auto" and request.scope.get("scheme") == "https")

    def set_session_cookie(self, response: Response, request: Request, session: AdminSession) -> None:
        # No Max-Age: a browser session cookie, and the signed payload carries the real expiry.
        response.set_cookie(
            COOKIE_NAME,
            self.sessions.dumps(session),
            path=root_of(request) or "/",
            secure=self.is_secure(request),
            httponly=True,
            samesite="strict",
        )

    def clear_session_cookie(self, response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE_NAME,
            path=root_of(request) or "/",
            secure=self.is_secure(request),
            httponly=True,
            samesite="strict",
        )

    # -- the gate ----------------------------------------------------------------------------------------

    def protect(self, handler: Handler, *, needs: Role, kind: Literal["page", "data"] = "page") -> Handler:
        """``handler`` behind login and the role ``needs`` (or one above it); it finds :class:`Access` in
        ``request.state.access`` and a POST's form, already CSRF-checked, in ``request.state.form``.

        The role a route needs is kept on the guarded handler (``needed_role``), where the route table's
        test finds it."""

        async def guarded(request: Request) -> Response:
            authorization = request.headers.get("authorization")
            if authorization is not None:
                return await self._with_token(request, authorization, handler, needs, kind)
            session = self.session_of(request)
            principal = await self.user_of(session)
            if session is None or principal is None:
                if kind == "data":
                    return error_response(
                        401,
                        "unauthorized",
                        "log in to the dashboard or send Authorization: Bearer <token>",
                        {"WWW-Authenticate": "Bearer"},
                    )
                login = f"{root_of(request)}/login?next={quote(local_path(request), safe='')}"
                return RedirectResponse(login, status_code=303)
            if request.method not in ("GET", "HEAD"):
                refusal = await self._check_form(request, session)
                if refusal is not None:
                    return refusal
            request.state.access = Access(principal, session)
            if not allows(principal.role, needs):
                return self._role_refused(request, principal, needs, kind)
            response = await handler(request)
            refreshed = self.sessions.touch(session)
            if refreshed is not None and COOKIE_NAME.encode() not in _cookie_names(response):
                self.set_session_cookie(response, request, refreshed)
            return response

        guarded.needed_role = needs  # type: ignore[attr-defined]
        return guarded

    def _role_refused(self, request: Request, principal: Principal, needs: Role, kind: str) -> Response:
        if kind == "data" or principal.via_token:
            message = f"your role ({principal.role}) may not do this: it needs {needs} or above"
            return error_response(403, "role_not_allowed", message)
        return Response(
            i18n.translate(_language(request), "error.role", role=principal.role, needs=needs),
            status_code=403,
            media_type="text/plain; charset=utf-8",
        )

    async def _with_token(
        self, request: Request, authorization: str, handler: Handler, needs: Role, kind: str
    ) -> Response:
        scheme, _, token = authorization.partition(" ")
        ip_key = f"ip:{self.client_ip(request)}"
        if await self.limiter.locked_for([ip_key]):
            return error_response(429, "too_many_attempts", "too many failed attempts from this address; try later")
        principal = (
            self.authenticator.check_token(token.strip(), await self.directory.current())
            if scheme.lower() == "bearer"
            else None
        )
        if principal is None:
            await self.limiter.record_failure([ip_key])
            if self._on_bad_token is not None:
                await self._on_bad_token(request, scheme or None)
            return error_response(401, "unauthorized", "invalid admin token", {"WWW-Authenticate": "Bearer"})
        if request.method not in ("GET", "HEAD"):
            if not is_same_origin(request):
                return error_response(403, "cross_site", "cross-site request refused")
            request.state.form = await self.read_form(request) or {}
        request.state.access = Access(principal, None)
        if not allows(principal.role, needs):
            return self._role_refused(request, principal, needs, kind)
        return await handler(request)

    async def _check_form(self, request: Request, session: AdminSession) -> Response | None:
        if not is_same_origin(request):
            return forbidden(request)
        form = await self.read_form(request)
        if form is None or not self.sessions.is_valid_csrf(session, form.get("csrf_token")):
            return forbidden(request)
        request.state.form = form
        return None


def forbidden(request: Request) -> Response:
    """The answer to a missing or wrong CSRF token, or a cross-site form: plain, and changes nothing."""
    return Response(
        i18n.translate(_language(request), "error.forbidden"), status_code=403, media_type="text/plain; charset=utf-8"
    )


def _language(request: Request) -> i18n.Language:
    return i18n.language_of(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


def _cookie_names(response: Response) -> set[bytes]:
    return {value.split(b"=", 1)[0].strip() for name, value in response.raw_headers if name == b"set-cookie"}
