"""The visitor's own space at `/_consent/me`: their history, a copy to download, erasure, objection.

Server-rendered HTML in French or English (the visitor's language, like the banner; `?lang=` switches), with
no script: it reads and works without JavaScript. The browser is known by its consent id (see
`consent_id_cookie`): a forged or missing cookie shows nothing. State-changing actions are POST forms under
the same-origin rule as every other consent change (and, like a withdrawal, never refused for the consent
rate: they only take away), and each form carries the consent id it was shown for,
so a request forged from elsewhere (which cannot read it) changes nothing even where a browser sends no
`Origin`.

- **Erase** removes the personal fields of every event of the consent id (the chain still verifies: see
  `events`), then records a `data-erased` event that holds no personal field, clears the consent and id
  cookies and expires the trackers' cookies: the next choice starts a new history.
- **Object** records a `processing-objected` event refusing every optional category (the privacy team finds
  these in the dashboard) and sets that refusal as the visitor's choice.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .banner import Banner
from .config import Config
from .consent import ConsentRecord, new_consent_id
from .consent_record import consent_record
from .csrf import is_same_origin
from .errors import APIError, StoreUnavailable
from .events import DATA_ERASED, PROCESSING_OBJECTED, ConsentEvent, event_to_dict
from .store.keeper import LogKeeper
from .visitor_texts import ACTION_NAMES, LANGUAGES, TEXTS


class ConsentAPI(Protocol):
    """What the visitor's space uses of `routes.ConsentAPI` (named here, so neither module imports the other)."""

    config: Config
    banner: Banner
    keeper: LogKeeper
    optional_categories: tuple[str, ...]

    def current_record(self, request: Request) -> ConsentRecord | None: ...
    def known_consent_id(self, request: Request, record: ConsentRecord | None = None) -> str | None: ...
    def refusal_signal(self, request: Request) -> bool: ...
    def is_secure(self, request: Request) -> bool: ...
    async def history_of(self, consent_id: str) -> list[ConsentEvent]: ...
    async def archived_banners(self, versions: Sequence[str]) -> dict[str, Any]: ...
    def event_for(self, request: Request, record: ConsentRecord, action: str, now_ms: int) -> ConsentEvent: ...
    async def store_event(self, event: ConsentEvent) -> bool: ...
    def forget_browser(self, response: Response, request: Request) -> None: ...
    def set_refusal(self, response: Response, request: Request, record: ConsentRecord) -> str: ...
    async def remember_for_user(self, request: Request, consent_id: str, value: str) -> None: ...


logger = logging.getLogger("consent_gateway.visitor_space")

_TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
#: Fields of an event kept out of the visitor's copy: the chain's salts would let anyone holding the copy
#: confirm a guessed IP against the log's commitments long after the visitor shared it.
_NOT_DOWNLOADED: Final = frozenset({"salts"})
MAX_FORM_BYTES: Final = 4096


