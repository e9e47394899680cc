"""Erasure: a review step, an explicit confirmation, then the visitor's personal fields are gone."""

from __future__ import annotations

import asyncio

from starlette.testclient import TestClient

from consent_gateway.events import PERSONAL_FIELDS
from consent_gateway.store import ConsentLog

from .conftest import PREFIX, VISITOR, csrf_of


def test_erasure_asks_for_confirmation_then_removes_the_personal_fields(
    logged_in: TestClient, consent_log: ConsentLog
) -> None:
    form = logged_in.get(f"{PREFIX}/erase", params={"consent_id": VISITOR})
    assert f'value="{VISITOR}"' in form.text
    review = logged_in.post(f"{PREFIX}/erase", data={"consent_id": VISITOR, "csrf_token": csrf_of(form.text)})
    assert review.status_code == 200
    assert "Confirm erasure" in review.text and "198.51.100.0" in review.text
    assert "3 events" in review.text
    # Reviewing changed nothing.
    assert all(e.ip == "198.51.100.0" for e in asyncio.run(consent_log.history(VISITOR)))

    token = csrf_of(review.text)
    unticked = logged_in.post(f"{PREFIX}/erase/confirm", data={"consent_id": VISITOR, "csrf_token": token})
    assert unticked.status_code == 400
    assert "Tick the box to confirm the erasure." in unticked.text
    assert all(e.ip for e in asyncio.run(consent_log.history(VISITOR)))

    done = logged_in.post(
        f"{PREFIX}/erase/confirm", data={"consent_id": VISITOR, "csrf_token": token, "confirm": "yes"}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"{PREFIX}/visitors/{VISITOR}?erased=3"

    events = asyncio.run(consent_log.history(VISITOR))
    assert len(events) == 3
    for event in events:
        assert all(getattr(event, name) is None for name in PERSONAL_FIELDS)
        assert event.erased_at_ms is not None
        assert event.categories["necessary"] is True  # the proof of consent stays
    assert asyncio.run(consent_log.verify()).ok

    page = logged_in.get(done.headers["location"])
    assert "Personal data erased from 3 events" in page.text
    assert "198.51.100.0" not in page.text
    # Other visitors are untouched.
    assert asyncio.run(consent_log.history("visitor-0001"))[0].ip == "203.0.113.1"


def test_erasing_an_unknown_consent_id_says_so_and_changes_nothing(logged_in: TestClient) -> None:
    form = logged_in.get(f"{PREFIX}/erase")
    response = logged_in.post(f"{PREFIX}/erase", data={"consent_id": "no-such-id", "csrf_token": csrf_of(form.text)})
    assert response.status_code == 404
    assert "No event has this consent id." in response.text
