"""What every `logs` command shares: the store and filter options, time parsing, the table, opening the log."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from .config import Config, load_config
from .errors import ConfigError, ConsentGatewayError, StoreUnavailable
from .events import DEVICE_TYPES
from .store import ConsentLog, EventFilter, open_log
from .store.proof import find_log_keys

T = TypeVar("T")

EXIT_BROKEN = 1
EXIT_NOT_FOUND = 3
DAY_MS = 86_400_000


@dataclass
class LogContext:
    config: Config
    store_url: str


def store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--store",
        "store_url",
        metavar="URL",
        envvar="CONSENT_GATEWAY_STORE_URL",
        help="Consent log URL (sqlite:///path, redis://host:port/db or postgresql://user@host/db);"
        " default: the config's [store] url.",
    )(fn)
    fn = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        envvar="CONSENT_GATEWAY_CONFIG",
        help="TOML config file (default: the built-in defaults).",
    )(fn)
    return fn


def filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--since", metavar="WHEN", help="From this UTC time: 2026-01-31, 2026-01-31T12:00 or 7d ago."),
        click.option("--until", metavar="WHEN", help="Before this UTC time (same forms as --since)."),
        click.option("--action", metavar="ACTION", help="consent-given, consent-updated, consent-withdrawn…"),
        click.option("--category", metavar="ID", help="Only events that granted this category."),
        click.option("--country", metavar="CC", help="ISO country code."),
        click.option("--browser", metavar="FAMILY", help="Browser family, e.g. Firefox."),
        click.option("--device", type=click.Choice(DEVICE_TYPES)),
        click.option("--policy-version", metavar="VERSION"),
        click.option("--consent-id", metavar="ID"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def parse_when(value: str | None, *, now_ms: int | None = None) -> int | None:
    """``2026-01-31``, ``2026-01-31T12:00[:00]`` (UTC unless an offset is given) or ``7d`` (days ago) → ms."""
    if value is None:
        return None
    relative = re.fullmatch(r"(\d+)d", value.strip())
    if relative:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return now - int(relative.group(1)) * DAY_MS
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected 2026-01-31, 2026-01-31T12:00 or 7d") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def event_filter(**options: Any) -> EventFilter:
    return EventFilter(
        since_ms=parse_when(options.get("since")),
        until_ms=parse_when(options.get("until")),
        action=options.get("action"),
        category=options.get("category"),
        country=options.get("country"),
        browser=options.get("browser"),
        device=options.get("device"),
        policy_version=options.get("policy_version"),
        consent_id=options.get("consent_id"),
    )


def log_context(config_path: str | None, store_url: str | None) -> LogContext:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return LogContext(config=config, store_url=store_url or config.store_url)


def run_on_log(
    ctx: LogContext,
    work: Callable[[ConsentLog], Awaitable[T]],
    *,
    must_exist: bool = True,
    when_unavailable: Callable[[StoreUnavailable], T] | None = None,
) -> T:
    """Open the log, run ``work`` on it, close it; store failures become a clear message and exit 1
    (or, with ``when_unavailable``, its answer when the store cannot be reached)."""
    if must_exist and ctx.store_url.startswith("sqlite:///"):
        from .store.sqlite import path_from_url

        path = path_from_url(ctx.store_url)
        if not path.exists():
            raise click.ClickException(f"no consent log at {path} (check --store or the config's [store] url)")

    try:
        log_keys = find_log_keys(ctx.config.data_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    async def main() -> T:
        log = open_log(ctx.store_url, log_keys=log_keys)
        try:
            await log.open()
            return await work(log)
        finally:
            await log.close()

    try:
        return asyncio.run(main())
    except StoreUnavailable as exc:
        if when_unavailable is not None:
            return when_unavailable(exc)
        raise click.ClickException(str(exc)) from None
    except ConsentGatewayError as exc:
        raise click.ClickException(str(exc)) from None


def format_time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain aligned table (numbers right-aligned) that reads well in a terminal and in a log."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(re.fullmatch(r"-?[\d.,%]+", row[i] or "0") for row in cells[1:]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True))

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(s.rstrip() for s in out)
