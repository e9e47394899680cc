"""The vendor catalog: which tags and cookies belong to which vendor and category.

Data, not code: the built-in entries live in ``catalog_data.toml``; the site's ``[[vendors]]`` tables add
entries or override fields of built-in ones (same ``id``).

Host patterns match *label-aligned anywhere* in a URL's host, so ``googletagmanager.com`` matches
``www.googletagmanager.com`` and ``www.googletagmanager.com.localhost`` (the demo's loopback names) but never
``notgoogletagmanager.com``: over-matching fails closed. A pattern may carry a path prefix
(``facebook.com/tr``) and a query parameter prefix (``googletagmanager.com/gtag/js?id=AW-``); the longest
matching pattern wins, so the more specific vendor takes the URL.
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

from .errors import ConfigError

#: tag kinds a URL can be looked up for, and the VendorRule field holding their host patterns
URL_KINDS: dict[str, str] = {
    "script": "script_hosts",
    "iframe": "iframe_hosts",
    "img": "img_hosts",
    "link": "link_hosts",
}
_URL_CACHE_MAX_ENTRIES = 4096
_SCHEME_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})


@dataclass(frozen=True, slots=True)
class CookieRule:
    #: exact cookie name, or a prefix when it ends with ``*`` (``_ga_*``)
    pattern: str
    #: lifetime shown to visitors, e.g. "13 months", "session"
    lifetime: str = ""
    purpose: str = ""

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
    #: host patterns, matched label-aligned anywhere in the URL's host (see docs/architecture.md)
    script_hosts: tuple[str, ...] = ()
    iframe_hosts: tuple[str, ...] = ()
    img_hosts: tuple[str, ...] = ()
    link_hosts: tuple[str, ...] = ()
    #: URL path patterns for self-hosted tools on any host (Matomo: "/matomo.js", "/piwik.php")
    paths: tuple[str, ...] = ()
    #: substrings that identify the vendor's inline scripts ("fbq('init'", "gtag(")
    inline_signatures: tuple[str, ...] = ()
    cookies: tuple[CookieRule, ...] = ()
    #: vendor endpoints that /_consent/collect/{vendor}/… forwards to, only with consent
    beacon_endpoints: tuple[str, ...] = ()


_STRING_FIELDS = ("id", "category", "name", "policy_url")
_TUPLE_FIELDS = (
    "script_hosts",
    "iframe_hosts",
    "img_hosts",
    "link_hosts",
    "paths",
    "inline_signatures",
    "beacon_endpoints",
)


def split_url(raw: str) -> tuple[str, str, str]:
    """(host, path, query) of a URL as a browser would load it from an attribute value.

    The value is entity-decoded, stripped, and cleaned of tab/newline like the URL parser does; backslashes
    count as slashes. A relative URL has an empty host (it loads from the page's own host).
    """
    if "&" in raw:
        raw = html.unescape(raw)
    url = raw.strip(" \t\n\r\f")
    if "\t" in url or "\n" in url or "\r" in url:
        url = url.replace("\t", "").replace("\n", "").replace("\r", "")
    if "\\" in url:
        url = url.replace("\\", "/")
    if url.startswith("//"):
        rest = url[2:]
    else:
        match = _SCHEME_RE.match(url)
        if match is None:
            return "", _path_only(url), _query_only(url)
        if match.group(1).lower() not in _SPECIAL_SCHEMES:
            return "", "", ""
        rest = url[match.end() :].lstrip("/")
    cut = len(rest)
    for sep in "/?#":
        index = rest.find(sep)
        if index != -1 and index < cut:
            cut = index
    authority, tail = rest[:cut], rest[cut:]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        host = host.partition("]")[0] + "]"
    else:
        host = host.partition(":")[0]
    if "%" in host:
        from urllib.parse import unquote

        host = unquote(host)
    host = host.lower().rstrip(".")
    return host, _path_only(tail) or "/", _query_only(tail)


def _path_only(url: str) -> str:
    for sep in "?#":
        url = url.partition(sep)[0]
    return url


def _query_only(url: str) -> str:
    if "?" not in url:
        return ""
    return url.partition("?")[2].partition("#")[0]


@dataclass(frozen=True, slots=True)
class _HostPattern:
    vendor: VendorRule
    path: str
    query: str
    #: longer patterns are more specific and win
    weight: int

    def matches(self, path: str, query: str) -> bool:
        if self.path:
            if not path.startswith(self.path):
                return False
            if len(path) > len(self.path) and self.path[-1] != "/" and path[len(self.path)].isalnum():
                # a path prefix ends on a boundary: "/tr" takes "/tr", "/tr/" and "/tr.gif", not "/trending"
                return False
        if self.query:
            return any(part.startswith(self.query) for part in query.split("&"))
        return True


class Catalog:
    """The vendors known to the gateway, indexed for fast lookups by URL, inline script and cookie."""

    _builtin: ClassVar[Catalog | None] = None
    _tokens: ClassVar[itertools.count[int]] = itertools.count(1)

    def __init__(self, vendors: Iterable[VendorRule]) -> None:
        self.vendors: Mapping[str, VendorRule] = {v.id: v for v in vendors}
        #: identifies this catalog's content in caches that outlive one request (catalogs are immutable)
        self.token = next(self._tokens)
        self._hosts: dict[str, dict[str, list[_HostPattern]]] = {kind: {} for kind in URL_KINDS}
        self._paths: list[tuple[str, VendorRule]] = []
        self._cookie_exact: dict[str, VendorRule] = {}
        self._cookie_prefixes: list[tuple[str, VendorRule]] = []
        self._url_cache: dict[tuple[str, str], VendorRule | None] = {}
        signatures: dict[str, VendorRule] = {}
        for vendor in self.vendors.values():
            for kind, field in URL_KINDS.items():
                for pattern in getattr(vendor, field):
                    self._add_host_pattern(kind, pattern, vendor)
            for path in vendor.paths:
                self._paths.append((path.lower(), vendor))
            for cookie in vendor.cookies:
                if cookie.pattern.endswith("*"):
                    self._cookie_prefixes.append((cookie.pattern[:-1], vendor))
                else:
                    self._cookie_exact.setdefault(cookie.pattern, vendor)
            for signature in vendor.inline_signatures:
                signatures.setdefault(signature, vendor)
        self._cookie_prefixes.sort(key=lambda item: -len(item[0]))
        # Every host and path string of the catalog: a tag whose (lowercased) bytes contain none of them cannot
        # name a catalog URL, unless it escapes characters, which `tag_may_name_vendor` checks first.
        needles = {host for table in self._hosts.values() for host in table} | {p for p, _ in self._paths}
        self._path_needles = tuple({p.encode() for p, _ in self._paths})
        self._needles_re: re.Pattern[bytes] | None = (
            re.compile(_literal_trie([n.encode() for n in needles])) if needles else None
        )
        self._signature_vendors = signatures
        # longest first, so that of two overlapping signatures the more specific one is reported
        ordered = sorted(signatures, key=len, reverse=True)
        self._inline_re: re.Pattern[str] | None = (
            re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
        )
        # signatures are searched in every inline script body: a trie is several times faster in `re`. At one
        # position the longest signature is preferred (a trie's greedy optional tails do the same).
        self._inline_bytes_re: re.Pattern[bytes] | None = (
            re.compile(_literal_trie([s.encode() for s in ordered])) if ordered else None
        )

    def _add_host_pattern(self, kind: str, pattern: str, vendor: VendorRule) -> None:
        text, _, query = pattern.strip().partition("?")
        text = text.lower().removeprefix("//")
        host, slash, path = text.partition("/")
        host = host.strip(".")
        entry = _HostPattern(vendor, slash + path if slash else "", query, len(pattern))
        self._hosts[kind].setdefault(host, []).append(entry)

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def builtin(cls) -> Catalog:
        """The built-in catalog, loaded from ``catalog_data.toml`` once per process."""
        if cls._builtin is None:
            text = resources.files(__package__).joinpath("catalog_data.toml").read_text(encoding="utf-8")
            tables = tomllib.loads(text).get("vendors", [])
            vendors = [_vendor_from_table(table, f"vendors[{i}]", None, "catalog_data.toml") for i, table in
                       enumerate(tables)]
            cls._builtin = cls(vendors)
        return cls._builtin

    def merged(self, overrides: Sequence[Mapping[str, Any]], *, source: str | None = None) -> Catalog:
        """This catalog with the site's ``[[vendors]]`` tables applied.

        Same ``id``: the given fields replace the built-in entry's. New ``id``: a new entry (``category``
        required). ``source`` is the config file named in errors.
        """
        if not overrides:
            return self
        vendors = dict(self.vendors)
        try:
            for index, table in enumerate(overrides):
                key = f"vendors[{index}]"
                if not isinstance(table, Mapping):
                    raise ConfigError(key, "expected a table")
                vendor_id = table.get("id")
                if not isinstance(vendor_id, str) or not vendor_id:
                    raise ConfigError(f"{key}.id", "is required and must be a non-empty string")
                vendors[vendor_id] = _vendor_from_table(table, key, vendors.get(vendor_id), None)
        except ConfigError as exc:
            if source is None or exc.file is not None:
                raise
            raise ConfigError(exc.key, exc.message, file=source) from None
        return Catalog(vendors.values())

    # -- lookups --------------------------------------------------------------------------------------

    def vendor_for_url(self, url: str, kind: str) -> VendorRule | None:
        """The vendor whose ``kind`` tags load ``url`` (kind: "script", "iframe", "img" or "link")."""
        key = (url, kind)
        cache = self._url_cache
        if key in cache:
            return cache[key]
        if kind not in self._hosts:
            raise ValueError(f"unknown tag kind {kind!r}")
        host, path, query = split_url(url)
        found = self._match(kind, host, path.lower(), query)
        if len(cache) >= _URL_CACHE_MAX_ENTRIES:
            cache.clear()
        cache[key] = found
        return found

    def _match(self, kind: str, host: str, path: str, query: str) -> VendorRule | None:
        best: _HostPattern | None = None
        if host:
            table = self._hosts[kind]
            labels = host.split(".")
            count = len(labels)
            for start in range(count):
                for end in range(start + 1, count + 1):
                    candidates = table.get(".".join(labels[start:end]))
                    if candidates is None:
                        continue
                    for pattern in candidates:
                        if (best is None or pattern.weight > best.weight) and pattern.matches(path, query):
                            best = pattern
        if best is not None:
            return best.vendor
        if path and self._paths:
            for suffix, vendor in self._paths:
                if path.endswith(suffix):
                    return vendor
        return None

    def scan_strings(self) -> tuple[list[bytes], list[bytes]]:
        """(host and path strings, inline signatures) for a native scanner: the same strings the pure-Python
        pre-checks look for."""
        needles = sorted({host for table in self._hosts.values() for host in table} | {p for p, _ in self._paths})
        return [n.encode() for n in needles], [s.encode() for s in sorted(self._signature_vendors)]

    def tag_may_name_vendor(self, tag: bytes) -> bool:
        """False only when no URL in this tag's bytes can belong to a catalog vendor (a cheap pre-check)."""
        if self._needles_re is None:
            return False
        if b"&" in tag or b"%" in tag or b"\\" in tag:
            return True  # entity-, percent- or backslash-escaped: only a real parse can tell
        text = tag.lower().translate(None, b"\t\n\r")
        if b"//" not in text and b":" not in text:
            # only relative URLs (no host): only the path patterns can match
            return any(path in text for path in self._path_needles)
        return self._needles_re.search(text) is not None

    def vendor_for_inline(self, text: str) -> VendorRule | None:
        """The first vendor whose inline signature appears in the text of an inline script."""
        if self._inline_re is None:
            return None
        match = self._inline_re.search(text)
        return self._signature_vendors[match.group()] if match else None

    def vendors_for_inline_bytes(self, body: bytes) -> list[VendorRule]:
        """Every vendor with a signature in an inline script body, in order of first appearance."""
        if self._inline_bytes_re is None:
            return []
        found: list[VendorRule] = []
        for match in self._inline_bytes_re.finditer(body):
            vendor = self._signature_vendors[match.group().decode()]
            if vendor not in found:
                found.append(vendor)
        return found

    def vendor_for_signature(self, signature: bytes) -> VendorRule:
        """The vendor of one of the catalog's inline signatures (as found by a native scanner)."""
        return self._signature_vendors[signature.decode()]

    def vendor_for_cookie(self, name: str) -> VendorRule | None:
        """The vendor that sets a cookie of this name (exact names first, then the longest prefix)."""
        vendor = self._cookie_exact.get(name)
        if vendor is not None:
            return vendor
        for prefix, candidate in self._cookie_prefixes:
            if name.startswith(prefix):
                return candidate
        return None

    def categories_used(self) -> set[str]:
        return {vendor.category for vendor in self.vendors.values()}

    def __repr__(self) -> str:
        return f"<Catalog {len(self.vendors)} vendors>"


