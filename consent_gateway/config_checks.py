"""What one section of a config says about another, and about the world: each rule checked once, after loading.

One function per rule, run in order by `check_config`; each raises the reader's `ConfigError`, which names
the file, the line and the dotted key, and `check_config` keeps every rule's problem in the reader.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from .config_sections import Config
from .errors import ConfigError
from .network import covers_every_address
from .tomlmap import TableReader

#: the smallest sane value of each numeric key
MINIMUMS: tuple[tuple[str, float], ...] = (
    ("cookie.accept_max_age_days", 1),
    ("cookie.refuse_max_age_days", 1),
    ("cookie.tracker_max_age_days", 1),
    ("csp.report_max_body_bytes", 1024),
    ("csp.report_rate_per_minute", 0),
    ("csp.report_rate_burst", 1),
    ("gateway.max_body_bytes", 64),
    ("gateway.rewrite_max_buffer_bytes", 1024),
    ("gateway.html_max_decoded_bytes", 65_536),
    ("privacy.statistics_min_group_size", 1),
    ("retention.events_days", 1),
    ("retention.ip_days", 0),
    ("retention.run_interval_hours", 0),
    ("retention.clock_guard_days", 0),
    ("retention.inventory_days", 1),
    ("store.checkpoint_interval_seconds", 0),
    ("store.lease_seconds", 1),
    ("inventory.flush_interval_seconds", 0),
    ("inventory.report_max_body_bytes", 1024),
    ("inventory.report_rate_per_minute", 0),
    ("inventory.report_rate_burst", 1),
    ("gateway.consent_rate_per_minute", 0),
    ("gateway.consent_rate_burst", 1),
    ("proxy.max_header_bytes", 1024),
    ("proxy.max_headers", 8),
    ("proxy.body_idle_timeout_seconds", 0.1),
    ("proxy.request_timeout_seconds", 0.1),
    ("accounts.cache_seconds", 0),
)
STORE_SCHEMES = (
    "sqlite:///",
    "redis://",
    "rediss://",
    "unix://",
    "redis+cluster://",
    "rediss+cluster://",
    "postgresql://",
    "postgres://",
)


def check_prefix(config: Config, reader: TableReader) -> None:
    prefix = config.gateway.prefix
    if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
        raise reader.error("gateway.prefix", f"must start with '/' and not end with one, got {prefix!r}")


def check_trusted_proxies(config: Config, reader: TableReader) -> None:
    for index, network in enumerate(config.gateway.trusted_proxies):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise reader.error(f"gateway.trusted_proxies[{index}]", f"not an IP or CIDR: {network!r}") from None
    proxies = [ipaddress.ip_network(n, strict=False) for n in config.gateway.trusted_proxies]
    if covers_every_address(proxies) and not config.gateway.trusted_proxies_allow_all:
        raise reader.error(
            "gateway.trusted_proxies",
            "covers every address, so any visitor could forge its IP and scheme; list your proxies, or set "
            "gateway.trusted_proxies_allow_all = true if only your load balancer can reach the gateway",
        )


def check_cookie_domain(config: Config, reader: TableReader) -> None:
    """ "" (host-only), "auto" (the request host's registrable domain) or a domain name."""
    domain = config.cookie.domain
    if domain in ("", "auto"):
        return
    if not re.fullmatch(r"\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?", domain):
        raise reader.error(
            "cookie.domain",
            f'expected "" (host-only), "auto" (the registrable domain of each request) or a domain such as '
            f'"example.org", got {domain!r}',
        )


def check_consent_domains(config: Config, reader: TableReader) -> None:
    """Each sister's sync URL is an absolute http(s) URL with a path, each host listed once."""
    seen: set[str] = set()
    for index, domain in enumerate(config.consent_domains):
        key = f"consent_domains[{index}].sync_url"
        url = domain.sync_url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise reader.error(
                key, f"expected an absolute http(s) URL such as 'https://www.example.org/_consent/sync', got {url!r}"
            )
        if parts.query or parts.fragment:
            raise reader.error(key, f"no query or fragment: the gateway adds the token, got {url!r}")
        if parts.path in ("", "/"):
            raise reader.error(key, f"expected the path of the sister's sync route ('/_consent/sync'), got {url!r}")
        if parts.netloc in seen:
            raise reader.error(key, f"{parts.netloc} is listed twice")
        seen.add(parts.netloc)


def check_user_header(config: Config, reader: TableReader) -> None:
    header = config.accounts.user_header
    if header and not re.fullmatch(r"[A-Za-z0-9-]+", header):
        raise reader.error("accounts.user_header", f"expected a header name such as 'X-Consent-User', got {header!r}")
    if header.lower() in ("cookie", "host", "set-cookie", "authorization", "x-forwarded-for"):
        raise reader.error("accounts.user_header", f"{header!r} already means something else; use a header of its own")


def check_category_ids_are_unique(config: Config, reader: TableReader) -> None:
    ids = [c.id for c in config.categories]
    if len(set(ids)) != len(ids):
        raise reader.error("categories", f"duplicate category id in {ids}")


def check_a_category_is_required(config: Config, reader: TableReader) -> None:
    if not any(c.required for c in config.categories):
        raise reader.error("categories", "one category must be required = true (strictly necessary)")


def check_category_id_spelling(config: Config, reader: TableReader) -> None:
    for index, category in enumerate(config.categories):
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", category.id):
            raise reader.error(f"categories[{index}].id", f"use lowercase letters, digits, - or _: {category.id!r}")


def check_categories_named_elsewhere_exist(config: Config, reader: TableReader) -> None:
    """gateway.gpc_refuses, banner.consent_mode_signals and the vendors' categories name known categories."""
    ids = [c.id for c in config.categories]
    for name in config.gateway.gpc_refuses:
        if name not in ids:
            raise reader.error("gateway.gpc_refuses", f"unknown category {name!r} (known: {', '.join(ids)})")
    for name in config.banner.consent_mode_signals:
        if name not in ids:
            raise reader.error(f"banner.consent_mode_signals.{name}", f"unknown category (known: {', '.join(ids)})")
    for index, table in enumerate(config.vendors):
        vendor_category = table.get("category")
        if vendor_category is not None and vendor_category not in ids:
            raise reader.error(f"vendors[{index}].category", f"unknown category {vendor_category!r}")


def check_third_parties(config: Config, reader: TableReader) -> None:
    """Host patterns are checked here; names of built-in allow-list entries by `thirdparty` (which
    reads that list)."""
    for index, pattern in enumerate(config.gateway.first_party_hosts):
        problem = check_host_pattern(pattern)
        if problem or "/" in pattern:
            raise reader.error(f"gateway.first_party_hosts[{index}]", problem or f"a host, not a URL: {pattern!r}")
    for index, item in enumerate(config.third_parties.allow):
        problem = check_host_pattern(item.host)
        if problem:
            raise reader.error(f"third_parties.allow[{index}].host", problem)
        if not item.reason.strip():
            raise reader.error(f"third_parties.allow[{index}].reason", "say why this third party is functional")


def check_host_pattern(pattern: str) -> str | None:
    """Why a first-party or allow-list host pattern is unusable, or None when it is fine."""
    host, _, _ = pattern.partition("/")
    if not host or host != host.strip() or any(c in host for c in " :@?#\\"):
        return f"expected a host such as 'cdn.example.com' or '*.example.com', got {pattern!r}"
    if "*" in host.removeprefix("*."):
        return f"'*' is only allowed as a leading '*.' label: {pattern!r}"
    return None


def check_default_language(config: Config, reader: TableReader) -> None:
    if config.banner.default_language not in config.banner.languages:
        raise reader.error("banner.default_language", f"must be one of banner.languages {config.banner.languages}")


def check_minimums(config: Config, reader: TableReader) -> None:
    for key, minimum in MINIMUMS:
        section, name = key.split(".")
        if getattr(getattr(config, section), name) < minimum:
            raise reader.error(key, f"must be at least {minimum}")


def check_ip_prefixes(config: Config, reader: TableReader) -> None:
    if not 0 <= config.privacy.ipv4_prefix <= 32:
        raise reader.error("privacy.ipv4_prefix", "must be between 0 and 32")
    if not 0 <= config.privacy.ipv6_prefix <= 128:
        raise reader.error("privacy.ipv6_prefix", "must be between 0 and 128")


def check_store_url(config: Config, reader: TableReader) -> None:
    url = config.store.url
    if url and not url.startswith(STORE_SCHEMES):
        raise reader.error(
            "store.url",
            "expected sqlite:///path, redis://host:port/db, redis+cluster://host:port or postgresql://user@host/db,"
            f" got {url!r}",
        )
    if url.startswith(("redis", "unix://")):
        from consent_gateway.store.redis_layout import split_url

        try:
            split_url(url)
        except ConfigError as exc:
            raise reader.error("store.url", exc.message) from exc


#: in this order: the order of the report
RULES: tuple[Callable[[Config, TableReader], None], ...] = (
    check_prefix,
    check_trusted_proxies,
    check_cookie_domain,
    check_consent_domains,
    check_user_header,
    check_category_ids_are_unique,
    check_a_category_is_required,
    check_category_id_spelling,
    check_categories_named_elsewhere_exist,
    check_third_parties,
    check_default_language,
    check_minimums,
    check_ip_prefixes,
    check_store_url,
)


def check_config(config: Config, reader: TableReader) -> None:
    """Add the problem of each rule the config breaks to `reader.problems`, unless its key already has one
    (a key that did not load keeps its default, which says nothing about the file)."""
    for rule in RULES:
        try:
            rule(config, reader)
        except ConfigError as exc:
            if all(problem.key != exc.key for problem in reader.problems):
                reader.problems.append(exc)
