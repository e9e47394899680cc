"""What every dashboard page shares: the log, the audit trail, the guard, and one way to render and record.

The page groups (`login`, `records`, `reports`, `erasure`) each hold a `DashboardSite` and add their routes'
handlers; `app` wires them into one Starlette app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from consent_gateway.admin import i18n
from consent_gateway.admin.audit import AuditLog, audit_path
from consent_gateway.admin.auth import Authenticator, tokens_from_env
from consent_gateway.admin.directory import DirectoryStore
from consent_gateway.admin.filters import SearchForm, parse_search
from consent_gateway.admin.guard import Access, Guard, local_path, root_of
from consent_gateway.admin.roles import sees_ips
from consent_gateway.admin.sessions import SessionManager
from consent_gateway.admin.shared_state import LoginLimiter, SessionRegistry
from consent_gateway.classification import ClassificationError
from consent_gateway.config import Config
from consent_gateway.declaration import translate_lifetime
from consent_gateway.enrich import Enricher, ip_hash_key
from consent_gateway.store import ConsentLog
from consent_gateway.store.erasure_queue import ErasureQueue

_TEMPLATES: Final = Path(__file__).with_name("templates")
#: Longest consent or event id read from a URL or form; longer input is cut, never looked up whole.
MAX_ID_LENGTH: Final = 200


class DashboardSite:
    def __init__(
        self,
        config: Config,
        log: ConsentLog,
        secret_keys: Sequence[str],
        *,
        clock: Callable[[], float],
        environ: Mapping[str, str] | None,
        on_classified: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        admin = config.admin
        #: makes the gateway apply a classification at once (the admin app alone has none)
        self.on_classified = on_classified
        self.config = config
        self.log = log
        self.clock = clock
        self.categories = [c.id for c in config.categories if not c.required]
        #: a searched IP address goes through the log's own minimisation, so it matches what was kept
        self.minimise_ip = Enricher(
            ip_mode=config.privacy.ip_mode,
            ipv4_prefix=config.privacy.ipv4_prefix,
            ipv6_prefix=config.privacy.ipv6_prefix,
            ip_hash_key=ip_hash_key(secret_keys),
        ).minimise_ip
        #: category id → label, per dashboard language (the config's labels, English when it has none in that one)
        self.labels = {
            lang: {c.id: c.label.get(lang) or c.label.get("en") or c.id.title() for c in config.categories}
            for lang in i18n.LANGUAGES
        }
        users = {user.name: user.password_hash for user in admin.users}
        self.authenticator = Authenticator(
            users,
            tokens_from_env(environ, admin.tokens_env),
            roles={user.name: user.role for user in admin.users},
            token_role=admin.token_role,
        )
        self.sessions = SessionManager(
            secret_keys,
            idle_timeout_seconds=admin.session_idle_minutes * 60,
            max_age_seconds=admin.session_max_hours * 3600,
            clock=clock,
        )
        self.registry = SessionRegistry(
            log, max_age_seconds=admin.session_max_hours * 3600, grace_seconds=admin.session_idle_minutes * 60
        )
        self.limiter = LoginLimiter(
            log,
            max_failures=admin.login_max_failures,
            window_seconds=admin.lockout_minutes * 60,
            lockout_seconds=admin.lockout_minutes * 60,
            clock=clock,
        )
        #: users and tokens an admin made from the dashboard, in the store (the config's stay as they are)
        self.directory = DirectoryStore(log)
        self.audit = AuditLog(audit_path(config), clock=clock)
        #: erasures asked for while the log is down wait here (applied by the gateway's recorder)
        self.erasure_queue = ErasureQueue(config.spool_path)
        self.guard = Guard(
            sessions=self.sessions,
            registry=self.registry,
            authenticator=self.authenticator,
            limiter=self.limiter,
            directory=self.directory,
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
        _add_language_functions(self.templates)
        self.login_lock = asyncio.Lock()

    def render(self, request: Request, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
        access: Access | None = getattr(request.state, "access", None)
        session = access.session if access else None
        context.setdefault("csrf_token", session.csrf if session else "")
        context.setdefault("user", access.principal.name if access else None)
        context.setdefault("role", access.principal.role if access else None)
        context.setdefault("sees_ips", sees_ips(access.principal.role) if access else False)
        lang = self.language(request)
        html = self.templates.get_template(template).render(
            root=root_of(request),
            labels=self.labels[lang],
            categories=self.categories,
            lang=lang,
            languages=[(code, i18n.NAMES[code]) for code in i18n.LANGUAGES],
            here=_here(request, context.get("nav")),
            **context,
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
            target=request.scope["path"],
            ip=self.guard.client_ip(request),
            outcome="refused",
            scheme=scheme,
        )

    def language(self, request: Request) -> i18n.Language:
        """The dashboard's language for this request: the switch's cookie, else the browser's languages."""
        return i18n.language_of(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))

    def t(self, request: Request, key: str, /, **values: object) -> str:
        """``key`` in this request's language (page code's messages: errors, notices, chart titles)."""
        return i18n.translate(self.language(request), key, **values)

    def access(self, request: Request) -> Access:
        access: Access = request.state.access
        return access

    def sees_ips(self, request: Request) -> bool:
        """Whether this request's role may see IP addresses (an analyst's pages and exports go without)."""
        return sees_ips(self.access(request).principal.role)

    def form(self, request: Request) -> dict[str, str]:
        form: dict[str, str] = getattr(request.state, "form", {})
        return form

    def search_form(self, request: Request, *, api: bool = False) -> SearchForm:
        """The search form of this request; ``api``: its errors go into a JSON error, in English like the API's."""
        minimise_ip = self.minimise_ip if self.sees_ips(request) else None
        lang = "en" if api else self.language(request)
        return parse_search(request.query_params, self.categories, minimise_ip, lang=lang)