def _literal_trie(words: list[bytes]) -> bytes:
    """A regex matching any of the words, shaped as a trie: `re` tries one branch per position instead of
    every word (several times faster than a plain alternation)."""
    groups: dict[bytes, list[bytes]] = {}
    for word in words:
        groups.setdefault(word[:1], []).append(word[1:])
    branches = []
    for first, rests in sorted(groups.items()):
        longer = [r for r in rests if r]
        head = re.escape(first)
        if not longer:
            branches.append(head)
        elif len(longer) < len(rests):
            branches.append(head + b"(?:" + _literal_trie(longer) + b")?")
        else:
            branches.append(head + _literal_trie(longer))
    return branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"


def _vendor_from_table(
    table: Mapping[str, Any], key: str, base: VendorRule | None, file: str | None
) -> VendorRule:
    names = {f.name for f in dataclasses.fields(VendorRule)}
    values: dict[str, Any] = dataclasses.asdict(base) if base is not None else {}
    if base is not None:
        values["cookies"] = base.cookies
    for name, value in table.items():
        where = f"{key}.{name}"
        if name not in names:
            raise ConfigError(where, f"unknown key (expected one of: {', '.join(sorted(names))})", file=file)
        if name in _STRING_FIELDS:
            if not isinstance(value, str):
                raise ConfigError(where, f"expected a string, got {type(value).__name__}", file=file)
            values[name] = value
        elif name == "cookies":
            values[name] = _cookie_rules(value, where, file)
        else:
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ConfigError(where, "expected a list of strings", file=file)
            for position, item in enumerate(value):
                if not isinstance(item, str) or not item.strip():
                    raise ConfigError(f"{where}[{position}]", "expected a non-empty string", file=file)
            values[name] = tuple(value)
    if not values.get("category"):
        raise ConfigError(f"{key}.category", "is required for a vendor the catalog does not know", file=file)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", values["id"]):
        raise ConfigError(f"{key}.id", f"use letters, digits, '-', '_' or '.': {values['id']!r}", file=file)
    return VendorRule(**values)


def _cookie_rules(value: Any, where: str, file: str | None) -> tuple[CookieRule, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(where, "expected a list of cookie names or {pattern, lifetime, purpose} tables", file=file)
    rules: list[CookieRule] = []
    for position, item in enumerate(value):
        item_key = f"{where}[{position}]"
        if isinstance(item, CookieRule):
            rules.append(item)
        elif isinstance(item, str) and item:
            rules.append(CookieRule(item))
        elif isinstance(item, Mapping):
            unknown = set(item) - {"pattern", "name", "lifetime", "purpose"}
            if unknown:
                raise ConfigError(f"{item_key}.{sorted(unknown)[0]}", "unknown key (expected pattern, lifetime, "
                                  "purpose)", file=file)
            pattern = item.get("pattern", item.get("name"))
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"{item_key}.pattern", "is required and must be a string", file=file)
            for field in ("lifetime", "purpose"):
                if not isinstance(item.get(field, ""), str):
                    raise ConfigError(f"{item_key}.{field}", "expected a string", file=file)
            rules.append(CookieRule(pattern, item.get("lifetime", ""), item.get("purpose", "")))
        else:
            raise ConfigError(item_key, "expected a cookie name or a {pattern, lifetime, purpose} table", file=file)
    return tuple(rules)
