"""Signed checkpoints and the auditor's check: an export and the public key are enough."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from consent_gateway.cli import main
from consent_gateway.events import EventChain, LogKeys
from consent_gateway.store import Checkpoint, ConsentLog, EventFilter, open_log
from consent_gateway.store.proof import (
    CheckpointWriter,
    audit_record,
    is_signed_by,
    load_checkpoint_key,
    load_log_keys,
    load_public_key,
    public_key_text,
    take_checkpoint,
    verify_export,
)
from tests.store.conftest import BASE_MS, make_event

LOG_KEY = "proof-test-log-key-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
async def log(tmp_path: Path):  # type: ignore[no-untyped-def]
    log = open_log(f"sqlite:///{tmp_path / 'consent.db'}", log_keys=LogKeys([LOG_KEY]))
    await log.open()
    chain = EventChain("gw-1", keys=LogKeys([LOG_KEY]))
    await log.append([chain.append(make_event(i)) for i in range(12)])
    yield log
    await log.close()


async def audit_lines(log: ConsentLog, tmp_path: Path) -> tuple[list[str], str]:
    key = load_checkpoint_key(tmp_path / "keys")
    checkpoint = await take_checkpoint(log, key)
    lines = [json.dumps({"checkpoint": json.loads(checkpoint.to_json())})]
    lines += [json.dumps(audit_record(e)) async for e in log.export(EventFilter())]
    return lines, public_key_text(key)


async def test_an_untouched_export_verifies_with_the_public_key_alone(log: ConsentLog, tmp_path: Path) -> None:
    lines, public = await audit_lines(log, tmp_path)
    result = verify_export(lines, load_public_key(public))
    assert result.ok, result.problems
    assert result.events_checked == 12
    assert any("MAC" in limit for limit in result.unproven)  # says the auditor cannot check the log key
    assert all("ip" not in json.loads(line) for line in lines[1:])  # no personal data in an auditor's copy


@pytest.mark.parametrize("forgery", ["edit", "delete", "insert", "reorder", "truncate", "signature", "other-key"])
async def test_every_forgery_of_an_export_is_named(log: ConsentLog, tmp_path: Path, forgery: str) -> None:
    lines, public = await audit_lines(log, tmp_path)
    events = [json.loads(line) for line in lines[1:]]
    if forgery == "edit":
        events[3]["categories"] = {"analytics": True, "marketing": True}
    elif forgery == "delete":
        del events[5]
    elif forgery == "insert":
        extra = dict(events[5], event_id="intruder", consent_id="forged")
        events.insert(6, extra)
    elif forgery == "reorder":
        events[2]["seq"], events[3]["seq"] = events[3]["seq"], events[2]["seq"]
    elif forgery == "truncate":
        events = events[:-2]
    checkpoint = json.loads(lines[0])
    if forgery == "signature":
        checkpoint["checkpoint"]["heads"]["gw-1"]["seq"] = 10  # a shorter log, the signature kept
    if forgery == "other-key":
        public = public_key_text(load_checkpoint_key(tmp_path / "attacker"))
    forged = [json.dumps(checkpoint)] + [json.dumps(e) for e in events]
    result = verify_export(forged, load_public_key(public))
    assert not result.ok, forgery


def test_an_export_without_a_checkpoint_proves_nothing(tmp_path: Path) -> None:
    public = load_public_key(public_key_text(load_checkpoint_key(tmp_path)))
    result = verify_export([json.dumps({"event_id": "x"})], public)
    assert not result.ok
    assert "checkpoint" in {where for where, _ in result.problems}


async def test_the_gateway_writes_signed_checkpoints_at_its_interval(log: ConsentLog, tmp_path: Path) -> None:
    key = load_checkpoint_key(tmp_path / "keys")
    path = tmp_path / "outside" / "checkpoint.json"
    writer = CheckpointWriter(log, path, key, interval_s=0.05)
    writer.start()
    try:
        for _ in range(200):
            if path.exists():
                break
            await asyncio.sleep(0.02)
    finally:
        await writer.stop()
    checkpoint = Checkpoint.load(path)
    assert checkpoint.heads["gw-1"].seq == 12
    assert is_signed_by(checkpoint, key.public_key())
    assert (await log.verify(checkpoint)).ok


def test_keys_are_generated_once_into_the_data_folder_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="consent_gateway.store.proof"):
        first = load_log_keys(tmp_path)
        key = load_checkpoint_key(tmp_path)
    assert "CONSENT_GATEWAY_LOG_KEYS" in caplog.text and "CONSENT_GATEWAY_CHECKPOINT_KEY" in caplog.text
    assert load_log_keys(tmp_path).writing_id == first.writing_id
    assert public_key_text(load_checkpoint_key(tmp_path)) == public_key_text(key)
    assert (tmp_path / "log.key").stat().st_mode & 0o077 == 0
    rotated = load_log_keys(tmp_path, {"CONSENT_GATEWAY_LOG_KEYS": "n" * 40 + "," + "o" * 40})
    assert len(rotated.by_id) == 2


def test_the_cli_prints_the_public_key_and_an_auditor_verifies_an_export(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\ndata_dir = "{data}"\n')
    printed = runner.invoke(main, ["keys", "--config", str(config)])
    assert printed.exit_code == 0, printed.output
    public = printed.output.split("checkpoint public key: ")[1].split()[0]
    assert public.startswith("ed25519:")
    assert runner.invoke(main, ["keys", "generate"]).output.strip()  # still works

    async def fill() -> None:
        log = open_log(f"sqlite:///{data / 'consent.db'}", log_keys=load_log_keys(data))
        await log.open()
        chain = EventChain("gw-1", keys=load_log_keys(data))
        await log.append([chain.append(make_event(i, timestamp_ms=BASE_MS + i)) for i in range(6)])
        await log.close()

    asyncio.run(fill())
    verified = runner.invoke(main, ["logs", "verify", "--config", str(config)])
    assert verified.exit_code == 0, verified.output
    assert "no checkpoint" in verified.output and "OK" not in verified.output
    made = runner.invoke(main, ["logs", "checkpoint", "--config", str(config), "-o", str(data / "checkpoint.json")])
    assert made.exit_code == 0, made.output
    verified = runner.invoke(main, ["logs", "verify", "--config", str(config)])
    assert verified.exit_code == 0 and "no checkpoint" not in verified.output, verified.output
    export = tmp_path / "audit.jsonl"
    exported = runner.invoke(main, ["logs", "export", "--config", str(config), "--format", "audit", "-o", str(export)])
    assert exported.exit_code == 0, exported.output
    alone = runner.invoke(main, ["logs", "verify", "--export", str(export), "--public-key", public])
    assert alone.exit_code == 0, alone.output
    assert "VERIFIED: 6 audit export events in 1 chain" in alone.output
    lines = export.read_text().splitlines()
    event = json.loads(lines[3])
    event["action"] = "consent-given"
    event["categories"] = {"marketing": True}
    lines[3] = json.dumps(event)
    export.write_text("\n".join(lines) + "\n")
    broken = runner.invoke(main, ["logs", "verify", "--export", str(export), "--public-key", public])
    assert broken.exit_code == 1
    assert event["event_id"] in broken.output
