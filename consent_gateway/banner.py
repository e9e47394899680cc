"""The visitor banner's loader: the JSON config block, the stylesheet and the script inserted into pages.

Everything that does not depend on the request (texts in every language, categories, vendors, theme,
URLs) is rendered once, when the gateway starts; ``head_html`` only adds the visitor's state, so it costs
a few microseconds per page. The JSON is escaped for HTML: no configured text can close the ``<script>``
block or become markup (the banner also writes every text with ``textContent``).

``version`` hashes what the visitor is shown — every text in every language, the categories, the vendors
with their cookies, the policy version and URL, the banner's settings in ``banner-data.js`` (consent mode,
positions, theme) and the digests of the served JS and CSS (its layout) — and is recorded in each consent
event. The same document, ``archive``, is kept in the consent log by that hash the first time the version is
served (see `BannerArchive`), so the privacy team can show exactly what a visitor saw (a CNIL mode of proof),
and anyone holding the archived JSON can recompute the hash: ``sha256(canonical JSON)[:32]``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .catalog_schema import VendorRule
from .config import BannerConfig, Config
from .decision import Decision
from .errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent
#: Installed wheels carry the assets inside the package; a source checkout has them at the repo root.
_ASSET_DIRS = (_PACKAGE_DIR / "_static" / "banner", _PACKAGE_DIR.parent / "static" / "banner")
_ASSETS = {
    "banner.js": ("banner.min.js", "text/javascript; charset=utf-8"),
    "banner.css": ("banner.min.css", "text/css; charset=utf-8"),
    # served only to visitors who refused something: removes the refused vendors' script-set cookies and
    # storage keys (small and readable, so not minified)
    "banner-clean.js": ("banner-clean.js", "text/javascript; charset=utf-8"),
    # served only after a choice, at most once a day: reports cookie and storage key names to the inventory
    "inventory-report.js": ("inventory-report.js", "text/javascript; charset=utf-8"),
    # pages shared by every visitor (`[gateway] html_cache = "shared"`): reads the visitor's state from the
    # readable state cookie before banner.js starts
    "banner-shared.js": ("banner-shared.js", "text/javascript; charset=utf-8"),
}
#: Set by a withdrawal for the page it reloads, whose visitor has no choice left: that page gets the cleaner too.
CLEAN_COOKIE = "cg_clean"
#: The shape of an archived banner version (``Banner.archive``).
ARCHIVE_FORMAT = "consent-gateway.banner/1"
#: How long gtag waits for the banner's ``consent update`` before firing tags with the defaults.
CONSENT_MODE_WAIT_MS = 500
#: Distinct decisions (and nonces) whose rendered fragments are kept; a handful exist in practice.
_STATE_CACHE_SIZE = 256
_SAFE_URL = re.compile(r"^(https?://|/(?!/)|\./|\?|#)", re.IGNORECASE)
_NONCE = re.compile(r"^[A-Za-z0-9+/=_-]{1,256}$")
_JSON_FOR_HTML = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)

BUILTIN_TEXTS: Mapping[str, Mapping[str, str]] = {
    "fr": {
        "title": "Vos choix en matière de cookies",
        "text": (
            "Avec votre accord, nous et nos partenaires utilisons des cookies pour mesurer l'audience, "
            "enregistrer des sessions de navigation, afficher des publicités et contenus de tiers (vidéos) et "
            "retenir vos préférences. Vous pouvez changer d'avis à tout moment avec «\u00a0Gérer les cookies\u00a0»."
        ),
        "privacy_link": "Politique de confidentialité",
        "accept_all": "Tout accepter",
        "reject_all": "Tout refuser",
        "customize": "Personnaliser",
        "prefs_title": "Paramètres des cookies",
        "prefs_text": (
            "Choisissez ce que vous autorisez, catégorie par catégorie ou partenaire par partenaire. "
            "Rien n'est activé sans votre accord."
        ),
        "always_on": "Toujours actifs",
        "vendors": "Partenaires ({n})",
        "cookies": "Cookies\u00a0:",
        "vendor_policy": "Politique de confidentialité de {vendor}",
        "save": "Enregistrer mes choix",
        "close": "Fermer",
        "reopen": "Gérer les cookies",
        "consent_id": "Votre identifiant de consentement\u00a0:",
        "receipt": "Voir et gérer mes données de consentement",
        "withdraw": "Retirer mon consentement",
        "placeholder": "Ce contenu est fourni par {vendor}, qui dépose des cookies {category}.",
        "allow_vendor": "Autoriser {vendor}",
        "error": "Votre choix n'a pas pu être enregistré. Merci de réessayer dans un instant.",
        "gpc": (
            "Votre navigateur envoie le signal Global Privacy Control\u00a0: nous le respectons, les cookies "
            "marketing restent désactivés."
        ),
    },
    "en": {
        "title": "Your cookie choices",
        "text": (
            "With your consent, we and our partners use cookies to measure the audience, record browsing "
            "sessions, show ads and third-party content (videos) and remember your preferences. You can change "
            "your mind at any time with “Cookie settings”."
        ),
        "privacy_link": "Privacy policy",
        "accept_all": "Accept all",
        "reject_all": "Reject all",
        "customize": "Customize",
        "prefs_title": "Cookie settings",
        "prefs_text": "Choose what you allow, by category or by vendor. Nothing is turned on without your consent.",
        "always_on": "Always on",
        "vendors": "Vendors ({n})",
        "cookies": "Cookies:",
        "vendor_policy": "{vendor} privacy policy",
        "save": "Save my choices",
        "close": "Close",
        "reopen": "Cookie settings",
        "consent_id": "Your consent ID:",
        "receipt": "View and manage my consent data",
        "withdraw": "Withdraw my consent",
        "placeholder": "This content is provided by {vendor}, which sets {category} cookies.",
        "allow_vendor": "Allow {vendor}",
        "error": "Your choice could not be saved. Please try again in a moment.",
        "gpc": "Your browser sends the Global Privacy Control signal: we honour it, marketing cookies stay off.",
    },
}
TEXT_KEYS = frozenset(BUILTIN_TEXTS["en"])
#: How a placeholder names a category's cookies ("qui dépose des cookies de mesure d'audience").
COOKIE_KINDS: Mapping[str, Mapping[str, str]] = {
    "fr": {
        "necessary": "nécessaires",
        "analytics": "de mesure d'audience",
        "session-replay": "d'enregistrement de session",
        "marketing": "marketing",
        "preferences": "de préférences",
        "unclassified": "non décrits",
    },
    "en": {
        "necessary": "necessary",
        "analytics": "analytics",
        "session-replay": "session recording",
        "marketing": "marketing",
        "preferences": "preference",
        "unclassified": "undescribed",
    },
}
#: The catalog states cookie lifetimes in English ("13 months"); these words are translated for display.
LIFETIME_UNITS: Mapping[str, Mapping[str, str]] = {
    "fr": {
        "year": "an",
        "years": "ans",
        "month": "mois",
        "months": "mois",
        "week": "semaine",
        "weeks": "semaines",
        "day": "jour",
        "days": "jours",
        "hour": "heure",
        "hours": "heures",
        "minute": "minute",
        "minutes": "minutes",
        "second": "seconde",
        "seconds": "secondes",
        "session": "session",
    },
}
_LIFETIME_WORD = re.compile(r"[A-Za-z]+")
#: The CSS custom properties ``[banner] theme`` may set (``accent`` → ``--cg-accent``), see banner.css.
THEME_KEYS = frozenset({"bg", "fg", "muted", "accent", "accent-fg", "off", "line", "shadow", "radius", "font"})


def state_cookie_name(config: Config) -> str:
    """The readable copy of the visitor's state kept for shared pages, named after the consent cookie."""
    return f"{config.cookie.name}_state"


