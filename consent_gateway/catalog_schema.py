"""The shape of a vendor entry, and the one place that checks it.

Built-in data (``catalog_data.toml``), the site's ``[[vendors]]`` tables and imported lists all pass through
:func:`vendor_fields`, so a mistake reads the same wherever it is made: the file and the key
(``vendors[3].cookies[1].pattern``), then what was expected.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

#: what a vendor's tags do on the page. Finer than the consent category, so a later purpose (for example
#: ``session-replay`` split out of analytics) is a data change: pick the vendors by role.
ROLES = frozenset({
    "advertising",            # ad servers, exchanges, header bidding, retargeting
    "ad-verification",        # viewability and fraud measurement (Moat, IAS, DoubleVerify)
    "audience-data",          # data management platforms and identity graphs
    "audience-measurement",   # panels and census counts (comScore, Médiamétrie, INFOnline)
    "analytics",              # product and web analytics
    "session-replay",         # records what the visitor does on the page (Hotjar, Clarity, FullStory)
    "ab-testing",             # experiments and personalisation (Optimizely, AB Tasty)
    "tag-manager",            # loads other vendors' tags
    "content-recommendation", # "around the web" widgets (Taboola, Outbrain)
    "social",                 # share buttons, social plugins and conversion pixels of social networks
    "marketing-automation",   # CRM, e-mail and chat tools that identify visitors (HubSpot, Marketo, Intercom)
    "affiliate",              # affiliate link rewriting and commission tracking
    "embed",                  # third-party content embedded in the page (video, maps, comments)
})

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_DOMAIN_RE = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")
_URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*")


@dataclass(frozen=True, slots=True)
class CookieRule:
    #: exact cookie (or storage key) name, or a prefix when it ends with ``*`` (``_ga_*``)
    pattern: str
    #: lifetime shown to visitors, e.g. "13 months", "session"
    lifetime: str = ""
    purpose: str = ""
    #: the vendor's own domain when the cookie lives there ("adnxs.com"), empty when the vendor's script sets
    #: it on the site. A site's Set-Cookie is matched against a rule with a domain only for that domain, so a
    #: generic name on a vendor's domain ("uid") never drops the site's own cookie of that name.
    domain: str = ""

    def matches(self, name: str) -> bool:
        if self.pattern.endswith("*"):
            return name.startswith(self.pattern[:-1])
        return name == self.pattern


@dataclass(frozen=True, slots=True)
class VendorRule:
    id: str
    category: str
    name: str = ""
    policy_url: str = ""
    #: public documentation the entry's hosts, snippets and cookies were taken from
    source: str = ""
    #: what the tags do (one of ROLES); finer than the category
    role: str = ""
    #: what the vendor does for this site, in the owner's words (the cookie declaration shows it); for a
    #: vendor of a required category, why it is strictly necessary
    purpose: str = ""
    #: host patterns, matched label-aligned anywhere in the URL's host (see docs/architecture.md)
    script_hosts: tuple[str, ...] = ()
    iframe_hosts: tuple[str, ...] = ()
    img_hosts: tuple[str, ...] = ()
    link_hosts: tuple[str, ...] = ()
    #: URL path patterns for self-hosted tools on any host (Matomo: "/matomo.js", "/piwik.php")
    paths: tuple[str, ...] = ()
    #: substrings that identify the vendor's inline scripts: loader snippets and queue calls ("fbq('init'")
    inline_signatures: tuple[str, ...] = ()
    cookies: tuple[CookieRule, ...] = ()
    #: localStorage / sessionStorage keys the vendor's script writes (shown to visitors, never filtered)
    storage: tuple[CookieRule, ...] = ()
    #: vendor endpoints that /_consent/collect/{vendor}/… forwards to, only with consent
    beacon_endpoints: tuple[str, ...] = ()


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(VendorRule))
_STRING_FIELDS = ("id", "category", "name", "policy_url", "source", "role", "purpose")
_RULE_FIELDS = ("cookies", "storage")
_URL_FIELDS = ("policy_url", "source")


def vendor_fields(table: Mapping[str, Any], key: str, file: str | None = None) -> dict[str, Any]:
    """The fields one ``[[vendors]]`` table sets, checked and normalised (lists to tuples, cookie tables to
    `CookieRule`). Only the keys present are returned: a site's table may override part of a built-in entry.

    :raises ConfigError: naming ``file`` and the key, e.g. ``vendors[2].script_hosts[0]``.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(key, "expected a table", file=file)
    values: dict[str, Any] = {}
    for name, value in table.items():
        where = f"{key}.{name}"
        if name not in FIELD_NAMES:
            raise ConfigError(where, f"unknown key (expected one of: {', '.join(sorted(FIELD_NAMES))})", file=file)
        if name in _STRING_FIELDS:
            if not isinstance(value, str):
                raise ConfigError(where, f"expected a string, got {type(value).__name__}", file=file)
            values[name] = _checked_string(name, value, where, file)
        elif name in _RULE_FIELDS:
            values[name] = _cookie_rules(value, where, file)
        else:
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ConfigError(where, "expected a list of strings", file=file)
            for position, item in enumerate(value):
                if not isinstance(item, str) or not item.strip():
                    raise ConfigError(f"{where}[{position}]", "expected a non-empty string", file=file)
            values[name] = tuple(value)
    return values


