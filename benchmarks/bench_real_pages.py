"""Real saved pages through the gateway, judged by an HTML5 parser and an independent tracker list.

    python benchmarks/bench_real_pages.py [--pages DIR] [--json FILE] [--limit N] [--bytewise-budget MB]
                                          [--no-chunkings] [--details]
                                          [--tracker-list third-party-web|ghostery-trackerdb|FILE]

Every page of ``../shared/data/real-pages/`` (``manifest.tsv`` + ``pages/<id>.html.gz``; ``--pages`` names
another folder) goes through ``ConsentGateway`` exactly as a site would use it: the public middleware, the
default (EU, opt-in) config, around a tiny ASGI app that serves the page's bytes as ``text/html`` with no
charset (the page's ``<meta>`` decides, as on many sites), called
in-process with the body in chunks, a visitor without consent cookie, and the page's original host as
``Host`` when the manifest knows it (else the host of its canonical link, else a neutral one). Then
html5lib — as a browser with scripting on (``<noscript>`` is text) and off (``<noscript>`` content is
live) — reads the page before and after, and the script reports:

* third-party elements that fetch or run and are still live before consent, by host and by kind (a vendor
  of the gateway's catalog, a functional host its allow-list lets through, or unclassified), and which are
  trackers according to an **independent** list (not the gateway's catalog), plus inline scripts that
  still carry a tracker's loader;
* elements held back that are first-party or allowed (over-holding);
* pages whose own visible text or element counts changed, and inline scripts made inert that carry no
  tracker (a broken page: its own start-up code never runs);
* pages whose output differs across chunk sizes 1, 7, 4096 and whole (chunk size 1 on a subset: see
  ``--bytewise-budget``);
* the cold rewrite throughput (the rewriter's chunk cache cleared before every page, accelerators on), on
  the rewriter core this process runs (the compiled one when the install built it) and, in a second process
  with ``CONSENT_GATEWAY_PURE=1``, on the pure-Python one (``--speed-only`` measures just that).

The tracker list: by default the MIT-licensed ``third-party-web`` npm package (a development dependency in
``package.json``, installed by ``scripts/install`` into ``node_modules/``). Its categories ad, analytics,
social, video, marketing, customer-success and tag-manager count as trackers. ``--tracker-list
ghostery-trackerdb`` uses Ghostery's tracker database instead (CC-BY-NC-SA-4.0, so not a dependency of the
project: ``npm install --no-save @ghostery/trackerdb`` for a one-off comparison). The list only judges;
the gateway's catalog is never built from it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consent_gateway import ConsentGateway, load_config
from consent_gateway.compiled import PURE_ENV, core_path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PAGES = REPO.parent / "shared" / "data" / "real-pages"
CHUNK_SIZES = (1, 7, 4096)
#: the rewriter's buffer: an inline script longer than this was made inert by the old fallback
BUFFER_BYTES = 65536
NEUTRAL_HOST = "site.example"  # for pages whose original address is unknown

SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
JS_TYPES = {
    "", "module", "application/ecmascript", "application/javascript", "application/x-ecmascript",
    "application/x-javascript", "text/ecmascript", "text/javascript", "text/javascript1.0",
    "text/javascript1.1", "text/javascript1.2", "text/javascript1.3", "text/javascript1.4",
    "text/javascript1.5", "text/jscript", "text/livescript", "text/x-ecmascript", "text/x-javascript",
}
LINK_FETCH_RELS = {"preload", "prefetch", "preconnect", "dns-prefetch", "stylesheet", "modulepreload", "prerender",
                   "icon", "apple-touch-icon", "apple-touch-icon-precomposed", "mask-icon", "manifest"}
#: text of these elements is not shown to the reader
NON_TEXT = {"script", "style", "template", "noscript", "noembed", "noframes", "iframe", "xmp", "textarea"}
#: the third-party-web categories that track, and Ghostery's
TRACKING_CATEGORIES = {
    "third-party-web": {"ad", "analytics", "social", "video", "marketing", "customer-success", "tag-manager"},
    "ghostery-trackerdb": {"advertising", "site_analytics", "social_media", "audio_video_player",
                           "customer_interaction", "pornvertising"},
}
#: an inline script that fetches or injects something (with a tracker's host in it, it is a loader)
LOADER_RE = re.compile(
    r"\.src\s*=|createElement|document\.write|new\s+Image\b|sendBeacon|setAttribute\(\s*['\"]src|"
    r"insertBefore|appendChild|XMLHttpRequest|fetch\(|importScripts|\.load\(|loadScript|getScript"
)
HOST_IN_TEXT_RE = re.compile(r"(?<![\w-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24})(?![\w-])", re.I)
META_CHARSET_RE = re.compile(
    rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([a-zA-Z0-9_:.-]+)", re.I
)


# -- the independent tracker list


@dataclass
class TrackerList:
    name: str
    version: str
    licence: str
    #: exact host or "*."-suffix → (entity, category)
    exact: dict[str, tuple[str, str]]
    suffix: dict[str, tuple[str, str]]
    tracking: set[str]
    _memo: dict[str, tuple[str, str] | None] = field(default_factory=dict)

    def lookup(self, host: str) -> tuple[str, str] | None:
        """(entity, category) of a host, whether it tracks or not; None when the list does not know it."""
        if host in self._memo:
            return self._memo[host]
        found = self.exact.get(host)
        if found is None:
            labels = host.split(".")
            for i in range(len(labels) - 1):
                found = self.suffix.get(".".join(labels[i:]))
                if found is not None:
                    break
        self._memo[host] = found
        return found

    def tracker(self, host: str) -> tuple[str, str] | None:
        found = self.lookup(host)
        return found if found is not None and found[1] in self.tracking else None


def load_tracker_list(choice: str) -> TrackerList:
    if choice in ("third-party-web", "ghostery-trackerdb"):
        package = REPO / "node_modules" / ("third-party-web" if choice == "third-party-web" else "@ghostery/trackerdb")
        data_file = package / "dist" / ("entities-nostats.json" if choice == "third-party-web" else "trackerdb.json")
    else:
        data_file = Path(choice)
        package = data_file.parent.parent
        choice = "third-party-web" if "entities" in data_file.name else "ghostery-trackerdb"
    if not data_file.exists():
        install = ("npm ci (or scripts/install) in the repository" if choice == "third-party-web"
                   else "npm install --no-save @ghostery/trackerdb (CC-BY-NC-SA-4.0)")
        raise SystemExit(f"bench_real_pages: the tracker list {choice} is not installed ({data_file} is missing); "
                         f"install it with: {install}")
    meta = json.loads((package / "package.json").read_text()) if (package / "package.json").exists() else {}
    data = json.loads(data_file.read_text())
    exact: dict[str, tuple[str, str]] = {}
    suffix: dict[str, tuple[str, str]] = {}
    if choice == "third-party-web":
        for entity in data:
            value = (entity["name"], entity.get("category") or (entity.get("categories") or ["other"])[0])
            for domain in entity["domains"]:
                if domain.startswith("*."):
                    suffix.setdefault(domain[2:].lower(), value)
                else:
                    exact.setdefault(domain.lower(), value)
    else:
        patterns = data["patterns"]
        for domain, pattern_id in data["domains"].items():
            pattern = patterns[pattern_id]
            suffix.setdefault(domain.lower(), (pattern["name"], pattern["category"]))
    return TrackerList(choice, meta.get("version", "?"), meta.get("license", "?"), exact, suffix,
                       TRACKING_CATEGORIES[choice])


# -- URLs and hosts


class Sites:
    """Registrable domains through the Public Suffix List (the ``publicsuffixlist`` package when present)."""

    def __init__(self) -> None:
        self.source = "publicsuffixlist"
        try:
            from publicsuffixlist import PublicSuffixList
            self._psl: Any = PublicSuffixList()
        except ImportError:
            self._psl = None
            self.source = "last two labels (pip install publicsuffixlist for the Public Suffix List)"
        self._memo: dict[str, str] = {}

    def site(self, host: str) -> str:
        found = self._memo.get(host)
        if found is None:
            if re.fullmatch(r"[\d.]+|\[.*\]", host):
                found = host
            elif self._psl is not None:
                found = self._psl.privatesuffix(host) or host
            else:
                found = ".".join(host.split(".")[-2:])
            self._memo[host] = found
        return found


def resolve(base: str, raw: str) -> str | None:
    """An attribute's URL as a browser resolves it (WHATWG-like: trim, strip tabs/newlines, backslashes)."""
    url = raw.strip(" \t\n\f\r\x00").replace("\t", "").replace("\n", "").replace("\r", "")
    if not url or url.startswith("#"):
        return None
    url = url.replace("\\", "/") if not url.lower().startswith(("data:", "javascript:")) else url
    try:
        absolute = urllib.parse.urljoin(base, url)
        parts = urllib.parse.urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return absolute


