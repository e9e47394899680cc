"""The CSP backstop: a second Content-Security-Policy that lets a page load only from hosts the visitor allows.

The rewriter holds back what it can see in the HTML; a tag manager injecting a tracker after load, an
``import()`` or a URL built from pieces it cannot see. The browser can: every HTML page gets a policy next to
the site's own (browsers apply every policy a page carries, so the site's stays intact) whose fetch
directives allow the site itself, ``[gateway] first_party_hosts``, the allowed functional hosts (the
built-in allow-list and ``[third_parties] allow``) and the hosts of the vendors this visitor granted. In
``report`` mode it is ``Content-Security-Policy-Report-Only``; in ``enforce`` mode it blocks.

Choices, and why:

* **One list, in ``default-src``.** script-src, img-src, frame-src, connect-src, style-src, font-src and
  media-src (and worker, object, manifest) fall back to it, so the header carries the host list once: a
  visitor who granted analytics allows ~100 hosts, and seven copies would not fit the 4–8 KB header
  buffers of common front proxies. A policy past `POLICY_MAX_BYTES` is not sent (and counted).
* **Hosts, not inline code.** The list holds ``'unsafe-inline' 'unsafe-eval' data: blob:``: the backstop
  guards where things load from, and the site's own policy keeps guarding inline code with its nonces,
  hashes or ``'strict-dynamic'`` (a policy only ever adds restrictions, so these keywords weaken nothing).
  The site's nonce is deliberately not copied in: a nonce lets an element load from *any* host, and tag
  managers propagate the nonce to what they inject, which is what the backstop is for; and with a nonce in
  the list, ``'unsafe-inline'`` would be ignored and a site without nonces would lose its inline scripts.
* **Allow-lists only.** A policy cannot say "everything but these vendors", so a visitor who granted
  ``unclassified`` (accept all, or ``[third_parties] unknown`` not "hold") gets no backstop policy at all.
* **Reports** go to ``<prefix>/csp-report`` with ``report-uri``, which carries the consent cookie. On HTTPS
  pages ``report-to`` and a ``Reporting-Endpoints`` header are added too: Chromium ignores
  ``Reporting-Endpoints`` on plain HTTP and, once a policy names ``report-to``, no longer uses
  ``report-uri``, so plain-HTTP pages keep ``report-uri`` alone. The report URL carries the consent state
  the page was served with, for reports that come without the cookie (the Reporting API omits it).

The headers are computed once per distinct decision (and scheme), then reused: a dict lookup per page.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Final

from . import metrics
from ._types import Scope
from .catalog import Catalog, VendorRule, split_url
from .config import Config
from .decision import Decision
from .thirdparty import UNCLASSIFIED, ThirdParties, is_ip, normalise_host, registrable_domain

#: Larger backstop policies are not sent: front proxies refuse responses whose headers pass their buffer.
POLICY_MAX_BYTES: Final = 8192
#: The Reporting API endpoint name used by ``report-to``.
REPORT_GROUP: Final = "cg-csp"
REPORT_ONLY_HEADER: Final = b"content-security-policy-report-only"
ENFORCE_HEADER: Final = b"content-security-policy"
#: What the backstop never restricts: the page's own origin, inline code and eval (the site's own policy
#: decides those), and data:/blob: URLs (made by the page itself, they load from no host).
BASE_SOURCES: Final = ("'self'", "'unsafe-inline'", "'unsafe-eval'", "data:", "blob:")
#: The consent states a report is filed under.
CONSENT_STATES: Final = ("none", "partial", "all")
_CACHE_MAX_ENTRIES: Final = 1024
#: What a host-source may hold; anything else (a quote, ';', ',') would change the policy's meaning.
_HOST = re.compile(r"(?:\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_PATH = re.compile(r"/[A-Za-z0-9._~/%!$&'()*+=@-]*")


def consent_state(choices: Iterable[tuple[str, bool]], choosable: Sequence[str]) -> str:
    """ "none", "partial" or "all" of the categories a visitor can choose."""
    granted = {category for category, on in choices if on}
    count = sum(1 for category in choosable if category in granted)
    if count == 0:
        return "none"
    return "all" if count == len(choosable) else "partial"


def is_loopback_site(site: str) -> bool:
    """A page on this machine (``localhost``, ``*.localhost``, a loopback IP): the demo and tests, whose
    third parties are real names under ``.localhost`` on the page's own port."""
    if site == "localhost" or site.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(site.strip("[]")).is_loopback
    except ValueError:
        return False


def _pattern_parts(pattern: str) -> tuple[str, str] | None:
    """(host, path) of a host pattern ("host", "*.host", "host/path/"), or None when it cannot be a source."""
    raw_host, slash, path = pattern.strip().removeprefix("//").partition("/")
    raw_host = raw_host.partition("?")[0]
    below = raw_host.startswith("*.")
    host = normalise_host(raw_host.removeprefix("*."))
    path = (slash + path).partition("?")[0] if slash else ""
    if not _HOST.fullmatch(host) or (path and not _PATH.fullmatch(path)):
        return None
    return ("*." + host if below else host), path


def _sources(host: str, path: str, *, port: str, wildcard: bool) -> list[str]:
    """Host-sources for a host pattern. ``wildcard`` adds the subdomains (a CSP ``*.`` does not match the
    bare host); a path without a final "/" is matched exactly by CSP, so its "/" form is added for what lies
    under it."""
    hosts = [host, "*." + host] if wildcard and not host.startswith("*.") else [host]
    if not path:
        return [h + port for h in hosts]
    paths = [path] if path.endswith("/") else [path, path + "/"]
    return [f"{h}{port}{p}" for h in hosts for p in paths]


