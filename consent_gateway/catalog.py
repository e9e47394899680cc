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

import html
import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, ClassVar, Protocol

from .catalog_schema import CookieRule, VendorRule, vendor_from_table
from .cookie_database import CookieDatabase
from .errors import ConfigError

__all__ = ["URL_KINDS", "Catalog", "CookieRule", "VendorRule", "split_url"]

#: tag kinds a URL can be looked up for, and the VendorRule field holding their host patterns
URL_KINDS: dict[str, str] = {
    "script": "script_hosts",
    "iframe": "iframe_hosts",
    "img": "img_hosts",
    "link": "link_hosts",
}
_URL_CACHE_MAX_ENTRIES = 4096
BUILTIN_FILE = "catalog_data.toml"
_SCHEME_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})


@lru_cache(maxsize=_URL_CACHE_MAX_ENTRIES)
def split_url(raw: str) -> tuple[str, str, str]:
    """(host, path, query) of a URL as a browser would load it from an attribute value.

    The value is entity-decoded, stripped, and cleaned of tab/newline like the URL parser does; backslashes
    count as slashes. A relative URL has an empty host (it loads from the page's own host). Cached: one tag's
    URL is split by the catalog lookup of each tag kind, then again for its host (third-party classification).
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
    #: the path compiled when it has ``*`` segments ("/*/sdk.js": any one segment, such as a locale)
    path_re: re.Pattern[str] | None = None

    def matches(self, path: str, query: str) -> bool:
        if self.path_re is not None:
            if self.path_re.match(path) is None:
                return False
        elif self.path:
            if not path.startswith(self.path):
                return False
            if len(path) > len(self.path) and self.path[-1] != "/" and path[len(self.path)].isalnum():
                # a path prefix ends on a boundary: "/tr" takes "/tr", "/tr/" and "/tr.gif", not "/trending"
                return False
        if self.query:
            return any(part.startswith(self.query) for part in query.split("&"))
        return True


def _segment_pattern(path: str) -> re.Pattern[str] | None:
    """A path prefix with ``*`` standing for one whole segment, ending on a boundary like a plain prefix."""
    if "*" not in path:
        return None
    body = "[^/]+".join(re.escape(part) for part in path.split("*"))
    return re.compile(body if path.endswith("/") else body + r"(?![A-Za-z0-9])")


class ThirdPartyRules(Protocol):
    """How a catalog classifies URL hosts it does not know (implemented by `thirdparty.ThirdParties`)."""

    @property
    def mode(self) -> str:
        """"hold", "report" or "allow": what happens to hosts nobody classified in opt-in regions."""
        ...

    def classify(self, host: str, site: str, path: str = "") -> VendorRule | None:
        """None for the site's own and allowed hosts, else the pseudo-vendor "unclassified"."""
        ...

    def note_seen(self, host: str, held: bool) -> None:
        """Count one element of an unclassified host."""
        ...


class _NoThirdPartyRules:
    """A catalog without the site's rules classifies no host it does not know (lets it through)."""

    mode = "allow"

    def classify(self, host: str, site: str, path: str = "") -> VendorRule | None:
        return None

    def note_seen(self, host: str, held: bool) -> None:
        return None


NO_THIRD_PARTY_RULES: ThirdPartyRules = _NoThirdPartyRules()


