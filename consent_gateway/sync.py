"""Carrying a choice to the owner's sister domains (`[[consent_domains]]`) with a signed, single-use token.

Why a top-level navigation: a browser that blocks third-party cookies (Safari, Firefox, Chromium when the
visitor or a policy says so) drops or partitions a cookie set by an image, a fetch or an iframe from
another site, so the sister domain would not see it on its own pages. So after a choice the banner
navigates the page itself through each sister's `GET <prefix>/sync?token=…`: there the sister is the
top-level site, its answer sets its own first-party consent cookie, and it redirects (303) to the next
sister, then back to the page the visitor was on. No cookie is ever set or read in a third-party context.

The token is signed with the gateway's signing keys under a salt of its own (it can never pass for a
consent cookie, nor a cookie for a token), so every domain of the owner runs with the same
`CONSENT_GATEWAY_SECRET_KEYS` — as subdomains sharing a cookie must anyway. Shared keys rather than each
domain verifying the other's public key: the domains belong to one owner and are run by one team, the
keys already exist and rotate the same way, and a public-key scheme would add a key pair per domain and a
list of peer keys to distribute and rotate for no gain in that setting. A sister run by someone else
should not be a consent domain at all: a choice is only valid for who the visitor was told about.

A token lives two minutes and is used once per domain: its id is claimed in the consent log's store with
a time to live (`ConsentLog.claim`), so a replay fails on any instance sharing the log. It carries the
choice, the origin's registrable domain, the hops and the page to return to; all of it is signed, so the
redirects cannot be pointed anywhere else. A sister accepts a token only from a domain it lists itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from .config import Config
from .signing import BadSignature, FutureSignature, TimedSigner
from .thirdparty import site_of

SYNC_SALT = "consent-gateway.sync"
#: long enough for a few redirects on a slow phone, short enough that a leaked URL is soon worthless
TOKEN_TTL_SECONDS = 120
#: what a token's `back` may be at most; a longer page URL returns to the site's home instead
MAX_BACK_URL = 2048
CHOICE = "choice"
WITHDRAWAL = "withdrawal"


@dataclass(frozen=True, slots=True)
class SyncToken:
    token_id: str
    #: the registrable domain the choice was made on
    origin: str
    kind: str
    #: the sisters' sync URLs, visited in this order
    hops: tuple[str, ...]
    #: the page on the origin to come back to
    back: str
    #: the consent cookie payload of the choice (`ConsentRecord.to_payload`); empty for a withdrawal
    record: Mapping[str, Any]
    signed_at: int
    #: the token as it came, passed on to the next hop
    raw: str

    def hop_index(self, site: str) -> int | None:
        for index, hop in enumerate(self.hops):
            if sync_site(hop) == site:
                return index
        return None

    def next_url(self, index: int | None) -> str:
        """Where the visitor goes from hop `index`: the next sister, then the page on the origin."""
        if index is None or index + 1 >= len(self.hops):
            return self.back
        return _with_token(self.hops[index + 1], self.raw)


def sync_site(url: str) -> str:
    """The registrable domain (else the bare host) a sync URL belongs to."""
    return site_of(urlsplit(url).netloc)


def _with_token(url: str, token: str) -> str:
    return f"{url}?{urlencode({'token': token})}"


class SisterDomains:
    """Mints and reads sync tokens for one gateway. Holds nothing per request."""

    def __init__(self, config: Config, secret_keys: Sequence[str]) -> None:
        self.sync_urls = tuple(d.sync_url for d in config.consent_domains)
        self.sites = frozenset(sync_site(url) for url in self.sync_urls)
        self.signer = TimedSigner(secret_keys, SYNC_SALT, clock_skew_seconds=config.cookie.clock_skew_seconds)

    @property
    def enabled(self) -> bool:
        return bool(self.sync_urls)

    def first_hop(self, *, site: str, kind: str, record: Mapping[str, Any], back: str) -> str | None:
        """The URL that starts carrying a choice (or a withdrawal) made on `site`; None without a sister."""
        hops = [url for url in self.sync_urls if sync_site(url) != site]
        if not hops:
            return None
        payload = {"i": os.urandom(12).hex(), "o": site, "k": kind, "h": hops, "b": back, "r": dict(record)}
        return _with_token(hops[0], self.signer.dumps(payload))

    def read(self, token: str, *, now: float | None = None) -> tuple[SyncToken | None, str]:
        """The token, or None and why. An expired token is still returned (its hops are signed, so the
        visitor can be sent on), with the reason "expired"; it must not be applied."""
        now = time.time() if now is None else now
        try:
            payload, signed_at = self.signer.loads(token, now=now)
        except FutureSignature:
            return None, "future"
        except BadSignature:
            return None, "bad_signature"
        parsed = _token_from(payload, signed_at, token)
        if parsed is None:
            return None, "malformed"
        if now - signed_at > TOKEN_TTL_SECONDS:
            return parsed, "expired"
        return parsed, ""

    def refusal(self, token: SyncToken, site: str, referer: str | None = None) -> str | None:
        """Why this gateway (serving `site`) must not apply a valid token, or None.

        A navigation started by the origin's page carries that page's origin as `Referer` through every
        redirect of the chain (the default referrer policy): a link to a token planted on another site
        carries that site's, so a token someone obtained for their own choice cannot be pressed on a
        visitor who clicks it. (A page that sends no Referer at all is believed: the token still binds the
        choice, its two minutes and its single use.)
        """
        if token.origin not in self.sites or token.origin == site:
            return "unknown_origin"
        if token.hop_index(site) is None:
            return "not_addressed_here"
        sent_from = urlsplit(referer).netloc if referer else ""
        if sent_from and site_of(sent_from) != token.origin:
            return "foreign_referrer"
        return None


def _token_from(payload: Any, signed_at: int, raw: str) -> SyncToken | None:
    if not isinstance(payload, dict):
        return None
    token_id, origin, kind = payload.get("i"), payload.get("o"), payload.get("k")
    hops, back, record = payload.get("h"), payload.get("b"), payload.get("r")
    if not (isinstance(token_id, str) and isinstance(origin, str) and kind in (CHOICE, WITHDRAWAL)):
        return None
    if not (isinstance(hops, list) and all(isinstance(h, str) for h in hops) and isinstance(back, str)):
        return None
    if not isinstance(record, dict) or site_of(urlsplit(back).netloc) != origin:
        return None
    return SyncToken(token_id, origin, str(kind), tuple(hops), back, record, signed_at, raw)
