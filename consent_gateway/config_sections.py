"""What a config holds: one frozen dataclass per TOML section, its defaults the product's privacy-safe defaults.

`config/gateway.toml` documents the same values by example (a test keeps the two equal); `config` reads a file
into these, `config_checks` checks what one section says about another.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

LANGUAGES = ("fr", "en")


def _frozen_map(**items: Any) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(items))


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    prefix: str = "/_consent"
    #: peers whose X-Forwarded-For is believed (IPs or CIDRs); everything else is the visitor itself
    trusted_proxies: tuple[str, ...] = ()
    #: a trusted_proxies list that holds every address lets any visitor forge its IP and scheme, so it is
    #: refused unless this says it is meant (a gateway reachable only through its load balancer)
    trusted_proxies_allow_all: bool = False
    #: the embedded store, the generated signing key and the spool live here
    data_dir: str = "consent-data"
    #: names this process in the log's hash chains; empty → host name and process id
    instance_id: str = ""
    #: cookies the catalog does not know: "allow" (counted by name) or "block"
    unknown_cookies: Literal["allow", "block"] = "allow"
    #: categories refused without asking when a visitor sends Sec-GPC: 1 and has made no choice
    gpc_refuses: tuple[str, ...] = ("marketing",)
    max_body_bytes: int = 16_384
    #: consent POSTs per client address: a burst, then this many a minute (429 past it; 0 → no limit)
    consent_rate_per_minute: int = 30
    consent_rate_burst: int = 10
    rewrite_max_buffer_bytes: int = 65_536
    #: a compressed HTML page decoding past this is answered 502 (a decompression bomb), never passed on
    html_max_decoded_bytes: int = 16_777_216
    #: rewritten pages and banner files go out compressed (br or gzip) to visitors who accept it
    compress: bool = True
    #: "private": each visitor's page carries their state (Cache-Control: private, Vary: Cookie); "shared":
    #: the same HTML bytes for every visitor, state read in the browser, the site's Cache-Control kept
    html_cache: Literal["private", "shared"] = "private"
    #: hosts that are the site's own besides its registrable domain ("static.example-cdn.net", "*.example.org")
    first_party_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CookieConfig:
    name: str = "cg_consent"
    #: empty → host-only cookie
    domain: str = ""
    #: "auto" sets Secure when the request came over HTTPS
    secure: Literal["auto", "always", "never"] = "auto"
    same_site: Literal["lax", "strict"] = "lax"
    accept_max_age_days: int = 395  # ~13 months (CNIL)
    refuse_max_age_days: int = 182  # ~6 months (CNIL)
    #: a granted tracker's Set-Cookie living longer than this is shortened to it (CNIL: 13 months at most)
    tracker_max_age_days: int = 395
    clock_skew_seconds: int = 300


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    #: bump to ask every visitor again
    version: str = "1"
    privacy_policy_url: str = "/privacy"


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    required: bool = False
    label: Mapping[str, str] = field(default_factory=dict)
    description: Mapping[str, str] = field(default_factory=dict)


#: third parties nobody classified (see thirdparty.py): added to any category list that lacks it
UNCLASSIFIED_CATEGORY = Category(
    id="unclassified",
    label=_frozen_map(
        fr="Autres services non encore décrits par ce site", en="Other services not yet described by this site"
    ),
    description=_frozen_map(
        fr="Contenus et scripts de tiers que ce site n'a pas encore classés. Ils restent bloqués sans votre accord.",
        en="Third-party content and scripts this site has not classified yet. They stay blocked without your consent.",
    ),
)

DEFAULT_CATEGORIES = (
    Category(
        id="necessary",
        required=True,
        label=_frozen_map(fr="Strictement nécessaires", en="Strictly necessary"),
        description=_frozen_map(
            fr="Indispensables au fonctionnement du site et à la mémorisation de vos choix.",
            en="Needed for the site to work and to remember your choices.",
        ),
    ),
    Category(
        id="analytics",
        label=_frozen_map(fr="Mesure d'audience", en="Analytics"),
        description=_frozen_map(
            fr="Comptent les visites et les pages vues pour mesurer la fréquentation du site.",
            en="Count visits and page views to measure the site's audience.",
        ),
    ),
    # Recording a visit is not measuring an audience (CNIL): its own purpose, so allowing analytics never
    # lets a tool replay the visitor's clicks and keystrokes.
    Category(
        id="session-replay",
        label=_frozen_map(fr="Enregistrement de session", en="Session recording"),
        description=_frozen_map(
            fr="Enregistrent vos clics, mouvements de souris, défilements et saisies pour rejouer votre visite "
            "et étudier l'ergonomie du site.",
            en="Record your clicks, mouse movements, scrolling and keystrokes to replay your visit and study "
            "how usable the site is.",
        ),
    ),
    Category(
        id="marketing",
        label=_frozen_map(fr="Marketing", en="Marketing"),
        description=_frozen_map(
            fr="Permettent de vous montrer des publicités et des contenus de tiers (vidéos, réseaux sociaux).",
            en="Let third parties show you ads and embedded content (videos, social networks).",
        ),
    ),
    Category(
        id="preferences",
        label=_frozen_map(fr="Préférences", en="Preferences"),
        description=_frozen_map(
            fr="Retiennent vos réglages, comme la langue ou la région.",
            en="Remember your settings, such as language or region.",
        ),
    ),
    UNCLASSIFIED_CATEGORY,
)


@dataclass(frozen=True, slots=True)
class AllowedHost:
    #: "cdn.example.net" (and its subdomains), "*.example.net" (subdomains only) or "host/path/" (that path)
    host: str
    #: why this third party is functional: shown to the privacy team, required
    reason: str


@dataclass(frozen=True, slots=True)
class ThirdPartiesConfig:
    #: hosts neither the site's own nor classified, in opt-in regions: "hold" until "accept all", "report"
    #: (let through and count), "allow" (let through, not even counted)
    unknown: Literal["hold", "report", "allow"] = "hold"
    #: functional third parties of the site, each with its reason
    allow: tuple[AllowedHost, ...] = ()
    #: built-in allow-list entries that are off until the owner opts in ("google-fonts", "recaptcha"…)
    enable: tuple[str, ...] = ()
    #: built-in allow-list entries the owner does not want ("jsdelivr"…)
    disable: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CSPConfig:
    #: the backstop policy sent next to the site's own: "report" (Content-Security-Policy-Report-Only),
    #: "enforce" (Content-Security-Policy) or "off"
    mode: Literal["off", "report", "enforce"] = "report"
    #: violation reports posted to <prefix>/csp-report: the largest body taken, and per client address a
    #: burst, then this many a minute (429 past it; 0 → no limit)
    report_max_body_bytes: int = 65_536
    report_rate_per_minute: int = 120
    report_rate_burst: int = 60


@dataclass(frozen=True, slots=True)
class StoreConfig:
    #: "sqlite:///path/to/consent.db", "redis://host:6379/0" or "postgresql://user@host/db";
    #: empty → SQLite in the data folder
    url: str = ""
    #: empty → "<data_dir>/spool"
    spool_path: str = ""
    timeout_seconds: float = 2.0
    batch_max_events: int = 512
    batch_max_delay_ms: float = 2.0
    #: where the gateway writes its signed checkpoint of every chain head; empty → "<data_dir>/checkpoint.json"
    checkpoint_path: str = ""
    #: how often (0: never)
    checkpoint_interval_seconds: float = 300.0
    #: how long the store keeps this process's hold on its instance id (and the retention turn) after its
    #: last renewal: a process killed with kill -9 is replaced after at most this long
    lease_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class InventoryConfig:
    #: how often this instance merges what it saw (third parties, cookies, names, CSP violations) into the
    #: store's shared inventory (0: only at shutdown)
    flush_interval_seconds: float = 10.0
    #: the banner's name reports (<prefix>/inventory-report): the largest body taken, and per client address
    #: a burst, then this many a minute (429 past it; 0 → no limit)
    report_max_body_bytes: int = 16_384
    report_rate_per_minute: int = 30
    report_rate_burst: int = 10


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    ip_mode: Literal["full", "truncated", "hashed"] = "truncated"
    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    #: a MaxMind .mmdb file; empty → a GeoLite2 database shipped by an installed package, else no country
    geoip_database: str = ""
    #: keep the query string of the page path recorded with each event
    keep_query: bool = False
    #: treat Do Not Track (DNT: 1) like Global Privacy Control: it refuses `gateway.gpc_refuses`
    honour_dnt: bool = False
    #: publish consent rates per category and month at `/_consent/statistics` (HTML) and `.json`
    public_statistics: bool = False
    #: a month's rate for a category is published only when at least this many choices make it
    statistics_min_group_size: int = 20


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    events_days: int = 395
    ip_days: int = 90
    #: the gateway purges by itself this often, one instance at a time (0: only `logs purge`)
    run_interval_hours: float = 24.0
    #: refuse to purge when this machine's clock is more than this many days ahead of the newest event
    clock_guard_days: float = 30.0
    #: inventory entries (hosts, cookies, names, CSP violations) not seen for this long are removed
    inventory_days: int = 395


@dataclass(frozen=True, slots=True)
class RegionsConfig:
    #: "opt-in" asks before any tracker; "opt-out" allows until refused; "none" shows no banner
    default: Literal["opt-in", "opt-out", "none"] = "opt-in"
    #: visitors whose country is unknown (no GeoIP, private IP) — the safe default is opt-in
    unknown: Literal["opt-in", "opt-out", "none"] = "opt-in"
    #: ISO country code → mode
    countries: Mapping[str, Literal["opt-in", "opt-out", "none"]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BannerConfig:
    default_language: str = "fr"
    languages: tuple[str, ...] = LANGUAGES
    #: "visitor": the visitor's language (Accept-Language) when the site offers it, else the page's <html lang>;
    #: "page": the page's language first
    language: Literal["visitor", "page"] = "visitor"
    position: Literal["bottom", "center", "bottom-left", "bottom-right"] = "bottom"
    reopen_position: Literal["bottom-left", "bottom-right", "hidden"] = "bottom-left"
    #: Google Consent Mode v2: "basic" holds Google tags back until consent; "advanced" lets them load denied
    consent_mode: Literal["basic", "advanced"] = "basic"
    consent_mode_signals: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: _frozen_map(
            analytics=("analytics_storage",),
            marketing=("ad_storage", "ad_user_data", "ad_personalization"),
            preferences=("functionality_storage", "personalization_storage"),
        )
    )
    #: CSS custom properties without the --cg- prefix, e.g. accent = "#1d4ed8"
    theme: Mapping[str, str] = field(default_factory=dict)
    #: language → text key → text; adds languages and overrides built-in texts
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: vendor ids listed in the second layer (the vendors the site really uses); empty: those the inventory saw
    #: and those declared ([[vendors]], classifications), or the whole catalog until the inventory saw one
    vendors: tuple[str, ...] = ()


AdminRole = Literal["viewer", "analyst", "privacy-officer", "admin"]


@dataclass(frozen=True, slots=True)
class AdminUser:
    name: str
    #: argon2 ("$argon2id$…") or scrypt ("scrypt$…"); `consent-gateway admin hash-password` makes one
    password_hash: str
    #: "viewer" (charts only), "analyst" (search and export without IPs), "privacy-officer" (personal data,
    #: erasure), "admin" (all, users and tokens); see admin/roles.py
    role: AdminRole = "viewer"


@dataclass(frozen=True, slots=True)
class AdminConfig:
    enabled: bool = True
    users: tuple[AdminUser, ...] = ()
    #: environment variable holding comma-separated API tokens
    tokens_env: str = "CONSENT_GATEWAY_ADMIN_TOKENS"
    #: the role of every API token
    token_role: AdminRole = "analyst"  # noqa: S105  # a role name, not a secret
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    login_max_failures: int = 5
    lockout_minutes: int = 15
    #: empty → "<data_dir>/admin-audit.jsonl"
    audit_log: str = ""


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    max_connections: int = 100
    websocket: bool = True
    #: send the visitor's Host header upstream instead of the upstream's own
    preserve_host: bool = False
    #: request heads past these answer 431 (a second Host or Transfer-Encoding line answers 400)
    max_header_bytes: int = 32_768
    max_headers: int = 100
    #: a request body with no byte for this long, or not whole after the second, answers 408
    body_idle_timeout_seconds: float = 30.0
    request_timeout_seconds: float = 120.0


@dataclass(frozen=True, slots=True)
class AccountsConfig:
    #: proxy mode: the upstream's response header naming the logged-in user by a pseudonymous id; "" → off
    user_header: str = ""
    #: how long a user's latest choice is kept per process before the log is asked again
    cache_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ConsentDomain:
    """A sister domain of the same owner, where a choice made here is carried (see `sync`)."""

    #: where its gateway answers the sync hop: "https://www.example.org/_consent/sync"
    sync_url: str


@dataclass(frozen=True, slots=True)
class Config:
    gateway: GatewayConfig = GatewayConfig()
    cookie: CookieConfig = CookieConfig()
    policy: PolicyConfig = PolicyConfig()
    categories: tuple[Category, ...] = DEFAULT_CATEGORIES
    #: the site's [[vendors]] tables, checked against VendorRule's fields; merged by catalog.Catalog.merged
    vendors: tuple[Mapping[str, Any], ...] = ()
    third_parties: ThirdPartiesConfig = ThirdPartiesConfig()
    csp: CSPConfig = CSPConfig()
    store: StoreConfig = StoreConfig()
    inventory: InventoryConfig = InventoryConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    retention: RetentionConfig = RetentionConfig()
    regions: RegionsConfig = RegionsConfig()
    banner: BannerConfig = BannerConfig()
    admin: AdminConfig = AdminConfig()
    proxy: ProxyConfig = ProxyConfig()
    accounts: AccountsConfig = AccountsConfig()
    #: [[consent_domains]]: the owner's other registrable domains (this one may be listed too: it is skipped)
    consent_domains: tuple[ConsentDomain, ...] = ()
    #: the file this came from, if any
    source: str | None = None

    @property
    def data_path(self) -> Path:
        return Path(self.gateway.data_dir)

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data_path / 'consent.db'}"

    @property
    def spool_path(self) -> Path:
        return Path(self.store.spool_path) if self.store.spool_path else self.data_path / "spool"

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.store.checkpoint_path) if self.store.checkpoint_path else self.data_path / "checkpoint.json"

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)

    @property
    def required_categories(self) -> frozenset[str]:
        return frozenset(c.id for c in self.categories if c.required)
