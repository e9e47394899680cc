"""Reading an element's URL as a browser's URL parser does: the host it really loads from, after <base>."""

from __future__ import annotations

import pytest

from consent_gateway.urls import attribute_url, base_url, host_of, resolve_url


def loads_from(raw: bytes, base_href: str | None = None) -> str:
    """The host a browser contacts for this raw attribute value, after ``<base href=base_href>``."""
    base = base_url(base_href) if base_href is not None else ""
    return host_of(resolve_url(attribute_url(raw), base))


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        (b"https://t.example/x.js", "t.example"),
        (b"  HTTPS://T.EXAMPLE./x.js\n", "t.example"),
        (b"ht\ttps://t.exa\nmple/x.js", "t.example"),  # tabs and newlines are removed anywhere
        (b"\x01 https://t.example/x.js", "t.example"),  # leading C0 controls are trimmed
        (b"//t.example/x.js", "t.example"),  # protocol-relative
        (b"\\\\t.example\\x.js", "t.example"),  # backslashes are slashes in special URLs
        (b"/\\t.example/x.js", "t.example"),
        (b"https:t.example/x.js", "t.example"),  # no base of the same scheme: "ignore slashes"
        (b"https:///t.example/x.js", "t.example"),
        (b"&#104;ttps://t.example/x.js", "t.example"),  # character references are decoded first
        (b"https&colon;//t.example/x.js", "t.example"),
        (b"&#x2F;&#x2F;t.example/x.js", "t.example"),
        (b"https://user:pw@t.example:8443/x.js", "t.example"),
        (b"https://%74.example/x.js", "t.example"),  # percent-encoded host
        ("https://ｔ．example/x.js".encode(), "t.example"),  # full-width letters and dot (IDNA mapping)
        (b"/x.js", ""),
        (b"x.js", ""),
        (b"?q=https://t.example/", ""),
        (b"data:image/gif;base64,R0lGOD", ""),
        (b"javascript:void('//t.example')", ""),
        (b"about:blank", ""),
    ],
)
def test_the_host_a_browser_loads_from_without_a_base(raw: bytes, host: str) -> None:
    assert loads_from(raw) == host


@pytest.mark.parametrize(
    ("base_href", "raw", "host"),
    [
        ("https://t.example/lib/", b"x.js", "t.example"),
        ("https://t.example/lib/", b"/x.js", "t.example"),
        ("https://t.example/lib/", b"?x=1", "t.example"),
        ("https://t.example/lib/", b"https:x.js", "t.example"),  # same scheme as the base: relative
        ("https://t.example/", b"http:other.example/x.js", "other.example"),  # another scheme: a host
        ("https://t.example/", b"//other.example/x.js", "other.example"),
        ("//t.example/", b"x.js", "t.example"),  # a protocol-relative base
        (" \thttps://t.exa\nmple/", b"x.js", "t.example"),
        ("https:\\\\t.example\\lib\\", b"x.js", "t.example"),
        ("https:t.example/", b"x.js", "t.example"),
        ("/static/", b"x.js", ""),  # a relative base stays on the page's own host
        ("javascript:alert(1)", b"x.js", ""),
        ("https://t.example/", b"data:,x", ""),
    ],
)
def test_relative_urls_after_a_base_load_from_its_host(base_href: str, raw: bytes, host: str) -> None:
    assert loads_from(raw, base_href) == host


def test_the_resolved_url_keeps_the_path_for_the_catalogs_path_patterns() -> None:
    assert resolve_url(attribute_url(b"../js/piwik.js?v=1#top"), base_url("https://t.example/a/b/")) == (
        "//t.example/a/js/piwik.js?v=1"
    )
    assert resolve_url(attribute_url(b"/js/matomo.js"), "") == "/js/matomo.js"
