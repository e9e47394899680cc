"""Proof a regulator can check: the log's HMAC keys, Ed25519-signed checkpoints, and the auditor's check.

Two keys, both apart from the cookie keys:

- the **log keys** (HMAC, ``CONSENT_GATEWAY_LOG_KEYS``, comma-separated, the first writes, all verify) make
  each event's MAC, so nobody without them can add or rewrite an event that ``logs verify`` accepts;
- the **checkpoint key** (Ed25519, ``CONSENT_GATEWAY_CHECKPOINT_KEY``, base64 of the 32-byte private key)
  signs the chain heads the gateway writes every ``[store] checkpoint_interval_seconds`` to a file outside
  the store. Its public key (``consent-gateway keys``) is all an auditor needs: with it and an export
  (``logs export --format audit``) they check the public hash chains up to the signed heads.

Without the environment variables each key is generated once into the data folder, with a warning, as
the cookie signing key is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consent_gateway.background import BackgroundTask
from consent_gateway.errors import ConfigError, StoreUnavailable
from consent_gateway.events import (
    PERSONAL_FIELDS,
    ChainVerifier,
    ConsentEvent,
    LogKeys,
    event_from_dict,
)
from consent_gateway.export import ExportColumns, record
from consent_gateway.store.base import Checkpoint, ConsentLog, VerifyResult

LOG_KEYS_ENV = "CONSENT_GATEWAY_LOG_KEYS"
CHECKPOINT_KEY_ENV = "CONSENT_GATEWAY_CHECKPOINT_KEY"
LOG_KEY_FILE_NAME = "log.key"
CHECKPOINT_KEY_FILE_NAME = "checkpoint.key"
MIN_LOG_KEY_LENGTH = 32

logger = logging.getLogger("consent_gateway.store.proof")


# -- keys -------------------------------------------------------------------------------------------------


def load_log_keys(data_dir: Path, environ: Mapping[str, str] | None = None) -> LogKeys:
    """The log's HMAC keys: from the environment, else one generated once into the data folder."""
    environ = os.environ if environ is None else environ
    raw = environ.get(LOG_KEYS_ENV, "").strip()
    if raw:
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        if any(len(k) < MIN_LOG_KEY_LENGTH for k in keys):
            raise ConfigError(
                LOG_KEYS_ENV,
                f"every log key needs {MIN_LOG_KEY_LENGTH} characters or more; "
                "make one with `consent-gateway keys generate`",
                file="environment",
            )
        return LogKeys(keys)
    return LogKeys([_key_file(data_dir / LOG_KEY_FILE_NAME, lambda: secrets.token_urlsafe(48), LOG_KEYS_ENV)])


def find_log_keys(data_dir: Path, environ: Mapping[str, str] | None = None) -> LogKeys | None:
    """The log keys if there are any (the environment, or the data folder's file); never creates one."""
    environ = os.environ if environ is None else environ
    if environ.get(LOG_KEYS_ENV, "").strip() or (data_dir / LOG_KEY_FILE_NAME).is_file():
        return load_log_keys(data_dir, environ)
    return None


def find_checkpoint_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey | None:
    """The checkpoint key if there is one; never creates one."""
    environ = os.environ if environ is None else environ
    if environ.get(CHECKPOINT_KEY_ENV, "").strip() or (data_dir / CHECKPOINT_KEY_FILE_NAME).is_file():
        return load_checkpoint_key(data_dir, environ)
    return None


def load_checkpoint_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey:
    """The Ed25519 key that signs checkpoints: from the environment, else generated into the data folder."""
    environ = os.environ if environ is None else environ
    raw = environ.get(CHECKPOINT_KEY_ENV, "").strip()
    where = "environment"
    if not raw:
        path = data_dir / CHECKPOINT_KEY_FILE_NAME
        raw, where = _key_file(path, new_checkpoint_key_text, CHECKPOINT_KEY_ENV), str(path)
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw, validate=True))
    except ValueError as exc:
        raise ConfigError(
            CHECKPOINT_KEY_ENV, f"not a base64 Ed25519 private key (32 bytes): {exc}", file=where
        ) from None


def new_checkpoint_key_text() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def new_checkpoint_key_pair() -> tuple[str, str]:
    """A fresh private key (for ``CONSENT_GATEWAY_CHECKPOINT_KEY``) and its public key (for auditors)."""
    private = new_checkpoint_key_text()
    return private, public_key_text(Ed25519PrivateKey.from_private_bytes(base64.b64decode(private)))


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """``ed25519:<base64 of the 32-byte public key>``: what ``consent-gateway keys`` prints for auditors."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return "ed25519:" + base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key as ``consent-gateway keys`` prints it, or a file holding that text."""
    value = text.strip()
    if not value.startswith("ed25519:") and Path(value).is_file():
        value = Path(value).read_text(encoding="ascii").strip()
    if not value.startswith("ed25519:"):
        raise ValueError("expected ed25519:<base64> (as `consent-gateway keys` prints it) or a file holding it")
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(value.removeprefix("ed25519:"), validate=True))


def _key_id(public: Ed25519PublicKey) -> str:
    import hashlib

    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:8]


