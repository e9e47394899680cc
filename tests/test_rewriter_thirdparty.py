"""The rewriter with the classifier of third parties nobody classified (issue 8.1, contract with
thirdparty.py): an unknown host's element is held back as ``unclassified``, the site's own and allowed hosts
pass, and the fast pre-check never skips a tag that loads from another host."""

from __future__ import annotations

import pytest

from consent_gateway.catalog import Catalog
from consent_gateway.decision import Decision
from consent_gateway.html import HoldbackRewriter, use_accelerators
from consent_gateway.thirdparty import HostCounters, ThirdParties

SITE = "example.org"
NOTHING = Decision(granted=frozenset({"necessary"}), site=SITE)
EVERYTHING = Decision(granted=frozenset({"necessary", "analytics", "marketing", "unclassified"}), site=SITE)
HELD = b'data-category="unclassified" data-cg-vendor="unclassified"'


def catalog_with(counters: HostCounters, mode: str = "hold") -> Catalog:
    return Catalog.builtin().with_third_parties(ThirdParties(mode=mode, counters=counters))  # type: ignore[arg-type]


def rewrite(catalog: Catalog, page: bytes, chunk_size: int | None = None, decision: Decision = NOTHING) -> bytes:
    rw = HoldbackRewriter(catalog, decision, b"", cache=None)
    size = chunk_size or len(page)
    return b"".join(rw.feed(page[i : i + size]) for i in range(0, len(page), size)) + rw.close()


@pytest.fixture(params=[True, False], ids=["native", "pure"], autouse=True)
def _accelerators(request: pytest.FixtureRequest) -> object:
    use_accelerators(request.param)
    yield
    use_accelerators(True)


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
@pytest.mark.parametrize(
    "tag",
    [
        b'<script src="https://stats.unknown-tracker.net/t.js"></script>',
        b"<script src=//stats.unknown-tracker.net/t.js></script>",
        b"<img src='https:\\\\stats.unknown-tracker.net/p.gif'>",
        b'<img src="https:/\t/stats.unknown-tracker.net/p.gif">',
        b'<iframe src="https&#58;//stats.unknown-tracker.net/w"></iframe>',
    ],
)
def test_an_element_loading_from_a_host_nobody_classified_is_held_back_restorably(
    tag: bytes, chunk_size: int | None
) -> None:
    counters = HostCounters()
    page = b"<html><head></head><body>" + tag + b"<p>text</p>" * 300
    out = rewrite(catalog_with(counters), page, chunk_size)
    assert HELD in out
    assert b"data-cg-src=" in out and b" src=" not in out.split(HELD)[1].split(b">")[0]
    assert [c.host for c in counters.top()] == ["stats.unknown-tracker.net"]


@pytest.mark.parametrize(
    "tag",
    [
        b'<script src="https://static.example.org/app.js"></script>',  # same registrable domain
        b'<img src="//example.org/logo.png">',
        b'<img src="/logo.png">',
        b'<script src="https://cdn.jsdelivr.net/npm/x@1/x.js"></script>',  # built-in allow-list
    ],
)
def test_the_sites_own_and_allowed_hosts_pass_untouched(tag: bytes) -> None:
    page = b"<html><head></head><body>" + tag
    assert rewrite(catalog_with(HostCounters()), page) == page


def test_accept_all_lets_unclassified_hosts_through_and_still_counts_them() -> None:
    page = b'<html><head></head><body><script src="https://stats.unknown-tracker.net/t.js"></script>'
    counters = HostCounters()
    assert rewrite(catalog_with(counters), page, decision=EVERYTHING) == page
    assert [(c.host, c.held) for c in counters.top()] == [("stats.unknown-tracker.net", 0)]


def test_without_third_party_rules_the_rewriter_reads_only_the_catalog() -> None:
    page = b'<html><head></head><body><script src="https://stats.unknown-tracker.net/t.js"></script>'
    assert rewrite(Catalog.builtin(), page) == page


def test_a_base_href_to_another_host_makes_relative_urls_third_party() -> None:
    page = b'<html><head><base href="https://assets.unknown-cdn.net/"></head><body><img src="pixel.gif">'
    out = rewrite(catalog_with(HostCounters()), page)
    assert b'<img ' + HELD + b' data-cg-src="pixel.gif">' in out


def test_a_page_that_changes_on_every_request_reuses_its_tag_decisions_with_the_same_bytes_and_counts() -> None:
    """A personalised page misses the chunk cache; its tags' decisions come from the tag cache, and give the
    same output, held-back vendors, sightings and unclassified-host counts as a rewrite without any cache."""
    from consent_gateway.html import ChunkCache

    counters, uncached_counters = HostCounters(), HostCounters()
    catalog, uncached_catalog = catalog_with(counters), catalog_with(uncached_counters)
    tags = (b'<script src="https://stats.unknown-tracker.net/t.js"></script>'
            b'<img src="https://www.facebook.com/tr?id=1"><img src="/own.png">'
            b'<iframe src="https://www.youtube.com/embed/x"></iframe>')
    cache = ChunkCache()
    for request in range(3):
        page = b"<html><head></head><body>" + b"".join(
            tags + b'<input type="hidden" name="csrf" value="%d-%d">' % (request, i) + b"<p>text</p>" * 40
            for i in range(30))
        cached = HoldbackRewriter(catalog, NOTHING, b"", cache=cache)
        plain = HoldbackRewriter(uncached_catalog, NOTHING, b"", cache=None)
        assert cached.feed(page) + cached.close() == plain.feed(page) + plain.close()
        assert cached.held_back == plain.held_back and cached.held_back["unclassified"] == 30
        assert cached.third_parties == plain.third_parties
        assert cache.tag_decisions  # the tags' decisions were kept...
    assert cache.misses > 0 and cache.hits == 0  # ...while no chunk repeated
    assert [(c.host, c.seen, c.held) for c in counters.top()] == [("stats.unknown-tracker.net", 90, 90)]
    assert [(c.host, c.seen) for c in uncached_counters.top()] == [("stats.unknown-tracker.net", 90)]
