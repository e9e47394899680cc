"""``consent-gateway inventory``: what the site uses and its classification, from a terminal.

``list`` prints the inventory with each entry's vendor by the catalog in force (the config and the
classifications), as a table, JSON or CSV; ``export`` writes the classifications as ``[[vendors]]`` for
the config; ``classify`` and ``unclassify`` take or undo a decision as the dashboard does, written to the
admin audit log first (user ``cli:<login>``) and applied by every running instance within seconds.
"""

from __future__ import annotations

import csv
import io
import json
import time

import click

from .classification import (
    ACTIONS,
    SUBJECT_KINDS,
    ClassificationError,
    DecisionRequest,
    Overlay,
    apply_overlay,
    decide,
    to_toml,
    vendor_tables,
)
from .export import escape_cell
from .inventory.records import KINDS
from .logs_cli import CliAudit
from .logs_common import format_time, log_context, render_table, run_on_log, store_options
from .site_rules import ClassificationStore
from .store import ConsentLog
from .thirdparty import site_catalog
from .usage import EntryRow, entry_rows, read_entries

_CSV_COLUMNS = ("kind", "name", "vendor", "vendor_name", "category", "classification", "count", "held", "allowed",
                "dropped", "passed", "capped", "first_seen", "last_seen", "detail")


@click.group()
def inventory() -> None:
    """What the site really uses (third-party hosts, cookies, browser names, CSP reports) and its classification."""


@inventory.command("list")
@store_options
@click.option("--kind", type=click.Choice(KINDS), help="Only hosts, cookies, storage (browser names) or violations.")
@click.option("--unclassified", is_flag=True, help="Only what nobody classified.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--limit", type=click.IntRange(1, 5000), default=5000, show_default=True, help="Entries per kind.")
def list_(config_path: str | None, store_url: str | None, kind: str | None, unclassified: bool, fmt: str,
          limit: int) -> None:
    """The inventory, most recently seen first, with each entry's vendor by the catalog in force."""
    ctx = log_context(config_path, store_url)

    async def work(log: ConsentLog) -> list[EntryRow]:
        overlay = await ClassificationStore(log).load()
        catalog = apply_overlay(site_catalog(ctx.config), overlay)
        rows: list[EntryRow] = []
        for one in (kind,) if kind else KINDS:
            rows += entry_rows(await read_entries(log, one, limit=limit), catalog, overlay)
        return [row for row in rows if row.vendor is None] if unclassified else rows

    rows = run_on_log(ctx, work)
    if fmt == "json":
        click.echo(json.dumps([row.as_dict() for row in rows], ensure_ascii=False, indent=1))
    elif fmt == "csv":
        click.echo(_csv(rows), nl=False)
    elif not rows:
        click.echo("Nothing in the inventory yet: it fills as pages go through the gateway.", err=True)
    else:
        click.echo(render_table(
            ("kind", "name", "vendor", "category", "count", "held/allowed", "dropped/passed", "last seen"),
            ((r.entry.kind, r.entry.name, r.vendor_label, r.category, r.entry.count,
              f"{r.entry.held}/{r.entry.allowed}", f"{r.entry.dropped}/{r.entry.passed}",
              format_time(r.entry.last_seen_ms)) for r in rows),
        ))  # fmt: skip


