"""Where the consent cookie lives, and the Set-Cookie headers that write, repair and clear it.

`[cookie] domain` picks the scope: "" → host-only; "example.org" → that domain; "auto" → the registrable
domain of the request's host by the Public Suffix List (the one `thirdparty` already uses), so
`www.`, `shop.` and `blog.` share one choice. A host with no registrable domain — an IP, a single label
such as `localhost`, or a public suffix itself (`github.io`) — falls back to host-only, since a browser
refuses a cookie scoped to a public suffix. Hosts under an unlisted top-level name such as `.localhost` get
the PSL's default rule (`a.example.localhost` → `example.localhost`), which Chromium accepts too.

Two scopes can hold a consent cookie at once (a host-only one from before `auto`, a domain-wide one set by
another subdomain), and the browser sends both under one name without saying which is which. So a repair
never guesses: it re-writes the winning value on the configured scope and expires every other scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from .config import Config
from .consent import ConsentCodec, ConsentRecord
from .csrf import split_header_url
from .thirdparty import registrable_domain

AUTO_DOMAIN = "auto"

Headers = list[tuple[bytes, bytes]]


def host_name(host_header: str) -> str:
    """The host name of a `Host` header, empty when it is malformed (`[`), lower-cased, without port."""
    parts = split_header_url(f"//{host_header}")
    return (parts.hostname or "") if parts else ""


def cookie_values(header: str, name: str) -> list[str]:
    """Every value of one cookie in a Cookie header (a duplicated consent cookie is suspicious)."""
    if name not in header:
        return []
    values = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            values.append(value.strip().strip('"'))
    return values


@dataclass(frozen=True, slots=True)
class CookieReading:
    """What the Cookie header says: the record that counts, and whether the cookie was duplicated."""

    record: ConsentRecord | None
    #: the winner's signed value (re-written on the configured scope by a repair)
    value: str | None = None
    duplicated: bool = False


NO_COOKIE = CookieReading(None)


class ConsentCookie:
    """The consent cookie's scopes for one config. Holds nothing per request."""

    def __init__(self, config: Config, codec: ConsentCodec, *, name: str = "", http_only: bool = True) -> None:
        self.config = config
        self.codec = codec
        self.name = name or config.cookie.name
        self._http_only = http_only
        self._setting = config.cookie.domain.strip().lstrip(".").lower()

    # -- reading

    def read(self, cookie_header: str) -> CookieReading:
        """The newest valid value wins when the cookie is duplicated; a duplicate is never read as a grant
        unless that winner grants it (each invalid value is counted by the codec)."""
        values = cookie_values(cookie_header, self.name)
        if not values:
            return NO_COOKIE
        if len(values) == 1:
            record = self.codec.decode(values[0])
            return CookieReading(record, values[0]) if record is not None else NO_COOKIE
        best: tuple[ConsentRecord, str] | None = None
        for value in values:
            record = self.codec.decode(value)
            if record is not None and (best is None or record.given_at > best[0].given_at):
                best = (record, value)
        if best is None:
            return CookieReading(None, None, duplicated=True)
        return CookieReading(best[0], best[1], duplicated=True)

    def secure(self, scheme: str | None) -> bool:
        mode = self.config.cookie.secure
        return mode == "always" or (mode == "auto" and scheme in ("https", "wss"))

    # -- scopes

    def domain_for(self, host: str) -> str | None:
        """The configured scope for a request's host name: a domain, or None for host-only."""
        if self._setting == AUTO_DOMAIN:
            return registrable_domain(host) or None
        return self._setting or None

    def other_scopes(self, host: str) -> list[str | None]:
        """Every scope a consent cookie for this host may sit on besides the configured one."""
        configured = self.domain_for(host)
        scopes: list[str | None] = [None, registrable_domain(host) or None]
        if self._setting and self._setting != AUTO_DOMAIN:
            scopes.append(self._setting)
        others: list[str | None] = []
        for scope in scopes:
            if scope != configured and scope not in others:
                others.append(scope)
        return others

    # -- Set-Cookie headers (Starlette's formatting, the same as every other cookie the gateway sets)

    def write(self, value: str, max_age: int | None, host: str, *, secure: bool, exclusive: bool) -> Headers:
        """Set the cookie on the configured scope (for the session when ``max_age`` is None). `exclusive` (a
        repair, or a domain-wide scope) also expires the other scopes, so no older copy shadows the new one."""
        response = Response()
        configured = self.domain_for(host)
        if exclusive or configured is not None:
            for scope in self.other_scopes(host) if exclusive else [None]:
                self._expire(response, scope, secure)
        response.set_cookie(
            self.name,
            value,
            max_age=max_age,
            path="/",
            domain=configured,
            secure=secure,
            httponly=self._http_only,
            samesite=self.config.cookie.same_site,
        )
        return _set_cookies(response)

    def clear(self, host: str, *, secure: bool) -> Headers:
        """Expire the cookie on every scope: another subdomain's domain-wide copy would otherwise still be
        read here as a choice after a withdrawal."""
        response = Response()
        for scope in [self.domain_for(host), *self.other_scopes(host)]:
            self._expire(response, scope, secure)
        return _set_cookies(response)

    def repair(self, reading: CookieReading, host: str, *, secure: bool, now: float) -> Headers:
        """The headers that leave one consent cookie where the browser sent several."""
        record = reading.record
        if record is None or reading.value is None:
            return self.clear(host, secure=secure)
        remaining = record.given_at + record.max_age_seconds(self.config) - int(now)
        if remaining <= 0:
            return self.clear(host, secure=secure)
        return self.write(reading.value, remaining, host, secure=secure, exclusive=True)

    def _expire(self, response: Response, domain: str | None, secure: bool) -> None:
        response.delete_cookie(
            self.name,
            path="/",
            domain=domain,
            secure=secure,
            httponly=self._http_only,
            samesite=self.config.cookie.same_site,
        )


def _set_cookies(response: Response) -> Headers:
    return [(k, v) for k, v in response.raw_headers if k == b"set-cookie"]
