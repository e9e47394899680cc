"""Third parties nobody classified: fail closed for hosts that are neither the site's own nor known.

The catalog knows some vendors; the real web has thousands more. A URL whose host the catalog does not
know is one of three things:

* **first party**: same registrable domain as the page (Public Suffix List, so ``a.example.co.uk`` and
  ``cdn.example.co.uk`` are one site but ``alice.github.io`` and ``bob.github.io`` are two), or a host the
  owner lists in ``[gateway] first_party_hosts``;
* **allowed**: a functional host on the built-in allow-list (``thirdparty_data.toml``: library CDNs,
  payment, captcha; fonts and maps only when the owner opts in) or in ``[third_parties] allow``;
* **unclassified**: everything else. It is the pseudo-vendor ``unclassified`` of the pseudo-category
  ``unclassified``, held back before consent like any vendor, restored by "accept all", and counted per
  host (`HostCounters`) so the owner can classify it.

``[third_parties] unknown`` says what happens to unclassified hosts in opt-in regions: "hold" (default),
"report" (let through, counted) or "allow" (not even classified). Opt-out and no-banner regions treat the
``unclassified`` category like every other one (see `visitor.VisitorReader`).
"""

from __future__ import annotations

import ipaddress
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from publicsuffixlist import PublicSuffixList

from . import metrics
from .catalog import Catalog
from .catalog_schema import VendorRule
from .config import Config
from .errors import ConfigError

UNCLASSIFIED = "unclassified"
MODES = ("hold", "report", "allow")
Mode = Literal["hold", "report", "allow"]
DATA_FILE = "thirdparty_data.toml"
#: distinct (host, site) pairs whose classification is remembered; pages repeat the same few hosts
_CACHE_MAX_ENTRIES = 4096
#: distinct unclassified hosts counted one by one; past it the rarest is replaced (Space-Saving)
COUNTER_CAPACITY = 512
#: hosts named on /_consent/metrics (the most frequent): a bounded number of series
METRICS_TOP = 50

_psl: PublicSuffixList | None = None


def _suffix_list() -> PublicSuffixList:
    """The Public Suffix List shipped by `publicsuffixlist`, ICANN and private sections (github.io…)."""
    global _psl
    if _psl is None:
        _psl = PublicSuffixList()
    return _psl


@lru_cache(maxsize=_CACHE_MAX_ENTRIES)
def normalise_host(host: str) -> str:
    """A host as a browser compares it: lowercase, no trailing dot, no brackets, IDN labels in punycode."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # not a valid IDN: compared as written, so it matches nothing it should not
    return host


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=_CACHE_MAX_ENTRIES)
def registrable_domain(host: str) -> str:
    """The registrable domain ("eTLD+1") of a host by the Public Suffix List; "" for an IP, an empty host,
    a public suffix itself (``co.uk``, ``github.io``) or a single label (``localhost``)."""
    host = normalise_host(host)
    if not host or is_ip(host):
        return ""
    return _suffix_list().privatesuffix(host) or ""


@lru_cache(maxsize=_CACHE_MAX_ENTRIES)
def site_of(host: str) -> str:
    """What "this site" is for a request's Host header: its registrable domain, else the bare host (an IP,
    ``localhost``), so that the page's own host is always first party."""
    host = host.strip()
    if host.startswith("["):
        host = host.partition("]")[0] + "]"
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    host = normalise_host(host)
    return registrable_domain(host) or host


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """Hosts known to be functional, and why (shown to the owner; the reason is the point)."""

    id: str
    hosts: tuple[str, ...]
    reason: str
    kind: str = "functional"
    #: built-in entries: on unless the owner disables them; off ones wait for `[third_parties] enable`
    default: bool = True


def builtin_allow_list() -> tuple[AllowEntry, ...]:
    """Every entry of the shipped ``thirdparty_data.toml``, on or off."""
    return _builtin_entries()


@lru_cache(maxsize=1)
def _builtin_entries() -> tuple[AllowEntry, ...]:
    text = resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    return tuple(_entry(table) for table in tomllib.loads(text)["hosts"])


def _entry(table: Mapping[str, Any]) -> AllowEntry:
    return AllowEntry(
        id=table["id"],
        hosts=tuple(table["hosts"]),
        reason=table["reason"],
        kind=table.get("kind", "functional"),
        default=table.get("default", True),
    )


