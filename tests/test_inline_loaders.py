"""Generic loaders in inline scripts (issue 8.1): a short script that creates an element from a literal
third-party URL is held back like a ``<script src>`` of that host; a first-party script that merely names
a tracker host is not."""

from __future__ import annotations

import pytest

from consent_gateway.catalog import Catalog
from consent_gateway.decision import Decision
from consent_gateway.html import HoldbackRewriter
from consent_gateway.html.inline_loaders import LOADER_SCAN_BYTES, SNIPPET_BYTES, loader_vendors
from consent_gateway.thirdparty import HostCounters, ThirdParties

CATALOG = Catalog.builtin().with_third_parties(ThirdParties(mode="hold", counters=HostCounters()))
SITE = "example.org"
NOTHING = Decision(granted=frozenset({"necessary"}), site=SITE)
EVERYTHING = Decision(granted=frozenset({"necessary", "analytics", "marketing", "unclassified"}), site=SITE)


def rewrite(page: bytes, decision: Decision = NOTHING, chunk_size: int | None = None
            ) -> tuple[bytes, HoldbackRewriter]:
    """The page rewritten for ``decision``, fed in chunks of ``chunk_size`` (whole by default)."""
    rw = HoldbackRewriter(CATALOG, decision, b"", cache=None)
    size = chunk_size or len(page)
    return b"".join(rw.feed(page[i : i + size]) for i in range(0, len(page), size)) + rw.close(), rw


def ids(body: bytes) -> list[str]:
    return [v.id if v.id != "unclassified" else f"unclassified:{v.name}" for v in loader_vendors(body, CATALOG, SITE)]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        # an unclassified third party's script, protocol-relative after document.location.protocol
        (b"(function(){var s=document.createElement('script');s.async=true;"
         b"s.src=document.location.protocol+'//d8rk54i4mohrb.cloudfront.net/js/reach.js';"
         b"document.head.appendChild(s);})();", ["unclassified:d8rk54i4mohrb.cloudfront.net"]),
        # escaped slashes, as JSON-in-JS writes them
        (b'var js=document.createElement("script");js.src="\\/\\/s.tracker-cdn.example\\/v.min.js?v=1";',
         ["unclassified:s.tracker-cdn.example"]),
        # a catalog host, whatever its path: a pixel through new Image()
        (b'var d=new Image(1,1);d.src=["//secure-us.imrworldwide.com/cgi-bin/m?ci=us-1&cg=0"].join("");',
         ["nielsen"]),
        # a catalog host written without a scheme, joined to one at run time
        (b'var i=document.createElement("iframe");i.src=p+"//"+"cdn.adaptv.advertising.com/msft/sync.html";',
         ["yahoo-ads"]),
        # markup written by document.write: src= names a fetch even without ".js"
        (b"document.write('<scr'+'ipt src=\"//asq.nugg.example/rc?nuggn=4\"></scr'+'ipt>');",
         ["unclassified:asq.nugg.example"]),
        # a script element whose URL has no ".js" (a query builds the rest): what it loads is that host's code
        (b'var u="https://segment-data.zqtk.example/newscorpjs-1f38g3?url="+encodeURIComponent(location.href);'
         b"var s=document.createElement('script');s.src=u;document.head.appendChild(s);",
         ["unclassified:segment-data.zqtk.example"]),
        # a bare "host/path" a script loader joins to a scheme at run time
        (b"var ml=document.createElement('script');ml.src=('https:'==location.protocol?'https':'http')+'://'"
         b"+(domain||'js.mather.example/s')+'/'+cid+'/ml.js';", ["unclassified:js.mather.example"]),
        # ... but not a dotted file or property name, nor a bare host/path in a script that creates no script
        (b"var s=document.createElement('script');s.src=base+'app.min.js/'+v;", []),
        (b"var a=document.createElement('a');a.href='//share.social.example/i?u='+u;", []),
        (b"var i=document.createElement('img');i.src='cdn.images.example/a.png';", []),
        # a pixel's image URL is its beacon; a folder a script appends to (WordPress's emoji images) is not
        (b"var i=new Image();i.src='https://px.counter.example/c.gif?r='+document.referrer;",
         ["unclassified:px.counter.example"]),
        (b'window._wpemojiSettings={"baseUrl":"https:\\/\\/s.emoji.example\\/images\\/72x72\\/"};'
         b'var s=document.createElement("script");s.src=settings.concatemoji;', []),
        (b"var s=document.createElement('script');s.src=base+'/app.js';var img='https://cdn.pics.example/a.jpg';",
         []),
        # the site's own hosts and allowed CDNs are not held
        (b'var s=document.createElement("script");s.src="https://static.example.org/app.js";', []),
        (b'var s=document.createElement("script");s.src="https://cdnjs.cloudflare.com/ajax/libs/x/1/x.min.js";', []),
        # an unclassified URL that is not a script (a share link) in a loading script is not held
        (b'var a=document.createElement("a");a.href="https://share.social.example/intent?u="+u;', []),
        # no loading construct: a config map or a CSP list merely names hosts
        (b'window.cfg={"ga":"https://www.google-analytics.com/analytics.js","px":"//px.unknown.example/p.js"};',
         []),
        # a URL split across adjacent literals joined with "+" is read whole
        (b"var s=document.createElement('script');s.src='//c.evidon.com/' + 'sitenotice/' + 'tag.js';",
         ["unclassified:c.evidon.com"]),
        (b'var s=document.createElement("script");s.src="https://" + "px.tracker.example/collect";',
         ["unclassified:px.tracker.example"]),
        (b"document.write('<scr'+'ipt src=\"//' + 'asq.nugg.example/rc\"></scr'+'ipt>');",
         ["unclassified:asq.nugg.example"]),
        (b'var s=document.createElement("script");s.src="//static." + "chartbeat.com/js/chartbeat.js";',
         ["chartbeat"]),
        # a URL literal bound to a name, joined with a literal further on (no literal "script" element here)
        (b"var d=document,sn='script',s=d.createElement(sn);var cdn = '//c.evidon.com/', n = cdn + 'notice/';"
         b"s.src = cdn + 'geo/country.js';", ["unclassified:c.evidon.com"]),
        # ... but not a folder joined with a run-time value, nor a joined URL that is a page or an image
        (b"var s=document.createElement('x');var base='https://cdn.files.example/';s.src=base+v;", []),
        (b"var a=document.createElement('a');var h='https://share.social.example/';a.href=h+'intent';", []),
        # a URL in a comment is not a string literal
        (b"// loaded from //px.unknown.example/p.js\nvar s=document.createElement('script');", []),
    ],
)
def test_loader_vendors(body: bytes, found: list[str]) -> None:
    assert ids(body) == found