def host_of(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower()


def srcset_urls(value: str) -> list[str]:
    """The URLs of a srcset as HTML parses it: a URL runs to whitespace (commas inside it stay, as in
    Cloudinary's ``t_fit-560w,f_auto``); a comma ends a candidate only after the URL or its descriptors."""
    urls: list[str] = []
    pos, end = 0, len(value)
    while pos < end:
        while pos < end and value[pos] in " \t\n\r\f,":
            pos += 1
        start = pos
        while pos < end and value[pos] not in " \t\n\r\f":
            pos += 1
        url = value[start:pos]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            depth = 0
            while pos < end:
                char = value[pos]
                pos += 1
                if char == "(":
                    depth += 1
                elif char == ")":
                    depth = max(0, depth - 1)
                elif char == "," and depth == 0:
                    break
        if url:
            urls.append(url)
    return urls


# -- the HTML5 judge


def parse(data: bytes | str, encoding: str | None, scripting: bool) -> ElementTree.Element:
    """The tree a browser builds, with scripting on (``<noscript>`` is text) or off (it is markup)."""
    import html5lib  # type: ignore[import-untyped]

    parser = html5lib.HTMLParser(tree=html5lib.getTreeBuilder("etree"), namespaceHTMLElements=False)
    if isinstance(data, str):
        tree: ElementTree.Element = parser.parse(data, scripting=scripting)
    else:
        tree = parser.parse(data, scripting=scripting, transport_encoding=encoding)
    return tree


def walk(root: ElementTree.Element, inside: tuple[str, ...] = ()
         ) -> Iterator[tuple[ElementTree.Element, tuple[str, ...]]]:
    """Every element in document order, with the names of its ancestors."""
    for child in root:
        if not isinstance(child.tag, str):
            continue  # comments
        yield child, inside
        yield from walk(child, (*inside, child.tag))


def is_executable_script(element: ElementTree.Element) -> bool:
    kind = element.get("type")
    if kind is None:
        return True
    return kind.strip(" \t\n\f\r").lower().partition(";")[0].strip() in JS_TYPES


def inserted_by_gateway(element: ElementTree.Element, prefix: str) -> bool:
    """The banner block: its elements name the gateway's prefix or carry a cg- id."""
    if (element.get("id") or "").startswith("cg-"):
        return True
    return any((element.get(name) or "").startswith(prefix) for name in ("src", "href"))


#: a URL that CSS fetches: ``url(…)`` (a background, a font, a cursor…) or ``@import "…"``
CSS_URL_RE = re.compile(r"""url\(\s*(['"]?)([^'")\s]+)\1\s*\)|@import\s+(['"])([^'"]+)\3""", re.I)


#: a CSS fetch the gateway held back: ``url(data:,cg;<category>;<vendor>;<the original token>)``
CSS_HELD_RE = re.compile(r"url\(data:,cg;([^;]*);([^;]*);([^)]*)\)")


def css_texts(root: ElementTree.Element, prefix: str) -> list[tuple[str, str]]:
    """(where, CSS) of live CSS: ``<style>`` elements and ``style`` attributes outside ``<template>``/
    ``<noscript>``."""
    found = []
    for element, inside in walk(root):
        if any(local(tag) in ("template", "noscript") for tag in inside) or inserted_by_gateway(element, prefix):
            continue
        found.append(("style attribute", element.get("style") or ""))
        if local(element.tag) == "style":
            found.append(("<style>", "".join(element.itertext())))
    return found


def css_urls(root: ElementTree.Element, page_url: str, prefix: str) -> list[tuple[str, str]]:
    """(where, URL) of every fetch in live CSS (what the gateway leaves live)."""
    found = []
    for where, text in css_texts(root, prefix):
        for match in CSS_URL_RE.finditer(text):
            url = resolve(page_url, match.group(2) or match.group(4))
            if url and url.startswith(("http:", "https:")):
                found.append((where, url))
    return found


def css_held_urls(root: ElementTree.Element, page_url: str, prefix: str) -> list[tuple[str, str]]:
    """(held as vendor, URL) of every CSS fetch the gateway held back, read from the original it carries."""
    found = []
    for _, text in css_texts(root, prefix):
        for held in CSS_HELD_RE.finditer(text):
            original = urllib.parse.unquote(held.group(3))
            match = CSS_URL_RE.search(original.replace("\\3a ", ":"))
            url = resolve(page_url, match.group(2) or match.group(4)) if match else None
            found.append((held.group(2), url or ""))
    return found


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def url_attributes(element: ElementTree.Element, inside: tuple[str, ...]) -> list[tuple[str, str]]:
    """(attribute, kind) of every attribute through which this element fetches or runs something."""
    tag = element.tag
    if tag == "script":
        return [("src", "script")]
    if tag == SVG + "script":
        return [("href", "svg script"), (XLINK_HREF, "svg script")]
    if tag in (SVG + "image", SVG + "use", SVG + "feImage"):
        kind = "svg " + tag.rpartition("}")[2].lower()
        return [("href", kind), (XLINK_HREF, kind)]
    if tag in ("table", "td", "th"):
        return [("background", tag + " background")]
    if tag in ("iframe", "frame"):
        return [("src", tag)]
    if tag == "img":
        return [("src", "img"), ("srcset", "img srcset")]
    if tag == "link":
        rels = set((element.get("rel") or element.get("data-cg-rel") or "").lower().split())
        if rels & LINK_FETCH_RELS or element.get("data-cg-href") is not None:
            kind = "link " + "/".join(sorted(rels & LINK_FETCH_RELS) or ["?"])
            return [("href", kind), ("imagesrcset", kind)]
        return []
    if tag == "source":
        return [("src", "source"), ("srcset", "picture source" if inside and inside[-1] == "picture" else "source")]
    if tag == "video":
        return [("src", "video"), ("poster", "video poster")]
    if tag in ("audio", "track", "embed"):
        return [("src", tag)]
    if tag == "object":
        return [("data", "object"), ("codebase", "object"), ("archive", "object")]
    if tag == "input" and (element.get("type") or "").strip().lower() == "image":
        return [("src", "input image")]
    if tag in ("a", "area"):
        return [("ping", "a ping")]
    if tag == "meta" and (element.get("http-equiv") or "").strip().lower() == "refresh":
        return [("content", "meta refresh")]
    if tag == "body":
        return [("background", "body background")]
    return []


def urls_of(attribute: str, value: str) -> list[str]:
    if attribute in ("srcset", "imagesrcset"):
        return srcset_urls(value)
    if attribute in ("ping", "archive"):
        return value.split()
    if attribute == "content":  # meta refresh: "5; url=…"
        found = re.search(r"url\s*=\s*['\"]?([^'\"]+)", value, re.I)
        return [found.group(1)] if found else []
    return [value]


@dataclass
class Fetch:
    kind: str
    url: str
    host: str
    held: bool
    in_noscript: bool = False
    #: which element (its position in the walk): a held element is judged on all its URLs together
    element: int = 0


def fetches(root: ElementTree.Element, page_url: str, prefix: str, only_in_noscript: bool = False,
            depth: int = 0) -> list[Fetch]:
    """Every URL an element would fetch or run (live), or would once restored (held: ``data-cg-*``)."""
    base = page_url
    for element, _ in walk(root):
        if element.tag == "base" and element.get("href"):
            base = resolve(page_url, element.get("href") or "") or page_url
            break
    found: list[Fetch] = []
    for position, (element, inside) in enumerate(walk(root)):
        in_noscript = "noscript" in inside
        if only_in_noscript and not in_noscript:
            continue
        if inserted_by_gateway(element, prefix):
            continue
        tag = element.tag
        script_runs = tag != "script" or is_executable_script(element)
        for attribute, kind in url_attributes(element, inside):
            for held, name in ((False, attribute), (True, "data-cg-" + attribute.rpartition("}")[2])):
                value = element.get(name)
                if value is None or (not held and not script_runs):
                    continue
                for raw in urls_of(attribute, value):
                    url = resolve(base, raw)
                    if url is not None:
                        found.append(Fetch(kind, url, host_of(url), held, in_noscript, position))
        if tag == "iframe" and depth < 3:  # an inline document is a page of its own
            for held, name in ((False, "srcdoc"), (True, "data-cg-srcdoc")):
                value = element.get(name)
                if value:
                    for inner in fetches(parse(value, None, True), base, prefix, depth=depth + 1):
                        inner.kind = "iframe srcdoc > " + inner.kind
                        inner.held = inner.held or held
                        inner.element = position  # judged with the iframe that holds it
                        found.append(inner)
    return found


def inline_scripts(root: ElementTree.Element, prefix: str) -> list[tuple[bool, str, dict[str, str]]]:
    """(executable, text, attributes) of every script element without src, in document order."""
    scripts = []
    for element, _ in walk(root):
        if element.tag in ("script", SVG + "script") and not inserted_by_gateway(element, prefix):
            if element.get("src") is None and element.get("data-cg-src") is None:
                scripts.append((is_executable_script(element), element.text or "", dict(element.attrib)))
    return scripts


def visible_text(root: ElementTree.Element, prefix: str) -> str:
    parts: list[str] = []

    def collect(element: ElementTree.Element) -> None:
        for child in element:
            if not isinstance(child.tag, str):
                if child.tail:
                    parts.append(child.tail)
                continue
            if child.tag not in NON_TEXT and not inserted_by_gateway(child, prefix):
                if child.text:
                    parts.append(child.text)
                collect(child)
            if child.tail:
                parts.append(child.tail)

    collect(root)
    return " ".join(" ".join(parts).split())


def element_counts(root: ElementTree.Element, prefix: str) -> collections.Counter[str]:
    return collections.Counter(
        element.tag for element, _ in walk(root) if not inserted_by_gateway(element, prefix)
    )


def tracker_hosts_in_script(text: str, trackers: TrackerList, own_entity: str | None = None) -> list[str]:
    """Hosts of the list's trackers named in a script's text (only those that track)."""
    hosts: list[str] = []
    text = text.replace("\\u002f", "/").replace("\\u002F", "/").replace("\\x2f", "/").replace("\\/", "/")
    for match in HOST_IN_TEXT_RE.finditer(text):
        host = match.group(1).lower()
        found = trackers.tracker(host)
        if found is not None and found[0] != own_entity and host not in hosts:
            hosts.append(host)
    return hosts


def carries_tracker_code(text: str, trackers: TrackerList, own_entity: str | None = None) -> list[str]:
    """A script that names a tracker's host *and* loads or sends something: a tracker's loader or beacon."""
    hosts = tracker_hosts_in_script(text, trackers, own_entity)
    return hosts if hosts and LOADER_RE.search(text) else []


# -- the gateway, driven in-process


def charset_of(page: bytes) -> str | None:
    if page.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    found = META_CHARSET_RE.search(page[:4096])
    return found.group(1).decode("ascii").lower() if found else None


async def through_gateway(gateway: ConsentGateway, page: bytes, content_type: bytes, host: str, path: str,
                          chunk: int | None, response_headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    async def site(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        if chunk is None:
            await send({"type": "http.response.body", "body": page, "more_body": False})
            return
        for start in range(0, len(page), chunk):
            await send({"type": "http.response.body", "body": page[start:start + chunk], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            out.append(message.get("body", b""))
        elif message["type"] == "http.response.start" and response_headers is not None:
            response_headers.extend(message.get("headers", ()))

    gateway.app = site
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "https",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", host.encode()), (b"accept-language", b"en-GB,en;q=0.8"),
                    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"),
                    (b"accept", b"text/html")],
        "client": ("192.0.2.10", 50000), "server": (host, 443),
    }
    await gateway(scope, receive, send)
    return b"".join(out)


def clear_chunk_cache() -> bool:
    """The rewriter's chunk cache, wherever the package keeps it (its module moves)."""
    for module_name in ("consent_gateway.html.cache", "consent_gateway.html.rewriter", "consent_gateway.rewriter"):
        try:
            module = __import__(module_name, fromlist=["CHUNK_CACHE"])
        except ImportError:
            continue
        cache = getattr(module, "CHUNK_CACHE", None)
        if cache is not None:
            cache.clear()
            return True
    return False


def accelerators() -> str:
    names = []
    for module in ("hyperscan", "xxhash"):
        try:
            __import__(module)
            names.append(module)
        except ImportError:
            pass
    return ", ".join(names) or "none"


# -- one page


@dataclass
class Page:
    id: str
    url: str
    host: str
    size: int
    data: bytes
    #: where the site's host comes from: "manifest", "page" (its canonical link) or "none"
    host_from: str


CANONICAL_RE = re.compile(
    rb"<link\b[^>]*?\brel\s*=\s*[\"']?canonical\b[^>]*>|<meta\b[^>]*?\bproperty\s*=\s*[\"']?og:url\b[^>]*>", re.I
)
ADDRESS_RE = re.compile(rb"\b(?:href|content)\s*=\s*[\"']?(https?://[^\"'\s>]+)", re.I)


def own_address(page: bytes) -> str:
    """A page's address as it states it (canonical link, og:url), for pages the manifest has none for."""
    for tag in CANONICAL_RE.finditer(page[:262144]):
        found = ADDRESS_RE.search(tag.group(0))
        if found:
            return found.group(1).decode("latin-1")
    return ""


def read_pages(folder: Path, limit: int | None) -> list[Page]:
    pages = []
    with open(folder / "manifest.tsv", encoding="utf-8") as manifest:
        header = manifest.readline().rstrip("\n").split("\t")
        for line in manifest:
            row = dict(zip(header, line.rstrip("\n").split("\t"), strict=False))
            path = folder / "pages" / f"{row['id']}.html.gz"
            if not path.exists():
                continue
            data = gzip.decompress(path.read_bytes())
            page_url, host_from = row.get("page_url") or "", "manifest"
            if not page_url:
                page_url, host_from = own_address(data), "page"
            host = (urllib.parse.urlsplit(page_url).hostname or "") if page_url else ""
            if not host:
                host, page_url, host_from = NEUTRAL_HOST, f"https://{NEUTRAL_HOST}/{row['id']}.html", "none"
            pages.append(Page(row["id"], page_url, host, len(data), data, host_from))
            if limit and len(pages) >= limit:
                break
    return pages


class Judge:
    def __init__(self, gateway: ConsentGateway, trackers: TrackerList, sites: Sites) -> None:
        self.gateway = gateway
        self.trackers = trackers
        self.sites = sites
        self.prefix = gateway.config.gateway.prefix + "/"
        self.first_party_hosts = set(getattr(gateway.config.gateway, "first_party_hosts", ()) or ())
        self.allowed = self._allowed_hosts()
        # the gateway's own allow-list (built-in entries and [third_parties] allow), where it has one
        rules = getattr(gateway.catalog, "third_parties", None)
        self._allow_entry = getattr(rules, "allow_entry", None)

    def _allowed_hosts(self) -> set[str]:
        """Hosts the config allows (used only when the gateway has no allow-list of its own to ask)."""
        hosts: set[str] = set()
        third = getattr(self.gateway.config, "third_parties", None)
        for entry in getattr(third, "allow", ()) or ():
            host = entry.get("host") if isinstance(entry, dict) else getattr(entry, "host", entry)
            if isinstance(host, str):
                hosts.add(host.lower().removeprefix("*.").partition("/")[0])
        return hosts

    def first_party(self, host: str, page_host: str) -> bool:
        if host == page_host or host in self.first_party_hosts:
            return True
        return self.sites.site(host) == self.sites.site(page_host)

    def is_allowed(self, host: str, url: str) -> bool:
        if self._allow_entry is not None:
            try:
                return self._allow_entry(host, urllib.parse.urlsplit(url).path) is not None
            except Exception:  # noqa: S110 — another version's signature: fall back to the config's hosts
                pass
        labels = host.split(".")
        return any(".".join(labels[i:]) in self.allowed for i in range(len(labels) - 1))

    def catalog_vendor(self, url: str) -> str | None:
        catalog = self.gateway.catalog
        for kind in ("script", "iframe", "img", "link"):
            try:
                vendor = catalog.vendor_for_url(url, kind)
            except Exception:  # noqa: S112 — a kind this catalog version does not know
                continue
            if vendor is not None and vendor.id != "unclassified":
                return str(vendor.id)
        return None

    def kind_of(self, fetch: Fetch) -> str:
        if self.catalog_vendor(fetch.url) is not None:
            return "catalog"
        if self.is_allowed(fetch.host, fetch.url):
            return "allowed"
        return "unclassified"

    def judge(self, page: Page, encoding: str | None, out: bytes, content_type: bytes = b"") -> dict[str, Any]:
        before = parse(page.data, encoding, scripting=True)
        after = parse(out, encoding, scripting=True)
        result: dict[str, Any] = {"id": page.id, "url": page.url, "bytes": page.size, "out_bytes": len(out)}

        live: list[dict[str, Any]] = []
        held: list[dict[str, Any]] = []
        own = self.trackers.lookup(page.host)
        own_entity = own[0] if own is not None else None
        after_fetches = fetches(after, page.url, self.prefix)
        if b"<noscript" in out.lower():  # a browser without scripting reads <noscript> as markup
            after_fetches += fetches(parse(out, encoding, scripting=False), page.url, self.prefix,
                                     only_in_noscript=True)
        # A held element is over-held only when none of its URLs (src and every srcset candidate: the browser
        # may fetch any) is a third party nobody allowed: the first such URL is why it is held.
        held_elements: dict[tuple[bool, int], list[str]] = {}
        for fetch in after_fetches:
            if fetch.held:
                why = ("first-party" if self.first_party(fetch.host, page.host)
                       else "allowed" if self.kind_of(fetch) == "allowed" else "third-party")
                held_elements.setdefault((fetch.in_noscript, fetch.element), []).append(why)
        over_held = {key: ("allowed" if "allowed" in whys else "first-party")
                     for key, whys in held_elements.items() if "third-party" not in whys}
        for fetch in after_fetches:
            if self.first_party(fetch.host, page.host):
                if fetch.held and over_held.get((fetch.in_noscript, fetch.element)) == "first-party":
                    held.append({"kind": fetch.kind, "host": fetch.host, "why": "first-party"})
                continue
            tracker = self.trackers.tracker(fetch.host)
            if tracker is not None and tracker[0] == own_entity:
                tracker = None  # the site's own organisation (yahoo.com and its s.yimg.com): not a third party
            record = {"kind": fetch.kind, "host": fetch.host, "class": self.kind_of(fetch),
                      "tracker": tracker[0] if tracker else None, "noscript": fetch.in_noscript, "url": fetch.url}
            if fetch.held:
                if record["class"] == "allowed" and over_held.get((fetch.in_noscript, fetch.element)):
                    held.append({"kind": fetch.kind, "host": fetch.host, "why": "allowed"})
            else:
                live.append(record)
        result["live"] = live
        result["held_wrongly"] = held
        css = []
        for where, url in css_urls(after, page.url, self.prefix):
            host = host_of(url)
            if host and not self.first_party(host, page.host):
                tracker = self.trackers.tracker(host)
                css.append({"where": where, "host": host, "tracker": tracker[0] if tracker else None,
                            "class": self.kind_of(Fetch(kind="css", url=url, host=host, held=False, element=-1))})
        result["css_live"] = css
        css_held = []
        for vendor, url in css_held_urls(after, page.url, self.prefix):
            host = host_of(url) if url else ""
            first_party = not host or self.first_party(host, page.host)
            css_held.append({"vendor": vendor, "host": host, "first_party": first_party,
                             "class": "first-party" if first_party else self.kind_of(
                                 Fetch(kind="css", url=url, host=host, held=True, element=-1))})
        result["css_held"] = css_held
        # held iframes of hosts nobody classified (the banner shows a placeholder naming the host)
        result["iframes_unclassified_held"] = sum(
            1 for element, inside in walk(after)
            if local(element.tag) in ("iframe", "frame") and element.get("data-cg-vendor") == "unclassified"
            and not any(local(tag) == "noscript" for tag in inside))

        # inline scripts: still live with a tracker's loader, or made inert without one
        scripts_before = inline_scripts(before, self.prefix)
        scripts_after = inline_scripts(after, self.prefix)
        live_inline = []
        for executable, text, _ in scripts_after:
            if executable:
                hosts = carries_tracker_code(text, self.trackers, own_entity)
                if hosts:
                    live_inline.append({"hosts": hosts, "bytes": len(text.encode()), "start": text[:120]})
        result["live_inline"] = live_inline
        inert = []
        if len(scripts_before) == len(scripts_after):
            for (was_run, text, _), (runs, _, attributes) in zip(scripts_before, scripts_after, strict=True):
                if was_run and not runs and not carries_tracker_code(text, self.trackers, own_entity):
                    marks = {k: v for k, v in attributes.items() if k.startswith("data-c")}
                    # restorable: the banner brings back what carries a category (and is no bail-out)
                    restorable = "data-category" in marks and "data-cg-bailout" not in marks
                    inert.append({"bytes": len(text.encode()), "start": text[:120], "restorable": restorable,
                                  "held_as": marks.get("data-cg-vendor") or marks.get("data-category"),
                                  "mentions": tracker_hosts_in_script(text, self.trackers, own_entity)[:3],
                                  "marked": marks})
        else:
            result["script_count_changed"] = [len(scripts_before), len(scripts_after)]
        result["inert_inline"] = inert

        # the page's own content
        text_before, text_after = visible_text(before, self.prefix), visible_text(after, self.prefix)
        if text_before != text_after:
            at = next((i for i, (a, b) in enumerate(zip(text_before, text_after, strict=False)) if a != b),
                      min(len(text_before), len(text_after)))
            result["text_changed"] = {"at": at, "before": text_before[max(0, at - 40):at + 80],
                                      "after": text_after[max(0, at - 40):at + 80]}
        counts_before, counts_after = element_counts(before, self.prefix), element_counts(after, self.prefix)
        if counts_before != counts_after:
            result["counts_changed"] = {tag: [counts_before[tag], counts_after[tag]]
                                        for tag in counts_before | counts_after
                                        if counts_before[tag] != counts_after[tag]}
        meta_before = META_CHARSET_RE.search(page.data[:1024])
        # a browser reads the <meta> only in the first KiB, and only when Content-Type names no charset
        if meta_before and not META_CHARSET_RE.search(out[:1024]) and b"charset=" not in content_type.lower():
            result["meta_charset_pushed_out"] = True
        return result


# -- the run


def pick_bytewise(pages: list[Page], budget: int) -> set[str]:
    """Pages fed one byte at a time: every page when the budget allows, else an even spread by size."""
    if sum(page.size for page in pages) <= budget:
        return {page.id for page in pages}
    chosen: set[str] = set()
    total = 0
    by_size = sorted(pages, key=lambda page: page.size)
    step = max(1, len(by_size) // 40)
    for page in by_size[::step] + by_size:
        if page.id not in chosen and total + page.size <= budget:
            chosen.add(page.id)
            total += page.size
    return chosen


async def run(args: argparse.Namespace, pages: list[Page], trackers: TrackerList, sites: Sites) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cg-eval-") as data_dir:
        config_file = Path(data_dir) / "gateway.toml"
        config_file.write_text(f"[gateway]\ndata_dir = {json.dumps(data_dir)}\n", encoding="utf-8")
        gateway = ConsentGateway(lambda *_: None, config=load_config(config_file),  # type: ignore[arg-type]
                                 secret_keys=["bench-real-pages-" + "k" * 32])
        judge = Judge(gateway, trackers, sites)
        bytewise = pick_bytewise(pages, int(args.bytewise_budget * 1e6))
        results = []
        cold_seconds = cold_cpu_seconds = 0.0
        phase: dict[str, float] = collections.defaultdict(float)
        cache_found = True
        for number, page in enumerate(pages, 1):
            encoding = charset_of(page.data)
            # served as a site that does not name its charset in Content-Type (the page's <meta> decides):
            # the harder case for keeping the <meta> where a browser reads it
            content_type = b"text/html"
            path = urllib.parse.urlsplit(page.url).path or "/"
            best = best_cpu = float("inf")
            outputs = set()
            for _ in range(3):
                cache_found = clear_chunk_cache() and cache_found
                start, start_cpu = time.perf_counter(), time.process_time()
                headers: list[tuple[bytes, bytes]] = []
                whole = await through_gateway(gateway, page.data, content_type, page.host, path, None, headers)
                best_cpu = min(best_cpu, time.process_time() - start_cpu)
                best = min(best, time.perf_counter() - start)
                outputs.add(whole)
            cold_seconds += best
            cold_cpu_seconds += best_cpu
            differs: list[int | str] = [] if len(outputs) == 1 else ["whole, twice"]
            for chunk in CHUNK_SIZES if args.chunkings else ():
                if chunk == 1 and page.id not in bytewise:
                    continue
                start = time.perf_counter()
                out = await through_gateway(gateway, page.data, content_type, page.host, path, chunk)
                phase[f"chunk size {chunk}"] += time.perf_counter() - start
                if out != whole:
                    differs.append(chunk)
            start = time.perf_counter()
            result = judge.judge(page, encoding, whole,
                                 dict(headers).get(b"content-type", b""))
            phase["html5lib judge"] += time.perf_counter() - start
            result["chunkings_differ"] = differs
            result["bytewise"] = page.id in bytewise
            result["cold_ms"] = round(best * 1000, 3)
            results.append(result)
            if args.progress:
                print(f"  {number}/{len(pages)} {page.id} {page.size:,} B", file=sys.stderr)
        await gateway.aclose()
    return {"results": results, "cold_seconds": cold_seconds, "cold_cpu_seconds": cold_cpu_seconds,
            "phase_seconds": {name: round(value, 1) for name, value in phase.items()}, "cache_cleared": cache_found,
            "chunkings": args.chunkings, "bytewise_pages": len(bytewise) if args.chunkings else 0,
            "bytewise_bytes": sum(p.size for p in pages if p.id in bytewise) if args.chunkings else 0}


async def cold_speed(pages: list[Page]) -> dict[str, Any]:
    """Only the cold rewrite through the middleware (what ``run`` measures besides its judging), on the core
    this process runs."""
    with tempfile.TemporaryDirectory(prefix="cg-eval-") as data_dir:
        config_file = Path(data_dir) / "gateway.toml"
        config_file.write_text(f"[gateway]\ndata_dir = {json.dumps(data_dir)}\n", encoding="utf-8")
        gateway = ConsentGateway(lambda *_: None, config=load_config(config_file),  # type: ignore[arg-type]
                                 secret_keys=["bench-real-pages-" + "k" * 32])
        seconds = cpu_seconds = 0.0
        for page in pages:
            path = urllib.parse.urlsplit(page.url).path or "/"
            best = best_cpu = float("inf")
            for _ in range(3):
                clear_chunk_cache()
                start, start_cpu = time.perf_counter(), time.process_time()
                await through_gateway(gateway, page.data, b"text/html", page.host, path, None)
                best_cpu = min(best_cpu, time.process_time() - start_cpu)
                best = min(best, time.perf_counter() - start)
            seconds += best
            cpu_seconds += best_cpu
        await gateway.aclose()
    total = sum(page.size for page in pages)
    return {"core": list(core_path()), "bytes": total, "cold_mb_per_s": total / seconds / 1e6,
            "cold_mb_per_cpu_s": total / cpu_seconds / 1e6}


def pure_core_speed(args: argparse.Namespace) -> dict[str, Any] | None:
    """The cold figures on the pure-Python core, from a second process (the core is chosen at import)."""
    command = [sys.executable, __file__, "--speed-only", "--pages", str(args.pages)]
    if args.limit:
        command += ["--limit", str(args.limit)]
    run = subprocess.run(command, env={**os.environ, PURE_ENV: "1"}, capture_output=True, text=True,  # noqa: S603
                         check=False)
    if run.returncode != 0:
        print(f"bench_real_pages: the pure-Python core's run failed: {run.stderr[-2000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def summarise(run_data: dict[str, Any], pages: list[Page], trackers: TrackerList, sites: Sites,
              seconds: float) -> dict[str, Any]:
    results = run_data["results"]
    total_bytes = sum(page.size for page in pages)

    def pages_with(predicate: Any) -> int:
        return sum(1 for r in results if predicate(r))

    live = [f | {"page": r["id"]} for r in results for f in r["live"]]
    live_js = [f for f in live if not f["noscript"]]
    live_noscript = [f for f in live if f["noscript"]]
    tracker_live = [f for f in live if f["tracker"]]
    by_class = collections.Counter(f["class"] for f in tracker_live)
    hosts: dict[str, dict[str, Any]] = {}
    for f in tracker_live:
        entry = hosts.setdefault(f["host"], {"host": f["host"], "entity": f["tracker"], "class": f["class"],
                                             "elements": 0, "pages": set(), "kinds": collections.Counter()})
        entry["elements"] += 1
        entry["pages"].add(f["page"])
        entry["kinds"][f["kind"]] += 1
    top_hosts = sorted(hosts.values(), key=lambda e: (-len(e["pages"]), -e["elements"], e["host"]))
    inert = [s | {"page": r["id"]} for r in results for s in r["inert_inline"]]
    held_wrongly = [h | {"page": r["id"]} for r in results for h in r["held_wrongly"]]
    broken = [x for x in inert if not x["restorable"]]
    held_inline = [x for x in inert if x["restorable"]]
    summary = {
        "pages": len(pages),
        "bytes": total_bytes,
        "hosts_known": sum(1 for page in pages if page.host_from == "manifest"),
        "hosts_from_page": sum(1 for page in pages if page.host_from == "page"),
        "tracker_list": {"name": trackers.name, "version": trackers.version, "licence": trackers.licence},
        "public_suffix_list": sites.source,
        "accelerators": accelerators(),
        "third_party_live": {"elements": len(live), "pages": len({f["page"] for f in live}),
                             "scripting_on": len(live_js)},
        "third_party_live_noscript": {"elements": len(live_noscript),
                                      "pages": len({f["page"] for f in live_noscript})},
        "tracker_live": {"elements": len(tracker_live), "pages": len({f["page"] for f in tracker_live}),
                         "by_class": dict(by_class),
                         "noscript_elements": sum(1 for f in tracker_live if f["noscript"])},
        "third_party_live_by_class": dict(collections.Counter(f["class"] for f in live)),
        "tracker_inline_live": {"scripts": sum(len(r["live_inline"]) for r in results),
                                "pages": pages_with(lambda r: r["live_inline"])},
        "held_first_party": {"elements": sum(1 for h in held_wrongly if h["why"] == "first-party"),
                             "pages": len({h["page"] for h in held_wrongly if h["why"] == "first-party"})},
        "held_allowed": {"elements": sum(1 for h in held_wrongly if h["why"] == "allowed"),
                         "pages": len({h["page"] for h in held_wrongly if h["why"] == "allowed"})},
        "broken_inline": {"scripts": len(broken), "pages": len({x["page"] for x in broken}),
                          "over_buffer": sum(1 for x in broken if x["bytes"] > BUFFER_BYTES)},
        "held_inline_no_tracker": {"scripts": len(held_inline), "pages": len({x["page"] for x in held_inline}),
                                   "catalog": sum(1 for x in held_inline if x["held_as"] != "unclassified"),
                                   "unclassified": sum(1 for x in held_inline if x["held_as"] == "unclassified")},
        "css_live": {
            "tracker": sum(1 for r in results for c in r["css_live"] if c["tracker"]),
            "tracker_pages": pages_with(lambda r: any(c["tracker"] for c in r["css_live"])),
            "other": sum(1 for r in results for c in r["css_live"] if not c["tracker"] and c["class"] != "allowed"),
            "other_pages": pages_with(lambda r: any(not c["tracker"] and c["class"] != "allowed"
                                                    for c in r["css_live"])),
        },
        "css_held": {
            "urls": sum(len(r["css_held"]) for r in results),
            "pages": pages_with(lambda r: r["css_held"]),
            "unclassified": sum(1 for r in results for c in r["css_held"] if c["vendor"] == "unclassified"),
            "first_party": sum(1 for r in results for c in r["css_held"] if c["first_party"]),
            "allowed": sum(1 for r in results for c in r["css_held"] if c["class"] == "allowed"),
        },
        "iframes_unclassified_held": {"elements": sum(r["iframes_unclassified_held"] for r in results),
                                      "pages": pages_with(lambda r: r["iframes_unclassified_held"])},
        "text_changed_pages": pages_with(lambda r: "text_changed" in r),
        "counts_changed_pages": pages_with(lambda r: "counts_changed" in r or "script_count_changed" in r),
        "meta_charset_pushed_out_pages": pages_with(lambda r: r.get("meta_charset_pushed_out")),
        "chunkings_differ_pages": pages_with(lambda r: r["chunkings_differ"]),
        "chunkings": run_data["chunkings"],
        "bytewise_pages": run_data["bytewise_pages"],
        "bytewise_bytes": run_data["bytewise_bytes"],
        "cold_mb_per_s": total_bytes / run_data["cold_seconds"] / 1e6 if run_data["cold_seconds"] else None,
        "cold_mb_per_cpu_s": (total_bytes / run_data["cold_cpu_seconds"] / 1e6
                              if run_data["cold_cpu_seconds"] else None),
        "core": list(core_path()),
        "pure_core": run_data.get("pure_core"),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "phase_seconds": run_data["phase_seconds"],
        "cache_cleared": run_data["cache_cleared"],
        "seconds": round(seconds, 1),
        "top_tracker_hosts": [{**e, "pages": len(e["pages"]), "kinds": dict(e["kinds"])} for e in top_hosts[:25]],
        "inline_loaders_live": [{"page": r["id"], "hosts": x["hosts"][:3], "bytes": x["bytes"],
                                 "start": " ".join(x["start"].split())[:60]}
                                for r in results for x in r["live_inline"]],
    }
    return summary


def markdown(summary: dict[str, Any]) -> str:
    s = summary
    tl = s["tracker_list"]
    mb = s["bytes"] / 1e6
    by_class = s["tracker_live"]["by_class"]
    any_class = s["third_party_live_by_class"]
    lines = [
        f"Real pages: {s['pages']} ({mb:.1f} MB; the site's host from the manifest for {s['hosts_known']}, from its "
        f"canonical link for {s['hosts_from_page']}), default config (opt-in), no consent; tracker judge: "
        f"{tl['name']} {tl['version']} ({tl['licence']}); registrable domains: {s['public_suffix_list']}.",
        "",
        "| measure | result | target |",
        "|---|---:|---:|",
        f"| tracker elements live before consent (scripting on + `<noscript>` with scripting off) | "
        f"{s['tracker_live']['elements']} on {s['tracker_live']['pages']} pages | 0 |",
        f"| … of which catalog vendor / allowed host / unclassified | {by_class.get('catalog', 0)} / "
        f"{by_class.get('allowed', 0)} / {by_class.get('unclassified', 0)} | |",
        f"| … of which inside `<noscript>` | {s['tracker_live']['noscript_elements']} | |",
        f"| inline scripts still carrying a tracker's loader | {s['tracker_inline_live']['scripts']} on "
        f"{s['tracker_inline_live']['pages']} pages | 0 |",
        f"| third-party elements live, tracker or not (catalog vendor / allowed host / unclassified) | "
        f"{s['third_party_live']['elements']} on {s['third_party_live']['pages']} pages ({any_class.get('catalog', 0)}"
        f" / {any_class.get('allowed', 0)} / {any_class.get('unclassified', 0)}) | |",
        f"| first-party elements held back | {s['held_first_party']['elements']} on "
        f"{s['held_first_party']['pages']} pages | 0 |",
        f"| allowed-host elements held back | {s['held_allowed']['elements']} on {s['held_allowed']['pages']} pages"
        f" | 0 |",
        f"| inline scripts made inert for good (not restorable) without tracker code | "
        f"{s['broken_inline']['scripts']} on {s['broken_inline']['pages']} pages "
        f"({s['broken_inline']['over_buffer']} longer than 64 KiB) | 0 |",
        f"| inline scripts held back restorably without tracker code: as a catalog vendor / unclassified | "
        f"{s['held_inline_no_tracker']['catalog']} / {s['held_inline_no_tracker']['unclassified']} on "
        f"{s['held_inline_no_tracker']['pages']} pages | |",
        f"| CSS fetches live (`url()`, `@import` in `<style>` and `style=\"\"`): to tracker hosts / "
        f"to other third parties not allowed | {s['css_live']['tracker']} on {s['css_live']['tracker_pages']} pages / "
        f"{s['css_live']['other']} on {s['css_live']['other_pages']} pages | 0 / |",
        f"| CSS fetches held back restorably (`url(data:,cg;…)`): all (as unclassified) / to first-party hosts / "
        f"to allowed hosts | {s['css_held']['urls']} on {s['css_held']['pages']} pages "
        f"({s['css_held']['unclassified']}) / {s['css_held']['first_party']} / {s['css_held']['allowed']} | / 0 / 0 |",
        f"| iframes held as unclassified (the banner shows each a placeholder naming its host) | "
        f"{s['iframes_unclassified_held']['elements']} on {s['iframes_unclassified_held']['pages']} pages | |",
        f"| pages whose visible text changed | {s['text_changed_pages']} | 0 |",
        f"| pages whose element counts changed | {s['counts_changed_pages']} | 0 |",
        f"| pages whose `<meta charset>` left the first 1024 bytes, no charset in Content-Type | "
        f"{s['meta_charset_pushed_out_pages']} | 0 |",
        f"| pages whose output differs across chunk sizes 1, 7, 4096, whole | {s['chunkings_differ_pages']} of "
        f"{s['pages']} (size 1 on {s['bytewise_pages']} pages, {s['bytewise_bytes'] / 1e6:.1f} MB) | 0 |"
        if s["chunkings"] else "| pages whose output differs across chunkings | not measured (--no-chunkings) | 0 |",
        f"| cold rewrite through the middleware, per CPU second (cache cleared per page; accelerators: "
        f"{s['accelerators']}), {s['core'][0]} core | {s['cold_mb_per_cpu_s']:.0f} MB/s "
        f"({s['cold_mb_per_s']:.0f} MB/s wall clock) | ≥ 500 MB/s compiled |",
        (f"| the same, pure-Python core (`{PURE_ENV}=1`, another process) | "
         f"{s['pure_core']['cold_mb_per_cpu_s']:.0f} MB/s ({s['pure_core']['cold_mb_per_s']:.0f} MB/s wall clock) "
         f"| ≥ 150 MB/s |" if s["pure_core"] else
         f"| the same, pure-Python core | {'this run' if s['core'][0] == 'pure' else 'not measured'} | ≥ 150 MB/s |"),
        "",
        "| live tracker host | entity (list) | gateway's view | elements | pages |",
        "|---|---|---|---:|---:|",
    ]
    for entry in s["top_tracker_hosts"][:15]:
        lines.append(f"| {entry['host']} | {entry['entity']} | {entry['class']} | {entry['elements']} | "
                     f"{entry['pages']} |")
    if s["inline_loaders_live"]:
        lines += ["", "| inline script still carrying a tracker's loader | page | bytes | tracker hosts it names |",
                  "|---|---|---:|---|"]
        for entry in s["inline_loaders_live"]:
            start = entry["start"].replace("|", "\\|").replace("`", "'")
            lines.append(f"| `{start}` | {entry['page']} | {entry['bytes']:,} | {', '.join(entry['hosts'])} |")
    lines.append("")
    phases = ", ".join(f"{name} {value} s" for name, value in s["phase_seconds"].items())
    lines.append(f"({s['seconds']} s: {phases}; load average {s['load_average'][0]} on {os.cpu_count()} CPUs)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=Path, default=DEFAULT_PAGES, help="folder with manifest.tsv and pages/")
    parser.add_argument("--json", type=Path, help="write the summary and every page's findings here")
    parser.add_argument("--limit", type=int, help="only the first N pages")
    parser.add_argument("--bytewise-budget", type=float, default=2.0,
                        help="MB of pages also fed one byte at a time (slow: ~1 s per 100 KB)")
    parser.add_argument("--tracker-list", default="third-party-web",
                        help="third-party-web (default), ghostery-trackerdb, or the path of either's JSON")
    parser.add_argument("--no-chunkings", dest="chunkings", action="store_false",
                        help="skip the chunk sizes 1, 7 and 4096 (half the run time)")
    parser.add_argument("--details", action="store_true", help="also print every finding, page by page")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--speed-only", action="store_true",
                        help="only the cold rewrite MB/s on the core this process runs, as one JSON line")
    parser.add_argument("--no-pure", dest="pure", action="store_false",
                        help="do not measure the pure-Python core in a second process")
    args = parser.parse_args()
    if not (args.pages / "manifest.tsv").exists():
        print(f"bench_real_pages: skipped, no real pages at {args.pages} (give --pages DIR)")
        return 0
    try:
        import html5lib  # noqa: F401
    except ImportError:
        print("bench_real_pages: needs html5lib: pip install -e '.[eval]'", file=sys.stderr)
        return 1
    pages = read_pages(args.pages, args.limit)
    if args.speed_only:
        print(json.dumps(asyncio.run(cold_speed(pages))))
        return 0
    trackers = load_tracker_list(args.tracker_list)
    sites = Sites()
    start = time.perf_counter()
    run_data = asyncio.run(run(args, pages, trackers, sites))
    if args.pure and core_path()[0] == "compiled":
        run_data["pure_core"] = pure_core_speed(args)
    summary = summarise(run_data, pages, trackers, sites, time.perf_counter() - start)
    print(markdown(summary))
    if args.details:
        for result in run_data["results"]:
            findings = {k: v for k, v in result.items() if v and k not in ("id", "url", "bytes", "out_bytes",
                                                                          "cold_ms", "bytewise", "live")}
            trackers_live = [f"{f['kind']} {f['url'][:100]}" for f in result["live"] if f["tracker"]]
            if trackers_live:
                findings["trackers_live"] = trackers_live
            if findings:
                print(json.dumps({"id": result["id"], "url": result["url"], **findings}, ensure_ascii=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "pages": run_data["results"]}, indent=1,
                                        ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