class _HostSet:
    """Host patterns: ``host`` matches itself and its subdomains, ``*.host`` only its subdomains, and
    ``host/path`` only URLs under that path (``www.paypal.com/sdk/``)."""

    def __init__(self, patterns: Iterable[tuple[str, AllowEntry | None]]) -> None:
        self._with_self: dict[str, AllowEntry | None] = {}
        self._below_only: dict[str, AllowEntry | None] = {}
        self._paths: dict[str, list[tuple[str, AllowEntry | None]]] = {}
        for pattern, entry in patterns:
            raw_host, slash, path = pattern.strip().partition("/")
            below = raw_host.startswith("*.")
            host = normalise_host(raw_host.removeprefix("*."))
            if slash:
                self._paths.setdefault(host, []).append(("/" + path, entry))
            elif below:
                self._below_only.setdefault(host, entry)
            else:
                self._with_self.setdefault(host, entry)

    def match(self, host: str) -> tuple[bool, AllowEntry | None, tuple[str, ...]]:
        """(whole host matched, its entry, path prefixes allowed on this host when not whole)."""
        labels = host.split(".")
        for start in range(len(labels)):
            suffix = ".".join(labels[start:])
            if suffix in self._with_self:
                return True, self._with_self[suffix], ()
            if start > 0 and suffix in self._below_only:
                return True, self._below_only[suffix], ()
        paths = self._paths.get(host)
        return False, None, tuple(p for p, _ in paths) if paths else ()


@dataclass(slots=True)
class HostCount:
    host: str
    seen: int = 0
    held: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    #: upper bound of the counts this host may have missed while it was not tracked (Space-Saving)
    error: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "seen": self.seen,
            "held": self.held,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "error": self.error,
        }


class HostCounters:
    """How often each unclassified host was seen and held back, in bounded memory.

    At most `capacity` hosts are tracked; a new host past that replaces the least seen one and inherits its
    count as an error bound (the Space-Saving algorithm): the frequent hosts, those the owner should
    classify first, are always there with counts exact to within ``error``.
    """

    def __init__(self, capacity: int = COUNTER_CAPACITY) -> None:
        self.capacity = capacity
        self._hosts: dict[str, HostCount] = {}
        #: hosts replaced since the last reset (how much the bound cost)
        self.evicted = 0

    def note(self, host: str, held: bool, now: float | None = None) -> None:
        if now is None:
            now = time.time()
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._admit(host, now)
        entry.seen += 1
        if held:
            entry.held += 1
        entry.last_seen = now

    def _admit(self, host: str, now: float) -> HostCount:
        if len(self._hosts) < self.capacity:
            entry = self._hosts[host] = HostCount(host, first_seen=now)
            return entry
        rarest = min(self._hosts.values(), key=lambda item: item.seen)
        del self._hosts[rarest.host]
        self.evicted += 1
        entry = self._hosts[host] = HostCount(
            host, seen=rarest.seen, held=rarest.held, first_seen=now, error=rarest.seen
        )
        return entry

    def top(self, limit: int = METRICS_TOP) -> list[HostCount]:
        """The most seen hosts first (ties by name, so the output is stable)."""
        return sorted(self._hosts.values(), key=lambda item: (-item.seen, item.host))[:limit]

    def snapshot(self) -> list[dict[str, Any]]:
        """Every tracked host as plain data, most seen first: what an inventory store persists."""
        return [entry.as_dict() for entry in self.top(len(self._hosts))]

    def __len__(self) -> int:
        return len(self._hosts)

    def reset(self) -> None:
        self._hosts.clear()
        self.evicted = 0


#: process-wide, like `metrics`: every gateway of the process counts into it
UNCLASSIFIED_HOSTS = HostCounters()


def metrics_lines() -> list[str]:
    """Prometheus lines for /_consent/metrics: the `METRICS_TOP` most seen unclassified hosts."""
    lines = [
        "# HELP consent_gateway_unclassified_host_seen_total Elements of unclassified third-party hosts seen in "
        "pages, by host (the most seen hosts only).",
        "# TYPE consent_gateway_unclassified_host_seen_total counter",
    ]
    top = UNCLASSIFIED_HOSTS.top()
    lines += [f'consent_gateway_unclassified_host_seen_total{{host="{_label(e.host)}"}} {e.seen}' for e in top]
    lines += [
        "# HELP consent_gateway_unclassified_host_held_total Elements of unclassified third-party hosts held "
        "back, by host (the most seen hosts only).",
        "# TYPE consent_gateway_unclassified_host_held_total counter",
    ]
    lines += [f'consent_gateway_unclassified_host_held_total{{host="{_label(e.host)}"}} {e.held}' for e in top]
    lines += [
        "# TYPE consent_gateway_unclassified_hosts_tracked gauge",
        f"consent_gateway_unclassified_hosts_tracked {len(UNCLASSIFIED_HOSTS)}",
    ]
    return lines


metrics.register_collector("unclassified_hosts", metrics_lines, UNCLASSIFIED_HOSTS.reset)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def site_catalog(config: Config) -> Catalog:
    """The gateway's catalog: the built-in vendors, the site's ``[[vendors]]`` and its third-party rules."""
    catalog = Catalog.builtin().merged(config.vendors, source=config.source)
    return catalog.with_third_parties(ThirdParties.from_config(config))


