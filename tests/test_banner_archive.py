"""Every banner version is archived in the log the first time it is served: once per instance, off the
request path, and tried again later when the log did not answer."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway import banner_archive, metrics
from consent_gateway.config import Config
from consent_gateway.errors import StoreUnavailable
from consent_gateway.middleware import ConsentGateway
from consent_gateway.store.sqlite import SQLiteConsentLog
from tests.conftest import TEST_SECRET_KEYS


class ArchivingLog(SQLiteConsentLog):
    """The real SQLite backend, counting archive calls; the first ``failures`` of them fail like a log down."""

    def __init__(self, url: str, failures: int = 0) -> None:
        super().__init__(url)
        self.calls = 0
        self.failures = failures

    async def archive_banner(self, version: str, document: str) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("the log is down")
        return await super().archive_banner(version, document)


def site() -> Starlette:
    page = "<!doctype html><html><head><title>t</title></head><body>hello</body></html>"
    return Starlette(routes=[Route("/", lambda request: HTMLResponse(page))])


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_version_is_archived_once_whatever_the_number_of_pages(config: Config) -> None:
    log = ArchivingLog(config.store_url)
    gateway = ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS, log=log)
    with TestClient(gateway) as client:
        for _ in range(20):
            assert "cg-config" in client.get("/").text
        client.post("/_consent/choices", json={"action": "reject_all"}, headers={"Sec-Fetch-Site": "same-origin"})
        wait_for(lambda: gateway.banner_archive.is_archived(gateway.banner.version))
        for _ in range(5):
            client.get("/")
        found = client.portal.call(log.banner_versions, [gateway.banner.version])  # type: ignore[union-attr]
    assert log.calls == 1
    assert found == {gateway.banner.version: gateway.banner.archive_json}
    assert metrics.value("banner_versions_archived_total") == 1


def test_a_log_that_did_not_answer_is_asked_again_on_a_later_page(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(banner_archive, "RETRY_SECONDS", 0.5)
    log = ArchivingLog(config.store_url, failures=1)
    gateway = ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS, log=log)
    version = gateway.banner.version
    with TestClient(gateway) as client:
        assert client.get("/").status_code == 200  # the visitor never sees the log's trouble
        wait_for(lambda: metrics.value("store_errors_total", operation="archive_banner") == 1)
        client.get("/")  # within the retry delay: the log is left alone
        assert log.calls == 1 and not gateway.banner_archive.is_archived(version)
        time.sleep(0.6)
        client.get("/")
        wait_for(lambda: gateway.banner_archive.is_archived(version))
    assert log.calls == 2
