"""A batch's counters summed by profile equal the same events counted one by one."""

from __future__ import annotations

import dataclasses

from consent_gateway.store.aggregates import DAY_MS, Cells
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