class ThirdParties:
    """Classifies the URL hosts the catalog does not know: first party, allowed, or ``unclassified``."""

    def __init__(
        self,
        *,
        mode: Mode = "hold",
        first_party_hosts: Sequence[str] = (),
        allow: Iterable[AllowEntry] = (),
        enable: Iterable[str] = (),
        disable: Iterable[str] = (),
        counters: HostCounters | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (expected one of {MODES})")
        self.mode: Mode = mode
        enabled, disabled = set(enable), set(disable)
        known = {entry.id for entry in builtin_allow_list()}
        unknown_ids = (enabled | disabled) - known
        if unknown_ids:
            raise ValueError(f"unknown built-in allow-list entries: {', '.join(sorted(unknown_ids))}")
        self.allowed: tuple[AllowEntry, ...] = tuple(
            entry
            for entry in builtin_allow_list()
            if (entry.default or entry.id in enabled) and entry.id not in disabled
        ) + tuple(allow)
        self.first_party_hosts = tuple(first_party_hosts)
        self._first_party = _HostSet((pattern, None) for pattern in self.first_party_hosts)
        self._allow = _HostSet((host, entry) for entry in self.allowed for host in entry.hosts)
        self.counters = counters if counters is not None else UNCLASSIFIED_HOSTS
        _suffix_list()  # parsed now (~0.1 s), when the gateway starts, not on its first page
        self._vendors: dict[str, VendorRule] = {}
        #: (host, site) → None (never held), or (pseudo-vendor, path prefixes under which it is allowed)
        self._cache: dict[tuple[str, str], tuple[VendorRule, tuple[str, ...]] | None] = {}

    @classmethod
    def from_config(cls, config: Config) -> ThirdParties:
        section = config.third_parties
        known = {entry.id for entry in builtin_allow_list()}
        for name in ("enable", "disable"):
            for entry_id in getattr(section, name):
                if entry_id not in known:
                    raise ConfigError(f"third_parties.{name}", f"unknown built-in entry {entry_id!r} (known: "
                                      f"{', '.join(sorted(known))})", file=config.source)
        allow = [AllowEntry(id=f"config:{item.host}", hosts=(item.host,), reason=item.reason, kind="configured")
                 for item in section.allow]
        return cls(
            mode=section.unknown,
            first_party_hosts=config.gateway.first_party_hosts,
            allow=allow,
            enable=section.enable,
            disable=section.disable,
        )

    # -- the request path ------------------------------------------------------------------------------

    def classify(self, host: str, site: str, path: str = "") -> VendorRule | None:
        """For a URL host the catalog does not know: None when it is first party or allowed, else the
        pseudo-vendor ``unclassified`` named after the host. ``path`` (the URL's path) matters only for
        allow-list entries limited to a path, such as ``www.paypal.com/sdk/``.

        An empty host (a relative URL) is the page's own. In mode "allow" nothing is classified.
        """
        if not host or self.mode == "allow":
            return None
        key = (host, site)
        cache = self._cache
        if key in cache:
            found = cache[key]
        else:
            found = self._classify(host, site)
            if len(cache) >= _CACHE_MAX_ENTRIES:
                cache.clear()
            cache[key] = found
        if found is None:
            return None
        vendor, allowed_paths = found
        if allowed_paths and path and any(path.startswith(prefix) for prefix in allowed_paths):
            return None
        return vendor

    def _classify(self, host: str, site: str) -> tuple[VendorRule, tuple[str, ...]] | None:
        host = normalise_host(host)
        if not host:
            return None
        site = normalise_host(site)
        if site and (host == site or registrable_domain(host) == site):
            return None
        whole, _, _ = self._first_party.match(host)
        if whole:
            return None
        whole, _, paths = self._allow.match(host)
        if whole:
            return None
        vendor = self._vendors.get(host)
        if vendor is None:
            vendor = self._vendors[host] = VendorRule(id=UNCLASSIFIED, category=UNCLASSIFIED, name=host)
            if len(self._vendors) > _CACHE_MAX_ENTRIES:
                self._vendors.clear()
        return vendor, paths

    def is_first_party(self, host: str, site: str) -> bool:
        host, site = normalise_host(host), normalise_host(site)
        if not host or (site and (host == site or registrable_domain(host) == site)):
            return True
        return self._first_party.match(host)[0]

    def allow_entry(self, host: str, path: str = "") -> AllowEntry | None:
        """The allow-list entry that lets this host (and path) through, if any: for reports and the
        inventory ("allowed functional host")."""
        host = normalise_host(host)
        whole, entry, _ = self._allow.match(host)
        if whole:
            return entry
        for pattern_host, entries in self._allow._paths.items():
            if pattern_host == host:
                for prefix, candidate in entries:
                    if path.startswith(prefix):
                        return candidate
        return None

    def note_seen(self, host: str, held: bool) -> None:
        """Count one element of an unclassified host (held back or, in "report" mode, let through)."""
        self.counters.note(host, held)

    @property
    def token(self) -> tuple[object, ...]:
        """What the classification depends on, for caches keyed by configuration."""
        return (self.mode, self.first_party_hosts, tuple(e.id for e in self.allowed),
                tuple(h for e in self.allowed for h in e.hosts))

    def __repr__(self) -> str:
        return f"<ThirdParties mode={self.mode} allowed={len(self.allowed)} first_party={len(self.first_party_hosts)}>"
