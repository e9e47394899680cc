"""``consent-gateway logs …``: the privacy team's command line on the consent log.

Same config file and store URL as the gateway. Exit codes: 0 done; 1 the log failed verification or
could not be reached; 2 bad usage (click); 3 nothing found for the consent id asked about.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from .config import Config, load_config
from .errors import ConfigError, ConsentGatewayError
from .events import DEVICE_TYPES, ConsentEvent, event_to_dict
from .export import EventWriter
from .store import STAT_GROUPS, Checkpoint, ConsentLog, EventFilter, VerifyResult, open_log
from .store.proof import (
    audit_record,
    find_checkpoint_key,
    find_log_keys,
    is_signed_by,
    load_public_key,
    public_key_text,
    sign_checkpoint,
    verify_export,
)

T = TypeVar("T")

EXIT_BROKEN = 1
EXIT_NOT_FOUND = 3
DAY_MS = 86_400_000


@dataclass
class _Context:
    config: Config
    store_url: str


def _store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
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


def _filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
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


def _filters(**options: Any) -> EventFilter:
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


def _context(config_path: str | None, store_url: str | None) -> _Context:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return _Context(config=config, store_url=store_url or config.store_url)


def _run(ctx: _Context, work: Callable[[ConsentLog], Awaitable[T]], *, must_exist: bool = True) -> T:
    """Open the log, run ``work`` on it, close it; store failures become a clear message and exit 1."""
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


def _granted(event: ConsentEvent) -> str:
    return ",".join(sorted(c for c, ok in event.categories.items() if ok)) or "-"


@click.group()
def logs() -> None:
    """The consent log: search, export, stats, access, erasure, retention, integrity.

    Exit codes: 0 done, 1 log broken or unreachable, 2 bad usage, 3 nothing found for that consent id.
    """


@logs.command()
@_store_options
@_filter_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Events per page.")
@click.option("--cursor", metavar="CURSOR", help="Continue after a previous page (printed at its end).")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of a table.")
def search(
    config_path: str | None, store_url: str | None, limit: int, cursor: str | None, as_json: bool, **options: Any
) -> None:
    """Find consent events, newest first."""
    ctx = _context(config_path, store_url)
    filters = _filters(**options)
    try:
        page = _run(ctx, lambda log: log.query(filters, limit=limit, cursor=cursor))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cursor") from None
    if as_json:
        for event in page.events:
            click.echo(json.dumps(event_to_dict(event), sort_keys=True))
        return
    if not page.events:
        click.echo("No events match.")
        return
    rows = [
        (
            format_time(e.timestamp_ms),
            e.event_id,
            e.consent_id,
            e.action,
            _granted(e),
            e.country or "",
            e.browser_family or "",
            e.device_type or "",
            e.policy_version,
        )
        for e in page.events
    ]
    headers = ("time (UTC)", "event", "consent id", "action", "granted", "country", "browser", "device", "policy")
    click.echo(render_table(headers, rows))
    if page.next_cursor:
        click.echo(f"\nMore: --cursor {page.next_cursor}")


@logs.command()
@_store_options
@_filter_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "audit"]),
    default="csv",
    show_default=True,
    help="audit: JSON Lines for an auditor, the latest signed checkpoint first and no personal data.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-", help="File (default: -)."
)
@click.option(
    "--checkpoint",
    "checkpoint_path",
    type=click.Path(exists=True, dir_okay=False),
    help="With --format audit: the signed checkpoint to include [default: the gateway's, see [store]].",
)
def export(
    config_path: str | None,
    store_url: str | None,
    fmt: str,
    output: str,
    checkpoint_path: str | None,
    **options: Any,
) -> None:
    """Export events oldest first: CSV (cells escaped against formula injection), JSON Lines, or an audit copy."""
    ctx = _context(config_path, store_url)
    filters = _filters(**options)
    categories = [c.id for c in ctx.config.categories if not c.required]
    if fmt == "audit":
        _export_audit(ctx, output, checkpoint_path)
        return

    async def work(log: ConsentLog) -> int:
        total = await log.count(filters)
        stream: IO[str] = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")
        written = 0
        try:
            writer = EventWriter(stream, "csv" if fmt == "csv" else "jsonl", categories)
            with click.progressbar(length=total, label="Exporting", file=sys.stderr) as bar:
                async for event in log.export(filters):
                    writer.write(event)
                    written += 1
                    if written % 500 == 0:
                        bar.update(500)
                bar.update(written % 500)
        finally:
            if stream is not sys.stdout:
                stream.close()
        return written

    written = _run(ctx, work)
    click.echo(f"{written} events exported.", err=True)


def _export_audit(ctx: _Context, output: str, checkpoint_path: str | None) -> None:
    """Every event (no filter: an auditor checks whole chains), after the latest signed checkpoint."""
    path = Path(checkpoint_path) if checkpoint_path else ctx.config.checkpoint_path
    try:
        checkpoint = Checkpoint.load(path)
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(
            f"no readable signed checkpoint at {path} ({exc}); is the gateway running?"
        ) from None

    async def work(log: ConsentLog) -> int:
        written = 0
        stream: IO[str] = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")
        try:
            stream.write(json.dumps({"checkpoint": json.loads(checkpoint.to_json())}, sort_keys=True) + "\n")
            async for event in log.export(EventFilter()):
                stream.write(json.dumps(audit_record(event), sort_keys=True, ensure_ascii=False) + "\n")
                written += 1
        finally:
            if stream is not sys.stdout:
                stream.close()
        return written

    written = _run(ctx, work)
    click.echo(
        f"{written} events exported for audit, with the checkpoint of {format_time(checkpoint.created_at_ms)} UTC.",
        err=True,
    )


@logs.command()
@_store_options
@_filter_options
@click.option("--by", type=click.Choice(STAT_GROUPS), default="day", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def stats(config_path: str | None, store_url: str | None, by: str, as_json: bool, **options: Any) -> None:
    """Consent rate per category, by day, country, browser, device or policy version."""
    ctx = _context(config_path, store_url)
    filters = _filters(**options)
    rows = _run(ctx, lambda log: log.stats(filters, by=by))
    if as_json:
        data = [{"group": r.group, "category": r.category, "total": r.total, "granted": r.granted} for r in rows]
        click.echo(json.dumps(data, indent=2))
        return
    if not rows:
        click.echo("No events match.")
        return
    table = [(r.group, r.category, r.granted, r.total, f"{r.rate:.1%}") for r in rows]
    click.echo(render_table((by, "category", "granted", "choices", "rate"), table))


@logs.command()
@_store_options
@click.option("--consent-id", required=True, metavar="ID", help="The visitor's consent id (from their receipt).")
def access(config_path: str | None, store_url: str | None, consent_id: str) -> None:
    """A visitor's full history as JSON (right of access and portability)."""
    ctx = _context(config_path, store_url)
    history = _run(ctx, lambda log: log.history(consent_id))
    if not history:
        click.echo(f"No events for consent id {consent_id!r}.", err=True)
        sys.exit(EXIT_NOT_FOUND)
    document = {"consent_id": consent_id, "events": [event_to_dict(e) for e in history]}
    click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))


