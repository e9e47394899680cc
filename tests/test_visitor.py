from __future__ import annotations

import time
from dataclasses import replace

import pytest

from consent_gateway import metrics
from consent_gateway.config import Config, RegionsConfig
from consent_gateway.consent import ConsentCodec, ConsentRecord
from consent_gateway.enrich import Enricher
from consent_gateway.visitor import REPAIR_SCOPE_KEY, VisitorReader, cookie_values
from tests.conftest import TEST_SECRET_KEYS


def reader(config: Config | None = None) -> VisitorReader:
    config = config or Config()
    enricher = Enricher(region_default=config.regions.default, region_unknown=config.regions.unknown)
    return VisitorReader(config, ConsentCodec(config, TEST_SECRET_KEYS), enricher)


def scope(*headers: tuple[str, str], client: str = "203.0.113.9") -> dict[str, object]:
    return {
        "type": "http",
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        "client": (client, 1234),
    }


def cookie_for(visitor: VisitorReader, **choices: bool) -> str:
    base = {"analytics": False, "marketing": False, "preferences": False}
    record = ConsentRecord("c42", {**base, **choices}, {"youtube": False}, "1", int(time.time()))
    return visitor.codec.encode(record)


def test_no_cookie_grants_only_what_is_required() -> None:
    decision = reader().read(scope())
    assert decision.granted == {"necessary"}
    assert not decision.explicit
    assert not decision.allows_vendor("google-analytics", "analytics")


def test_valid_cookie_grants_its_categories_and_vendor_choices() -> None:
    visitor = reader()
    token = cookie_for(visitor, analytics=True, marketing=True)
    decision = visitor.read(scope(("cookie", f"session=1; cg_consent={token}")))
    assert decision.explicit and decision.consent_id == "c42"
    assert decision.granted == {"necessary", "analytics", "marketing"}
    assert decision.allows_vendor("meta-pixel", "marketing")
    assert not decision.allows_vendor("youtube", "marketing")  # refused by name


def test_duplicated_consent_cookie_is_counted_read_as_its_valid_copy_and_marked_for_repair() -> None:
    visitor = reader()
    token = cookie_for(visitor, analytics=True)
    request = scope(("cookie", f"cg_consent=forged.AAAA.BBBB; cg_consent={token}"))
    decision = visitor.read(request)
    assert decision.explicit and "analytics" in decision.granted
    assert metrics.value("consent_cookie_rejected_total", reason="duplicated") == 1
    assert request[REPAIR_SCOPE_KEY].record.consent_id == "c42"


def test_duplicated_consent_cookies_all_invalid_mean_no_consent() -> None:
    decision = reader().read(scope(("cookie", "cg_consent=forged.AAAA.BBBB; cg_consent=x.y.z")))
    assert not decision.explicit
    assert metrics.value("consent_cookie_rejected_total", reason="duplicated") == 1


def test_forged_cookie_means_no_consent() -> None:
    decision = reader().read(scope(("cookie", "cg_consent=eyJpZCI6IngifQ.AAAA.BBBB")))
    assert decision.granted == {"necessary"}


def test_gpc_is_seen() -> None:
    assert reader().read(scope(("sec-gpc", "1"))).gpc
    assert not reader().read(scope(("sec-gpc", "0"))).gpc


def test_opt_out_region_allows_until_refused_but_gpc_still_refuses_marketing() -> None:
    config = replace(Config(), regions=RegionsConfig(default="opt-out", unknown="opt-out"))
    visitor = reader(config)
    assert visitor.read(scope()).granted == {
        "necessary", "analytics", "session-replay", "marketing", "preferences", "unclassified"
    }
    with_gpc = visitor.read(scope(("sec-gpc", "1")))
    assert "marketing" not in with_gpc.granted and "analytics" in with_gpc.granted


@pytest.mark.parametrize(
    ("header", "expected"),
    [("a=1; cg_consent=x; b=2", ["x"]), ("cg_consent_old=1", []), ('cg_consent="q"', ["q"]), ("", [])],
)
def test_cookie_values(header: str, expected: list[str]) -> None:
    assert cookie_values(header, "cg_consent") == expected


def test_do_not_track_counts_as_gpc_only_where_the_site_honours_it() -> None:
    from consent_gateway.config import PrivacyConfig

    assert not reader().read(scope(("dnt", "1"))).gpc  # off by default
    honouring = reader(replace(Config(), privacy=PrivacyConfig(honour_dnt=True)))
    assert honouring.read(scope(("dnt", "1"))).gpc
    assert not honouring.read(scope(("dnt", "0"))).gpc
    assert honouring.read(scope(("dnt", "1"), ("sec-gpc", "0"))).gpc  # either signal is enough
    opt_out = replace(
        Config(), privacy=PrivacyConfig(honour_dnt=True), regions=RegionsConfig(default="opt-out", unknown="opt-out")
    )
    assert "marketing" not in reader(opt_out).read(scope(("dnt", "1"))).granted
