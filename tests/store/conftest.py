"""Store fixtures: events with realistic fields, a Redis server of our own that tests may stop, and a
PostgreSQL schema of each test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from consent_gateway.events import CONSENT_GIVEN, CONSENT_UPDATED, CONSENT_WITHDRAWN, ConsentEvent
from tests.conftest import _redis_answers, free_port, missing

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

BROWSERS = [
    (
        "Chrome",
        "desktop",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    ),
    ("Firefox", "desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"),
    (
        "Mobile Safari",
        "mobile",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    ),
]
COUNTRIES = ["FR", "DE", "US", None]


def make_event(i: int, *, consent_id: str | None = None, timestamp_ms: int | None = None) -> ConsentEvent:
    """A varied but deterministic event: the i-th visitor choice."""
    browser, device, ua = BROWSERS[i % len(BROWSERS)]
    action = (CONSENT_GIVEN, CONSENT_UPDATED, CONSENT_WITHDRAWN)[i % 3]
    return ConsentEvent(
        event_id=uuid.uuid4().hex,
        consent_id=consent_id or f"consent-{i % 7}",
        action=action,
        categories={"analytics": i % 2 == 0 and action != CONSENT_WITHDRAWN, "marketing": i % 5 == 0},
        vendors={"youtube": True} if i % 4 == 0 else {},
        policy_version="2026-01" if i % 3 else "2025-06",
        banner_version="b" * 16,
        timestamp_ms=timestamp_ms if timestamp_ms is not None else BASE_MS + i * 3_600_000,
        page_path=f"/page/{i}",
        referrer_host="example.org" if i % 2 else None,
        ip=f"192.0.2.{i % 250}" if i % 2 else f"2001:db8:{i % 100}::",
        user_agent=ua,
        browser_family=browser,
        browser_version="120",
        os_family="Linux",
        os_version=None,
        device_type=device,
        country=COUNTRIES[i % len(COUNTRIES)],
        is_eu=COUNTRIES[i % len(COUNTRIES)] in ("FR", "DE"),
        region_rule="opt-in",
        gpc=i % 6 == 0,
    )


class RedisProcess:
    """A redis-server of this test's own (AOF on, fsync always), which the test may stop and restart."""

    def __init__(self, workdir: Path, *, persistent: bool = True, options: tuple[str, ...] = ()) -> None:
        self.persistent = persistent
        #: more redis-server arguments, e.g. ("--enable-protected-configs", "yes") to move its folder
        self.options = options
        server = shutil.which("redis-server")
        if server is None:
            missing("redis-server (needed to stop and restart a Redis of the test's own)")
        self.server = str(server)
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.server,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)),
                *(("--appendonly", "yes", "--appendfsync", "always") if self.persistent else ("--appendonly", "no")),
                *("--save", ""),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _redis_answers("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                self.stop()
                missing("Redis (redis-server did not start)")
            time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path / "redis")
    redis.workdir.mkdir()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def volatile_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server with persistence off, as on many development machines."""
    redis = RedisProcess(tmp_path / "volatile-redis", persistent=False)
    redis.workdir.mkdir()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards (never the whole DB)."""
    import redis as redis_sync

    prefix = f"cgtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis_sync.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A schema no other test uses, dropped afterwards with everything in it (never the whole database)."""
    import psycopg

    schema = f"cgtest_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class RedisClusterProcesses:
    """A Redis Cluster of three masters on loopback (``redis-server --cluster-enabled yes`` on three free ports,
    joined by ``redis-cli --cluster create``), each with AOF and fsync always, in a folder of its own."""

    def __init__(self, workdir: Path) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            missing("redis-server and redis-cli (needed to start a Redis Cluster of the tests' own)")
        self.server, self.cli = str(server), str(cli)
        self.workdir = workdir
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        while len(self.ports) < 3:
            port = free_port()
            if port + 10000 < 65536 and port not in self.ports and _bindable(port + 10000):  # the cluster bus
                self.ports.append(port)
        for port in self.ports:
            folder = self.workdir / str(port)
            folder.mkdir(parents=True)
            self.processes.append(
                subprocess.Popen(
                    [
                        self.server,
                        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
                        *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                        *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 15
        while not all(_redis_answers("127.0.0.1", p) for p in self.ports):
            if time.monotonic() > deadline:
                self.stop()
                missing("Redis Cluster (a redis-server did not start)")
            time.sleep(0.05)
        created = subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            self.stop()
            missing(
                f"Redis Cluster (redis-cli --cluster create failed: {created.stdout[-400:]}{created.stderr[-400:]})"
            )
        while not all(self._cluster_ok(p) for p in self.ports):
            if time.monotonic() > deadline + 30:
                self.stop()
                missing("Redis Cluster (cluster_state never became ok)")
            time.sleep(0.1)

    def _cluster_ok(self, port: int) -> bool:
        info = subprocess.run(
            [self.cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True, timeout=10, check=False
        )
        return "cluster_state:ok" in info.stdout

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)
        self.processes = []


def _bindable(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real 3-master Redis Cluster for the whole session (``CONSENT_GATEWAY_TEST_REDIS_CLUSTER_URL``, e.g.
    ``redis+cluster://host:7000``, names one instead). Under ``CI=true`` failing to start it fails the tests."""
    url = os.environ.get("CONSENT_GATEWAY_TEST_REDIS_CLUSTER_URL")
    if url:
        yield url
        return
    cluster = RedisClusterProcesses(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()