class Catalog:
    """The vendors known to the gateway, indexed for fast lookups by URL, inline script and cookie."""

    _builtin: ClassVar[Catalog | None] = None
    _tokens: ClassVar[itertools.count[int]] = itertools.count(1)

    def __init__(
        self,
        vendors: Iterable[VendorRule],
        *,
        cookie_database: CookieDatabase | None = None,
        third_parties: ThirdPartyRules | None = None,
    ) -> None:
        self.vendors: Mapping[str, VendorRule] = {v.id: v for v in vendors}
        #: hosts the catalog does not know: first party, allowed, or held as "unclassified". The site's rules
        #: come from `thirdparty.site_catalog(config)` (what the gateway uses); a bare catalog has none.
        self.third_parties: ThirdPartyRules = third_parties if third_parties is not None else NO_THIRD_PARTY_RULES
        #: identifies this catalog's content in caches that outlive one request (catalogs are immutable)
        self.token = next(self._tokens)
        self._hosts: dict[str, dict[str, list[_HostPattern]]] = {kind: {} for kind in URL_KINDS}
        self._paths: list[tuple[str, VendorRule]] = []
        self._cookies = _CookieIndex()  # every rule: what a cookie name may belong to
        self._site_cookies = _CookieIndex()  # rules for cookies set on the site itself (no vendor domain)
        self._domain_cookies: dict[str, _CookieIndex] = {}  # vendor domain -> rules for cookies set there
        #: the Set-Cookie filter's fallback for names no vendor claims (None: catalog entries only)
        self.cookie_database = cookie_database
        self._url_cache: dict[tuple[str, str], VendorRule | None] = {}
        #: (kind, host) -> the host patterns of every label run of the host, in lookup order: most hosts of a
        #: page name none, and one host serves many URLs (each URL still checks its path and query)
        self._host_candidates: dict[tuple[str, str], tuple[_HostPattern, ...]] = {}
        signatures: dict[str, VendorRule] = {}
        for vendor in self.vendors.values():
            for kind, field in URL_KINDS.items():
                for pattern in getattr(vendor, field):
                    self._add_host_pattern(kind, pattern, vendor)
            for path in vendor.paths:
                self._paths.append((path.lower(), vendor))
            for cookie in vendor.cookies:
                self._cookies.add(cookie.pattern, vendor)
                if cookie.domain:
                    self._domain_cookies.setdefault(cookie.domain, _CookieIndex()).add(cookie.pattern, vendor)
                else:
                    self._site_cookies.add(cookie.pattern, vendor)
            for signature in vendor.inline_signatures:
                signatures.setdefault(signature, vendor)
        # Every host and path string of the catalog: a tag whose (lowercased) bytes contain none of them cannot
        # name a catalog URL, unless it escapes characters, which `tag_may_name_vendor` checks first.
        needles = {host for table in self._hosts.values() for host in table} | {p for p, _ in self._paths}
        self._path_needles = tuple({p.encode() for p, _ in self._paths})
        self._needles_re: re.Pattern[bytes] | None = (
            re.compile(_literal_trie(sorted(needles)).encode()) if needles else None
        )
        self._signature_vendors = signatures
        # Signatures are searched in every inline script body: a trie is several times faster in `re`. At one
        # position the longest signature is reported (the more specific of two overlapping ones).
        trie = _literal_trie(sorted(signatures)) if signatures else None
        self._inline_re: re.Pattern[str] | None = re.compile(trie) if trie else None
        self._inline_bytes_re: re.Pattern[bytes] | None = re.compile(trie.encode()) if trie else None

    def _add_host_pattern(self, kind: str, pattern: str, vendor: VendorRule) -> None:
        text, _, query = pattern.strip().partition("?")
        text = text.lower().removeprefix("//")
        host, slash, path = text.partition("/")
        host = host.strip(".")
        path = slash + path if slash else ""
        entry = _HostPattern(vendor, path, query, len(pattern), _segment_pattern(path))
        self._hosts[kind].setdefault(host, []).append(entry)

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def builtin(cls) -> Catalog:
        """The built-in catalog, loaded from ``catalog_data.toml`` once per process."""
        if cls._builtin is None:
            text = resources.files(__package__).joinpath(BUILTIN_FILE).read_text(encoding="utf-8")
            tables = tomllib.loads(text).get("vendors", [])
            vendors = [vendor_from_table(t, f"vendors[{i}]", None, BUILTIN_FILE) for i, t in enumerate(tables)]
            cls._builtin = cls(vendors, cookie_database=CookieDatabase.bundled())
        return cls._builtin

    def with_third_parties(self, third_parties: ThirdPartyRules) -> Catalog:
        """The same vendors with other third-party rules (a new token: rewritten pages differ)."""
        return Catalog(self.vendors.values(), cookie_database=self.cookie_database, third_parties=third_parties)

    def merged(self, overrides: Sequence[Mapping[str, Any]], *, source: str | None = None) -> Catalog:
        """This catalog with the site's ``[[vendors]]`` tables applied.

        Same ``id``: the given fields replace the built-in entry's. New ``id``: a new entry (``category``
        required). ``source`` is the config file named in errors.
        """
        if not overrides:
            return self
        vendors = dict(self.vendors)
        for index, table in enumerate(overrides):
            key = f"vendors[{index}]"
            if not isinstance(table, Mapping):
                raise ConfigError(key, "expected a table", file=source)
            vendor_id = table.get("id")
            if not isinstance(vendor_id, str) or not vendor_id:
                raise ConfigError(f"{key}.id", "is required and must be a non-empty string", file=source)
            vendors[vendor_id] = vendor_from_table(table, key, vendors.get(vendor_id), source)
        return Catalog(vendors.values(), cookie_database=self.cookie_database, third_parties=self.third_parties)

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
            for pattern in self._candidates(kind, host):
                if (best is None or pattern.weight > best.weight) and pattern.matches(path, query):
                    best = pattern
        if best is not None:
            return best.vendor
        if path and self._paths:
            for suffix, vendor in self._paths:
                if path.endswith(suffix):
                    return vendor
        return None

    def _candidates(self, kind: str, host: str) -> tuple[_HostPattern, ...]:
        key = (kind, host)
        cache = self._host_candidates
        found = cache.get(key)
        if found is not None:
            return found
        table = self._hosts[kind]
        labels = host.split(".")
        count = len(labels)
        gathered: list[_HostPattern] = []
        for start in range(count):
            for end in range(start + 1, count + 1):
                candidates = table.get(".".join(labels[start:end]))
                if candidates is not None:
                    gathered.extend(candidates)
        if len(cache) >= _URL_CACHE_MAX_ENTRIES:
            cache.clear()
        found = cache[key] = tuple(gathered)
        return found

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
        """The vendor that sets a cookie of this name, on the site or on its own domain (exact names first,
        then the longest prefix)."""
        return self._cookies.find(name)

    def vendor_for_set_cookie(self, name: str, domain: str = "") -> VendorRule | None:
        """The vendor of a cookie the site's response sets, ``domain`` being its Domain attribute (empty for a
        host-only cookie). A rule for a cookie on the vendor's own domain matches only that domain; then the
        cookie database, for names no vendor claims."""
        vendor = self._site_cookies.find(name)
        if vendor is not None:
            return vendor
        domain = domain.strip().lstrip(".").lower()
        if domain and self._domain_cookies:
            labels = domain.split(".")
            for start in range(len(labels) - 1):
                index = self._domain_cookies.get(".".join(labels[start:]))
                vendor = index.find(name) if index is not None else None
                if vendor is not None:
                    return vendor
        return self.cookie_database.lookup(name, domain) if self.cookie_database is not None else None

    def categories_used(self) -> set[str]:
        return {vendor.category for vendor in self.vendors.values()}

    def __repr__(self) -> str:
        return f"<Catalog {len(self.vendors)} vendors>"


