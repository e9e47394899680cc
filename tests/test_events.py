"""The consent event's hash chain: canonical bytes, salted commitments, erasure, verification."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent_gateway import events as ev
from consent_gateway.events import (
    PERSONAL_FIELDS,
    ChainHead,
    ChainVerifier,
    ConsentEvent,
    EventChain,
    canonical,
    check_event,
    erase_personal,
    event_hash,
)


def event(i: int = 0, **changes: object) -> ConsentEvent:
    base = ConsentEvent(
        event_id=f"e{i}",
        consent_id="c1",
        action=ev.CONSENT_GIVEN,
        categories={"analytics": True, "marketing": False},
        vendors={},
        policy_version="2026-01",
        banner_version="abc",
        timestamp_ms=1_767_225_600_000 + i,
        ip="192.0.2.0",
        user_agent="Mozilla/5.0 Firefox/121.0",
        page_path="/pricing",
        referrer_host="example.org",
    )
    return dataclasses.replace(base, **changes)


def test_the_hash_is_sha256_of_sorted_key_compact_json_without_personal_fields() -> None:
    chained = EventChain("gw").append(event())
    body = {
        k: v
        for k, v in dataclasses.asdict(chained).items()
        if k not in {"hash", "salts", "erased_at_ms", "mac", *PERSONAL_FIELDS}
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert chained.hash == hashlib.sha256(text.encode()).hexdigest()
    assert "192.0.2.0" not in text  # the IP enters only through its salted commitment


def test_events_chain_in_order_per_writer() -> None:
    chain = EventChain("gw-1")
    first, second = chain.append(event(1)), chain.append(event(2))
    assert (first.seq, first.prev_hash) == (1, "")
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert chain.head == ChainHead(seq=2, hash=second.hash)
    assert check_event(first) is None and check_event(second) is None


def test_each_personal_field_has_its_own_salt() -> None:
    one, two = EventChain("a").append(event(1)), EventChain("b").append(event(1))
    assert set(one.salts) == set(PERSONAL_FIELDS)
    assert one.salts["ip"] != two.salts["ip"]
    assert one.commitments["ip"] != two.commitments["ip"]  # same IP, unlinkable commitments
    assert len(set(one.salts.values())) == len(PERSONAL_FIELDS)


def test_absent_personal_fields_have_no_commitment() -> None:
    chained = EventChain("gw").append(event(referrer_host=None))
    assert "referrer_host" not in chained.commitments
    assert check_event(chained) is None


def test_erasure_keeps_the_hash_valid_and_leaves_nothing_to_match() -> None:
    chained = EventChain("gw").append(event())
    erased = erase_personal(chained, now_ms=5)
    assert all(getattr(erased, f) is None for f in PERSONAL_FIELDS)
    assert erased.salts == {} and erased.commitments == chained.commitments
    assert erased.erased_at_ms == 5
    assert event_hash(erased) == chained.hash
    assert check_event(erased) is None


def test_minimising_only_the_ip_keeps_the_other_fields_checkable() -> None:
    chained = EventChain("gw").append(event())
    minimised = erase_personal(chained, fields=("ip",), now_ms=5)
    assert minimised.ip is None and "ip" not in minimised.salts
    assert minimised.erased_at_ms is None
    assert check_event(minimised) is None
    assert check_event(dataclasses.replace(minimised, user_agent="curl/8")) == "personal field 'user_agent' altered"


def test_removing_a_personal_field_without_its_salt_is_tampering() -> None:
    chained = EventChain("gw").append(event())
    assert (
        check_event(dataclasses.replace(chained, page_path=None))
        == "personal field 'page_path' removed without erasure"
    )


@pytest.mark.parametrize(
    "change",
    [{"action": ev.CONSENT_WITHDRAWN}, {"categories": {"analytics": True, "marketing": True}}, {"timestamp_ms": 1}],
)
def test_any_edit_of_a_hashed_field_breaks_the_hash(change: dict[str, object]) -> None:
    chained = EventChain("gw").append(event())
    assert check_event(dataclasses.replace(chained, **change)) == "content altered (hash mismatch)"


def test_the_verifier_names_gaps_duplicates_and_a_truncated_tail() -> None:
    chain = EventChain("gw")
    events = [chain.append(event(i)) for i in range(6)]
    verifier = ChainVerifier("gw", heads=[chain.head])
    for e in events[:2] + events[3:5]:
        verifier.feed(e)
    verifier.feed(events[4])
    verifier.finish(chain.head)
    assert verifier.problems == [
        (events[3].event_id, "event(s) deleted before it (gw seq 3)"),
        (events[4].event_id, "inserted event: seq 5 appears twice"),
        ("gw@6", "chain truncated: events 6..6 of gw are missing (the checkpoint saw them)"),
    ]


def test_a_chain_purged_by_retention_starts_at_its_anchor() -> None:
    chain = EventChain("gw")
    events = [chain.append(event(i)) for i in range(5)]
    verifier = ChainVerifier("gw", anchor=ChainHead(seq=2, hash=events[1].hash))
    for e in events[2:]:
        verifier.feed(e)
    verifier.finish(ChainHead(seq=1, hash=events[0].hash))  # a checkpoint older than the purge
    assert verifier.problems == []


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text())
_json_values = st.recursive(_json_scalars, lambda inner: st.dictionaries(st.text(), inner, max_size=5), max_leaves=20)


@given(st.dictionaries(st.text(), _json_values, max_size=8))
def test_the_fast_canonical_form_is_byte_identical_to_the_stdlib_one(value: dict[str, object]) -> None:
    try:
        stdlib = ev._canonical_stdlib(value)
    except UnicodeEncodeError:  # lone surrogates cannot be hashed either way
        return
    assert canonical(value) == stdlib
    if hasattr(ev, "_orjson"):
        assert ev._canonical_orjson(value) == stdlib


def test_the_fast_constructor_builds_the_same_event_as_the_dataclass() -> None:
    chained = EventChain("gw").append(event())
    values = [getattr(chained, name) for name in ev.EVENT_FIELDS]
    assert ev.event_from_values(values) == ConsentEvent(*values) == chained
    with pytest.raises(dataclasses.FrozenInstanceError):
        chained.seq = 5  # type: ignore[misc]


def test_stored_dicts_from_older_or_newer_writers_still_load() -> None:
    chained = EventChain("gw").append(event())
    data = ev.event_to_dict(chained)
    assert ev.event_from_dict(data) == chained
    newer = {**data, "some_future_field": 1}
    assert ev.event_from_dict(newer) == chained
    older = {k: v for k, v in data.items() if k not in ("erased_at_ms", "salts")}
    assert ev.event_from_dict(older) == dataclasses.replace(chained, salts={})
