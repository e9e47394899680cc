"""The gateway's own routes under the prefix: the consent API, banner files, receipt, health, metrics.

Only these responses set or clear the consent cookie. Every error is JSON
(`{"error": {"code": …, "message": …}}`) with a 4xx/5xx status; nothing shows a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, Router

from . import metrics
from ._types import Scope
from .accounts import USER_COOKIE, USER_ID_SCOPE_KEY, Accounts, UserChoice
from .banner import CLEAN_COOKIE, Banner
from .banner_archive import BannerArchive
from .catalog import Catalog
from .choice_body import ChoiceBody
from .codings import Precompressed, visitor_encoding
from .config import Config
from .consent import ConsentCodec, ConsentRecord, new_consent_id
from .consent_cookie import NO_COOKIE, CookieReading, host_name
from .consent_id_cookie import ConsentIdCookie
from .cookies import expiring_set_cookies
from .csrf import is_same_origin, split_header_url
from .enrich import UA_MAX_CHARS, Enricher
from .errors import APIError, SpoolError
from .events import (
    CONSENT_GIVEN,
    CONSENT_UPDATED,
    CONSENT_WITHDRAWN,
    GPC_APPLIED,
    SYNCED_FROM,
    SYNCED_FROM_ACCOUNT,
    ConsentEvent,
    event_to_dict,
)
from .limits import RateLimiter
from .public_stats import PublicStatistics, StatisticsPages
from .responses import error_response
from .store.keeper import LogKeeper
from .sync import CHOICE, MAX_BACK_URL, TOKEN_TTL_SECONDS, WITHDRAWAL, SisterDomains, SyncToken
from .thirdparty import site_of
from .visitor import VisitorReader
from .visitor_space import VisitorSpace

logger = logging.getLogger("consent_gateway.routes")

#: Static banner files are addressed by version, so they can be cached for a year.
STATIC_CACHE_CONTROL = "public, max-age=31536000, immutable"
#: Set to protect /metrics: scrapers then send `Authorization: Bearer <token>`.
METRICS_TOKEN_ENV = "CONSENT_GATEWAY_METRICS_TOKEN"  # noqa: S105 - the variable's name, not a secret
#: What /health and /ready show of the log's own report (which may hold a file path or a URL).
_PUBLIC_STORE_FIELDS = ("backend", "ok", "durable")
#: /health and /ready try a write at most this often: a load balancer polling every second costs the log
#: one probe per interval, whatever the number of pollers
WRITE_PROBE_INTERVAL_S = 5.0


def new_event_id(now_ms: int) -> str:
    """Time-ordered and unique: 48 bits of milliseconds, then 80 random bits (like a UUIDv7)."""
    return f"{now_ms:012x}{os.urandom(10).hex()}"


class ConsentAPI:
    """`/_consent/*`: one instance per gateway, holding nothing per request."""

    def __init__(
        self,
        config: Config,
        *,
        catalog: Catalog,
        visitors: VisitorReader,
        enricher: Enricher,
        banner: Banner,
        codec: ConsentCodec,
        keeper: LogKeeper,
        instance_id: str,
        consent_ids: ConsentIdCookie,
        banner_archive: BannerArchive,
        sisters: SisterDomains | None = None,
        accounts: Accounts | None = None,
        extra_routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.visitors = visitors
        self.enricher = enricher
        self.banner = banner
        self.codec = codec
        self.keeper = keeper
        self.instance_id = instance_id
        self.consent_ids = consent_ids
        self.banner_archive = banner_archive
        self.sisters = sisters if sisters is not None and sisters.enabled else None
        self.accounts = accounts
        self.precompressed = Precompressed()
        #: (monotonic time, result) of the last write probe, and the lock that makes pollers share one probe
        self._write_probe: tuple[float, bool] = (-WRITE_PROBE_INTERVAL_S, True)
        self._write_probe_lock = asyncio.Lock()
        prefix = self.config.gateway.prefix
        self.optional_categories = tuple(c.id for c in self.config.categories if not c.required)
        self.choice_body = ChoiceBody(config, catalog, self.optional_categories)
        self.space = VisitorSpace(self)
        token = os.environ.get(METRICS_TOKEN_ENV, "").strip()
        self.metrics_token = token.encode() if token else None
        rate = config.gateway.consent_rate_per_minute
        self.rate_limiter = RateLimiter(rate, config.gateway.consent_rate_burst) if rate else None
        routes: list[BaseRoute] = [
            Route(f"{prefix}/state", self.state, methods=["GET"]),
            Route(f"{prefix}/choices", self.choices, methods=["POST", "DELETE"]),
            Route(f"{prefix}/receipt", self.receipt, methods=["GET"]),
            *self.space.routes(),
            *(self._statistics_routes() if config.privacy.public_statistics else []),
            *([Route(f"{prefix}/sync", self.sync, methods=["GET"])] if self.sisters else []),
            Route(f"{prefix}/health", self.health, methods=["GET"]),
            Route(f"{prefix}/ready", self.ready, methods=["GET"]),
            Route(f"{prefix}/metrics", self.metrics, methods=["GET"]),
            Route(f"{prefix}/banner.js", self.asset, methods=["GET", "HEAD"]),
            Route(f"{prefix}/banner.css", self.asset, methods=["GET", "HEAD"]),
            Route(f"{prefix}/banner-data.js", self.asset, methods=["GET", "HEAD"]),
            Route(f"{prefix}/banner-clean.js", self.asset, methods=["GET", "HEAD"]),
            Route(f"{prefix}/inventory-report.js", self.asset, methods=["GET", "HEAD"]),
            Route(f"{prefix}/banner-shared.js", self.asset, methods=["GET", "HEAD"]),
            *extra_routes,
        ]
        self.router = Router(routes=routes, default=self.not_found)

    def use_rules(self, catalog: Catalog, banner: Banner) -> None:
        """A new catalog and banner (the privacy team classified something): swapped in without awaiting."""
        self.catalog = catalog
        self.banner = banner
        self.choice_body = ChoiceBody(self.config, catalog, self.optional_categories)
        self.precompressed = Precompressed()  # banner-data.js changed with the vendors it lists

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("app", self)  # so the router raises HTTPException (405) for us to answer in JSON
        try:
            await self.router(scope, receive, send)
        except HTTPException as exc:  # 405 from the router
            code = "method_not_allowed" if exc.status_code == 405 else "http_error"
            await error_response(exc.status_code, code, exc.detail)(scope, receive, send)
        except APIError as exc:  # raised by an endpoint before it answered
            await error_response(exc.status, exc.code, exc.message)(scope, receive, send)

    async def not_found(self, scope: Any, receive: Any, send: Any) -> None:
        await error_response(404, "not_found", "no such consent-gateway route")(scope, receive, send)

    # -- helpers

    def _reading(self, request: Request) -> CookieReading:
        header = request.headers.get("cookie")
        return self.visitors.read_cookie(header) if header else NO_COOKIE

    def _record(self, request: Request) -> ConsentRecord | None:
        return self._reading(request).record

    def _statistics_routes(self) -> list[BaseRoute]:
        return StatisticsPages(PublicStatistics(self.config, self.keeper), self.space).routes()

    def current_record(self, request: Request) -> ConsentRecord | None:
        return self._record(request)

    def refusal_signal(self, request: Request) -> bool:
        return self._refusal_signal(request)

    def is_secure(self, request: Request) -> bool:
        return self._secure(request)

    def known_consent_id(self, request: Request, record: ConsentRecord | None = None) -> str | None:
        """This browser's consent id: its current choice's, else the one its id cookie (or a consent cookie
        of an older policy) keeps since a withdrawal or a policy change; None for a browser never seen."""
        if record is not None:
            return record.consent_id
        header = request.headers.get("cookie")
        return self.consent_ids.read(header) if header else None

    def _consent_id_for(
        self, request: Request, previous: ConsentRecord | None, user_choice: UserChoice | None
    ) -> str:
        """A logged-in user's shared id, else this browser's, else a new one."""
        if user_choice is not None:
            return user_choice.consent_id
        return self.known_consent_id(request, previous) or new_consent_id()

    def _keep_consent_id(self, response: Response, request: Request, consent_id: str) -> None:
        response.raw_headers += self.consent_ids.write(consent_id, self._host(request), secure=self._secure(request))

    def _user_key(self, request: Request) -> str | None:
        """The logged-in user's pseudonym: from the site's scope key, else the gateway's `cg_user` cookie."""
        if self.accounts is None:
            return None
        if USER_ID_SCOPE_KEY in request.scope:
            return self.accounts.user_key(request.scope[USER_ID_SCOPE_KEY])
        remembered = request.cookies.get(USER_COOKIE)
        return self.accounts.key_from_cookie(remembered) if remembered and self.accounts.header else None

    async def record_for_device(self, scope: Scope, record: ConsentRecord) -> bool:
        """A device took its user's latest choice: its own event, under the user's consent id."""
        now_ms = int(time.time() * 1000)
        return await self._store(self._event(Request(scope), record, SYNCED_FROM_ACCOUNT, now_ms))

    def _refusal_signal(self, request: Request) -> bool:
        """Global Privacy Control, or Do Not Track where `[privacy] honour_dnt` says to treat it the same."""
        if request.headers.get("sec-gpc", "").strip() == "1":
            return True
        return self.config.privacy.honour_dnt and request.headers.get("dnt", "").strip() == "1"

    def _secure(self, request: Request) -> bool:
        return self.visitors.cookie.secure(request.scope.get("scheme"))

    def _host(self, request: Request) -> str:
        return host_name(request.headers.get("host", ""))

    def _set_consent_cookie(
        self, response: Response, request: Request, value: str, max_age: int, *, repair: bool = False
    ) -> None:
        host, secure = self._host(request), self._secure(request)
        response.raw_headers += self.visitors.cookie.write(value, max_age, host, secure=secure, exclusive=repair)
        shared = self.visitors.shared
        record = self.codec.decode(value) if shared is not None else None
        if shared is not None and record is not None:
            # the copy shared pages read, so that the next page, even one a CDN serves, shows this choice
            decision = self.visitors.decision_for(record, gpc=self._refusal_signal(request))
            response.raw_headers += shared.write(decision, max_age, host, secure=secure)

    def _clear_consent_cookie(self, response: Response, request: Request) -> None:
        host, secure = self._host(request), self._secure(request)
        response.raw_headers += self.visitors.cookie.clear(host, secure=secure)
        if self.visitors.shared is not None:
            response.raw_headers += self.visitors.shared.clear(host, secure=secure)

    def _repair(self, response: Response, request: Request, reading: CookieReading) -> None:
        if reading.duplicated:
            response.raw_headers += self.visitors.cookie.repair(
                reading, self._host(request), secure=self._secure(request), now=time.time()
            )

    def _expire_cookies(
        self,
        response: Response,
        request: Request,
        refused: set[str],
        vendors_refused: set[str],
        vendors_granted: frozenset[str] = frozenset(),
    ) -> None:
        if not (refused or vendors_refused):
            return
        response.raw_headers += expiring_set_cookies(
            request.headers.get("cookie", ""),
            self._host(request),
            self.catalog,
            refused=refused,
            vendors_refused=vendors_refused,
            keep=self.config.cookie.name,
            vendors_granted=vendors_granted,
        )

    def _event(
        self, request: Request, record: ConsentRecord, action: str, now_ms: int, referrer: str | None = None
    ) -> ConsentEvent:
        self.banner_archive.note_served(self.banner)  # every recorded version is archived, shown or not
        facts = self.enricher.facts(self.visitors.client_ip(request.scope), request.headers.get("user-agent"))
        page = split_header_url(request.headers.get("referer"))
        page_path = (page.path or None) if page else None
        if page and page_path and self.config.privacy.keep_query and page.query:
            page_path = f"{page_path}?{page.query}"
        referred = split_header_url(referrer)
        referrer_host = referred.hostname if referred else None
        return ConsentEvent(
            event_id=new_event_id(now_ms),
            consent_id=record.consent_id,
            action=action,
            categories=dict(record.choices),
            vendors=dict(record.vendors),
            policy_version=record.policy_version,
            banner_version=self.banner.version,
            timestamp_ms=now_ms,
            page_path=page_path,
            referrer_host=referrer_host,
            ip=facts.ip,
            user_agent=(request.headers.get("user-agent") or "")[:UA_MAX_CHARS] or None,
            browser_family=facts.ua.browser_family,
            browser_version=facts.ua.browser_version,
            os_family=facts.ua.os_family,
            os_version=facts.ua.os_version,
            device_type=facts.ua.device_type,
            country=facts.country,
            is_eu=facts.is_eu,
            region_rule=facts.region_rule,
            gpc=record.gpc,
            instance_id=self.instance_id,
        )

    def event_for(self, request: Request, record: ConsentRecord, action: str, now_ms: int) -> ConsentEvent:
        return self._event(request, record, action, now_ms)

    async def store_event(self, event: ConsentEvent) -> bool:
        """True once the event is durable (log or spool)."""
        return await self._store(event)

    def forget_browser(self, response: Response, request: Request) -> None:
        """After an erasure: no choice, no consent id, no tracker cookie left; the next choice starts afresh."""
        self._withdrawn(response, request)
        response.raw_headers += self.consent_ids.clear(self._host(request), secure=self._secure(request))

    async def remember_for_user(self, request: Request, consent_id: str, value: str) -> None:
        """A logged-in user's devices follow this browser's latest state (``value`` "": no choice)."""
        user_key = self._user_key(request)
        if self.accounts and user_key:
            await self.accounts.remember(user_key, UserChoice(consent_id, value))

    def set_refusal(self, response: Response, request: Request, record: ConsentRecord) -> str:
        """A refusal of everything optional becomes the visitor's choice (its cookie value is returned); the
        trackers' cookies expire."""
        value = self.codec.encode(record)
        self._set_consent_cookie(response, request, value, record.max_age_seconds(self.config))
        self._keep_consent_id(response, request, record.consent_id)
        self._expire_cookies(response, request, set(self.optional_categories), set())
        # the next page runs the cleaner: script-set cookies and storage keys of the refused vendors go too
        response.set_cookie(CLEAN_COOKIE, "1", max_age=120, path="/", secure=self._secure(request), samesite="lax")
        return value

    async def archived_banners(self, versions: Sequence[str]) -> dict[str, Any]:
        """What each banner version showed, from the log's archive (a version not archived is left out)."""
        if not versions:
            return {}
        await self.keeper.ensure_started()
        try:
            found = await self.keeper.log.banner_versions(list(versions))
        except Exception:
            logger.exception("the consent log did not answer for archived banner versions")
            return {}
        return {version: json.loads(document) for version, document in found.items()}

    async def _store(self, event: ConsentEvent) -> bool:
        """True once the event is durable (log or spool)."""
        try:
            await self.keeper.record(event)
        except SpoolError:
            logger.error("consent event %s could be kept neither in the log nor in the spool", event.event_id)
            return False
        metrics.inc("consent_events_total", action=event.action)
        for category, granted in event.categories.items():
            if granted:
                metrics.inc("consent_grants_total", category=category)
        return True

    # -- endpoints

    async def state(self, request: Request) -> Response:
        reading = self._reading(request)
        record = reading.record
        gpc = self._refusal_signal(request)
        response = JSONResponse(
            {
                "consent": record.to_json() if record else None,
                "gpc": gpc,
                "policy_version": self.config.policy.version,
            },
            headers={"Cache-Control": "no-store"},
        )
        self._repair(response, request, reading)
        return response

    async def choices(self, request: Request) -> Response:
        if request.method == "DELETE":
            return await self.withdraw(request)
        return await self.choose(request)

    def too_many(self, request: Request) -> Response | None:
        """A 429 when this address changed its consent too often (`[gateway] consent_rate_per_minute`)."""
        if self.rate_limiter is None:
            return None
        address = self.visitors.client_ip(request.scope) or "unknown"
        return self.rate_limiter.refusal(address, reason="too_many_requests", what="consent changes")

    async def choose(self, request: Request) -> Response:
        refused = self.too_many(request)
        if refused is not None:
            return refused
        data = await self.choice_body.read(request)
        choices, vendors = self.choice_body.parse(data)
        gpc = self._refusal_signal(request)
        gpc_narrowed = gpc and data.get("action") == "accept_all" and self._apply_gpc(choices)
        reading = self._reading(request)
        previous = reading.record
        user_key = self._user_key(request)
        # a logged-in user's devices share one consent id: each device's events are linked through it
        user_choice = await self.accounts.latest(user_key) if self.accounts and user_key else None
        now = time.time()
        record = ConsentRecord(
            consent_id=self._consent_id_for(request, previous, user_choice),
            choices=choices,
            vendors=vendors,
            policy_version=self.config.policy.version,
            given_at=int(now),
            gpc=gpc,
        )
        action = GPC_APPLIED if gpc_narrowed else (CONSENT_UPDATED if previous else CONSENT_GIVEN)
        referrer = data.get("referrer") if isinstance(data.get("referrer"), str) else None
        event = self._event(request, record, action, int(now * 1000), referrer)
        durable = await self._store(event)
        if not durable and record.is_acceptance:
            # No proof, no "yes": the grant is refused and no cookie claims it.
            raise APIError(
                503, "consent_not_recorded", "your choice could not be recorded; nothing was enabled, please retry"
            )
        value = self.codec.encode(record)
        if self.accounts and user_key:
            await self.accounts.remember(user_key, UserChoice(record.consent_id, value))
        return self._choice_response(request, record, value, durable=durable, repair=reading.duplicated)

    def _choice_response(
        self, request: Request, record: ConsentRecord, value: str, *, durable: bool, repair: bool
    ) -> Response:
        """The recorded choice, its cookie, and the expiry of cookies a narrowed choice no longer allows."""
        body = record.to_json()
        # the banner's "view my consent data" link: the visitor's own page (history, downloads, erasure)
        body["receipt_url"] = f"{self.config.gateway.prefix}/me"
        body["recorded"] = durable
        sync = self._sync_url(request, CHOICE, record.to_payload())
        if sync:
            body["sync"] = sync
        response = JSONResponse(body, headers={"Cache-Control": "no-store"})
        self._set_consent_cookie(response, request, value, record.max_age_seconds(self.config), repair=repair)
        self._keep_consent_id(response, request, record.consent_id)
        # Every refusal, not only a narrowing: a first "reject all", a refusal after a policy change (the old
        # choice no longer counts) or in an opt-out region (trackers ran before it) leaves cookies behind.
        refused = {c for c in self.optional_categories if not record.choices.get(c)}
        vendors_refused = {v for v, on in record.vendors.items() if not on}
        vendors_granted = frozenset(v for v, on in record.vendors.items() if on)
        self._expire_cookies(response, request, refused, vendors_refused, vendors_granted)
        return response

    def _apply_gpc(self, choices: dict[str, bool]) -> bool:
        """Global Privacy Control refuses these categories: "accept all" does not override it, an explicit
        switch does. True when it took back a grant."""
        narrowed = False
        for category in self.config.gateway.gpc_refuses:
            if choices.get(category):
                choices[category] = False
                narrowed = True
        return narrowed

    async def withdraw(self, request: Request) -> Response:
        if not is_same_origin(request):
            raise APIError(403, "cross_site_request", "consent changes must come from this site's own pages")
        previous = self._record(request)
        user_key = self._user_key(request)
        user_choice = await self.accounts.latest(user_key) if self.accounts and user_key else None
        now = time.time()
        record = ConsentRecord(
            consent_id=self._consent_id_for(request, previous, user_choice),
            choices={c: False for c in self.optional_categories},
            vendors={},
            policy_version=self.config.policy.version,
            given_at=int(now),
            gpc=self._refusal_signal(request),
        )
        # Withdrawal takes effect at once, whatever the log says.
        durable = await self._store(self._event(request, record, CONSENT_WITHDRAWN, int(now * 1000)))
        if self.accounts and user_key:
            await self.accounts.remember(user_key, UserChoice(record.consent_id, ""))  # "" is no choice
        body: dict[str, Any] = {"withdrawn": True, "consent_id": record.consent_id, "recorded": durable}
        sync = self._sync_url(request, WITHDRAWAL, {"id": record.consent_id})
        if sync:
            body["sync"] = sync
        response = JSONResponse(body, headers={"Cache-Control": "no-store"})
        self._withdrawn(response, request)
        # the choice is gone, the id stays: the next choice continues the same history
        self._keep_consent_id(response, request, record.consent_id)
        return response

    def _withdrawn(self, response: Response, request: Request) -> None:
        """No choice left: the consent cookie on every scope and the trackers' cookies expire."""
        self._clear_consent_cookie(response, request)
        self._expire_cookies(response, request, set(self.optional_categories), set())
        # the reloaded page has no choice to read: this asks it to run the cleaner (which then drops it)
        response.set_cookie(CLEAN_COOKIE, "1", max_age=120, path="/", secure=self._secure(request), samesite="lax")

    # -- sister domains

    def _sync_url(self, request: Request, kind: str, record: dict[str, Any]) -> str | None:
        """Where the banner goes next to carry this choice to the sister domains, or None."""
        if self.sisters is None:
            return None
        host = request.headers.get("host", "")
        origin = f"{request.url.scheme}://{host}"
        page = request.headers.get("referer", "")
        seen = split_header_url(page)
        same_page = seen is not None and seen.hostname == self._host(request) and len(page) <= MAX_BACK_URL
        back = page if same_page else f"{origin}/"
        return self.sisters.first_hop(site=site_of(host), kind=kind, record=record, back=back)

    async def sync(self, request: Request) -> Response:
        """One hop of a sync chain: this domain takes the choice with its own cookie, then sends the visitor on."""
        assert self.sisters is not None  # the route exists only with sisters
        now = time.time()
        token, problem = self.sisters.read(request.query_params.get("token", ""), now=now)
        if token is None:
            metrics.inc("consent_sync_rejected_total", reason=problem)
            raise APIError(400, "invalid_sync_token", "this consent link is not valid; your choice was not changed")
        site = site_of(request.headers.get("host", ""))
        response = RedirectResponse(token.next_url(token.hop_index(site)), 303, headers={"Cache-Control": "no-store"})
        reason = (
            problem
            or self.sisters.refusal(token, site, request.headers.get("referer"))
            or await self._claim(f"sync:{token.token_id}:{site}")
        )
        record = None
        if not reason and token.kind == CHOICE:
            record, reason = self._synced_record(token, now)
        if reason:
            metrics.inc("consent_sync_rejected_total", reason=reason)
            return response
        referrer = f"https://{token.origin}/"
        if record is None:  # a withdrawal
            previous = self._record(request)
            withdrawn = ConsentRecord(
                consent_id=self.known_consent_id(request, previous) or str(token.record.get("id", new_consent_id())),
                choices={c: False for c in self.optional_categories},
                policy_version=self.config.policy.version,
                given_at=int(now),
                gpc=self._refusal_signal(request),
            )
            await self._store(self._event(request, withdrawn, CONSENT_WITHDRAWN, int(now * 1000), referrer))
            self._withdrawn(response, request)
            self._keep_consent_id(response, request, withdrawn.consent_id)
        else:
            durable = await self._store(self._event(request, record, SYNCED_FROM, int(now * 1000), referrer))
            if not durable and record.is_acceptance:
                metrics.inc("consent_sync_rejected_total", reason="not_recorded")
                return response  # no proof, no "yes"
            self._set_consent_cookie(response, request, self.codec.encode(record), record.max_age_seconds(self.config))
            self._keep_consent_id(response, request, record.consent_id)
            refused = {c for c in self.optional_categories if not record.choices.get(c)}
            self._expire_cookies(response, request, refused, {v for v, on in record.vendors.items() if not on})
        metrics.inc("consent_sync_total", kind=token.kind)
        return response

    async def _claim(self, key: str) -> str | None:
        """None when the key was free (now taken), else why the token must not be applied."""
        await self.keeper.ensure_started()
        try:
            claimed = await self.keeper.log.claim(key, TOKEN_TTL_SECONDS + self.config.cookie.clock_skew_seconds)
        except Exception:
            logger.exception("sync: the consent log could not record a token's use")
            return "store_unavailable"  # fail closed: a token that cannot be spent is not honoured
        return None if claimed else "replayed"

    def _synced_record(self, token: SyncToken, now: float) -> tuple[ConsentRecord | None, str | None]:
        """The choice a token carries, as this domain's record; None and why when it cannot be taken."""
        payload = token.record
        if payload.get("p") != self.config.policy.version:
            return None, "old_policy"  # the visitor agreed to another text than this domain's
        choices, vendors, consent_id = payload.get("c"), payload.get("v", {}), payload.get("id")
        if not (isinstance(choices, dict) and isinstance(vendors, dict) and isinstance(consent_id, str)):
            return None, "malformed"
        return (
            ConsentRecord(
                consent_id=consent_id,
                # categories this domain does not have are dropped; its own extra ones count as refused
                choices={c: bool(choices.get(c, 0)) for c in self.optional_categories},
                vendors={str(k): bool(v) for k, v in vendors.items()},
                policy_version=self.config.policy.version,
                given_at=int(now),
                gpc=bool(payload.get("g", 0)),
            ),
            None,
        )

    async def history_of(self, consent_id: str) -> list[ConsentEvent]:
        """A visitor's own events, oldest first; a JSON 503 when the log does not answer."""
        await self.keeper.ensure_started()
        try:
            return await self.keeper.log.history(consent_id)
        except Exception:
            logger.exception("the consent log did not answer a visitor's history")
            raise APIError(503, "store_unavailable", "your history cannot be read right now, please retry") from None

    async def receipt(self, request: Request) -> Response:
        """The visitor's history as JSON: after a withdrawal or a policy change too (``current`` is then
        null), since the browser keeps its consent id until it erases its data."""
        reading = self._reading(request)
        record = reading.record
        consent_id = self.known_consent_id(request, record)
        if consent_id is None:
            raise APIError(404, "no_consent", "this browser has no recorded consent")
        events = await self.history_of(consent_id)
        if record is None and not events:
            raise APIError(404, "no_consent", "this browser has no recorded consent")
        response = JSONResponse(
            {
                "consent_id": consent_id,
                "current": record.to_json() if record else None,
                "events": [event_to_dict(e) for e in events],
            },
            headers={
                "Cache-Control": "no-store",
                "Content-Disposition": f'inline; filename="consent-{consent_id}.json"',
            },
        )
        self._repair(response, request, reading)
        return response

    async def _store_state(self) -> dict[str, Any]:
        """The log's health as anyone may see it: backend, ok, durable; never a path, URL or error text.

        Not ok when the log does not answer or when its last write failed (SQLite locked, Redis MISCONF…).
        """
        await self.keeper.ensure_started()
        try:
            found = await self.keeper.log.health()
        except Exception:  # the store's trouble is reported, not raised: liveness stays up
            found = {"ok": False}
        state = {key: found[key] for key in _PUBLIC_STORE_FIELDS if key in found}
        state["writable"] = await self._writable()
        state["ok"] = found.get("ok") is not False and self.keeper.recorder.log_ok and state["writable"]
        return state

    async def _writable(self) -> bool:
        """Whether the log took a write probe lately: counting events answers while SQLite is locked or Redis
        refuses writes, so readiness asks for a write (at most once per `WRITE_PROBE_INTERVAL_S`)."""
        async with self._write_probe_lock:
            then, ok = self._write_probe
            if time.monotonic() - then < WRITE_PROBE_INTERVAL_S:
                return ok
            probe = getattr(self.keeper.log, "write_probe", None)
            ok = True
            if probe is not None:
                try:
                    await asyncio.wait_for(probe(), self.config.store.timeout_seconds * 2)
                except Exception as exc:  # the store's trouble is reported, not raised: liveness stays up
                    ok = False
                    metrics.inc("store_errors_total", operation="write_probe")
                    logger.warning("the consent log failed its write probe: %r", exc)
            self._write_probe = (time.monotonic(), ok)
            return ok

    async def health(self, request: Request) -> Response:
        """Store, spool and instance lease as they are: "ok" only when consent events can be recorded and
        reach the log (spooled events waiting for a log that answers again are "degraded")."""
        store = await self._store_state()
        recording = self.keeper.state()
        spool: dict[str, Any] = recording["spool"]  # type: ignore[assignment]
        fine = store["ok"] and spool["ok"] and recording["instance_lease"] != "conflict"
        return JSONResponse(
            {
                "status": "ok" if fine else "degraded",
                "store": store,
                "spool": spool,
                "spool_depth": spool["depth"],
                "instance_lease": recording["instance_lease"],
                # a clock off the store's (or stepped since start) is shown, not failed: events are still
                # recorded, on the reference time; retention waits (store/clock.py)
                "clock": recording["clock"],
            },
            headers={"Cache-Control": "no-store"},
        )

    async def ready(self, request: Request) -> Response:
        """For a load balancer: 503 while this instance cannot record grants, so traffic goes to another."""
        store = await self._store_state()
        recording = self.keeper.state()
        spool: dict[str, Any] = recording["spool"]  # type: ignore[assignment]
        ready = store["ok"] and spool["ok"] and recording["instance_lease"] != "conflict"
        return JSONResponse(
            {"status": "ready" if ready else "not_ready"},
            status_code=200 if ready else 503,
            headers={"Cache-Control": "no-store"},
        )

    async def metrics(self, request: Request) -> Response:
        if self.metrics_token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip().encode()
            if not hmac.compare_digest(given, self.metrics_token):
                raise APIError(401, "unauthorized", f"send Authorization: Bearer <{METRICS_TOKEN_ENV}>")
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    async def asset(self, request: Request) -> Response:
        name = request.scope["path"].rsplit("/", 1)[-1]
        found = self.banner.asset(name)
        if found is None:
            raise APIError(404, "not_found", f"no banner file {name!r}")
        body, media_type = found
        versioned = request.query_params.get("v") == self.banner.version
        coding = visitor_encoding(request.headers.get("accept-encoding")) if self.config.gateway.compress else None
        headers = {
            "Cache-Control": STATIC_CACHE_CONTROL if versioned else "public, max-age=300",
            # each coding is its own representation, with its own validator
            "ETag": f'"{self.banner.version}-{coding}"' if coding else f'"{self.banner.version}"',
            "X-Content-Type-Options": "nosniff",
            "Vary": "Accept-Encoding",
        }
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        if coding is not None:
            body = self.precompressed.body(name, coding, body)
            headers["Content-Encoding"] = coding
        return Response(body, media_type=media_type, headers=headers)
