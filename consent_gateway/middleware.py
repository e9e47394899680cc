"""`ConsentGateway`: the ASGI middleware every request goes through.

    ConsentGateway(app, config=load_config("gateway.toml"))

A path under the prefix (default `/_consent`) is answered by the gateway's own routes. Any other HTTP
request is read once into a `Decision` (stored in `scope["consent_gateway.decision"]` for the app), runs
through the app, and its response goes out through `Responder`. Lifespan and WebSocket scopes pass through.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Sequence

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from . import metrics
from ._types import ASGIApp, Message, Receive, Scope, Send
from .accounts import USER_COOKIE, USER_ID_SCOPE_KEY, Accounts
from .admin import build_admin_app
from .admin.audit import AuditLog, audit_path
from .banner_archive import BannerArchive
from .codings import decodable_accept_encoding
from .collect import BeaconForwarder, collect_route
from .config import Config, load_config
from .consent import ConsentCodec
from .consent_cookie import host_name
from .consent_id_cookie import ConsentIdCookie
from .csp_report import CSPReportEndpoint
from .decision import Decision
from .declaration import CookieDeclaration
from .enrich import Enricher, ip_hash_key
from .errors import StoreUnavailable
from .inventory.collector import InventoryCollector
from .inventory.flusher import InventoryFlusher
from .inventory.report import InventoryReportEndpoint
from .network import ForwardedScheme, peer_is_trusted
from .responder import Responder, kept_private
from .routes import ConsentAPI
from .signing import load_secret_keys
from .site_rules import ClassificationStore, RulesWatcher, SiteRules
from .store import ConsentLog, EventRecorder, open_log
from .store.clock import LogClock
from .store.coordination import StoreLease
from .store.erasure_queue import ErasureQueue, QueuedErasure
from .store.keeper import LogKeeper
from .store.proof import CheckpointWriter, load_checkpoint_key, load_log_keys
from .store.retention import RetentionTask
from .sync import SisterDomains
from .thirdparty import site_catalog
from .usage import seen_vendor_ids
from .visitor import DECISION_SCOPE_KEY, RECORD_SCOPE_KEY, REPAIR_SCOPE_KEY, VisitorReader, parse_cookies

logger = logging.getLogger("consent_gateway.middleware")


class ConsentGateway:
    """Makes the wrapped ASGI app honour each visitor's cookie choices.

    :param app: the site: any ASGI application (Starlette, FastAPI, Django's ASGI handler, the proxy…).
    :param config: a loaded `Config`; `None` → the built-in defaults.
    :param secret_keys: signing keys, newest first; `None` → `CONSENT_GATEWAY_SECRET_KEYS` or a key
        generated once into the data folder.
    :param log: a consent log; `None` → the one `[store] url` names (SQLite in the data folder by default).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        secret_keys: Sequence[str] | None = None,
        log: ConsentLog | None = None,
    ) -> None:
        self.app = app
        self.config = config = config or load_config()
        self.prefix = config.gateway.prefix
        self._prefix_slash = self.prefix + "/"
        proxies = tuple(ipaddress.ip_network(n, strict=False) for n in config.gateway.trusted_proxies)
        self._forwarded_scheme = ForwardedScheme(proxies) if proxies else None
        keys = list(secret_keys) if secret_keys else load_secret_keys(config)
        self.codec = ConsentCodec(config, keys)
        self.enricher = Enricher(
            ip_mode=config.privacy.ip_mode,
            ipv4_prefix=config.privacy.ipv4_prefix,
            ipv6_prefix=config.privacy.ipv6_prefix,
            ip_hash_key=ip_hash_key(keys),
            geoip_database=config.privacy.geoip_database or None,
            region_default=config.regions.default,
            region_unknown=config.regions.unknown,
            region_countries=config.regions.countries,
        )
        self.visitors = VisitorReader(config, self.codec, self.enricher)
        self.instance_id = config.gateway.instance_id or f"{socket.gethostname()}-{os.getpid()}"
        log_keys = load_log_keys(config.data_path)
        self.log = log if log is not None else open_log(config.store_url, log_keys=log_keys)
        if getattr(self.log, "log_keys", log_keys) is None:
            self.log.log_keys = log_keys  # type: ignore[attr-defined]  # a backend opened by the caller
        #: what this instance sees of the site (third parties, cookies, names, CSP violations), until flushed
        self.inventory = InventoryCollector()
        self.inventory_flusher = InventoryFlusher(
            self.log, self.inventory, interval_s=config.inventory.flush_interval_seconds
        )
        metrics.register_collector("inventory", self.inventory_flusher.metrics_lines, lambda: None)
        # The catalog and all built from it; the privacy team's classifications reach it without a restart.
        self.classifications = ClassificationStore(self.log)
        self.rules_watcher = RulesWatcher(
            config,
            site_catalog(config),
            self.classifications,
            self._install_rules,
            seen_vendors=functools.partial(seen_vendor_ids, self.log),
            inventory=self.inventory,
        )
        rules = self.rules_watcher.rules
        self.catalog = rules.catalog
        self.banner = rules.banner
        self.cookie_filter = rules.cookie_filter
        self.rewriters = rules.rewriters
        self.csp = rules.csp
        clock = LogClock(self.log.server_time_ms)
        recorder = EventRecorder(
            self.log,
            spool_path=config.spool_path,
            instance_id=self.instance_id,
            max_batch=config.store.batch_max_events,
            max_delay_s=config.store.batch_max_delay_ms / 1000,
            append_timeout_s=config.store.timeout_seconds,
            log_keys=log_keys,
            clock=clock,
        )
        checkpoints = CheckpointWriter(
            self.log,
            config.checkpoint_path,
            load_checkpoint_key(config.data_path),
            interval_s=config.store.checkpoint_interval_seconds,
        )
        instance_lease = StoreLease(self.log, f"instance:{self.instance_id}", ttl_s=config.store.lease_seconds)
        audit = AuditLog(audit_path(config))

        async def audit_erasure(request: QueuedErasure, events: int) -> None:
            await audit.write("erase-applied", user=request.requested_by, target=request.consent_id, events=events)

        self.keeper = LogKeeper(
            self.log,
            recorder,
            checkpoints,
            instance_lease=instance_lease,
            erasures=ErasureQueue(config.spool_path),
            on_erasure_applied=audit_erasure,
            retention=RetentionTask(
                self.log, config.retention, lease_seconds=config.store.lease_seconds, log_clock=clock
            ),
            inventory=self.inventory_flusher,
            clock=clock,
        )
        self.accounts = Accounts(config, keys, self.keeper)
        self.banner_archive = BannerArchive(self.keeper)
        self.collect_route = collect_route(self.catalog, self.read_decision, prefix=self.prefix)
        self.admin_app = (
            build_admin_app(config, self.log, keys, on_classified=functools.partial(self.rules_watcher.refresh))
            if config.admin.enabled
            else None
        )
        self.inventory_reports = InventoryReportEndpoint(
            config, self.catalog, self.visitors, self.inventory, claim=self.log.claim
        )
        self.declaration = CookieDeclaration(config, self.log, lambda: self.rules_watcher.rules)
        extra_routes: list[BaseRoute] = [
            self.collect_route,
            Route(f"{self.prefix}/cookies", self.declaration.html, methods=["GET", "HEAD"]),
            Route(f"{self.prefix}/cookies.json", self.declaration.json, methods=["GET", "HEAD"]),
            Route(f"{self.prefix}/inventory-report", self.inventory_reports.handle, methods=["POST"]),
        ]
        self.csp_reports: CSPReportEndpoint | None = None
        if self.csp is not None:
            self.csp_reports = CSPReportEndpoint(
                config, self.catalog, self.visitors, choosable=self.csp.choosable, sink=self.inventory
            )
            extra_routes.append(Route(f"{self.prefix}/csp-report", self.csp_reports.handle, methods=["POST"]))
        if self.admin_app is not None:
            extra_routes.append(Mount(f"{self.prefix}/admin", app=self.admin_app))
        self.api = ConsentAPI(
            config,
            catalog=self.catalog,
            visitors=self.visitors,
            enricher=self.enricher,
            banner=self.banner,
            codec=self.codec,
            keeper=self.keeper,
            instance_id=self.instance_id,
            consent_ids=ConsentIdCookie(config, keys, self.visitors.cookie, self.codec),
            banner_archive=self.banner_archive,
            sisters=SisterDomains(config, keys),
            accounts=self.accounts,
            extra_routes=extra_routes,
        )
        self._proxies = proxies

    def _install_rules(self, rules: SiteRules) -> None:
        """Swap in rules built from a new catalog: no await here, so no request sees half of them."""
        self.catalog = rules.catalog
        self.banner = rules.banner
        self.cookie_filter = rules.cookie_filter
        self.rewriters = rules.rewriters
        self.csp = rules.csp
        self.api.use_rules(rules.catalog, rules.banner)
        if self.csp_reports is not None:
            self.csp_reports.catalog = rules.catalog
        self.inventory_reports.use_catalog(rules.catalog)
        forwarder = self.collect_route.endpoint
        if isinstance(forwarder, BeaconForwarder):
            forwarder.vendors = rules.catalog.vendors

    # -- the request path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._forwarded_scheme is not None:
            self._forwarded_scheme(scope)
        if scope["type"] == "http":
            self.rules_watcher.poke()
            if self.accounts.header:
                self._user_from_request(scope)
            path: str = scope["path"]
            if path.startswith(self._prefix_slash) or path == self.prefix:
                await self.api(scope, receive, send)
                return
            decision = self.visitors.read(scope)
            for key, _ in scope["headers"]:  # most requests carry neither header: one pass, no list
                if key == b"range" or key == b"accept-encoding":
                    _drop_range_for_html(scope)
                    _decodable_codings_only(scope)
                    break
            extra: list[tuple[bytes, bytes]] = []
            if REPAIR_SCOPE_KEY in scope:
                extra += self._repair(scope)
            if not decision.explicit and USER_ID_SCOPE_KEY in scope:
                decision = await self._adopt(scope, self.accounts.user_key(scope[USER_ID_SCOPE_KEY]), decision, extra)
            scope[DECISION_SCOPE_KEY] = decision
            self.banner_archive.note_served(self.banner)  # a set lookup once this version is archived
            if extra or self.accounts.header:
                send = _adding_headers(send, extra)
            responder = Responder(
                scope, decision, send, self.cookie_filter, self.rewriters, self.csp, self.visitors.shared
            )
            app_send = self._user_from_upstream(scope, responder, extra) if self.accounts.header else responder.send
            # HEAD is asked as a GET (RFC 9110 §9.3.2 lets the answer be generated so): only the page's body
            # tells what the GET's headers say; the responder drops the body and stops the app after them
            app_scope = {**scope, "method": "GET"} if scope["method"] == "HEAD" else scope
            try:
                await self.app(app_scope, receive, app_send)
            except Exception:
                if responder.head_answered:
                    return  # the HEAD answer is complete: what broke off is the body nobody asked for
                # the page the app started breaks off for the visitor as it would without the gateway
                await responder.send_held_start()
                raise
        elif scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _repair(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The browser sent the consent cookie twice: the response leaves it once (rare: not on the hot path)."""
        cookie = self.visitors.cookie
        host = host_name(_header(scope, b"host") or "")
        return cookie.repair(scope[REPAIR_SCOPE_KEY], host, secure=cookie.secure(scope.get("scheme")), now=time.time())

    # -- logged-in visitors (see accounts.py)

    def _user_from_request(self, scope: Scope) -> None:
        """The user id header of a request: believed from a trusted proxy only, and never passed on."""
        header = self.accounts.header
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if not any(key == header for key, _ in headers):
            return
        found = [value for key, value in headers if key == header]
        scope["headers"] = [(key, value) for key, value in headers if key != header]
        if len(found) == 1 and self._proxies and peer_is_trusted(scope, self._proxies):
            scope.setdefault(USER_ID_SCOPE_KEY, found[0].decode("latin-1"))

    async def _adopt(
        self, scope: Scope, user_key: str | None, decision: Decision, extra: list[tuple[bytes, bytes]]
    ) -> Decision:
        """A device without a valid choice takes the user's latest one: its cookie, and an event of its own."""
        if user_key is None:
            return decision
        choice = await self.accounts.latest(user_key)
        if choice is None or not choice.value:
            return decision
        record = self.codec.decode(choice.value)
        if record is None:
            return decision
        remaining = record.given_at + record.max_age_seconds(self.config) - int(time.time())
        durable = await self.api.record_for_device(scope, record)
        if remaining <= 0 or (not durable and record.is_acceptance):
            return decision  # no proof, no "yes"
        cookie = self.visitors.cookie
        host = host_name(_header(scope, b"host") or "")
        secure = cookie.secure(scope.get("scheme"))
        extra += cookie.write(choice.value, remaining, host, secure=secure, exclusive=False)
        scope[RECORD_SCOPE_KEY] = record
        adopted = self.visitors.decision_for(record, gpc=decision.gpc, site=decision.site)
        if self.visitors.shared is not None:
            extra += self.visitors.shared.write(adopted, remaining, host, secure=secure)
        return adopted

    def _user_from_upstream(self, scope: Scope, responder: Responder, extra: list[tuple[bytes, bytes]]) -> Send:
        """Proxy mode: the upstream names the logged-in user in a response header, which goes no further."""
        header = self.accounts.header
        cookie_header = b"; ".join(value for key, value in scope["headers"] if key == b"cookie").decode("latin-1")
        remembered = parse_cookies(cookie_header).get(USER_COOKIE)
        remembered_key = self.accounts.key_from_cookie(remembered) if remembered else None
        secure = self.visitors.cookie.secure(scope.get("scheme"))

        async def send_start(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
                found = [value for key, value in headers if key == header]
                if found:
                    message = {**message, "headers": [(k, v) for k, v in headers if k != header]}
                user_key = self.accounts.user_key(found[-1].decode("latin-1")) if len(found) == 1 else None
                if user_key is not None:
                    if not responder.decision.explicit and USER_ID_SCOPE_KEY not in scope:
                        responder.decision = await self._adopt(scope, user_key, responder.decision, extra)
                    if remembered_key != user_key:
                        extra.extend(_user_cookie(self.accounts.cookie_value(user_key), secure=secure))
                elif remembered is not None and _is_html(headers):
                    extra.extend(_user_cookie("", secure=secure))  # a page without the user: logged out
            await responder.send(message)

        return send_start

    def read_decision(self, scope: Scope) -> Decision:
        decision: Decision | None = scope.get(DECISION_SCOPE_KEY)
        return decision if decision is not None else self.visitors.read(scope)

    # -- start and stop of the consent log

    async def ensure_started(self) -> None:
        """Open the log and replay the spool once; called lazily, since not every server sends lifespan.
        With lifespan, the privacy team's classifications are in force before the first page."""
        await self.keeper.ensure_started()
        try:
            await self.rules_watcher.refresh()
        except (StoreUnavailable, OSError) as exc:
            logger.warning("classifications not loaded at start (the store did not answer: %s)", exc)

    async def aclose(self) -> None:
        await self.rules_watcher.aclose()
        await self.banner_archive.wait()  # archives under way finish before the log closes
        await self.keeper.aclose()
        forwarder = self.collect_route.endpoint
        if isinstance(forwarder, BeaconForwarder):
            await forwarder.aclose()
        self.enricher.close()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_and_stop() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        refused: str | None = None

        async def send_after_start(message: Message) -> None:
            nonlocal refused
            if refused is not None:  # the app's own report of the refusal below: the server has ours
                return
            if message["type"] == "lifespan.startup.complete":
                await self.ensure_started()
                if self.keeper.conflict is not None:  # another live process runs under this instance id
                    refused = self.keeper.conflict
                    await self.aclose()
                    await send({"type": "lifespan.startup.failed", "message": refused})
                    raise InstanceIdInUse(refused)
            await send(message)

        await self.app(scope, receive_and_stop, send_after_start)
        if refused is not None:  # an app that swallowed the exception: the server must still stop
            raise InstanceIdInUse(refused)


class InstanceIdInUse(RuntimeError):
    """Startup refused: another live gateway process holds this ``gateway.instance_id``."""


def _adding_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """`send`, adding `extra` headers (filled until the response starts) to the response's start."""

    async def send_with_extra(message: Message) -> None:
        if message["type"] == "http.response.start" and extra:
            # the visitor's own cookies: whatever the site said, no shared cache may keep this response
            message = {**message, "headers": [*kept_private(list(message.get("headers", ()))), *extra]}
        await send(message)

    return send_with_extra


def _user_cookie(value: str, *, secure: bool) -> list[tuple[bytes, bytes]]:
    """The session cookie that tells the consent API who is logged in (proxy mode); "" expires it."""
    response = Response()
    if value:
        response.set_cookie(USER_COOKIE, value, path="/", secure=secure, httponly=True, samesite="lax")
    else:
        response.delete_cookie(USER_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    return [(k, v) for k, v in response.raw_headers if k == b"set-cookie"]


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(key == b"content-type" and value.lower().startswith(b"text/html") for key, value in headers)


def _drop_range_for_html(scope: Scope) -> None:
    """A page asked for in pieces cannot be rewritten: ask the site for the whole page instead.

    Only requests that accept HTML lose their Range header; media and downloads keep resuming and seeking.
    """
    headers = scope["headers"]
    for key, _ in headers:
        if key == b"range":
            break
    else:
        return
    accept = _header(scope, b"accept") or ""
    if "text/html" in accept or "application/xhtml+xml" in accept:
        scope["headers"] = [(k, v) for k, v in headers if k not in (b"range", b"if-range")]


def _decodable_codings_only(scope: Scope) -> None:
    """The site is offered only the content codings the gateway can undo: a page in any other coding could
    not be rewritten (a zstd or unknown-coded page would otherwise pass with its trackers live)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    values = [value for key, value in headers if key == b"accept-encoding"]
    if not values:
        return
    kept = _decodable_value(values[0] if len(values) == 1 else b", ".join(values))
    if len(values) == 1 and kept == values[0]:
        return
    scope["headers"] = [(k, v) for k, v in headers if k != b"accept-encoding"] + [(b"accept-encoding", kept)]


@functools.lru_cache(maxsize=256)  # every request of a browser; a handful of distinct values
def _decodable_value(value: bytes) -> bytes:
    return decodable_accept_encoding(value.decode("latin-1")).encode("latin-1")


def _header(scope: Scope, name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
