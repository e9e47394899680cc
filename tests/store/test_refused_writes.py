"""A consent log that answers but refuses writes (issue 10): Redis in MISCONF after a failed save, short of
`min-replicas-to-write`, out of memory under `noeviction`, turned into a read-only replica; PostgreSQL whose
sessions are read-only (what a failover onto a hot standby looks like to the gateway). Each time the grant
is spooled and still acknowledged, `/_consent/ready` answers 503 so a load balancer moves traffic away, and
once the server takes writes again the spool is replayed and readiness comes back. Real servers the tests
start or own (a redis-server of the test's own; a database of its own on the PostgreSQL of the tests)."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import redis as redis_sync
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from consent_gateway import ConsentGateway, routes
from consent_gateway.config import Config, StoreConfig
from tests.conftest import TEST_SECRET_KEYS
from tests.servers import ServerThread
from tests.store.conftest import RedisProcess

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
#: how long a test waits for readiness to turn (write probe every 0.2 s, replay every second)
TURN_SECONDS = 20.0


def site() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: HTMLResponse("<p>hi</p>"))])


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TURN_SECONDS
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


class Visitor:
    """One browser on the gateway: its choices, its receipt; the gateway's readiness and health."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)

    def grant(self) -> httpx.Response:
        return self.client.post("/_consent/choices", json={"action": "accept_all"}, headers=SAME_ORIGIN)

    def ready(self) -> int:
        return self.client.get("/_consent/ready").status_code

    def spool_depth(self) -> int:
        return int(self.client.get("/_consent/health").json()["spool_depth"])

    def recorded_events(self) -> int:
        response = self.client.get("/_consent/receipt")
        assert response.status_code == 200, response.text
        return len(response.json()["events"])


def check_refusal_is_spooled_then_replayed(url: str, refuse: Callable[[], None], accept: Callable[[], None]) -> None:
    visitor = Visitor(url)
    first = visitor.grant()
    assert first.status_code == 200 and first.json()["recorded"] is True
    _wait_for(lambda: visitor.ready() == 200, "the gateway never became ready on a writable log")
    refuse()
    try:
        # the server still answers reads: only a write shows it, and readiness must say so
        _wait_for(lambda: visitor.ready() == 503, "/_consent/ready stayed 200 while the log refused writes")
        second = visitor.grant()
        assert second.status_code == 200, second.text
        assert second.json()["recorded"] is True  # kept on disk, in the spool: the visitor's "yes" stands
        assert "cg_consent=" in second.headers.get("set-cookie", "")
        _wait_for(lambda: visitor.spool_depth() >= 1, "the refused grant is not in the spool")
        assert visitor.ready() == 503
    finally:
        accept()
    _wait_for(lambda: visitor.spool_depth() == 0, "the spool was not replayed once the log took writes again")
    _wait_for(lambda: visitor.ready() == 200, "/_consent/ready did not come back once the log took writes")
    assert visitor.recorded_events() == 2  # both choices, once each, in the log itself
    visitor.client.close()


# -- Redis -------------------------------------------------------------------------------------------------


