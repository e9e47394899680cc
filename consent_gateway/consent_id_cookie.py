"""The browser's consent id, kept across withdrawals and policy versions until the visitor erases their data.

The consent cookie holds a choice, and a choice ends: a withdrawal clears it, a new policy version makes it
void. Had the next choice taken a new consent id, the visitor's history would split in two and their own
space (`/_consent/me`) would lose everything before it. So a second cookie, ``<cookie name>_id``, signed
under its own salt, holds only the consent id: set with every choice, kept by a withdrawal, cleared by an
erasure (after which the browser starts afresh). It carries no choice, so nothing reads it as consent; it
is strictly necessary to keep the proof of consent the visitor can read back, and lives as long as an
acceptance (13 months by default).
"""

from __future__ import annotations

import re

from starlette.responses import Response

from .config import Config
from .consent import DAY_SECONDS, ConsentCodec
from .consent_cookie import ConsentCookie, Headers, cookie_values
from .signing import CONSENT_ID_SALT, BadSignature, TimedSigner

#: What `new_consent_id` makes (uuid4 hex); a logged-in user's shared id has the same shape.
_CONSENT_ID = re.compile(r"^[0-9a-f]{32}$")


class ConsentIdCookie:
    """Reads and writes the consent id cookie, on the same scope as the consent cookie."""

    def __init__(self, config: Config, secret_keys: list[str], cookie: ConsentCookie, codec: ConsentCodec) -> None:
        self.name = f"{config.cookie.name}_id"
        self._cookie = cookie
        self._codec = codec
        self._same_site = config.cookie.same_site
        self._max_age = max(config.cookie.accept_max_age_days, config.cookie.refuse_max_age_days) * DAY_SECONDS
        self._signer = TimedSigner(secret_keys, CONSENT_ID_SALT, clock_skew_seconds=config.cookie.clock_skew_seconds)

    def read(self, cookie_header: str) -> str | None:
        """The consent id this browser carries: from the id cookie, else from an authentic consent cookie of
        an older policy (browsers that chose before the id cookie existed). None when neither verifies."""
        for value in cookie_values(cookie_header, self.name):
            try:
                found, _ = self._signer.loads(value, max_age_seconds=self._max_age)
            except BadSignature:
                continue
            if isinstance(found, str) and _CONSENT_ID.match(found):
                return found
        for value in cookie_values(cookie_header, self._cookie.name):
            found = self._codec.consent_id_of(value)
            if found is not None:
                return found
        return None

    def write(self, consent_id: str, host: str, *, secure: bool) -> Headers:
        response = Response()
        response.set_cookie(
            self.name,
            self._signer.dumps(consent_id),
            max_age=self._max_age,
            path="/",
            domain=self._cookie.domain_for(host),
            secure=secure,
            httponly=True,
            samesite=self._same_site,
        )
        return _set_cookies(response)

    def clear(self, host: str, *, secure: bool) -> Headers:
        """Expire it on every scope it may sit on (an erasure must leave no copy to link the next choice)."""
        response = Response()
        scopes = [self._cookie.domain_for(host), *self._cookie.other_scopes(host)]
        for domain in dict.fromkeys(scopes):
            response.delete_cookie(
                self.name, path="/", domain=domain, secure=secure, httponly=True, samesite=self._same_site
            )
        return _set_cookies(response)


def _set_cookies(response: Response) -> Headers:
    return [(k, v) for k, v in response.raw_headers if k == b"set-cookie"]