@logs.command()
@_store_options
@click.option("--consent-id", required=True, metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def erase(config_path: str | None, store_url: str | None, consent_id: str, yes: bool) -> None:
    """Erase a visitor's personal data (IP, user agent, page, referrer); the proof of consent stays."""
    ctx = _context(config_path, store_url)
    history = _run(ctx, lambda log: log.history(consent_id))
    pending = [e for e in history if e.erased_at_ms is None]
    if not history:
        # Its events may still wait in a gateway's spool: the erasure is recorded, and applied on arrival.
        _run(ctx, lambda log: log.erase(consent_id))
        click.echo(
            f"No events for consent id {consent_id!r} in the log; the erasure is recorded, so events of it "
            "still waiting in a gateway's spool are stored without personal data.",
            err=True,
        )
        sys.exit(EXIT_NOT_FOUND)
    if not pending:
        click.echo(f"The {len(history)} events of {consent_id!r} are already erased.")
        return
    if not yes:
        click.confirm(
            f"Erase IP, user agent, page and referrer from {len(pending)} events of {consent_id!r}?",
            abort=True,
        )
    erased = _run(ctx, lambda log: log.erase(consent_id))
    click.echo(f"Erased the personal data of {erased} events of {consent_id!r}; the chain still verifies.")


@logs.command()
@_store_options
@click.option("--events-days", type=click.IntRange(1), help="Delete events older than this [config: retention].")
@click.option("--ip-days", type=click.IntRange(0), help="Remove IPs older than this [config: retention].")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Only say how many events and IPs would go.")
@click.option("--force", is_flag=True, help="Purge even when it would delete every event (check the clock first).")
def purge(
    config_path: str | None,
    store_url: str | None,
    events_days: int | None,
    ip_days: int | None,
    yes: bool,
    dry_run: bool,
    force: bool,
) -> None:
    """Retention: delete old events and remove old IPs (defaults from the config's [retention]).

    Refuses, without --force, to delete every event of the log: that is what a clock far ahead does.
    """
    ctx = _context(config_path, store_url)
    events_days = events_days or ctx.config.retention.events_days
    ip_days = ctx.config.retention.ip_days if ip_days is None else ip_days
    now_ms = int(time.time() * 1000)
    events_before = now_ms - events_days * DAY_MS
    ip_before = now_ms - ip_days * DAY_MS

    async def doomed(log: ConsentLog) -> tuple[int, int, int]:
        return (
            await log.count(EventFilter(until_ms=events_before)),
            await log.count(EventFilter(until_ms=ip_before)),
            await log.count(EventFilter()),
        )

    events, ips, total = _run(ctx, doomed)
    if dry_run:
        click.echo(
            f"Would delete {events} of {total} events (before {format_time(events_before)} UTC) and remove the IPs "
            f"of up to {ips} events (before {format_time(ip_before)} UTC). Nothing was changed."
        )
        return
    if total and events == total and not force:
        raise click.ClickException(
            f"this purge would delete every event of the log ({total}), all older than {events_days} days by this "
            f"machine's clock ({format_time(now_ms)} UTC). Check the clock; pass --force if that is really meant."
        )
    if not yes:
        click.confirm(
            f"Delete events before {format_time(events_before)} UTC and IPs before {format_time(ip_before)} UTC?",
            abort=True,
        )

    async def work(log: ConsentLog) -> tuple[int, int]:
        oldest = None
        async for event in log.export(EventFilter(until_ms=events_before)):
            oldest = event.timestamp_ms
            break
        deleted = 0
        if oldest is not None:
            # Purge in steps from the oldest event on, so a long backlog shows progress.
            steps = max(1, min(50, (events_before - oldest) // DAY_MS))
            with click.progressbar(range(1, steps + 1), label="Purging", file=sys.stderr) as bar:
                for step in bar:
                    cutoff = oldest + (events_before - oldest) * step // steps + (1 if step == steps else 0)
                    result = await log.purge(events_before_ms=min(cutoff, events_before), ip_before_ms=0)
                    deleted += result.events_deleted
        ips = (await log.purge(events_before_ms=events_before, ip_before_ms=ip_before)).ips_removed
        return deleted, ips

    deleted, ips = _run(ctx, work)
    click.echo(f"Deleted {deleted} events older than {events_days} days; removed {ips} IPs older than {ip_days} days.")


@logs.command()
@_store_options
@click.option(
    "--checkpoint",
    "checkpoint_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A signed checkpoint (the gateway's, or `logs checkpoint`) [default: the gateway's, when it exists].",
)
@click.option(
    "--export",
    "export_path",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Verify this audit export (`logs export --format audit`) alone, without the store.",
)
@click.option(
    "--public-key",
    metavar="KEY",
    help="ed25519:… as `consent-gateway keys` prints it (or a file holding it) [default: the gateway's key].",
)
def verify(
    config_path: str | None,
    store_url: str | None,
    checkpoint_path: str | None,
    export_path: str | None,
    public_key: str | None,
) -> None:
    """Check every stored event against the keyed chains and the latest signed checkpoint.

    Exits 1 and names the first broken event if the log was altered; says what it could not prove (no log
    key, no checkpoint, events newer than the checkpoint). With --export, checks an auditor's copy alone.
    """
    ctx = _context(config_path, store_url)
    try:
        private = find_checkpoint_key(ctx.config.data_path)
        public = load_public_key(public_key) if public_key else (private.public_key() if private else None)
    except (ValueError, ConfigError) as exc:
        raise click.BadParameter(f"unusable public key: {exc}", param_hint="--public-key") from None
    if export_path is not None:
        if public is None:
            raise click.UsageError("--export needs --public-key (the gateway's checkpoint public key)")
        with click.open_file(export_path, encoding="utf-8") as lines:
            _report(verify_export(lines, public), what="audit export")
        return
    path = Path(checkpoint_path) if checkpoint_path else ctx.config.checkpoint_path
    checkpoint = None
    if checkpoint_path or path.is_file():
        try:
            checkpoint = Checkpoint.load(path)
        except (OSError, ValueError, KeyError) as exc:
            raise click.BadParameter(f"unreadable checkpoint: {exc}", param_hint="--checkpoint") from None
    result = _run(ctx, lambda log: log.verify(checkpoint))
    extra: list[str] = []
    if checkpoint is not None:
        if not checkpoint.signature:
            extra.append("the checkpoint is not signed: whoever could write it could have rewritten it")
        elif public is None:
            extra.append("the checkpoint's signature was not checked (no public key: pass --public-key)")
        elif not is_signed_by(checkpoint, public):
            result = VerifyResult.of(
                [("checkpoint", f"the signature of {path} does not verify with {public_key_text(public)}")]
                + result.problems,
                events_checked=result.events_checked,
                chains=result.chains,
                unproven=result.unproven,
            )
    _report(result, what="stored", unproven=extra)


def _report(result: VerifyResult, *, what: str, unproven: Sequence[str] = ()) -> None:
    limits = [*result.unproven, *unproven]
    chains = f"{result.chains} chain" + ("" if result.chains == 1 else "s")
    if result.ok:
        click.echo(f"VERIFIED: {result.events_checked} {what} events in {chains}, no alteration found.")
        if limits:
            click.echo("Not proven:")
            for limit in limits:
                click.echo(f"  - {limit}")
        return
    click.echo(f"BROKEN: first broken event {result.first_broken}: {result.reason}", err=True)
    for event_id, reason in result.problems[1:20]:
        click.echo(f"  also: {event_id}: {reason}", err=True)
    if len(result.problems) > 20:
        click.echo(f"  … and {len(result.problems) - 20} more", err=True)
    sys.exit(EXIT_BROKEN)


@logs.command()
@_store_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True),
    required=True,
    help="Where to write the checkpoint: keep it outside the store (another host, a signed mail…).",
)
def checkpoint(config_path: str | None, store_url: str | None, output: str) -> None:
    """Record the chain heads, so that `verify --checkpoint` detects a truncated tail later."""
    ctx = _context(config_path, store_url)
    heads, anchors = _run(ctx, lambda log: asyncio.gather(log.chain_heads(), log.chain_anchors()))
    cp = Checkpoint(heads=heads, created_at_ms=int(time.time() * 1000), anchors=anchors)
    key = find_checkpoint_key(ctx.config.data_path)
    if key is not None:
        cp = sign_checkpoint(cp, key)
    else:
        click.echo("warning: no checkpoint key (CONSENT_GATEWAY_CHECKPOINT_KEY): the checkpoint is unsigned", err=True)
    if output == "-":
        click.echo(cp.to_json())
        return
    cp.save(Path(output))
    click.echo(f"Checkpoint of {len(heads)} chains written to {output}.")