def visitor_state(decision: Decision, categories: Sequence[str]) -> dict[str, Any]:
    """What the banner reads of a decision: whether the visitor chose, each choosable category on or off,
    and the vendors granted or refused by name."""
    vendors = {vendor: True for vendor in sorted(decision.vendors_granted)}
    vendors.update({vendor: False for vendor in sorted(decision.vendors_refused)})
    choices = {category: category in decision.granted for category in categories}
    return {"explicit": decision.explicit, "choices": choices, "vendors": vendors}


def json_for_html(value: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``</script``, ``<!--`` or ``&``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_JSON_FOR_HTML)


def _safe_url(url: str) -> str:
    """Only http(s) and same-site URLs become links; anything else (``javascript:``…) is dropped."""
    return url if url and _SAFE_URL.match(url.strip()) else ""


class Banner:
    """Renders the banner's head fragment and serves its assets, for one configuration."""

    def __init__(self, config: Config, catalog: Catalog, *, used_vendors: frozenset[str] | None = None) -> None:
        """:param used_vendors: the vendors the site really uses (the inventory's, the owner's): the second
        layer lists only those, unless ``[banner] vendors`` names them; None or empty lists the catalog."""
        self._config = config
        self._used_vendors = used_vendors
        self.languages = self._languages(config)
        self.default_language = config.banner.default_language
        if self.default_language not in self.languages:
            raise ConfigError("banner.default_language", f"no texts for language {self.default_language!r}")
        self._assets = {name: (_read_asset(file), media) for name, (file, media) in _ASSETS.items()}
        self._lifetimes = {c.lifetime for v in catalog.vendors.values() for c in v.cookies if c.lifetime}
        _check_theme_and_vendors(config.banner, catalog)
        shown = self._shown(config, catalog)
        #: Everything the visitor is shown, as archived (texts, categories, vendors, policy, settings, layout).
        self.archive: dict[str, Any] = self._archive(shown)
        #: ``archive`` as the canonical JSON the log keeps under ``version``.
        self.archive_json: str = canonical_json(self.archive)
        #: ``archive`` as a 128-bit hex digest (recorded with each consent event): see `archive_version`.
        self.version: str = _digest(self.archive_json)
        self._categories = tuple(c.id for c in config.categories if not c.required)

        # What is the same for every visitor (texts, vendors, theme…) is a versioned script cached for a year,
        # so each page carries only the visitor's state: ~0.3 KB instead of ~9 KB of JSON per page.
        self._assets["banner-data.js"] = (
            b"window.cgBannerData=" + json_for_html(self._static(shown)).encode() + b";\n",
            "text/javascript; charset=utf-8",
        )
        # The fixed parts of every head fragment, escaped and encoded once.
        self._open = b'<script type="application/json" id="cg-config">{'
        self._tail_by_nonce: dict[str | None, bytes] = {None: self._tail(None)}
        self._lang_ranges = {lang.lower(): lang for lang in self.languages}
        self._lang_set = frozenset(self.languages)
        self._visitor_first = config.banner.language == "visitor"
        self._state_cache: dict[tuple[Any, ...], bytes] = {}
        #: shared pages (`[gateway] html_cache = "shared"`) carry no state: the name of the cookie that does
        self.shared_state_cookie = state_cookie_name(config) if config.gateway.html_cache == "shared" else ""
        self._shared_by_nonce: dict[str | None, bytes] = {}

    def _shown(self, config: Config, catalog: Catalog) -> dict[str, Any]:
        """What every visitor is shown: texts, categories, the vendors of configured categories, theme."""
        banner_config = config.banner
        category_ids = {category.id for category in config.categories}
        listed = set(banner_config.vendors) or set(self._used_vendors or ())
        vendors = [
            vendor
            for vendor in catalog.vendors.values()
            if vendor.category in category_ids and (not listed or vendor.id in listed)
        ]
        return {
            "i18n": {lang: self._texts_for(lang) for lang in self.languages},
            "categories": [{"id": c.id, "required": c.required} for c in config.categories],
            "vendors": [_shown_vendor(v) for v in vendors],
            "privacy_policy_url": _safe_url(config.policy.privacy_policy_url),
            "position": banner_config.position,
            "reopen_position": banner_config.reopen_position,
            "theme": {key: str(value) for key, value in banner_config.theme.items()},
        }

    def _settings(self) -> dict[str, Any]:
        """What banner-data.js adds to what is shown: the policy version, where the API is, consent mode."""
        config = self._config
        prefix = config.gateway.prefix.rstrip("/")
        return {
            "policy_version": config.policy.version,
            "api": prefix,
            # the link beside the consent id in the preferences: the visitor's own page (`/_consent/me`)
            "receipt_url": f"{prefix}/me",
            "consent_mode": {
                "mode": config.banner.consent_mode,
                "wait_for_update": CONSENT_MODE_WAIT_MS,
                "signals": {cat: list(sigs) for cat, sigs in config.banner.consent_mode_signals.items()},
            },
        }

    def _static(self, shown: dict[str, Any]) -> dict[str, Any]:
        """The contents of banner-data.js: what is shown, its settings, and the versioned CSS."""
        prefix = self._config.gateway.prefix.rstrip("/")
        return {**shown, **self._settings(), "css": f"{prefix}/banner.css?v={self.version}"}

    def _archive(self, shown: dict[str, Any]) -> dict[str, Any]:
        """The document archived and hashed: banner-data.js but its own URL, the policy, and the files' digests.

        Nothing the visitor saw is left out: ``banner-data.js`` differs from ``shown`` + ``settings`` only by
        the CSS URL, which carries the version itself.
        """
        config = self._config
        return {
            "format": ARCHIVE_FORMAT,
            "policy": {"version": config.policy.version, "url": config.policy.privacy_policy_url},
            "texts": shown["i18n"],
            "categories": [
                {
                    "id": c.id,
                    "required": c.required,
                    "label": dict(c.label),
                    "description": dict(c.description),
                }
                for c in config.categories
            ],
            "vendors": shown["vendors"],
            "banner_data": {**shown, **self._settings()},
            "layout": {
                "position": shown["position"],
                "reopen_position": shown["reopen_position"],
                "theme": shown["theme"],
                # the code and styles that laid it out, by digest (the files themselves ship with the release)
                "files": {name: hashlib.sha256(body).hexdigest() for name, (body, _) in sorted(self._assets.items())},
            },
        }

    # -- public ------------------------------------------------------------------------------------------

    def language_for(self, accept_language: str | None) -> str | None:
        """The best built-in or configured language for an ``Accept-Language`` header; None when the visitor
        asks for none of them."""
        best: str | None = None
        best_q = 0.0
        for part in (accept_language or "").split(",")[:20]:
            tag, _, params = part.strip().partition(";")
            tag = tag.strip().lower()
            q = 1.0
            for param in params.split(";"):
                name, _, value = param.strip().partition("=")
                if name == "q":
                    try:
                        q = float(value)
                    except ValueError:
                        q = 0.0
            lang = self._lang_ranges.get(tag) or self._lang_ranges.get(tag.split("-")[0])
            # Strictly greater: earlier entries win ties, the header lists preferences in order.
            if lang and q > best_q:
                best, best_q = lang, q
        return best

    def head_html(
        self, *, decision: Decision, language: str | None, nonce: str | None, clean: bool = False,
        report_names: bool = False,
    ) -> bytes:
        """The fragment inserted at the top of ``<head>``: JSON config, stylesheet, then the script.

        ``language`` is the visitor's (from `language_for`), None when the site does not offer it: the banner
        then speaks the page's ``<html lang>``, else the default language. ``report_names``: add the
        inventory's name reporter (after a choice, once a day: see inventory/report.py).
        """
        if self.shared_state_cookie:
            head = self._shared_head(nonce)
        else:
            head = self._head_html(decision, language, nonce, clean)
        if report_names:
            return head + self._script_tag("inventory-report.js", nonce, defer=True)
        return head

    def _head_html(self, decision: Decision, language: str | None, nonce: str | None, clean: bool) -> bytes:
        visitor_first = self._visitor_first and language in self._lang_set
        lang = language if language in self._lang_set else self.default_language
        key = (decision.key, decision.explicit, decision.gpc, lang, visitor_first)
        middle = self._state_cache.get(key)
        if middle is None:
            middle = self._render_state(decision, lang, visitor_first)
            if len(self._state_cache) >= _STATE_CACHE_SIZE:
                self._state_cache.clear()
            self._state_cache[key] = middle
        tail = self._tail_by_nonce.get(nonce)
        if tail is None:
            tail = self._tail(nonce)
            if len(self._tail_by_nonce) >= _STATE_CACHE_SIZE:  # nonces are per response: keep a few
                self._tail_by_nonce = {None: self._tail_by_nonce[None]}
            self._tail_by_nonce[nonce] = tail
        consent_id = b"null" if decision.consent_id is None else json_for_html(decision.consent_id).encode()
        if clean or (decision.explicit and self._refuses_something(decision)):
            # Only a visitor who refused something downloads the cleaner: it runs on the page after a
            # refusal (narrowing and withdrawal reload the page) and on every page after.
            return b"".join((self._open, middle, consent_id, tail, self._clean_tag(nonce)))
        return b"".join((self._open, middle, consent_id, tail))

    def _shared_head(self, nonce: str | None) -> bytes:
        """The same fragment for every visitor: no state in it (banner-shared.js reads the state cookie), and
        the cleaner for all, since the page cannot tell who refused something."""
        found = self._shared_by_nonce.get(nonce)
        if found is None:
            static = {"lang": self.default_language, "lv": self._visitor_first, "shared": self.shared_state_cookie}
            middle = json_for_html(static)[1:-1] + ',"consent_id":null'
            reader = self._script_tag("banner-shared.js", nonce)
            found = b"".join((self._open, middle.encode(), self._tail(nonce, reader), self._clean_tag(nonce)))
            if len(self._shared_by_nonce) >= _STATE_CACHE_SIZE:  # nonces are per response: keep a few
                self._shared_by_nonce.clear()
            self._shared_by_nonce[nonce] = found
        return found

    def _refuses_something(self, decision: Decision) -> bool:
        return bool(decision.vendors_refused) or any(c not in decision.granted for c in self._categories)

    def _clean_tag(self, nonce: str | None) -> bytes:
        return self._script_tag("banner-clean.js", nonce)

    def _script_tag(self, name: str, nonce: str | None, *, defer: bool = False) -> bytes:
        prefix = self._config.gateway.prefix.rstrip("/")
        if nonce is not None and not _NONCE.match(nonce):
            nonce = None  # never let a malformed nonce into the markup
        attr = f' nonce="{html.escape(nonce)}"' if nonce else ""
        if defer:
            attr += " defer"
        return f'<script src="{prefix}/{name}?v={self.version}"{attr}></script>'.encode()

    def asset(self, name: str) -> tuple[bytes, str] | None:
        """The served body and media type of ``banner.js``, ``banner-data.js`` or ``banner.css``; else None."""
        return self._assets.get(name)

    # -- construction ------------------------------------------------------------------------------------

    def _render_state(self, decision: Decision, lang: str, visitor_first: bool) -> bytes:
        state = {
            "lang": lang,
            "lv": visitor_first,  # the visitor's language: the page's <html lang> does not override it
            "state": visitor_state(decision, self._categories),
            "gpc": decision.gpc,
        }
        if self._config.csp.mode == "enforce":
            # per page, not in the year-cached banner-data.js: the enforced CSP backstop blocks what a grant
            # would revive in place, so the banner reloads the page instead
            state["reload"] = True
        return (json_for_html(state)[1:-1] + ',"consent_id":').encode()

    def _tail(self, nonce: str | None, before_banner: bytes = b"") -> bytes:
        prefix = self._config.gateway.prefix.rstrip("/")
        if nonce is not None and not _NONCE.match(nonce):
            nonce = None  # never let a malformed nonce into the markup
        attr = f' nonce="{html.escape(nonce)}"' if nonce else ""
        preload = f'}}</script><link rel="preload" as="style" href="{prefix}/banner.css?v={self.version}"{attr}>'
        return b"".join(
            (
                preload.encode(),
                self._script_tag("banner-data.js", nonce),
                before_banner,
                self._script_tag("banner.js", nonce),
            )
        )

    @staticmethod
    def _languages(config: Config) -> tuple[str, ...]:
        seen = dict.fromkeys([*config.banner.languages, *config.banner.texts])
        return tuple(seen)

    def _texts_for(self, lang: str) -> dict[str, Any]:
        config = self._config
        overrides = config.banner.texts.get(lang, {})
        for key in overrides:
            if key not in TEXT_KEYS:
                raise ConfigError(f"banner.texts.{lang}.{key}", f"unknown text key; known: {sorted(TEXT_KEYS)}")
        # The language's own texts first, then the default language's, then English.
        chain = [
            overrides,
            BUILTIN_TEXTS.get(lang, {}),
            config.banner.texts.get(self.default_language, {}),
            BUILTIN_TEXTS.get(self.default_language, {}),
            BUILTIN_TEXTS["en"],
        ]
        texts: dict[str, Any] = {key: next(t[key] for t in chain if t.get(key)) for key in sorted(TEXT_KEYS)}
        kinds = COOKIE_KINDS.get(lang, {})
        texts["cats"] = {
            c.id: [
                label := _pick(c.label, lang, self.default_language) or c.id,
                _pick(c.description, lang, self.default_language),
                # "des cookies de mesure d'audience": how the placeholder names the category's cookies
                kinds.get(c.id) or label.lower(),
            ]
            for c in config.categories
        }
        units = LIFETIME_UNITS.get(lang)
        if units:
            texts["lifetimes"] = {
                lifetime: _LIFETIME_WORD.sub(lambda m: units.get(m[0].lower(), m[0]), lifetime)
                for lifetime in sorted(self._lifetimes)
            }
        return texts