def _csv(rows: list[EntryRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for row in rows:
        data = row.as_dict()
        data["first_seen"] = format_time(row.entry.first_seen_ms)
        data["last_seen"] = format_time(row.entry.last_seen_ms)
        data["detail"] = json.dumps(row.entry.detail, ensure_ascii=False, sort_keys=True)
        writer.writerow([escape_cell(data.get(column)) for column in _CSV_COLUMNS])
    return out.getvalue()


@inventory.command("export")
@store_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write here instead of stdout.")
def export(config_path: str | None, store_url: str | None, output: str | None) -> None:
    """The classifications as [[vendors]] tables to append to the config file, as they are."""
    ctx = log_context(config_path, store_url)
    overlay = run_on_log(ctx, lambda log: ClassificationStore(log).load())
    text = to_toml(vendor_tables(site_catalog(ctx.config).vendors, overlay), overlay)
    if output:
        with open(output, "w", encoding="utf-8") as file:
            file.write(text)
        click.echo(f"{len(overlay.decisions)} classifications written to {output}", err=True)
    else:
        click.echo(text, nl=False)


@inventory.command("classify")
@store_options
@click.argument("kind", type=click.Choice(SUBJECT_KINDS))
@click.argument("subject")
@click.option("--vendor", "vendor_id", metavar="ID", help="Assign to this catalog vendor.")
@click.option("--new-vendor", "vendor_name", metavar="NAME", help="Give to a new vendor of this name.")
@click.option("--category", metavar="ID", help="The new vendor's category.")
@click.option("--policy-url", default="", metavar="URL", help="The new vendor's privacy policy.")
@click.option("--essential", "reason", metavar="REASON", help="Mark it essential, for this reason.")
@click.option("--lifetime", default="", metavar="TEXT", help='A cookie\'s lifetime as declared ("13 months").')
def classify(config_path: str | None, store_url: str | None, kind: str, subject: str, vendor_id: str | None,
             vendor_name: str | None, category: str | None, policy_url: str, reason: str | None,
             lifetime: str) -> None:
    """Classify a host, cookie or storage name: --vendor ID, --new-vendor NAME --category ID, or --essential."""
    chosen = [name for name, value in (("--vendor", vendor_id), ("--new-vendor", vendor_name),
                                       ("--essential", reason)) if value is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --vendor, --new-vendor or --essential")
    action = ACTIONS[("--vendor", "--new-vendor", "--essential").index(chosen[0])]
    request = DecisionRequest(kind, subject, action, vendor_id=vendor_id or "", vendor_name=vendor_name or "",
                              category=category or "", policy_url=policy_url, reason=reason or "", lifetime=lifetime)
    ctx = log_context(config_path, store_url)
    config = ctx.config
    required = next((c.id for c in config.categories if c.required), None)
    audit = CliAudit(config)

    def decided(overlay: Overlay, at_ms: int) -> Overlay:
        catalog = apply_overlay(site_catalog(config), overlay)
        decision = decide(request, catalog, overlay, categories=config.category_ids, required_category=required,
                          by=audit.user, at_ms=at_ms)
        return overlay.with_decision(decision)

    async def work(log: ConsentLog) -> Overlay:
        store = ClassificationStore(log)
        decided(await store.load(), 0)  # a bad request is refused before anything is audited or written
        audit.write("classify", f"{kind}:{subject.strip()}", outcome="ok", decision=action,
                    vendor=vendor_id or vendor_name or "", reason=reason or "")
        now_ms = int(time.time() * 1000)
        return await store.change(lambda overlay: decided(overlay, now_ms))

    try:
        overlay = run_on_log(ctx, work)
    except ClassificationError as exc:
        raise click.ClickException(f"not classified: {exc.field}: {exc.message}") from None
    click.echo(f"{kind} {subject.strip()}: {action}; classifications version {overlay.version}, applied by every "
               "running instance within seconds")


@inventory.command("unclassify")
@store_options
@click.argument("kind", type=click.Choice(SUBJECT_KINDS))
@click.argument("subject")
def unclassify(config_path: str | None, store_url: str | None, kind: str, subject: str) -> None:
    """Undo the classification of a host, cookie or storage name."""
    ctx = log_context(config_path, store_url)
    audit = CliAudit(ctx.config)

    async def work(log: ConsentLog) -> Overlay:
        store = ClassificationStore(log)
        current = await store.load()
        if current.get(kind, subject) is None:
            raise ClassificationError("subject", f"{kind} {subject} is not classified")
        current.without(kind, subject)
        audit.write("unclassify", f"{kind}:{subject}", outcome="ok")
        return await store.change(lambda overlay: overlay.without(kind, subject))

    try:
        overlay = run_on_log(ctx, work)
    except ClassificationError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{kind} {subject}: classification removed; classifications version {overlay.version}")
