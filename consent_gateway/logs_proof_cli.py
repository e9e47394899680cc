"""The integrity side of `logs`: signed checkpoints, verification, and the auditor's export they prove."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import click

from .errors import ConfigError
from .export import EventWriter, ExportColumns
from .logs_common import EXIT_BROKEN, LogContext, format_time, log_context, run_on_log, store_options
from .store import Checkpoint, ConsentLog, EventFilter, VerifyResult
from .store.proof import (
    find_checkpoint_key,
    is_signed_by,
    load_public_key,
    public_key_text,
    sign_checkpoint,
    verify_export,
)


def export_audit(ctx: LogContext, output: str, checkpoint_path: str | None) -> None:
    """Every event (no filter: an auditor checks whole chains), after the latest signed checkpoint."""
    categories = tuple(c.id for c in ctx.config.categories if not c.required)
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
            # the export module's JSON Lines, without the personal columns: the same records as any export
            writer = EventWriter(stream, "jsonl", ExportColumns(categories, personal=False, proof=True))
            async for event in log.export(EventFilter()):
                writer.write(event)
                written += 1
        finally:
            if stream is not sys.stdout:
                stream.close()
        return written

    written = run_on_log(ctx, work)
    click.echo(
        f"{written} events exported for audit, with the checkpoint of {format_time(checkpoint.created_at_ms)} UTC.",
        err=True,
    )


@click.command()
@store_options
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
    ctx = log_context(config_path, store_url)
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
    result = run_on_log(ctx, lambda log: log.verify(checkpoint))
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


@click.command()
@store_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True),
    required=True,
    help="Where to write the checkpoint: keep it outside the store (another host, a signed mail…).",
)
def checkpoint(config_path: str | None, store_url: str | None, output: str) -> None:
    """Record the chain heads, so that `verify --checkpoint` detects a truncated tail later."""
    ctx = log_context(config_path, store_url)
    heads, anchors = run_on_log(ctx, lambda log: asyncio.gather(log.chain_heads(), log.chain_anchors()))
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