def _read_asset(file: str) -> bytes:
    for folder in _ASSET_DIRS:
        path = folder / file
        if path.is_file():
            return path.read_bytes()
    raise FileNotFoundError(f"banner asset {file} not found in {', '.join(map(str, _ASSET_DIRS))}")


def _pick(texts: Mapping[str, str], lang: str, default: str) -> str:
    return texts.get(lang) or texts.get(default) or next(iter(texts.values()), "")


def _check_theme_and_vendors(banner_config: BannerConfig, catalog: Catalog) -> None:
    """Refuse a theme property or a listed vendor the banner does not know, naming the faulty key."""
    for key in banner_config.theme:
        if key not in THEME_KEYS:
            raise ConfigError(f"banner.theme.{key}", f"unknown theme property; known: {sorted(THEME_KEYS)}")
    unknown = sorted(set(banner_config.vendors) - set(catalog.vendors))
    if unknown:
        raise ConfigError("banner.vendors", f"unknown vendor {unknown[0]!r}: not in the catalog nor [[vendors]]")


def _shown_vendor(v: VendorRule) -> dict[str, Any]:
    """One vendor as the banner lists it, with what banner-clean.js removes once it is refused."""
    return {
        "id": v.id,
        "name": v.name or v.id,
        "category": v.category,
        "policy_url": _safe_url(v.policy_url),
        "cookies": [[c.pattern, c.lifetime] for c in v.cookies],
        # cookies its script sets on the site (not those on the vendor's own domain) and its
        # localStorage/sessionStorage keys
        "store": sorted({c.pattern for c in v.cookies if not c.domain} | {s.pattern for s in v.storage}),
    }


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def archive_version(archive: Mapping[str, Any]) -> str:
    """The version of an archived banner: its canonical JSON hashed, so an archive proves its own version."""
    return _digest(canonical_json(archive))


def _digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
