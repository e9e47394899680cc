"""Where the banner block goes: after ``<head …>`` whatever the chunking (even when the head starts after the
first KiB), and never in front of a ``<meta charset>`` it could push out of the first KiB."""

from __future__ import annotations

import pytest

from consent_gateway.catalog import Catalog
from consent_gateway.decision import Decision
from consent_gateway.html import HoldbackRewriter

CATALOG = Catalog.builtin()
NOTHING = Decision(granted=frozenset({"necessary"}))
BANNER = b"<!--banner-->" + b"<script>/* the banner's inline config */</script>" * 40  # about 2 KB
CHUNKINGS = [None, 1, 2, 3, 5, 7, 13, 1000, 1024, 1025, 4096]


def rewrite(page: bytes, chunk_size: int | None, max_buffer_bytes: int = 65536) -> bytes:
    rw = HoldbackRewriter(CATALOG, NOTHING, BANNER, max_buffer_bytes=max_buffer_bytes, cache=None)
    size = chunk_size or len(page)
    return b"".join(rw.feed(page[i : i + size]) for i in range(0, len(page), size)) + rw.close()


@pytest.mark.parametrize("chunk_size", CHUNKINGS)
@pytest.mark.parametrize("max_buffer_bytes", [256, 65536])
def test_a_head_after_the_first_kib_keeps_its_attributes_at_every_chunking(
    chunk_size: int | None, max_buffer_bytes: int
) -> None:
    page = b"<html>" * 300 + b'<HEAD lang="fr" data-theme="dark"><title>t</title></head><body>x</body>'
    out = rewrite(page, chunk_size, max_buffer_bytes)
    assert b'<HEAD lang="fr" data-theme="dark">' + BANNER + b"<title>" in out
    assert out.replace(BANNER, b"") == page


@pytest.mark.parametrize("chunk_size", CHUNKINGS)
def test_a_head_tag_longer_than_the_buffer_gets_the_banner_before_it_at_every_chunking(
    chunk_size: int | None,
) -> None:
    page = b"<html>" * 300 + b"<head data-long='" + b"x" * 400 + b"'><title>t</title>"
    out = rewrite(page, chunk_size, max_buffer_bytes=256)
    assert out == b"<html>" * 300 + BANNER + page[1800:]


@pytest.mark.parametrize("chunk_size", CHUNKINGS)
@pytest.mark.parametrize(
    "meta",
    [b'<meta charset="utf-8">', b"<META CHARSET=iso-8859-1>",
     b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'],
)
def test_the_banner_block_never_pushes_a_meta_charset_out_of_the_first_kib(
    chunk_size: int | None, meta: bytes
) -> None:
    start = b"<!DOCTYPE html>\n<html>\n<head>\n" + b"".join(b'<meta name="m%d" content="v">\n' % i for i in range(20))
    padding = b"<!--" + b"-" * (1000 - len(start) - len(meta) - 8) + b"-->\n"
    page = start + padding + meta + b"\n<title>t</title>\n</head><body>x</body>"
    assert page.index(meta) + len(meta) <= 1024 < page.index(meta) + len(meta) + len(BANNER)
    out = rewrite(page, chunk_size)
    assert out.index(meta) == page.index(meta)  # nothing was inserted before it
    assert meta + BANNER in out
    assert out.replace(BANNER, b"") == page


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_a_meta_charset_before_any_head_tag_comes_before_a_long_banner_block(chunk_size: int | None) -> None:
    page = b"<meta charset=utf-8><title>t</title><p>text"
    assert rewrite(page, chunk_size) == b"<meta charset=utf-8>" + BANNER + b"<title>t</title><p>text"


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_a_short_banner_block_stays_at_the_top_of_head_when_the_charset_stays_in_the_first_kib(
    chunk_size: int | None,
) -> None:
    page = b"<html><head><meta charset=utf-8><title>t</title>"
    rw = HoldbackRewriter(CATALOG, NOTHING, b"<!--banner-->", cache=None)
    size = chunk_size or len(page)
    out = b"".join(rw.feed(page[i : i + size]) for i in range(0, len(page), size)) + rw.close()
    assert out == b"<html><head><!--banner--><meta charset=utf-8><title>t</title>"


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_a_charset_that_is_not_a_tag_leaves_the_banner_at_the_end_of_head(chunk_size: int | None) -> None:
    page = b"<html><head><script>var s = '<meta charset=utf-8>';</script><title>t</title></head><body>x"
    out = rewrite(page, chunk_size)
    assert out == page.replace(b"</head>", BANNER + b"</head>")


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_without_a_meta_charset_in_the_first_kib_the_banner_block_opens_the_head(chunk_size: int | None) -> None:
    page = b"<html><head><title>t</title>" + b"<!-- filler -->" * 80 + b"<meta charset=utf-8></head>"
    assert rewrite(page, chunk_size) == page.replace(b"<head>", b"<head>" + BANNER)


def test_a_meta_cut_by_the_end_of_a_short_document_does_not_delay_the_banner_block() -> None:
    page = b"<script><meta http-equiv=refresh content='"
    rw = HoldbackRewriter(CATALOG, NOTHING, b"@@", cache=None)
    assert rw.feed(page) + rw.close() == b"@@" + page


@pytest.mark.parametrize(
    ("page", "declared"),
    [
        (b"<html><head><meta name=viewport content=x><META Charset='Windows-1252'><title>t</title>", "windows-1252"),
        (b"<html><head><title>t</title><mEtA http-equiv=content-type content='text/html; charset=koi8-r'>", "koi8-r"),
        (b"<html><head><title>t</title>" + b"<!-- filler -->" * 80 + b"<meta charset=utf-8>", None),
        (b"<html><head><title>t</title><p>" * 20, None),
    ],
)
def test_the_charset_a_meta_of_the_first_kib_declares_is_found_in_any_case_after_other_metas(
    page: bytes, declared: str | None
) -> None:
    rw = HoldbackRewriter(CATALOG, NOTHING, BANNER, cache=None)
    rw.feed(page)
    rw.close()
    assert rw.declared_charset == declared
