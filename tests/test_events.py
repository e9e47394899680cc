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


def test_no_salt_is_ever_used_twice_along_a_chain() -> None:
    # salts come from one read of the random source per EventChain.ENTROPY_EVENTS events: across refills
    # every salt of every event is still fresh, and a chain started again does not repeat the first one's
    chain = EventChain("gw")
    chained = [chain.append(event(i)) for i in range(3 * EventChain.ENTROPY_EVENTS + 5)]
    chained += [EventChain("gw").append(event(1)) for _ in range(3)]
    salts = [salt for e in chained for salt in e.salts.values()]
    assert len(salts) == len(chained) * len(PERSONAL_FIELDS)
    assert len(set(salts)) == len(salts)
    assert all(len(salt) == 32 and int(salt, 16) >= 0 for salt in salts)
    assert all(check_event(e) is None for e in chained)


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


# A record as an older gateway stored it, with the hash, commitments and MACs that gateway wrote: the chain
# format is frozen, so every later writer and verifier must agree on these bytes (old logs must still verify).
_GOLDEN_SALTS = {
    "ip": "00112233445566778899aabbccddeeff",
    "user_agent": "ffeeddccbbaa99887766554433221100",
    "page_path": "0123456789abcdef0123456789abcdef",
}
_GOLDEN_COMMITMENTS = {
    "ip": "8589092121147b0c28837e04742ee901dc39709b6b520e0ff0ae9d66a93816f9",
    "user_agent": "cf4f9bb973617a90257b777025d582c15a6b077290b9b0432f0850a3797c4b9f",
    "page_path": "18396a632c7f69815f218afc936229274cf9952b9312d079b7f913441aaae9f8",
}
_GOLDEN_HASH = "e81792aee7e595607c649c49ccfa80a45d4992862c1b6cff757cb83bfd52f6ef"
_GOLDEN_PREV = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _golden_event(**changes: object) -> ConsentEvent:
    base = ConsentEvent(
        event_id="01933b1c2d3e4f50",
        consent_id="5f2b9c3e8a1d4e7f9b0c6a2d3e4f5a6b",
        action=ev.CONSENT_UPDATED,
        categories={"necessary": True, "marketing": False, "analytics": True, "préférences": False},
        vendors={"youtube": True, "hotjar": False},
        policy_version="2025-09",
        banner_version="0123456789abcdef",
        timestamp_ms=1_767_225_600_123,
        page_path="/actualités?x=1",
        referrer_host=None,
        ip="203.0.113.0",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0",
        browser_family="Firefox",
        browser_version="121",
        os_family="Linux",
        os_version=None,
        device_type="desktop",
        country="FR",
        is_eu=True,
        region_rule="opt-in",
        gpc=False,
        instance_id="gw-1",
        prev_hash=_GOLDEN_PREV,
        hash=_GOLDEN_HASH,
        seq=42,
        commitments=_GOLDEN_COMMITMENTS,
        salts=_GOLDEN_SALTS,
        mac="de8649f6:6fc2482ab0106287d5768ce6d707a1b27be87f5a20af37d1facd2406cb26b6bf",
    )
    return dataclasses.replace(base, **changes)


def test_known_hashes_commitments_and_macs_are_unchanged() -> None:
    golden = _golden_event()
    assert {k: ev.commit(_GOLDEN_SALTS[k], str(getattr(golden, k))) for k in _GOLDEN_SALTS} == _GOLDEN_COMMITMENTS
    assert event_hash(golden) == _GOLDEN_HASH
    assert check_event(golden) is None
    keys = ev.LogKeys(["log-key-0"])
    assert keys.mac(_GOLDEN_HASH) == golden.mac
    anchor = ev.anchor_text("gw-1", ChainHead(seq=41, hash=_GOLDEN_PREV))
    assert keys.mac(anchor) == "de8649f6:09c3488561374a2f1b81f652b7cd17542082712ddb7378f6d17b02797c55abcd"
    # a key longer than SHA-256's block is hashed first (RFC 2104)
    long_key = ev.LogKeys(["k" * 100])
    assert long_key.mac(_GOLDEN_HASH) == "e37c7cb7:6c39cbfc97951427081e9e6f4a9853bf7c599fc86e74cabde36f45e8d5feac99"
    assert ev.LogKeys(["other", "k" * 100, "log-key-0"]).check(_GOLDEN_HASH, golden.mac)


