"""Shared fixtures: real services on loopback, never mocks.

Redis: `CONSENT_GATEWAY_TEST_REDIS_URL`, else the server on 127.0.0.1:6379 when it answers, else a
`redis-server` this session starts on a free port. PostgreSQL: `CONSENT_GATEWAY_TEST_POSTGRES_URL`, else the
server on 127.0.0.1:5432 when it answers, else one this session creates with `initdb` and `pg_ctl` in a
temporary folder. Chromium: `CONSENT_GATEWAY_CHROMIUM`, else the system's.
Under `CI=true` a missing Redis, PostgreSQL or browser fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.throwaway_postgres import ServerUnavailable, answers, throwaway_postgres
from consent_gateway import metrics
from consent_gateway.config import Config, GatewayConfig, StoreConfig

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_SECRET_KEYS = ["test-signing-key-0123456789-abcdefghijklmnop", "older-test-key-0123456789-abcdefghijklmnop"]


def pytest_report_header() -> str:
    """Which rewriter core this run tests (see consent_gateway/compiled.py)."""
    from consent_gateway.compiled import core_path

    path, reason = core_path()
    return f"rewriter core: {path}" + (f" ({reason})" if reason else " (mypyc)")


def missing(what: str) -> None:
    """Skip locally, fail under CI: a missing service must never pass silently there."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true", pytrace=False)
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("CONSENT_GATEWAY_TEST_REDIS_URL")
    if url:
        yield url
        return
    if _redis_answers("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    server = shutil.which("redis-server")
    if server is None:
        missing("Redis (no server on 127.0.0.1:6379 and no redis-server to start)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _redis_answers("127.0.0.1", port):
        if time.monotonic() > deadline:
            process.kill()
            missing("Redis (redis-server did not start)")
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server URL; tests make their own schema in it (see tests/store/conftest.py)."""
    url = os.environ.get("CONSENT_GATEWAY_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg (pip install 'consent-gateway[postgres]', or run scripts/install)")
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if answers(local):
        yield local
        return
    # fsync off: the tests' data is thrown away (the torn-write tests kill processes, not the machine)
    try:
        with throwaway_postgres({"fsync": "off"}) as url:
            yield url
    except ServerUnavailable as exc:
        missing(f"PostgreSQL (no server on 127.0.0.1:5432; {exc.reason})")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CONSENT_GATEWAY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        missing("Chromium (install Debian's chromium or set CONSENT_GATEWAY_CHROMIUM)")
    return str(path)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see no CONSENT_GATEWAY_* variable of the developer's own, no ./consent-data of theirs (the demo
    leaves one, with its own keys, in the checkout), and fresh counters."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("CONSENT_GATEWAY_") and name not in (
            "CONSENT_GATEWAY_CHROMIUM",
            "CONSENT_GATEWAY_TEST_REDIS_URL",
            "CONSENT_GATEWAY_TEST_POSTGRES_URL",
        ):
            monkeypatch.delenv(name)
    metrics.reset()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The built-in defaults, with the data folder (SQLite log, spool, key) in a temp dir."""
    return replace(
        Config(),
        gateway=replace(GatewayConfig(), data_dir=str(tmp_path / "consent-data"), instance_id="test"),
        store=StoreConfig(url=f"sqlite:///{tmp_path / 'consent-data' / 'consent.db'}"),
    )
