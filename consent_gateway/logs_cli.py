"""``consent-gateway logs …``: the privacy team's command line on the consent log.

Same config file and store URL as the gateway. Exit codes: 0 done; 1 the log failed verification or
could not be reached; 2 bad usage (click); 3 nothing found for the consent id asked about.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from typing import IO, Any

import click

from .admin.audit import AuditLog, audit_path
from .config import Config
from .errors import StoreUnavailable
from .events import ConsentEvent, event_to_dict
from .export import EventWriter, ExportColumns, banner_versions_export
from .logs_common import (
    DAY_MS,
    EXIT_NOT_FOUND,
    event_filter,
    filter_options,
    format_time,
    log_context,
    render_table,
    run_on_log,
    store_options,
)
from .logs_proof_cli import checkpoint, export_audit, verify
from .store import STAT_GROUPS, ConsentLog, EventFilter
from .store.erasure_queue import ErasureQueue, QueuedErasure
from .store.retention import ahead_note, clock_problem, events_ahead, newest_event_ms, store_clock_problem


def _granted(event: ConsentEvent) -> str:
    return ",".join(sorted(c for c, ok in event.categories.items() if ok)) or "-"


@click.group()
def logs() -> None:
    """The consent log: search, export, stats, access, erasure, retention, integrity.

    Exit codes: 0 done, 1 log broken or unreachable, 2 bad usage, 3 nothing found for that consent id.
    """


@logs.command()
@store_options
@filter_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Events per page.")
@click.option("--cursor", metavar="CURSOR", help="Continue after a previous page (printed at its end).")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of a table.")
def search(
    config_path: str | None, store_url: str | None, limit: int, cursor: str | None, as_json: bool, **options: Any
) -> None:
    """Find consent events, newest first."""
    ctx = log_context(config_path, store_url)
    filters = event_filter(**options)
    try:
        page = run_on_log(ctx, lambda log: log.query(filters, limit=limit, cursor=cursor))
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
@store_options
@filter_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "json", "audit", "banners"]),
    default="csv",
    show_default=True,
    help="csv or jsonl (json: the same JSON Lines): the dashboard's export, same columns in the same order. "
    "audit: JSON Lines for an auditor, the latest signed checkpoint first and no personal data. "
    "banners: the archived banner versions the selected events were shown (JSON).",
)
@click.option(
    "--personal/--no-personal",
    default=True,
    show_default=True,
    help="The personal columns: IP address, user agent, page, referrer.",
)
@click.option(
    "--proof/--no-proof",
    default=True,
    show_default=True,
    help="The proof columns: chain position, hash, previous hash, MAC, commitments (and, with --personal, salts).",
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
    personal: bool,
    proof: bool,
    **options: Any,
) -> None:
    """Export events oldest first: CSV (cells escaped against formula injection), JSON Lines, or an audit copy.

    CSV and JSON Lines are written by the module the dashboard's exports use: the same columns, in the same
    order, for the same selection."""
    ctx = log_context(config_path, store_url)
    filters = event_filter(**options)
    columns = ExportColumns(
        tuple(c.id for c in ctx.config.categories if not c.required), personal=personal, proof=proof
    )
    if fmt == "audit":
        export_audit(ctx, output, checkpoint_path)
        return
    if fmt == "banners":
        found = run_on_log(ctx, lambda log: banner_versions_export(log, filters))
        text = json.dumps(found, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        if output == "-":
            click.echo(text, nl=False)
        else:
            with open(output, "w", encoding="utf-8") as file:
                file.write(text)
        click.echo(f"{len(found['versions'])} banner versions exported.", err=True)
        return

    async def work(log: ConsentLog) -> int:
        total = await log.count(filters)
        stream: IO[str] = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")
        written = 0
        try:
            writer = EventWriter(stream, "csv" if fmt == "csv" else "jsonl", columns)
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

    written = run_on_log(ctx, work)
    click.echo(f"{written} events exported.", err=True)


@logs.command()
@store_options
@filter_options
@click.option("--by", type=click.Choice(STAT_GROUPS), default="day", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def stats(config_path: str | None, store_url: str | None, by: str, as_json: bool, **options: Any) -> None:
    """Consent rate per category, by day, country, browser, device or policy version."""
    ctx = log_context(config_path, store_url)
    filters = event_filter(**options)
    rows = run_on_log(ctx, lambda log: log.stats(filters, by=by))
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
@store_options
@click.option("--consent-id", required=True, metavar="ID", help="The visitor's consent id (from their receipt).")
def access(config_path: str | None, store_url: str | None, consent_id: str) -> None:
    """A visitor's full history as JSON (right of access and portability)."""
    ctx = log_context(config_path, store_url)
    history = run_on_log(ctx, lambda log: log.history(consent_id))
    if not history:
        click.echo(f"No events for consent id {consent_id!r}.", err=True)
        sys.exit(EXIT_NOT_FOUND)
    document = {"consent_id": consent_id, "events": [event_to_dict(e) for e in history]}
    click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))