def _utc(timestamp_ms: int | None) -> str:
    if timestamp_ms is None:
        return ""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _here(request: Request, nav: object) -> str:
    """Where the language switch comes back to: this page, or for a form's answer the page the form is on.

    Without a searched IP address: the link would repeat it as typed (an analyst's refused search, or the
    full address the log only keeps truncated)."""
    if request.method in ("GET", "HEAD"):
        path, _, query = local_path(request).partition("?")
        kept = [(name, value) for name, value in parse_qsl(query, keep_blank_values=True) if name != "ip"]
        return f"{path}?{urlencode(kept)}" if kept else path
    if nav is None:
        return "/login" if request.scope["path"].endswith("/login") else "/"
    return "/" if nav == "overview" else f"/{nav}"


def _add_language_functions(env: jinja2.Environment) -> None:
    """``t``, ``tn``, ``label``… for the templates: each reads the page's ``lang`` from its context (macros are
    imported "with context" for that)."""

    @jinja2.pass_context
    def t(ctx: jinja2.runtime.Context, key: str, /, **values: object) -> str:
        return i18n.translate(ctx["lang"], key, **values)

    @jinja2.pass_context
    def tn(ctx: jinja2.runtime.Context, key: str, n: int, /, **values: object) -> str:
        return i18n.translate_plural(ctx["lang"], key, n, **values)

    @jinja2.pass_context
    def label(ctx: jinja2.runtime.Context, kind: str, value: str, default: str | None = None) -> str:
        return i18n.label(ctx["lang"], kind, value, default)

    @jinja2.pass_context
    def percent(ctx: jinja2.runtime.Context, rate: float | None) -> str:
        return i18n.percent(ctx["lang"], rate)

    @jinja2.pass_context
    def num(ctx: jinja2.runtime.Context, n: int) -> str:
        return i18n.number(ctx["lang"], n)

    @jinja2.pass_context
    def dec(ctx: jinja2.runtime.Context, value: float, places: int) -> str:
        return i18n.decimal(ctx["lang"], value, places)

    @jinja2.pass_context
    def lifetime_words(ctx: jinja2.runtime.Context, text: str) -> str:
        return translate_lifetime(text, ctx["lang"])

    @jinja2.pass_context
    def classification_error(ctx: jinja2.runtime.Context, error: ClassificationError) -> str:
        return i18n.classification_message(ctx["lang"], error.field, error.message, error.reason, error.values)

    env.globals.update(t=t, tn=tn, label=label, percent=percent)
    env.globals.update(lifetime_words=lifetime_words, classification_error=classification_error)
    env.filters.update(num=num, dec=dec)