def test_a_stored_golden_record_verifies_and_each_kind_of_edit_is_named() -> None:
    keys = ev.LogKeys(["log-key-0"])

    def problems_of(record: ConsentEvent) -> list[tuple[str, str]]:
        verifier = ChainVerifier("gw-1", anchor=ChainHead(seq=41, hash=_GOLDEN_PREV), keys=keys)
        verifier.feed(record)
        verifier.finish(ChainHead(seq=42, hash=_GOLDEN_HASH))
        return verifier.problems

    assert problems_of(_golden_event()) == []
    eid = "01933b1c2d3e4f50"
    assert problems_of(_golden_event(categories={"necessary": True})) == [(eid, "content altered (hash mismatch)")]
    assert problems_of(_golden_event(ip="203.0.113.9")) == [(eid, "personal field 'ip' altered")]
    assert problems_of(_golden_event(user_agent=None)) == [
        (eid, "personal field 'user_agent' removed without erasure")
    ]
    erased = erase_personal(_golden_event(), now_ms=1_767_225_700_000)
    assert problems_of(erased) == []
    forged = _golden_event(mac="de8649f6:" + "0" * 64)
    assert problems_of(forged) == [(eid, "forged or altered: its MAC does not verify under any log key")]
    assert problems_of(_golden_event(mac="")) == [(eid, "forged or altered: its MAC does not verify under any log key")]
    stored_bools_as_ints = _golden_event(is_eu=1)  # what a backend that forgot to convert would hand over
    assert problems_of(stored_bools_as_ints) == [(eid, "content altered (hash mismatch)")]


def test_stored_dicts_are_verified_as_the_events_they_load() -> None:
    chained = EventChain("gw").append(event())
    data = ev.event_to_dict(chained)
    assert list(ev.values_from_dict(data)) == list(ev.event_values(chained))
    assert list(ev.values_from_dict({**data, "some_future_field": 1})) == list(ev.event_values(chained))
    older = {k: v for k, v in data.items() if k not in ("erased_at_ms", "mac")}
    assert list(ev.values_from_dict(older)) == list(ev.event_values(ev.event_from_dict(older)))
    verifier = ChainVerifier("gw")
    verifier.feed_values(ev.values_from_dict(older))
    verifier.feed_values(ev.values_from_dict({**data, "seq": 2, "categories": {"analytics": False}}))
    assert verifier.problems == [("e0", "content altered (hash mismatch)")]


def test_chaining_the_golden_event_from_its_salts_writes_the_golden_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # the chain's salts come from the random source in PERSONAL_FIELDS order (32 hex digits each): feed it
    # the golden salts and the chain must write exactly the stored record (hash, commitments, MAC, dict orders)
    entropy = bytes.fromhex("".join(_GOLDEN_SALTS.values()) + "ab" * 16)
    monkeypatch.setattr(ev.os, "urandom", lambda n: entropy + bytes(n - len(entropy)))
    chain = ev.EventChain("gw-1", ChainHead(seq=41, hash=_GOLDEN_PREV), keys=ev.LogKeys(["log-key-0"]))
    unchained = _golden_event(instance_id="", prev_hash="", hash="", seq=0, commitments={}, salts={}, mac="")
    chained = chain.append(dataclasses.replace(unchained, timestamp_ms=1), timestamp_ms=1_767_225_600_123)
    golden = _golden_event()
    assert chained == golden
    assert list(chained.salts) == list(golden.salts) and list(chained.commitments) == list(golden.commitments)
    assert chain.head == ChainHead(seq=42, hash=_GOLDEN_HASH)
    # a field orjson cannot write fails that event alone and leaves the chain where it was
    with pytest.raises(TypeError):
        chain.append(dataclasses.replace(unchained, categories={"x": {1, 2}}))  # type: ignore[dict-item]
    assert chain.head == ChainHead(seq=42, hash=_GOLDEN_HASH)
