"""The dashboard's signed session cookie, with an idle timeout and an absolute lifetime.

The session is carried by the cookie (signed with itsdangerous under its own salt, so a consent cookie can
never pass for a session), with its idle and absolute lifetimes and its CSRF token: a random value an
attacker on another origin cannot read. A logged-in session is valid only while the store lists it
(`admin/shared_state.py`): logout, or removing the user from the config, ends it on every instance and
across restarts.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from itsdangerous import BadSignature, URLSafeSerializer

from consent_gateway.signing import ADMIN_SESSION_SALT

COOKIE_NAME: Final = "cg_admin"
#: Clocks of two instances may differ a little; a session issued further in the future is forged.
_CLOCK_SKEW_SECONDS: Final = 60.0
#: Refreshing on every request would send a Set-Cookie per request; a few seconds of slack is harmless.
_REFRESH_AFTER_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class AdminSession:
    sid: str
    #: None for the anonymous session that carries the login form's CSRF token.
    user: str | None
    csrf: str
    issued_at: float
    last_seen: float


class SessionManager:
    """Creates, signs, reads and expires :class:`AdminSession` cookies.

    :param secret_keys: the gateway's signing keys; the first signs, all verify (key rotation).
    :param clock: seconds since the epoch; injectable so tests can move time.
    """

    def __init__(
        self,
        secret_keys: Sequence[str],
        *,
        idle_timeout_seconds: float,
        max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed to sign admin sessions")
        # itsdangerous signs with the *last* key of its list and verifies with all of them.
        self._serializer = URLSafeSerializer(list(reversed(secret_keys)), salt=ADMIN_SESSION_SALT)
        self.idle_timeout_seconds = idle_timeout_seconds
        self.max_age_seconds = max_age_seconds
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def new(self, user: str | None) -> AdminSession:
        """A fresh session: a new id and CSRF token every time, so a login never reuses a planted id."""
        now = self._clock()
        sid, csrf = secrets.token_urlsafe(18), secrets.token_urlsafe(24)
        return AdminSession(sid=sid, user=user, csrf=csrf, issued_at=now, last_seen=now)

    def dumps(self, session: AdminSession) -> str:
        payload = {
            "s": session.sid,
            "u": session.user,
            "c": session.csrf,
            "i": session.issued_at,
            "l": session.last_seen,
        }
        return self._serializer.dumps(payload)

    def loads(self, cookie_value: str | None) -> AdminSession | None:
        """The session in the cookie, or None when it is missing, forged, expired or logged out."""
        if not cookie_value:
            return None
        try:
            payload: Any = self._serializer.loads(cookie_value)
        except BadSignature:
            return None
        try:
            session = AdminSession(
                sid=str(payload["s"]),
                user=None if payload["u"] is None else str(payload["u"]),
                csrf=str(payload["c"]),
                issued_at=float(payload["i"]),
                last_seen=float(payload["l"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return session if self._is_live(session) else None

    def _is_live(self, session: AdminSession) -> bool:
        now = self._clock()
        if session.issued_at > now + _CLOCK_SKEW_SECONDS or session.last_seen > now + _CLOCK_SKEW_SECONDS:
            return False
        if now - session.last_seen > self.idle_timeout_seconds:
            return False
        return now - session.issued_at <= self.max_age_seconds

    def touch(self, session: AdminSession) -> AdminSession | None:
        """The session with its idle timer restarted, or None when it does not need a new cookie yet."""
        now = self._clock()
        if now - session.last_seen < _REFRESH_AFTER_SECONDS:
            return None
        return replace(session, last_seen=now)

    def is_valid_csrf(self, session: AdminSession, token: str | None) -> bool:
        return bool(token) and secrets.compare_digest(session.csrf.encode(), (token or "").encode())
