"""A batch's counters summed by profile equal the same events counted one by one."""

from __future__ import annotations

import dataclasses

from consent_gateway.store import EventFilter
from consent_gateway.store.aggregates import DAY_MS, Cells, granted_cells
from tests.store.conftest import make_event


def test_a_batch_counted_by_profile_gives_each_event_counted_alone() -> None:
    events = [make_event(i) for i in range(300)]  # several days, countries (and none), browsers, vendors
    events += [dataclasses.replace(make_event(7), timestamp_ms=make_event(7).timestamp_ms + DAY_MS * 40)]
    events += [dataclasses.replace(make_event(3), categories={"analytics": True, "marketing": False, "x": True})]
    one_by_one = Cells()
    for event in events:
        one_by_one.add_event(event)
    batch = Cells()
    batch.add_events(events)
    assert batch.rows() == one_by_one.rows()
    assert sum(t for (_, dim, _, _), (t, _) in batch.cells.items() if dim == "events") == len(events)


def test_a_count_reads_the_counters_only_where_they_hold_exactly_its_answer() -> None:
    day = 20_454 * DAY_MS  # a UTC midnight
    whole = EventFilter(since_ms=day, until_ms=day + 7 * DAY_MS, category="analytics")
    days = ("2026-01-01", "2026-01-08")
    assert granted_cells(whole) == (days, "day", None, "analytics")
    everything = EventFilter(category="analytics", country="FR")
    assert granted_cells(everything) == ((None, None), "country", "FR", "analytics")
    policy = dataclasses.replace(whole, policy_version="unknown")  # a policy version is never missing
    assert granted_cells(policy) == (days, "policy_version", "unknown", "analytics")
    for scanned in (
        dataclasses.replace(whole, category=None),  # a count of whole days: the events counter, elsewhere
        dataclasses.replace(whole, since_ms=day + 1),  # a bound inside a day
        dataclasses.replace(whole, until_ms=day + DAY_MS - 1),
        dataclasses.replace(whole, country="FR", browser="Firefox"),  # two dimensions: not crossed
        dataclasses.replace(whole, country="unknown"),  # where the counters file events with no country
        dataclasses.replace(whole, browser=""),
        dataclasses.replace(whole, action="consent-withdrawn"),  # no counter per action, visitor or IP
        dataclasses.replace(whole, consent_id="v"),
        dataclasses.replace(whole, ip="203.0.113.0"),
    ):
        assert granted_cells(scanned) is None, scanned
