"""Erasure is never refused because the store is down: it is queued on disk, audited, and applied when
the store answers again (dashboard and CLI alike)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.cli import main
from consent_gateway.config import AdminConfig, AdminUser, Config, GatewayConfig, StoreConfig
from consent_gateway.middleware import ConsentGateway
from consent_gateway.store import open_log
from consent_gateway.store.erasure_queue import QUEUE_FILE, ErasureQueue
from tests.admin.conftest import FAST_ARGON2, csrf_of
from tests.conftest import TEST_SECRET_KEYS
from tests.store.conftest import RedisProcess, make_event
from tests.store.test_contract import chained

ADMIN = "/_consent/admin"
PASSWORD = "a long enough passphrase"
ORIGIN = {"Origin": "http://testserver"}


def gateway_config(tmp_path: Path, url: str) -> Config:
    return replace(
        Config(),
        gateway=replace(GatewayConfig(), data_dir=str(tmp_path / "data"), instance_id="erase-test"),
        store=StoreConfig(url=url, timeout_seconds=0.5),
        admin=AdminConfig(
            users=(AdminUser(name="dpo", password_hash=FAST_ARGON2.hash(PASSWORD), role="privacy-officer"),),
            audit_log=str(tmp_path / "audit.jsonl"),
        ),
    )


def audit_lines(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def history_ips(url: str, consent_id: str) -> list[str | None]:
    async def read() -> list[str | None]:
        log = open_log(url)
        await log.open()
        try:
            return [e.ip for e in await log.history(consent_id)]
        finally:
            await log.close()

    return asyncio.run(read())


def fill(url: str, consent_id: str) -> None:
    async def write() -> None:
        log = open_log(url)
        await log.open()
        await log.append(chained([make_event(i, consent_id=consent_id) for i in range(3)], "earlier"))
        await log.close()

    asyncio.run(write())


def test_an_erasure_asked_on_the_dashboard_while_redis_is_down_is_queued_then_applied(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    fill(own_redis.url, "visitor-to-erase")
    site = Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])
    app = ConsentGateway(site, gateway_config(tmp_path, own_redis.url), secret_keys=TEST_SECRET_KEYS)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        form = client.get(f"{ADMIN}/login")
        login = {"csrf_token": csrf_of(form.text), "name": "dpo", "password": PASSWORD, "next": "/"}
        assert client.post(f"{ADMIN}/login", data=login, headers=ORIGIN).status_code == 303
        csrf = csrf_of(client.get(f"{ADMIN}/erase").text)
        own_redis.stop(kill=True)
        response = client.post(
            f"{ADMIN}/erase/confirm",
            data={"csrf_token": csrf, "consent_id": "visitor-to-erase", "confirm": "yes"},
            headers=ORIGIN,
        )
        assert response.status_code == 202, response.text
        assert "queued" in response.text and "applied as soon as the consent log answers" in response.text
        assert (tmp_path / "data" / "spool" / QUEUE_FILE).exists()
        queued = [line for line in audit_lines(tmp_path) if line["action"] == "erase"]
        assert queued and queued[-1]["outcome"] == "queued" and queued[-1]["target"] == "visitor-to-erase"
        own_redis.start()
        deadline = time.monotonic() + 20
        while ErasureQueue(tmp_path / "data" / "spool").pending():
            assert time.monotonic() < deadline, "the queued erasure was never applied"
            time.sleep(0.2)
    assert history_ips(own_redis.url, "visitor-to-erase") == [None, None, None]
    applied = [line for line in audit_lines(tmp_path) if line["action"] == "erase-applied"]
    assert applied and applied[-1]["target"] == "visitor-to-erase" and applied[-1]["events"] == 3


def test_the_cli_queues_an_erasure_while_the_store_is_down_and_audits_every_erasure(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    fill(own_redis.url, "cli-visitor")
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n[store]\nurl = "{own_redis.url}"\ntimeout_seconds = 0.5\n'
        f'[admin]\naudit_log = "{tmp_path / "audit.jsonl"}"\n'
    )
    runner = CliRunner()
    own_redis.stop(kill=True)
    queued = runner.invoke(main, ["logs", "erase", "--config", str(config_file), "--consent-id", "cli-visitor", "-y"])
    assert queued.exit_code == 0, queued.output
    assert "queued" in queued.output
    assert [r.consent_id for r in ErasureQueue(tmp_path / "data" / "spool").pending()] == ["cli-visitor"]
    own_redis.start()
    applied = runner.invoke(main, ["logs", "erase", "--config", str(config_file), "--apply-queued"])
    assert applied.exit_code == 0, applied.output
    assert history_ips(own_redis.url, "cli-visitor") == [None, None, None]
    assert ErasureQueue(tmp_path / "data" / "spool").pending() == []
    fill(own_redis.url, "second-visitor")
    direct = runner.invoke(
        main, ["logs", "erase", "--config", str(config_file), "--consent-id", "second-visitor", "-y"]
    )
    assert direct.exit_code == 0, direct.output
    actions = [(line["action"], line["target"], line["outcome"], line["user"]) for line in audit_lines(tmp_path)]
    assert ("erase", "cli-visitor", "queued", actions[0][3]) in actions
    assert ("erase-applied", "cli-visitor", "ok", actions[0][3]) in actions
    assert ("erase", "second-visitor", "ok", actions[0][3]) in actions
    assert str(actions[0][3]).startswith("cli:")


def test_a_damaged_record_of_the_queue_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    queue = ErasureQueue(tmp_path)
    queue.add("first", "dpo")
    with open(tmp_path / QUEUE_FILE, "ab") as f:
        f.write(b'\n0000002a deadbeef {"torn')  # a write cut short by a full disk or a crash
    queue.add("second", "dpo")
    assert [r.consent_id for r in queue.pending()] == ["first", "second"]


def test_a_visitors_own_erasure_while_redis_is_down_is_queued_then_applied(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    site = Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])
    app = ConsentGateway(site, gateway_config(tmp_path, own_redis.url), secret_keys=TEST_SECRET_KEYS)
    same_origin = {"Sec-Fetch-Site": "same-origin"}
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        chosen = client.post(
            "/_consent/choices", json={"action": "accept_all"}, headers={**same_origin, "User-Agent": "Firefox/1"}
        )
        consent_id = chosen.json()["consent_id"]
        own_redis.stop(kill=True)
        response = client.post(
            "/_consent/me/erase", data={"consent_id": consent_id, "confirm": "yes"}, headers=same_origin
        )
        # never refused: the visitor is told it is done, the erasure waits on disk, the event in the spool
        assert response.status_code == 303 and response.headers["location"] == "/_consent/me?done=erased"
        assert [e.consent_id for e in ErasureQueue(tmp_path / "data" / "spool").pending()] == [consent_id]
        own_redis.start()
        deadline = time.monotonic() + 20
        while ErasureQueue(tmp_path / "data" / "spool").pending():
            assert time.monotonic() < deadline, "the queued erasure was never applied"
            time.sleep(0.2)

    async def read() -> list[tuple[str, str | None]]:
        log = open_log(own_redis.url)
        await log.open()
        try:
            return [(e.action, e.user_agent) for e in await log.history(consent_id)]
        finally:
            await log.close()

    assert asyncio.run(read()) == [("consent-given", None), ("data-erased", None)]