def test_a_long_script_is_an_app_not_a_loader() -> None:
    loader = b"var s=document.createElement('script');s.src='//px.unknown.example/p.js';"
    assert ids(loader)
    assert ids(loader + b" " * (LOADER_SCAN_BYTES - len(loader))) == ids(loader)
    assert ids(loader + b" " * (LOADER_SCAN_BYTES + 1 - len(loader))) == []


def test_only_a_snippet_loads_every_url_it_names() -> None:
    # an app that creates a script element and names its links is not a loader of every host it links to
    snippet = b"var s=document.createElement('script');s.src=u;var x='https://api.beacon.example/v1/collect';"
    assert ids(snippet) == ["unclassified:api.beacon.example"]
    assert ids(snippet + b" " * (SNIPPET_BYTES - len(snippet))) == ids(snippet)
    assert ids(snippet + b" " * (SNIPPET_BYTES + 1 - len(snippet))) == []


PAGE = (b"<html><head><script>var a=1;</script>"
        b"<script nonce=n>(function(){var s=document.createElement('script');"
        b"s.src='https://px.unknown.example/p.js';document.head.appendChild(s)})();</script>"
        b"<script>var e=document.createElement('script');e.src='//static.chartbeat.com/js/chartbeat.js';</script>"
        b"</head><body><p>Hello</p></body></html>")


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 4096])
def test_a_page_holds_generic_loaders_restorably_at_every_chunking(chunk_size: int | None) -> None:
    out, rw = rewrite(PAGE, chunk_size=chunk_size)
    assert b'<script type="text/plain" data-category="unclassified" data-cg-vendor="unclassified" nonce=n>' in out
    assert b'<script type="text/plain" data-category="analytics" data-cg-vendor="chartbeat">' in out
    assert b"<script>var a=1;</script>" in out
    assert rw.held_back == {"unclassified": 1, "chartbeat": 1}
    assert rewrite(PAGE, EVERYTHING)[0] == PAGE