def _style_hash(css: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()


class VisitorSpace:
    """`/_consent/me` and its forms; reads and writes through the consent API it belongs to."""

    def __init__(self, api: ConsentAPI) -> None:
        self.api = api
        self.config = api.config
        self.prefix = api.config.gateway.prefix.rstrip("/")
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        css = (_TEMPLATES / "visitor.css").read_text(encoding="utf-8")
        self.css = css
        # the page's only style is inline; its hash is the whole policy: no script, nothing from elsewhere
        self.csp = (
            f"default-src 'none'; style-src '{_style_hash(css)}'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{self.prefix}/me", self.page, methods=["GET"]),
            Route(f"{self.prefix}/me/data.json", self.download_json, methods=["GET"]),
            Route(f"{self.prefix}/me/record.jsonld", self.download_record, methods=["GET"]),
            Route(f"{self.prefix}/me/erase", self.erase, methods=["POST"]),
            Route(f"{self.prefix}/me/object", self.object, methods=["POST"]),
        ]

    # -- reading

    def language(self, request: Request) -> str:
        """`?lang=` when it names one of the page's languages, else the visitor's, else the banner's default."""
        asked = request.query_params.get("lang", "")
        if asked in LANGUAGES:
            return asked
        found = self.api.banner.language_for(request.headers.get("accept-language"))
        if found in LANGUAGES:
            return found
        default = self.api.banner.default_language
        return default if default in LANGUAGES else "en"

    async def _visitor(self, request: Request) -> tuple[str | None, ConsentRecord | None, list[ConsentEvent]]:
        record = self.api.current_record(request)
        consent_id = self.api.known_consent_id(request, record)
        events = await self.api.history_of(consent_id) if consent_id else []
        return consent_id, record, events

    async def _banners(self, events: list[ConsentEvent]) -> dict[str, Any]:
        """The archived banner versions these events were recorded with (version → what was shown)."""
        versions = sorted({e.banner_version for e in events})
        return await self.api.archived_banners(versions)

    async def page(self, request: Request) -> Response:
        lang = self.language(request)
        texts = TEXTS[lang]
        done = request.query_params.get("done", "")
        try:
            consent_id, record, events = await self._visitor(request)
        except APIError:
            # the log does not answer: what the cookies say is still shown, and the forms still work (an
            # objection is a refusal, an erasure is queued)
            record = self.api.current_record(request)
            consent_id = self.api.known_consent_id(request, record)
            return self.render(
                request,
                "me.html",
                503,
                lang=lang,
                consent_id=consent_id,
                record=record,
                events=[],
                banners={},
                notice=None,
                error=texts["unavailable"],
            )
        banners = await self._banners(events) if events else {}
        return self.render(
            request,
            "me.html",
            lang=lang,
            consent_id=consent_id if events or record else None,
            record=record,
            events=list(reversed(events)),
            banners=banners,
            notice=texts.get(done) if done in ("erased", "objected") else None,
            error=None,
        )

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        lang: str = context["lang"]
        other = "en" if lang == "fr" else "fr"
        html = self._templates.get_template(template).render(
            t=TEXTS[lang],
            actions=ACTION_NAMES[lang],
            categories=self._category_labels(lang),
            prefix=self.prefix,
            css=self.css,
            other_lang=other,
            privacy_url=self.config.policy.privacy_policy_url,
            when=_when,
            **context,
        )
        return HTMLResponse(html, status, headers=self._headers())

    def _headers(self) -> dict[str, str]:
        return {
            "Cache-Control": "no-store",
            "Content-Security-Policy": self.csp,
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
            "Vary": "Cookie, Accept-Language",
        }

    def _category_labels(self, lang: str) -> list[tuple[str, str, bool]]:
        return [(c.id, c.label.get(lang) or c.label.get("en") or c.id, c.required) for c in self.config.categories]

    # -- downloads

    async def _download_body(self, request: Request) -> tuple[str, ConsentRecord | None, list[ConsentEvent]]:
        consent_id, record, events = await self._visitor(request)
        if consent_id is None or not (events or record):
            raise APIError(404, "no_consent", "this browser has no recorded consent")
        return consent_id, record, events

    def _site(self, request: Request) -> str:
        return f"{request.url.scheme}://{request.headers.get('host', '')}"

    async def download_json(self, request: Request) -> Response:
        """Everything the log holds for this browser, and what each banner it saw said (machine-readable)."""
        consent_id, record, events = await self._download_body(request)
        lang = self.language(request)
        body = {
            "format": "consent-gateway.visitor-data/1",
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "site": self._site(request),
            "consent_id": consent_id,
            "current": record.to_json() if record else None,
            "events": [_downloadable(e) for e in events],
            "banner_versions": await self._banners(events),
            "consent_record": consent_record(
                self.config, consent_id, events, record, site=self._site(request), language=lang
            ),
        }
        return _attachment(body, f"consent-{consent_id}.json", "application/json")

    async def download_record(self, request: Request) -> Response:
        consent_id, record, events = await self._download_body(request)
        body = consent_record(
            self.config, consent_id, events, record, site=self._site(request), language=self.language(request)
        )
        return _attachment(body, f"consent-record-{consent_id}.jsonld", "application/ld+json")

    # -- changes

    async def _form(self, request: Request) -> dict[str, str]:
        if not is_same_origin(request):
            raise APIError(403, "cross_site_request", "consent changes must come from this site's own pages")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise APIError(413, "body_too_large", "this form is a few bytes long")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            raise APIError(400, "malformed_form", "the form could not be read") from None
        return dict(pairs)

    def _check_shown_for(self, form: dict[str, str], consent_id: str | None) -> None:
        """The form names the consent id it was shown for: a forged request cannot know it."""
        if form.get("consent_id", "") != (consent_id or ""):
            raise APIError(403, "stale_form", "this form was not shown to this browser; reload the page")

    def _back(self, request: Request, done: str) -> RedirectResponse:
        lang = request.query_params.get("lang", "")
        query = f"?done={done}" + (f"&lang={lang}" if lang in LANGUAGES else "")
        return RedirectResponse(f"{self.prefix}/me{query}", status_code=303, headers={"Cache-Control": "no-store"})

    async def erase(self, request: Request) -> Response:
        form = await self._form(request)
        record = self.api.current_record(request)
        consent_id = self.api.known_consent_id(request, record)
        self._check_shown_for(form, consent_id)
        if consent_id is None:
            raise APIError(404, "no_consent", "this browser has no recorded consent")
        if form.get("confirm") != "yes":
            lang = self.language(request)
            events = await self.api.history_of(consent_id)
            return self.render(
                request,
                "me.html",
                400,
                lang=lang,
                consent_id=consent_id,
                record=record,
                events=list(reversed(events)),
                banners=await self._banners(events),
                notice=None,
                error=TEXTS[lang]["confirm_needed"],
            )
        now = time.time()
        try:
            await self.api.keeper.ensure_started()
            await self.api.keeper.log.erase(consent_id)
        except (StoreUnavailable, OSError):
            # the log is down: the erasure waits on disk and is applied when it answers (never refused)
            queue = self.api.keeper.erasures
            if queue is None:
                raise APIError(503, "store_unavailable", "your data cannot be erased right now, please retry") from None
            await asyncio.to_thread(queue.add, consent_id, "visitor")
        # no choice: an erasure is not a refusal, and must not count as one in the consent rates
        erased = ConsentRecord(
            consent_id=consent_id,
            choices={},
            policy_version=self.config.policy.version,
            given_at=int(now),
        )
        event = self.api.event_for(request, erased, DATA_ERASED, int(now * 1000))
        # the proof of the erasure carries nothing personal: no IP, browser string, page or referrer
        await self.api.store_event(
            dataclasses.replace(event, ip=None, user_agent=None, page_path=None, referrer_host=None)
        )
        response = self._back(request, "erased")
        self.api.forget_browser(response, request)
        # a logged-in user's other devices start afresh too: the erased history is no longer linked to them
        await self.api.remember_for_user(request, new_consent_id(), "")
        return response

    async def object(self, request: Request) -> Response:
        form = await self._form(request)
        previous = self.api.current_record(request)
        consent_id = self.api.known_consent_id(request, previous)
        self._check_shown_for(form, consent_id)
        now = time.time()
        record = ConsentRecord(
            consent_id=consent_id or new_consent_id(),
            choices={c: False for c in self.api.optional_categories},
            policy_version=self.config.policy.version,
            given_at=int(now),
            gpc=self.api.refusal_signal(request),
        )
        # a refusal takes effect whatever the log says; the event is the privacy team's flag
        await self.api.store_event(self.api.event_for(request, record, PROCESSING_OBJECTED, int(now * 1000)))
        response = self._back(request, "objected")
        await self.api.remember_for_user(request, record.consent_id, self.api.set_refusal(response, request, record))
        return response


def _downloadable(event: ConsentEvent) -> dict[str, Any]:
    return {k: v for k, v in event_to_dict(event).items() if k not in _NOT_DOWNLOADED}


def _attachment(body: dict[str, Any], filename: str, media_type: str) -> Response:
    return JSONResponse(
        body,
        media_type=media_type,
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _when(timestamp_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp_ms / 1000))


__all__ = ["VisitorSpace"]
