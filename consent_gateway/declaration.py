"""``GET /_consent/cookies`` (HTML) and ``/_consent/cookies.json``: the site's cookie declaration.

What the CNIL asks a site to publish — every cookie and storage key, who sets it, why, for how long — kept
true from live traffic: the vendors the inventory saw (catalog ∩ inventory), those the owner declared (the
config's ``[[vendors]]`` and the dashboard's classifications) and what nobody described yet, each with the
day it was last seen (`usage.build_declaration`). In French or English by the visitor's language, like the
banner (``?lang=fr`` or ``?lang=en`` picks one, for a link from a privacy policy in that language). Plain
HTML with no script, so it reads anywhere; built at most every :data:`CACHE_SECONDS` per instance, so a
crawler does not read the inventory on every hit.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from .banner import LIFETIME_UNITS
from .classification import SITE_VENDOR_ID
from .config import Config
from .errors import StoreUnavailable
from .responses import error_response
from .site_rules import SiteRules
from .store.base import ConsentLog
from .thirdparty import UNCLASSIFIED
from .usage import Declaration, build_declaration, in_thread, read_usage

CACHE_SECONDS: Final = 60.0
_TEMPLATES: Final = Path(__file__).with_name("templates")
_LIFETIME_WORD: Final = re.compile(r"[A-Za-z]+")
_CSS: Final = (_TEMPLATES / "declaration.css").read_text(encoding="utf-8")
#: the page is text and one inline stylesheet, allowed by its hash: nothing to run, nothing fetched
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'sha256-"
        + base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
        + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=300",
    "Vary": "Accept-Language",
}

TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "fr": {
        "title": "Cookies et traceurs utilisés par ce site",
        "lede": (
            "Cette liste est tenue à jour à partir de ce que le site utilise réellement : chaque cookie et "
            "chaque clé de stockage, qui le dépose, pourquoi et pour combien de temps. Aucun traceur non "
            "nécessaire n'est activé sans votre accord."
        ),
        "updated": "Mise à jour le {date}.",
        "settings": "Vous pouvez modifier vos choix à tout moment avec le bouton « Gérer les cookies » du site.",
        "my_data": "Vos choix enregistrés : historique, copie, effacement, opposition",
        "required": "Toujours actifs",
        "optional": "Avec votre accord",
        "provider": "Fournisseur",
        "this_site": "Ce site",
        "unknown_provider": "Non encore identifié",
        "policy": "Politique de confidentialité",
        "purpose": "Finalité",
        "hosts": "Services contactés",
        "cookies": "Cookies",
        "storage": "Stockage local",
        "name": "Nom",
        "lifetime": "Durée",
        "party": "Déposé par",
        "first": "ce site (première partie)",
        "third": "un tiers ({domain})",
        "last_seen": "Vu pour la dernière fois",
        "not_seen": "déclaré, pas encore vu",
        "in_use": "en service",
        "none": "Aucun service utilisé dans cette catégorie.",
        "other_language": "Read in English",
        "colon": "\u00a0: ",
    },
    "en": {
        "title": "Cookies and trackers this site uses",
        "lede": (
            "This list is kept up to date from what the site really uses: every cookie and storage key, who "
            "sets it, why, and for how long. No tracker that is not strictly necessary runs without your consent."
        ),
        "updated": "Updated on {date}.",
        "settings": "You can change your choices at any time with the site's “Cookie settings” button.",
        "my_data": "Your recorded choices: history, copy, erasure, objection",
        "required": "Always on",
        "optional": "With your consent",
        "provider": "Provider",
        "this_site": "This site",
        "unknown_provider": "Not identified yet",
        "policy": "Privacy policy",
        "purpose": "Purpose",
        "hosts": "Services contacted",
        "cookies": "Cookies",
        "storage": "Local storage",
        "name": "Name",
        "lifetime": "Lifetime",
        "party": "Set by",
        "first": "this site (first party)",
        "third": "a third party ({domain})",
        "last_seen": "Last seen",
        "not_seen": "declared, not seen yet",
        "in_use": "in use",
        "none": "No service used in this category.",
        "other_language": "Lire en français",
        "colon": ": ",
    },
}
LANGUAGES: Final = tuple(TEXTS)


class CookieDeclaration:
    """The two routes, for one gateway.

    :param rules: the rules in force (the catalog with the classifications, the banner for the language).
    """

    def __init__(self, config: Config, log: ConsentLog, rules: Callable[[], SiteRules]) -> None:
        self.config = config
        self.log = log
        self.rules = rules
        self._cached: tuple[float, object, Declaration] | None = None
        self._building = asyncio.Lock()
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True,
        )

    async def declaration(self) -> Declaration:
        async with self._building:  # one build at a time: a burst of hits waits for it, then shares it
            return await self._declaration()

    async def _declaration(self) -> Declaration:
        rules = self.rules()
        now = time.monotonic()
        cached = self._cached
        if cached is not None and cached[1] is rules and now - cached[0] < CACHE_SECONDS:
            return cached[2]
        entries = await read_usage(self.log)
        built = await in_thread(
            lambda copy: build_declaration(self.config, copy, rules.overlay, entries), rules.catalog
        )
        self._cached = (now, rules, built)
        return built

    def language(self, request: Request) -> str:
        asked = request.query_params.get("lang", "").lower()
        if asked in LANGUAGES:
            return asked
        found = self.rules().banner.language_for(request.headers.get("accept-language"))
        if found in LANGUAGES:
            return str(found)
        default = self.config.banner.default_language
        return default if default in LANGUAGES else "en"

    async def json(self, request: Request) -> Response:
        try:
            declaration = await self.declaration()
        except StoreUnavailable:
            return error_response(503, "store_unavailable", "the cookie declaration cannot be read right now")
        lang = self.language(request)
        body = {
            "language": lang,
            "policy_version": self.config.policy.version,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "categories": [
                {**self._category(category_id, lang), "vendors": [v.as_dict(lang) for v in vendors]}
                for category_id, vendors in declaration.categories.items()
                if vendors or category_id != UNCLASSIFIED
            ],
        }
        return JSONResponse(body, headers={**_HEADERS, "Content-Language": lang})

    async def html(self, request: Request) -> Response:
        lang = self.language(request)
        try:
            declaration = await self.declaration()
        except StoreUnavailable:
            return HTMLResponse("<!doctype html><title>503</title><p>Try again in a moment.", 503, headers=_HEADERS)
        texts = TEXTS[lang]
        other = "en" if lang == "fr" else "fr"
        page = self._templates.get_template("declaration.html").render(
            lang=lang,
            css=_CSS,
            t=texts,
            other=other,
            other_url=f"{self.config.gateway.prefix}/cookies?lang={other}",
            my_data_url=f"{self.config.gateway.prefix}/me?lang={lang}",
            updated=texts["updated"].format(date=datetime.now(UTC).strftime("%Y-%m-%d")),
            categories=[
                (self._category(category_id, lang), vendors)
                for category_id, vendors in declaration.categories.items()
                if vendors or category_id != UNCLASSIFIED
            ],
            site_vendor=SITE_VENDOR_ID,
            unclassified=UNCLASSIFIED,
            day=_day,
            lifetime=lambda text: translate_lifetime(text, lang),
        )
        return HTMLResponse(page, headers={**_HEADERS, "Content-Language": lang})

    def _category(self, category_id: str, lang: str) -> dict[str, Any]:
        for category in self.config.categories:
            if category.id == category_id:
                return {
                    "id": category.id,
                    "required": category.required,
                    "label": category.label.get(lang) or category.label.get("en") or category.id,
                    "description": category.description.get(lang) or category.description.get("en") or "",
                }
        return {"id": category_id, "required": False, "label": category_id, "description": ""}


def translate_lifetime(text: str, lang: str) -> str:
    """A catalog lifetime ("13 months") in the page's language."""
    units = LIFETIME_UNITS.get(lang)
    if not units:
        return text
    return _LIFETIME_WORD.sub(lambda m: units.get(m[0].lower(), m[0]), text)


def _day(timestamp_ms: int | None) -> str:
    if not timestamp_ms:
        return ""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d")