def _is_domain(host: str) -> bool:
    """A registrable domain (``hotjar.com``), whose subdomains a pattern covers; a host deeper than that
    (``cdn.amplitude.com``, ``js.stripe.com``) names one server, and is listed alone to keep the header
    short: stricter than the rewriter's matching, never looser."""
    return registrable_domain(host) == host


def _drop_covered(hosts: Iterable[str]) -> list[str]:
    """Sorted, without the hosts a shorter one already covers (``www.x.com`` under ``x.com``'s ``*.x.com``)."""
    unique = set(hosts)
    kept = []
    for host in unique:
        labels = host.split(".")
        if not any(".".join(labels[i:]) in unique for i in range(1, len(labels))):
            kept.append(host)
    return sorted(kept)


def vendor_hosts(vendor: VendorRule) -> list[str]:
    """Every host a vendor's tags, frames, pixels, stylesheets and beacons load from."""
    hosts: set[str] = set()
    for pattern in (*vendor.script_hosts, *vendor.iframe_hosts, *vendor.img_hosts, *vendor.link_hosts):
        parts = _pattern_parts(pattern)
        if parts is not None and not parts[0].startswith("*."):
            hosts.add(parts[0])
    for endpoint in vendor.beacon_endpoints:
        host = split_url(endpoint)[0]
        if host and _HOST.fullmatch(host):
            hosts.add(host)
    return sorted(hosts)


class BackstopPolicy:
    """The backstop policy's response headers for each decision; built once per gateway."""

    def __init__(self, config: Config, catalog: Catalog, *, always_loaded: frozenset[str] = frozenset()) -> None:
        """:param always_loaded: vendors that load for every visitor who did not refuse them by name (Google
        tags in Consent Mode "advanced")."""
        self.mode = config.csp.mode
        self.header_name = REPORT_ONLY_HEADER if self.mode == "report" else ENFORCE_HEADER
        self.report_path = f"{config.gateway.prefix}/csp-report"
        third_parties = ThirdParties.from_config(config)
        fixed: list[str] = []
        for pattern in (*third_parties.first_party_hosts, *(h for e in third_parties.allowed for h in e.hosts)):
            parts = _pattern_parts(pattern)
            if parts is not None:
                fixed.extend(_sources(*parts, port="", wildcard=_is_domain(parts[0])))
        self._fixed = tuple(dict.fromkeys(fixed))
        # the vendors the site says it uses ([banner] vendors), else the whole catalog
        used = set(config.banner.vendors) | always_loaded
        self._vendors = tuple(
            (vendor, tuple(vendor_hosts(vendor)))
            for vendor in catalog.vendors.values()
            if not config.banner.vendors or vendor.id in used
        )
        self._always_loaded = always_loaded
        unclassified_always = config.third_parties.unknown != "hold"
        #: the categories a visitor chooses (an always-granted "unclassified" is not a choice)
        self.choosable = tuple(
            c.id for c in config.categories if not c.required and not (unclassified_always and c.id == UNCLASSIFIED)
        )
        self._cache: dict[tuple[object, ...], tuple[tuple[bytes, bytes], ...]] = {}

    def headers(self, scope: Scope, decision: Decision) -> tuple[tuple[bytes, bytes], ...]:
        """The headers to add to this HTML response (none when the visitor granted ``unclassified``)."""
        secure = scope.get("scheme") == "https"
        key = (decision.key, decision.explicit, secure)
        found = self._cache.get(key)
        if found is None:
            found = self._build(decision, secure)
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = found
        if found and found[0][0] == b"":
            metrics.inc("csp_policies_skipped_total", reason="too_large")
            return ()
        return found

    def page_state(self, decision: Decision) -> str:
        if not decision.explicit:
            return "none"
        return consent_state(((c, True) for c in decision.granted), self.choosable)

    def sources(self, decision: Decision) -> list[str]:
        """The source list for this decision: the base keywords, the site, the fixed hosts, granted vendors."""
        site = decision.site
        loopback = is_loopback_site(site)
        port = ":*" if loopback else ""
        sources = list(BASE_SOURCES)
        if site and _HOST.fullmatch(site):
            if "." in site and not is_ip(site) and (loopback or registrable_domain(site) == site):
                sources += _sources(site, "", port=port, wildcard=True)  # its subdomains are the site's too
            elif loopback:
                sources.append(site + port)  # "localhost", not every *.localhost: those are the stand-ins
        sources += self._fixed
        granted: list[str] = []
        for vendor, hosts in self._vendors:
            allowed = decision.allows_vendor(vendor.id, vendor.category) or (
                vendor.id in self._always_loaded and vendor.id not in decision.vendors_refused
            )
            if allowed:
                granted.extend(hosts)
        for host in _drop_covered(granted):
            # on this machine (the demo, tests) vendors are their stand-ins: www.googletagmanager.com.localhost
            sources += _sources(host + ".localhost" if loopback else host, "", port=port, wildcard=_is_domain(host))
        return list(dict.fromkeys(sources))

    def _build(self, decision: Decision, secure: bool) -> tuple[tuple[bytes, bytes], ...]:
        if decision.allows_category(UNCLASSIFIED):
            return ()
        report_url = f"{self.report_path}?state={self.page_state(decision)}"
        policy = f"default-src {' '.join(self.sources(decision))}; report-uri {report_url}"
        headers: list[tuple[bytes, bytes]] = []
        if secure:
            policy += f"; report-to {REPORT_GROUP}"
            headers.append((b"reporting-endpoints", f'{REPORT_GROUP}="{report_url}"'.encode("ascii")))
        if len(policy) > POLICY_MAX_BYTES:
            return ((b"", b""),)  # remembered as "too large"
        return ((self.header_name, policy.encode("ascii")), *headers)
