"""Pages every visitor shares (`[gateway] html_cache = "shared"`): the same HTML bytes for all, the state in a cookie.

In the default "private" mode each page is rewritten for its visitor (their granted trackers left live, their
state in the banner block), so it goes out `Cache-Control: private` and `Vary: Cookie`, and no CDN or page
cache may keep it. In "shared" mode every page is rewritten as for a visitor who chose nothing: every tracker
held back, no state in the page. The visitor's state travels in a second, readable cookie next to the signed
one; `banner-shared.js` reads it before the banner starts, and the banner brings back the held tags this
visitor granted, in document order, once the DOM is parsed. The bytes then depend on the page alone, so the
site's own `Cache-Control` stands and the HTML chunk cache always hits.

The state cookie is a copy for the browser that the server never trusts: every request is still judged by
the signed consent cookie (the Set-Cookie filter, the collect endpoint, the API). It is written wherever the
consent cookie is (a choice, a withdrawal, a sync) and, when a page request shows it out of step, on that
page's response — which is then `private`, as is any page that carried the site's own `Set-Cookie`, so no
cache keeps a header meant for one visitor.
"""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import quote

from ._types import Scope
from .banner import state_cookie_name, visitor_state
from .config import Config
from .consent import ConsentCodec
from .consent_cookie import ConsentCookie, Headers, cookie_values, host_name
from .decision import Decision
from .thirdparty import UNCLASSIFIED


class SharedPages:
    """The decisions a shared page is rewritten and policed by, and the state cookie that makes it personal.

    :param page: the decision of a visitor who chose nothing in an opt-in region (every tracker held back)
    """

    def __init__(self, config: Config, codec: ConsentCodec, page: Decision) -> None:
        self.cookie = ConsentCookie(config, codec, name=state_cookie_name(config), http_only=False)
        self._categories = tuple(c.id for c in config.categories if not c.required)
        self._page = page
        # The CSP backstop cannot name one visitor's vendors on a page everyone shares: it allows the vendors
        # the banner lists (`[banner] vendors`; all classified ones when it lists the whole catalog, a policy
        # then mostly too large to send) and still reports, or blocks, the hosts nobody classified.
        listed = frozenset(config.banner.vendors)
        everything = frozenset(config.category_ids) - {UNCLASSIFIED}
        self._envelope = Decision(granted=page.granted if listed else everything | page.granted, vendors_granted=listed)

    def page_decision(self, decision: Decision) -> Decision:
        """What the shared page is rewritten by: nothing granted, whoever asks (only the site is kept)."""
        return replace(self._page, site=decision.site)

    def policy_decision(self, decision: Decision) -> Decision:
        """What the shared page's CSP backstop allows: every vendor the banner lists."""
        return replace(self._envelope, site=decision.site)

    def value_for(self, decision: Decision) -> str | None:
        """The state cookie's value; None for a visitor who chose nothing where the site asks first (the
        banner's default: no cookie at all)."""
        if not decision.explicit and decision.region == "opt-in":
            return None
        state = {"state": visitor_state(decision, self._categories), "id": decision.consent_id, "gpc": decision.gpc}
        return quote(json.dumps(state, separators=(",", ":"), sort_keys=True), safe="")

    def sync(self, decision: Decision, scope: Scope) -> Headers:
        """The Set-Cookie headers that bring the browser's copy in line with ``decision``; none when it is.
        Written for the session: the signed cookie says how long the choice lasts."""
        wanted = self.value_for(decision)
        header = b"; ".join(value for key, value in scope["headers"] if key == b"cookie").decode("latin-1")
        if cookie_values(header, self.cookie.name) == ([wanted] if wanted else []):
            return []
        host = host_name(_header(scope, b"host"))
        secure = self.cookie.secure(scope.get("scheme"))
        if wanted is None:
            return self.cookie.clear(host, secure=secure)
        return self.cookie.write(wanted, None, host, secure=secure, exclusive=True)

    def write(self, decision: Decision, max_age: int, host: str, *, secure: bool) -> Headers:
        """Next to a consent cookie just written: the copy for the browser, for as long."""
        value = self.value_for(decision)
        if value is None:
            return self.cookie.clear(host, secure=secure)
        return self.cookie.write(value, max_age, host, secure=secure, exclusive=True)

    def clear(self, host: str, *, secure: bool) -> Headers:
        return self.cookie.clear(host, secure=secure)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""