def _key_file(path: Path, make: Callable[[], str], env: str) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:  # O_EXCL: two processes starting together keep the first key written
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    key = make()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    logger.warning("generated a key in %s; in production set %s (see `consent-gateway keys`)", path, env)
    return key


# -- checkpoints ------------------------------------------------------------------------------------------


def sign_checkpoint(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> Checkpoint:
    signature = base64.b64encode(key.sign(checkpoint.signed_bytes())).decode()
    return Checkpoint(
        heads=checkpoint.heads,
        created_at_ms=checkpoint.created_at_ms,
        anchors=checkpoint.anchors,
        signature=f"ed25519:{_key_id(key.public_key())}:{signature}",
    )


def is_signed_by(checkpoint: Checkpoint, public: Ed25519PublicKey) -> bool:
    scheme, _, rest = checkpoint.signature.partition(":")
    _, _, signature = rest.partition(":")
    if scheme != "ed25519" or not signature:
        return False
    try:
        public.verify(base64.b64decode(signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


async def take_checkpoint(log: ConsentLog, key: Ed25519PrivateKey) -> Checkpoint:
    heads = await log.chain_heads()
    anchors = await log.chain_anchors()
    return sign_checkpoint(Checkpoint(heads=heads, created_at_ms=int(time.time() * 1000), anchors=anchors), key)


class CheckpointWriter:
    """Writes a signed checkpoint of every chain head to a file outside the store: at start, then every
    ``interval_s``."""

    def __init__(self, log: ConsentLog, path: Path, key: Ed25519PrivateKey, *, interval_s: float) -> None:
        self.log = log
        self.path = path
        self.key = key
        self.interval_s = interval_s
        self._background = BackgroundTask("checkpoints")

    def start(self) -> None:
        if self.interval_s > 0:
            self._background.start(self._loop)

    async def write_once(self) -> Checkpoint:
        checkpoint = await take_checkpoint(self.log, self.key)
        await asyncio.to_thread(checkpoint.save, self.path)
        return checkpoint

    async def _loop(self) -> None:
        # The first one at start-up: a restarted gateway does not leave the tail unproven for a whole interval.
        while True:
            try:
                await self.write_once()
            except (StoreUnavailable, OSError) as exc:
                logger.warning("could not write the signed checkpoint to %s: %s", self.path, exc)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        await self._background.stop()


# -- the auditor's check ----------------------------------------------------------------------------------


def audit_record(event: ConsentEvent) -> dict[str, Any]:
    """An event as the audit export holds it: the export's columns without the personal ones (so no salts)
    and with the proof ones — every hashed field. Any such export verifies, the dashboard's included."""
    return record(event, ExportColumns((), personal=False, proof=True))


def verify_export(lines: Iterable[str], public: Ed25519PublicKey) -> VerifyResult:
    """Check an audit export alone: its signed checkpoint, then every chain's public hashes up to it."""
    checkpoint: Checkpoint | None = None
    chains: dict[str, list[ConsentEvent]] = {}
    problems: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if "checkpoint" in data:
                checkpoint = Checkpoint.from_dict(data["checkpoint"])
                continue
            event = event_from_dict({**dict.fromkeys(PERSONAL_FIELDS), "salts": {}, **data})
        except (ValueError, TypeError, KeyError) as exc:
            problems.append((f"line {number}", f"unreadable: {exc}"))
            continue
        chains.setdefault(event.instance_id, []).append(event)
    if checkpoint is None:
        problems.append(("checkpoint", "the export holds no signed checkpoint: nothing in it can be proven"))
        return VerifyResult.of(problems, events_checked=sum(map(len, chains.values())), chains=len(chains))
    if not is_signed_by(checkpoint, public):
        problems.append(("checkpoint", "the checkpoint's signature does not verify with this public key"))
        return VerifyResult.of(problems, events_checked=sum(map(len, chains.values())), chains=len(chains))
    checked = 0
    newer = 0
    for instance in sorted(set(chains) | set(checkpoint.heads)):
        events = sorted(chains.get(instance, []), key=lambda e: e.seq)
        head = checkpoint.heads.get(instance)
        anchor = checkpoint.anchors.get(instance)
        if head is None:
            older = [e for e in events if e.timestamp_ms <= checkpoint.created_at_ms]
            if older:
                problems.append((older[0].event_id, "chain unknown to the checkpoint though its events are older"))
            newer += len(events)
            continue
        verifier = ChainVerifier(instance, anchor, heads=[head])
        for event in events:
            if event.seq > head.seq:
                newer += 1
                continue
            verifier.feed(event)
        verifier.finish(head, source="the signed checkpoint")
        checked += verifier.checked
        problems += verifier.problems
    unproven = [
        "the log keys' MACs are not checked (an auditor does not hold the log key): the public hashes are checked "
        "against the heads signed at "
        + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(checkpoint.created_at_ms / 1000))
    ]
    if newer:
        unproven.append(f"{newer} events written after the checkpoint are not covered by its signature")
    return VerifyResult.of(
        problems,
        events_checked=checked + newer,
        chains=len(set(chains) | set(checkpoint.heads)),
        unproven=tuple(unproven),
    )