def _checked_string(name: str, value: str, where: str, file: str | None) -> str:
    if name == "id" and not _ID_RE.fullmatch(value):
        raise ConfigError(where, f"use letters, digits, '-', '_' or '.': {value!r}", file=file)
    if name == "role" and value and value not in ROLES:
        raise ConfigError(where, f"unknown role {value!r} (expected one of: {', '.join(sorted(ROLES))})", file=file)
    if name in _URL_FIELDS and value and not _URL_RE.fullmatch(value):
        raise ConfigError(where, f"expected an http(s) URL, got {value!r}", file=file)
    return value


def vendor_from_table(
    table: Mapping[str, Any], key: str, base: VendorRule | None = None, file: str | None = None
) -> VendorRule:
    """A vendor from one table, laid over ``base`` (the entry with the same id) when there is one."""
    values: dict[str, Any] = dataclasses.asdict(base) if base is not None else {}
    if base is not None:
        values["cookies"], values["storage"] = base.cookies, base.storage
    values.update(vendor_fields(table, key, file))
    if not values.get("id"):
        raise ConfigError(f"{key}.id", "is required and must be a non-empty string", file=file)
    if not values.get("category"):
        raise ConfigError(f"{key}.category", "is required for a vendor the catalog does not know", file=file)
    return VendorRule(**values)


def _cookie_rules(value: Any, where: str, file: str | None) -> tuple[CookieRule, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(where, "expected a list of names or {pattern, lifetime, purpose, domain} tables", file=file)
    rules: list[CookieRule] = []
    for position, item in enumerate(value):
        item_key = f"{where}[{position}]"
        if isinstance(item, CookieRule):
            rules.append(item)
        elif isinstance(item, str) and item:
            rules.append(CookieRule(item))
        elif isinstance(item, Mapping):
            unknown = set(item) - {"pattern", "name", "lifetime", "purpose", "domain"}
            if unknown:
                raise ConfigError(f"{item_key}.{sorted(unknown)[0]}", "unknown key (expected pattern, lifetime, "
                                  "purpose, domain)", file=file)
            pattern = item.get("pattern", item.get("name"))
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"{item_key}.pattern", "is required and must be a string", file=file)
            for field in ("lifetime", "purpose", "domain"):
                if not isinstance(item.get(field, ""), str):
                    raise ConfigError(f"{item_key}.{field}", "expected a string", file=file)
            domain = item.get("domain", "").strip().lstrip(".").lower()
            if domain and not _DOMAIN_RE.fullmatch(domain):
                raise ConfigError(f"{item_key}.domain", f"expected a domain name such as adnxs.com, got {domain!r}",
                                  file=file)
            rules.append(CookieRule(pattern, item.get("lifetime", ""), item.get("purpose", ""), domain))
        else:
            raise ConfigError(item_key, "expected a name or a {pattern, lifetime, purpose, domain} table", file=file)
    return tuple(rules)
