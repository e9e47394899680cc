"""The public page of consent rates per category and month: off by default, small groups withheld."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import replace

from starlette.applications import Starlette
from starlette.testclient import TestClient

from consent_gateway.config import Config, PrivacyConfig
from consent_gateway.events import EventChain
from consent_gateway.middleware import ConsentGateway
from consent_gateway.public_stats import months_back
from consent_gateway.store import open_log
from tests.conftest import TEST_SECRET_KEYS
from tests.store.conftest import make_event

DAY_MS = 86_400_000


def with_statistics(config: Config, min_group: int = 20) -> Config:
    return replace(
        config, privacy=replace(PrivacyConfig(), public_statistics=True, statistics_min_group_size=min_group)
    )


def record(config: Config, choices: list[tuple[int, bool]], visitors: list[str] | None = None) -> None:
    """One event per (timestamp_ms, analytics granted), each of its own visitor unless ``visitors`` names them."""

    async def run() -> None:
        log = open_log(config.store_url)
        await log.open()
        chain = EventChain("stats-test")
        events = [
            chain.append(
                dataclasses.replace(
                    make_event(i, consent_id=visitors[i] if visitors else f"visitor-{i}", timestamp_ms=at),
                    categories={"analytics": granted, "marketing": False},
                )
            )
            for i, (at, granted) in enumerate(choices)
        ]
        await log.append(events)
        await log.close()

    asyncio.run(run())


def test_the_page_is_off_by_default(config: Config) -> None:
    with TestClient(ConsentGateway(Starlette(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        for path in ("/_consent/statistics", "/_consent/statistics.json"):
            response = client.get(path)
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_monthly_rates_are_published_only_for_groups_of_the_minimum_size(config: Config) -> None:
    config = with_statistics(config, min_group=4)
    now = time.time()
    this_month, _ = months_back(now, 1)
    last_month, _ = months_back(now, 2)
    # this month: 5 visitors, 4 granting analytics; last month: 3 visitors, under the minimum of 4
    record(
        config,
        [(this_month + i * 1000, i != 0) for i in range(5)] + [(last_month + DAY_MS + i, True) for i in range(3)],
    )
    this_label = time.strftime("%Y-%m", time.gmtime(this_month / 1000))
    last_label = time.strftime("%Y-%m", time.gmtime(last_month / 1000))
    with TestClient(ConsentGateway(Starlette(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        data = client.get("/_consent/statistics.json").json()
        page = client.get("/_consent/statistics", headers={"Accept-Language": "fr-FR"})
    cells = {(m["month"], m["category"]): m for m in data["months"]}
    assert data["min_group_size"] == 4
    assert cells[(this_label, "analytics")] == {
        "month": this_label,
        "category": "analytics",
        "published": True,
        "visitors": 5,
        "granted": 4,
        "rate": 0.8,
    }
    hidden = cells[(last_label, "analytics")]
    assert hidden["published"] is False and hidden["visitors"] is None and hidden["rate"] is None
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    assert "80&nbsp;% <small>(5 visiteurs)</small>" in page.text
    assert "moins de 4 visiteurs : non publié" in page.text
    assert "<script" not in page.text


def test_no_event_means_nothing_to_publish(config: Config) -> None:
    with TestClient(ConsentGateway(Starlette(), with_statistics(config), secret_keys=TEST_SECRET_KEYS)) as client:
        assert client.get("/_consent/statistics.json").json()["months"] == []
        assert "No statistics to publish yet." in client.get("/_consent/statistics?lang=en").text


def test_each_visitor_counts_once_a_month_with_their_last_choice(config: Config) -> None:
    """One visitor choosing twenty times is one visitor: under a minimum of 4, nothing is published; four
    visitors who grant, then refuse, are four visitors refusing."""
    config = with_statistics(config, min_group=4)
    now = time.time()
    this_month, _ = months_back(now, 1)
    last_month, _ = months_back(now, 2)
    clicks = [(last_month + DAY_MS + i * 1000, True) for i in range(20)]
    changes = [(this_month + i * 1000, i < 4) for i in range(8)]  # each visitor grants, then refuses
    record(config, clicks + changes, visitors=["clicker"] * 20 + [f"changer-{i % 4}" for i in range(8)])
    this_label = time.strftime("%Y-%m", time.gmtime(this_month / 1000))
    last_label = time.strftime("%Y-%m", time.gmtime(last_month / 1000))
    with TestClient(ConsentGateway(Starlette(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        data = client.get("/_consent/statistics.json").json()
    cells = {(m["month"], m["category"]): m for m in data["months"]}
    assert data["unit"].startswith("visitors")
    assert cells[(last_label, "analytics")]["published"] is False  # twenty choices, one visitor
    assert cells[(this_label, "analytics")] == {
        "month": this_label,
        "category": "analytics",
        "published": True,
        "visitors": 4,
        "granted": 0,
        "rate": 0.0,
    }