@logs.command()
@store_options
@click.option("--consent-id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--apply-queued", is_flag=True, help="Apply the erasures queued while the store was down, and exit.")
def erase(
    config_path: str | None, store_url: str | None, consent_id: str | None, yes: bool, apply_queued: bool
) -> None:
    """Erase a visitor's personal data (IP, user agent, page, referrer); the proof of consent stays.

    Written to the admin audit log like a dashboard erasure. While the store cannot be reached the erasure
    is queued on disk (in the spool folder) and applied when it answers: by a running gateway sharing that
    folder, or by `logs erase --apply-queued`.
    """
    ctx = log_context(config_path, store_url)
    audit = CliAudit(ctx.config)
    if apply_queued:
        applied = run_on_log(ctx, lambda log: ErasureQueue(ctx.config.spool_path).apply(log, audit.applied))
        click.echo(f"Applied {applied} queued erasures.")
        return
    if not consent_id:
        raise click.UsageError("--consent-id is required (or --apply-queued)")

    def queue(exc: StoreUnavailable) -> list[ConsentEvent]:
        audit.write("erase", consent_id, outcome="started")
        try:
            ErasureQueue(ctx.config.spool_path).add(consent_id, audit.user)
        except OSError as err:
            audit.write("erase", consent_id, outcome="failed")
            raise click.ClickException(
                f"the store is down ({exc}) and the erasure queue cannot be written: {err}"
            ) from None
        audit.write("erase", consent_id, outcome="queued")
        click.echo(
            f"The consent log cannot be reached ({exc}); the erasure of {consent_id!r} is queued in "
            f"{ctx.config.spool_path} and applied as soon as the log answers (by a running gateway sharing that "
            "folder, or `logs erase --apply-queued`)."
        )
        sys.exit(0)

    history = run_on_log(ctx, lambda log: log.history(consent_id), when_unavailable=queue)
    pending = [e for e in history if e.erased_at_ms is None]
    if not history:
        # Its events may still wait in a gateway's spool: the erasure is recorded, and applied on arrival.
        audit.write("erase", consent_id, outcome="started")
        erased = run_on_log(ctx, lambda log: log.erase(consent_id))
        audit.write("erase", consent_id, outcome="ok", events=erased)
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
    audit.write("erase", consent_id, outcome="started")
    erased = run_on_log(ctx, lambda log: log.erase(consent_id))
    audit.write("erase", consent_id, outcome="ok", events=erased)
    click.echo(f"Erased the personal data of {erased} events of {consent_id!r}; the chain still verifies.")


class CliAudit:
    """The admin audit log as the CLI writes it: user ``cli:<login>``; an erasure it cannot audit is refused."""

    def __init__(self, config: Config) -> None:
        self.log = AuditLog(audit_path(config))
        try:
            login = getpass.getuser()
        except (KeyError, OSError):
            login = f"uid{os.getuid()}"
        self.user = f"cli:{login}"

    def write(self, action: str, target: str, *, outcome: str, **extra: Any) -> None:
        try:
            self.log.write_sync(action, user=self.user, target=target, outcome=outcome, via="cli", **extra)
        except OSError as exc:
            raise click.ClickException(f"the admin audit log at {self.log.path} cannot be written ({exc})") from None

    async def applied(self, request: QueuedErasure, events: int) -> None:
        self.write("erase-applied", request.consent_id, outcome="ok", events=events, requested_by=request.requested_by)


@logs.command()
@store_options
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

    Refuses, without --force, to delete every event of the log (what a clock far ahead does), and while this
    machine's clock is far ahead of the newest event or differs from the store's clock (Redis, PostgreSQL).
    """
    ctx = log_context(config_path, store_url)
    events_days = events_days or ctx.config.retention.events_days
    ip_days = ctx.config.retention.ip_days if ip_days is None else ip_days
    now_ms = int(time.time() * 1000)
    events_before = now_ms - events_days * DAY_MS
    ip_before = now_ms - ip_days * DAY_MS

    async def doomed(log: ConsentLog) -> tuple[int, int, int, int | None, int | None, int]:
        return (
            await log.count(EventFilter(until_ms=events_before)),
            await log.count(EventFilter(until_ms=ip_before)),
            await log.count(EventFilter()),
            await newest_event_ms(log),
            await log.server_time_ms(),
            await events_ahead(log, now_ms),
        )

    events, ips, total, newest, server_ms, ahead = run_on_log(ctx, doomed)
    note = ahead_note(ahead)
    if note is not None:
        click.echo(f"Note: {note}.")
    clock = store_clock_problem(now_ms, server_ms) or clock_problem(
        now_ms, newest, ctx.config.retention.clock_guard_days
    )
    if dry_run:
        click.echo(
            f"Would delete {events} of {total} events (before {format_time(events_before)} UTC) and remove the IPs "
            f"of up to {ips} events (before {format_time(ip_before)} UTC). Nothing was changed."
        )
        if clock is not None:
            click.echo(f"Warning: {clock}; a purge would be refused without --force.")
        return
    if total and events == total and not force:
        raise click.ClickException(
            f"this purge would delete every event of the log ({total}), all older than {events_days} days by this "
            f"machine's clock ({format_time(now_ms)} UTC). Check the clock; pass --force if that is really meant."
        )
    if clock is not None and not force:
        raise click.ClickException(f"{clock}; pass --force if the clock is right.")
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

    deleted, ips = run_on_log(ctx, work)
    click.echo(f"Deleted {deleted} events older than {events_days} days; removed {ips} IPs older than {ip_days} days.")


logs.add_command(verify)
logs.add_command(checkpoint)