def test_a_vendor_include_that_builds_its_url_at_run_time_is_held_as_that_vendor() -> None:
    page = (b'<script>(function(s, p, d) { var h=d.location.protocol, i=p+"-"+s,'
            b' u=h==="https:"?"d1z2jf7jlzjs58.cloudfront.net":"static."+p+".com";'
            b' e = d.createElement(s); e.src = h+"//"+u+"/p.js"; })("script", "parsely", document);</script>')
    out, rw = rewrite(page)
    assert out.startswith(b'<script type="text/plain" data-category="analytics" data-cg-vendor="parsely">')
    assert rw.held_back == {"parsely": 1}


def test_the_sites_code_reading_a_tag_managers_data_layer_runs_while_the_tag_manager_waits() -> None:
    # a news site's own start-up reads and fills Tealium's data layer; only Tealium's loader is Tealium's
    page = (b"<script>window.utag_data=window.utag_data||{};window.utag_data.section='news';</script>"
            b"<script>$(function(){if(window.utag_data.user){App.Login.start()}});</script>"
            b"<script>(function(a){a='//tags.tiqcdn.com/utag/acme/main/prod/utag.js';"
            b"var b=document.createElement('script');b.src=a;document.head.appendChild(b)})();</script>")
    out, rw = rewrite(page)
    assert out.count(b'<script type="text/plain"') == 1
    assert b"<script>$(function(){if(window.utag_data.user){App.Login.start()}});</script>" in out
    assert rw.held_back == {"tealium": 1}


def test_distroscales_embed_and_its_long_player_set_up_are_held_as_distroscale() -> None:
    # the publisher embed, written by document.write, and the video player set-up it puts in the page: a
    # script longer than the loader scan that names ad tags and tracks through vx.dvptrack()
    set_up = (b"(function(){var ds_sbase='//c5x8i7c7.ssl.hwcdn.net/videojs/show.html';"
              + b"var adtags={'googlea':'//googleads.g.doubleclick.net/pagead/ads?x=1'};" * 300
              + b"vx.dvptrack('wf','{}');})();")
    assert len(set_up) > LOADER_SCAN_BYTES
    page = (b"<script>document.write('<scr'+'ipt async src=\"//c.jsrdn.com/s/cs.js?p=22507\"><\\/sc'+'ript>');"
            b"</script><script>" + set_up + b"</script>")
    out, rw = rewrite(page)
    assert out.count(b'<script type="text/plain" data-category="marketing" data-cg-vendor="distroscale">') == 2
    assert rw.held_back == {"distroscale": 2}


EVIDON = (b"(function (id) { function append(scriptid, url, async) { var d = document, sn = 'script',"
          b" f = d.getElementsByTagName(sn)[0]; var s = d.createElement(sn); s.async = true; s.id = scriptid;"
          b" s.src = url; f.parentNode.insertBefore(s, f); }"
          b" window.evidon = {}; window.evidon.id = id;"
          b" var cdn = '//c.evidon.com/', rootDomain = 'example', noticecdn = cdn + 'sitenotice/';"
          b" append('evidon-notice', noticecdn + 'evidon-sitenotice-tag.js', false);"
          b" append('evidon-location', cdn + 'geo/country.js', true); })(5279);")


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 4096])
def test_a_consent_tools_loader_building_its_url_from_parts_is_held_as_unclassified(chunk_size: int | None) -> None:
    # a site's former consent tool is a third party nobody classified (the catalog lists no consent tools):
    # it waits for consent like any other, and comes back with the "unclassified" category
    page = b"<html><head><script>" + EVIDON + b"</script></head><body><p>Hi</p></body></html>"
    out, rw = rewrite(page, chunk_size=chunk_size)
    assert b'<script type="text/plain" data-category="unclassified" data-cg-vendor="unclassified">' + EVIDON in out
    assert rw.held_back == {"unclassified": 1}
    assert rewrite(page, EVERYTHING)[0] == page


def test_a_long_first_party_script_that_joins_a_tracker_url_still_runs() -> None:
    # an app (over the loader scan) that names the same loader in its strings is the site's code, not a loader
    app = b"window.App={state:" + b'{"k":"v"},' * 2000 + b"};" + EVIDON
    assert len(app) > LOADER_SCAN_BYTES
    assert ids(app) == []
    page = b"<script>" + app + b"</script>"
    out, rw = rewrite(page)
    assert out == page
    assert rw.held_back == {}
