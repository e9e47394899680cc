"""Two gateway processes with one ``instance_id`` would fork its chain: the second is refused at start.

The id is leased in the store (``instance:<id>``) on SQLite, Redis and PostgreSQL alike; the lease is
renewed while the gateway runs, given back at shutdown, and outlives a holder killed with ``kill -9`` by
at most its TTL (not at all when that holder ran on this host and its process is gone).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway._types import ASGIApp, Receive, Scope, Send
from consent_gateway.config import Config, GatewayConfig, StoreConfig
from consent_gateway.middleware import ConsentGateway
from consent_gateway.store import open_log
from tests.conftest import TEST_SECRET_KEYS

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}

HOLDER_SCRIPT = """
import asyncio, sys
from consent_gateway.store import open_log
from consent_gateway.store.coordination import StoreLease

async def main() -> None:
    log = open_log(sys.argv[1])
    await log.open()
    lease = StoreLease(log, "instance:shop-1", ttl_s=60)
    assert await lease.try_acquire()
    print("held", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared' / 'consent.db'}"
    if request.param == "redis":
        return f"{request.getfixturevalue('redis_url')}?prefix={request.getfixturevalue('redis_prefix')}"
    return f"{request.getfixturevalue('postgres_url')}?schema={request.getfixturevalue('postgres_schema')}"


def site() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])


def gateway(tmp_path: Path, store_url: str, name: str, *, lease_seconds: float = 30.0) -> ConsentGateway:
    """A gateway with its own data folder and spool, on the shared store, as instance ``shop-1``."""
    config = replace(
        Config(),
        gateway=replace(GatewayConfig(), data_dir=str(tmp_path / name), instance_id="shop-1"),
        store=StoreConfig(url=store_url, lease_seconds=lease_seconds),
    )
    return ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)


def served_without_lifespan(app: ConsentGateway) -> ASGIApp:
    """``app`` as a server that sends no lifespan events runs it (the gateway starts on first use);
    closed when the test client stops."""

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await app.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return server


def grant(client: TestClient) -> int:
    return client.post("/_consent/choices", json={"action": "accept_all"}, headers=SAME_ORIGIN).status_code


def test_a_second_process_with_the_same_instance_id_is_refused_naming_the_key_and_the_holder(
    tmp_path: Path, store_url: str
) -> None:
    with TestClient(gateway(tmp_path, store_url, "first")) as first:
        assert grant(first) == 200
        second_app = gateway(tmp_path, store_url, "second")
        with pytest.raises(RuntimeError) as refused, TestClient(second_app):
            pass
        message = str(refused.value) + str(second_app.keeper.conflict)
        assert "gateway.instance_id 'shop-1' is already in use" in message
        assert "'instance:shop-1'" in message and "on host" in message and "process" in message
        # Served without lifespan (the lazy start): grants are refused, health says why, the first goes on.
        with TestClient(served_without_lifespan(gateway(tmp_path, store_url, "third"))) as lazy:
            assert grant(lazy) == 503
            health = lazy.get("/_consent/health").json()
            assert health["status"] == "degraded" and health["instance_lease"] == "conflict"
            assert lazy.get("/_consent/ready").status_code == 503
        assert grant(first) == 200
        assert first.get("/_consent/health").json()["instance_lease"] == "held"
    # The first gave its lease back at shutdown: the next process starts at once.
    with TestClient(gateway(tmp_path, store_url, "fourth")) as after:
        assert grant(after) == 200
        health = after.get("/_consent/health").json()
        assert health | {"store": None, "clock": None} == {
            "status": "ok",
            "store": None,
            "spool": {"ok": True, "depth": 0},
            "spool_depth": 0,
            "instance_lease": "held",
            "clock": None,
        }
        # Redis and PostgreSQL have a clock of their own; SQLite's is this machine's
        assert health["clock"]["ok"] is True
        assert health["clock"]["source"] == ("local" if store_url.startswith("sqlite") else "store")


def test_the_lease_is_renewed_while_the_gateway_runs(tmp_path: Path, store_url: str) -> None:
    with TestClient(gateway(tmp_path, store_url, "first", lease_seconds=1.0)) as first:
        time.sleep(2.5)  # more than twice the TTL: only renewals keep it
        second_app = gateway(tmp_path, store_url, "second", lease_seconds=1.0)
        with pytest.raises(RuntimeError), TestClient(second_app):
            pass
        assert second_app.keeper.conflict is not None
        assert grant(first) == 200


def test_after_kill_9_a_restart_on_the_same_host_takes_the_lease_at_once(tmp_path: Path, store_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, store_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held", holder.stderr.read() if holder.stderr else ""
        alive = gateway(tmp_path, store_url, "while-alive")
        with pytest.raises(RuntimeError), TestClient(alive):
            pass
        assert alive.keeper.conflict is not None and f"process {holder.pid} " in alive.keeper.conflict
    finally:
        holder.kill()  # kill -9: no shutdown, the lease stays in the store with 60 s to go
        holder.communicate()
    with TestClient(gateway(tmp_path, store_url, "restarted")) as restarted:
        assert grant(restarted) == 200


def test_a_holder_on_another_host_that_stopped_renewing_is_replaced_after_the_ttl(
    tmp_path: Path, store_url: str
) -> None:
    async def plant() -> None:
        log = open_log(store_url)
        await log.open()
        assert await log.lease("instance:shop-1", "other-host/4242/0/feedface", 1500) == "other-host/4242/0/feedface"
        await log.close()

    asyncio.run(plant())
    early = gateway(tmp_path, store_url, "early")
    with pytest.raises(RuntimeError), TestClient(early):
        pass
    assert early.keeper.conflict is not None and "host 'other-host'" in early.keeper.conflict
    time.sleep(1.7)
    with TestClient(gateway(tmp_path, store_url, "late")) as late:
        assert grant(late) == 200
