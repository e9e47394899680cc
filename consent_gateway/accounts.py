"""Logged-in visitors: the latest choice of a user applies on the user's other devices (CNIL: logged-in contexts).

Who the user is comes from the site, never from the visitor:

* middleware mode: an ASGI middleware of the site's, wrapped around the gateway, sets
  ``scope["consent_gateway.user_id"]`` to a stable pseudonymous id (not an e-mail address);
* proxy mode: the upstream names the user in a response header (`[accounts] user_header`), which the
  gateway removes before the response leaves; a request header of that name is believed only from a
  `[gateway] trusted_proxies` peer (an authenticating proxy in front) and removed from every other request,
  so a visitor cannot claim to be someone else. For the consent API (which the upstream never sees) the
  gateway remembers the id in a signed, HttpOnly session cookie (`cg_user`), dropped when a page of the
  upstream comes without the header (logged out).

The id is never stored: the log keeps an HMAC of it under a key derived from the signing keys. Per user
the store keeps the latest choice (the signed consent cookie value, "" after a withdrawal) and its consent
id; every device takes that consent id, so each device's events are linked in the log through it.

Off the hot path: a lookup happens only for a visitor with a user id and no valid consent cookie, and its
answer (even "nothing") is cached per process for `[accounts] cache_seconds`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from .config import Config
from .signing import BadSignature, TimedSigner
from .store.keeper import LogKeeper

USER_ID_SCOPE_KEY = "consent_gateway.user_id"
USER_COOKIE = "cg_user"
USER_SALT = "consent-gateway.user"
#: how long the `cg_user` cookie's signature is believed (the browser drops it at the end of the session)
USER_COOKIE_MAX_AGE = 12 * 3600
_CACHE_SIZE = 4096
#: an id longer than this is not a pseudonymous id but a mistake (or an attack): ignored
MAX_USER_ID = 256


@dataclass(frozen=True, slots=True)
class UserChoice:
    consent_id: str
    #: the signed consent cookie value of the user's latest choice; "" after a withdrawal
    value: str


class Accounts:
    """The per-user latest choice, with a small time-to-live cache in front of the store."""

    def __init__(self, config: Config, secret_keys: Sequence[str], keeper: LogKeeper) -> None:
        self.keeper = keeper
        self.header = config.accounts.user_header.strip().lower().encode("latin-1")
        self.cache_seconds = config.accounts.cache_seconds
        # from the oldest key, as the IP hashes: a new signing key does not change who a user is in the log
        self._hash_key = hmac.new(secret_keys[-1].encode(), b"consent-gateway.user-id", hashlib.sha256).digest()
        self._signer = TimedSigner(secret_keys, USER_SALT)
        self._cache: OrderedDict[str, tuple[float, UserChoice | None]] = OrderedDict()

    def user_key(self, user_id: object) -> str | None:
        """The pseudonym the log keeps for a user id, or None for no (or an unusable) id."""
        if not isinstance(user_id, str | int) or isinstance(user_id, bool):
            return None
        text = str(user_id).strip()
        if not text or len(text) > MAX_USER_ID:
            return None
        return hmac.new(self._hash_key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:40]

    def cookie_value(self, user_key: str) -> str:
        return self._signer.dumps(user_key)

    def key_from_cookie(self, value: str) -> str | None:
        try:
            key, _ = self._signer.loads(value, max_age_seconds=USER_COOKIE_MAX_AGE)
        except BadSignature:
            return None
        return key if isinstance(key, str) else None

    async def latest(self, user_key: str, *, now: float | None = None) -> UserChoice | None:
        """The user's latest choice (cached); None when there is none or the log does not answer."""
        now = time.monotonic() if now is None else now
        cached = self._cache.get(user_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        await self.keeper.ensure_started()
        try:
            found = await self.keeper.log.user_choice(user_key)
        except Exception:
            return None  # fail closed: without the log, the device asks
        choice = UserChoice(found[0], found[1]) if found else None
        self._remember_locally(user_key, choice, now)
        return choice

    async def remember(self, user_key: str, choice: UserChoice) -> bool:
        """Keep a user's new latest choice; False when the log did not take it."""
        await self.keeper.ensure_started()
        self._remember_locally(user_key, choice, time.monotonic())
        try:
            await self.keeper.log.remember_user_choice(
                user_key, choice.consent_id, choice.value, int(time.time() * 1000)
            )
        except Exception:
            return False
        return True

    def _remember_locally(self, user_key: str, choice: UserChoice | None, now: float) -> None:
        self._cache[user_key] = (now + self.cache_seconds, choice)
        self._cache.move_to_end(user_key)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