@pytest.fixture
def refusing_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server with RDB snapshots configured (MISCONF needs them) whose folder a test may move."""
    folder = tmp_path / "redis"
    folder.mkdir()
    redis = RedisProcess(folder, persistent=False, options=("--enable-protected-configs", "yes"))
    redis.start()
    yield redis
    redis.stop()


def _gateway_on(config: Config, url: str, spool: Path) -> ConsentGateway:
    store = StoreConfig(url=url, spool_path=str(spool), timeout_seconds=1.0)
    return ConsentGateway(site(), replace(config, store=store), secret_keys=TEST_SECRET_KEYS)


def _refusals(redis: RedisProcess, tmp_path: Path) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    admin = redis_sync.Redis(port=redis.port)
    gone = tmp_path / "gone"

    def misconf() -> None:
        # the snapshot folder disappears (a full or unmounted disk): the next save fails and Redis refuses
        # every write with MISCONF until a save succeeds again
        gone.mkdir()
        admin.config_set("save", "3600 1")
        admin.config_set("dir", str(gone))
        gone.rmdir()
        admin.bgsave()
        _wait_for(lambda: admin.info("persistence")["rdb_last_bgsave_status"] == "err", "the save did not fail")

    def misconf_fixed() -> None:
        admin.config_set("dir", str(redis.workdir))
        admin.bgsave()
        _wait_for(lambda: admin.info("persistence")["rdb_last_bgsave_status"] == "ok", "the save still fails")

    return {
        "misconf": (misconf, misconf_fixed),
        "min-replicas-to-write": (
            lambda: admin.config_set("min-replicas-to-write", 1),
            lambda: admin.config_set("min-replicas-to-write", 0),
        ),
        "oom-noeviction": (
            lambda: (admin.config_set("maxmemory-policy", "noeviction"), admin.config_set("maxmemory", 1)),
            lambda: admin.config_set("maxmemory", 0),
        ),
        # a primary demoted to a replica of a primary that is not there (yet): reads answer, writes are READONLY
        "readonly-replica": (lambda: admin.replicaof("127.0.0.1", 1), lambda: admin.replicaof("NO", "ONE")),
    }


@pytest.mark.parametrize("mode", ["misconf", "min-replicas-to-write", "oom-noeviction", "readonly-replica"])
def test_redis_refusing_writes_spools_the_grant_turns_not_ready_and_replays_later(
    refusing_redis: RedisProcess, config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setattr(routes, "WRITE_PROBE_INTERVAL_S", 0.2)
    refuse, accept = _refusals(refusing_redis, tmp_path)[mode]
    gateway = _gateway_on(config, refusing_redis.url, tmp_path / "spool")
    with ServerThread(gateway) as server:
        check_refusal_is_spooled_then_replayed(server.url, refuse, accept)


# -- PostgreSQL --------------------------------------------------------------------------------------------


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A role and a database of this test's own on the tests' PostgreSQL, dropped afterwards: (admin URL
    of that database, the gateway's URL as that role)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"cgtest_ro_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{name}'")
        conn.execute(f"CREATE DATABASE {name} OWNER {name}")
    parts = conninfo_to_dict(postgres_url)
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    admin = make_conninfo(postgres_url, dbname=name)
    try:
        yield admin, f"postgresql://{name}:{name}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {name}")


def test_postgresql_with_read_only_sessions_spools_turns_not_ready_and_replays_later(
    own_database: tuple[str, str], config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    admin, url = own_database
    name = url.rsplit("/", 1)[1]
    monkeypatch.setattr(routes, "WRITE_PROBE_INTERVAL_S", 0.2)

    def set_read_only(on: bool) -> None:
        # every new session of the role is read-only, and the gateway's open sessions are cut: what a
        # failover onto a hot standby (or a role an operator froze) looks like from the gateway
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {name} SET default_transaction_read_only = {'on' if on else 'off'}")
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
                (name,),
            )

    gateway = _gateway_on(config, url, tmp_path / "spool")
    with ServerThread(gateway) as server:
        check_refusal_is_spooled_then_replayed(server.url, lambda: set_read_only(True), lambda: set_read_only(False))


@pytest.fixture
def small_tablespace_database(postgres_url: str) -> Iterator[tuple[Path, str]]:
    """A database of the test's own in a tablespace on a 24 MB tmpfs the test can fill: (mount point, the
    gateway's URL). Needs root (mount) and the PostgreSQL server on this machine; skipped otherwise."""
    import shutil
    import subprocess

    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from tests.conftest import missing

    parts = conninfo_to_dict(postgres_url)
    if parts.get("host", "127.0.0.1") not in ("127.0.0.1", "localhost") or shutil.which("mount") is None:
        missing("a PostgreSQL server on this machine (its tablespace goes on a small disk the test mounts)")
    # outside pytest's folder, which the server's user cannot enter
    mount = Path(tempfile.mkdtemp(prefix="cgtest-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        missing("mount (root) to give PostgreSQL a small disk")
    name = f"cgtest_full_{uuid.uuid4().hex[:10]}"
    try:
        folder = mount / "pg"
        folder.mkdir()
        shutil.chown(folder, "postgres", "postgres")
        mount.chmod(0o755)  # the server's user must reach the folder
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE {name} LOCATION '{folder}'")
            conn.execute(f"CREATE DATABASE {name} TABLESPACE {name}")
        yield mount, postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP TABLESPACE IF EXISTS {name}")
        subprocess.run(["umount", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def test_postgresql_on_a_full_disk_is_not_ready_and_replays_once_space_is_back(
    small_tablespace_database: tuple[Path, str], config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mount, url = small_tablespace_database
    monkeypatch.setattr(routes, "WRITE_PROBE_INTERVAL_S", 0.2)
    filler = mount / "filler"

    def fill() -> None:
        # every free byte of the tablespace's disk taken, as by another database or a log file
        with filler.open("wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * (1 << 16))
                    handle.flush()
            except OSError:
                pass

    gateway = _gateway_on(config, url, tmp_path / "spool")
    with ServerThread(gateway) as server:
        check_refusal_is_spooled_then_replayed(server.url, fill, lambda: filler.unlink())