class _CookieIndex:
    """Cookie patterns by name: exact names in a dict, prefixes grouped by length, so a lookup costs one dict
    probe per distinct prefix length however many vendors the catalog holds."""

    def __init__(self) -> None:
        self.exact: dict[str, VendorRule] = {}
        self.prefixes: dict[int, dict[str, VendorRule]] = {}
        self.lengths: list[int] = []

    def add(self, pattern: str, vendor: VendorRule) -> None:
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            self.prefixes.setdefault(len(prefix), {}).setdefault(prefix, vendor)
            self.lengths = sorted(self.prefixes, reverse=True)
        else:
            self.exact.setdefault(pattern, vendor)

    def find(self, name: str) -> VendorRule | None:
        vendor = self.exact.get(name)
        if vendor is not None:
            return vendor
        for length in self.lengths:
            vendor = self.prefixes[length].get(name[:length])
            if vendor is not None:
                return vendor
        return None


def _literal_trie(words: list[str]) -> str:
    """A regex matching any of the words, shaped as a trie: `re` tries one branch per position instead of
    every word (several times faster than a plain alternation, and it stays fast as the catalog grows). At one
    position the longest word wins: the greedy optional tails prefer it."""
    groups: dict[str, list[str]] = {}
    for word in words:
        groups.setdefault(word[:1], []).append(word[1:])
    branches = []
    for first, rests in sorted(groups.items()):
        longer = [r for r in rests if r]
        head = re.escape(first)
        if not longer:
            branches.append(head)
        elif len(longer) < len(rests):
            branches.append(head + "(?:" + _literal_trie(longer) + ")?")
        else:
            branches.append(head + _literal_trie(longer))
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
