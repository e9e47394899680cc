"""Dashboard roles: who may see and do what.

Four roles, each allowed what the one before it is, and more:

- ``viewer``: charts and aggregate figures only (overview, cookies, integrity status): no personal data;
- ``analyst``: searches events and visitors' histories and exports them, without IP addresses (and exports
  without any personal column: IP, user agent, page, referrer);
- ``privacy-officer``: everything about the log, IP addresses and personal exports included, and erasure;
- ``admin``: all of the above, and the dashboard's users and API tokens.

A user's role is declared with the user in ``[[admin.users]]`` (``role``, default ``viewer``: the least);
the config's API tokens all have ``[admin] token_role``. Users and tokens an admin makes from the dashboard
(``admin/users.py``) carry the role given there. Every route of the dashboard declares the least role it needs
(`admin/app.py`); a test walks the route list, so a route without one cannot ship.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Role = Literal["viewer", "analyst", "privacy-officer", "admin"]
#: from least to most allowed
ROLES: Final[tuple[Role, ...]] = get_args(Role)


def allows(role: Role, needed: Role) -> bool:
    """True when ``role`` may do what ``needed`` may."""
    return ROLES.index(role) >= ROLES.index(needed)


def sees_ips(role: Role) -> bool:
    """IP addresses are personal data the analyst does without (and the other personal columns of exports)."""
    return allows(role, "privacy-officer")
