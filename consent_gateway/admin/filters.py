"""The dashboard's search form ↔ :class:`~consent_gateway.store.EventFilter`.

The same query string drives the event search, the exports and their links, so a filtered search can be
exported as it is shown. Dates are UTC days, the end date included; a time narrows either end to the minute
(the end minute included). An IP address is searched as the log keeps it (truncated, hashed or full, per
``[privacy] ip_mode``), and only by a role that sees IP addresses. Error messages are in the dashboard's
language (admin/i18n.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from urllib.parse import urlencode

from consent_gateway.admin.i18n import Language, translate
from consent_gateway.events import ACTIONS, DEVICE_TYPES
from consent_gateway.store import EventFilter

FIELDS: Final = (
    "since",
    "since_time",
    "until",
    "until_time",
    "action",
    "category",
    "country",
    "browser",
    "device",
    "policy_version",
    "consent_id",
    "ip",
)
_MAX_TEXT: Final = 200


@dataclass(frozen=True, slots=True)
class SearchForm:
    """What the visitor of the dashboard typed, the filter it makes, and what was wrong with it."""

    values: dict[str, str]
    filters: EventFilter
    errors: dict[str, str] = field(default_factory=dict)

    def query(self, **extra: str) -> str:
        """The query string for these filters (plus ``extra``), for links to the next page and exports."""
        items = {k: v for k, v in self.values.items() if v}
        items.update({k: v for k, v in extra.items() if v})
        return urlencode(items)


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


MinimiseIP = Callable[[str | None], "str | None"]


def parse_search(
    params: Mapping[str, str],
    categories: Sequence[str],
    minimise_ip: MinimiseIP | None = None,
    *,
    lang: Language = "en",
) -> SearchForm:
    """``minimise_ip``: the log's own IP minimisation, for a role that sees IP addresses (None: it does not);
    ``lang``: the language of the error messages."""
    values = {name: params.get(name, "").strip()[:_MAX_TEXT] for name in FIELDS}
    errors: dict[str, str] = {}
    since_ms = _moment_ms(values, "since", errors)
    until_ms = _moment_ms(values, "until", errors, end=True)
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        errors["until"] = "order"
    ip = None
    if values["ip"]:
        if minimise_ip is None:
            errors["ip"] = "ip_role"
        elif (ip := minimise_ip(values["ip"])) is None:
            errors["ip"] = "ip"
        else:
            values["ip"] = ip  # what is searched (and audited): the address as the log keeps it
    for name, known in (("action", ACTIONS), ("category", categories), ("device", DEVICE_TYPES)):
        if values[name] and values[name] not in known:
            errors[name] = name
    errors = {name: translate(lang, f"filter.error.{problem}") for name, problem in errors.items()}
    if len(values["country"]) == 2:
        values["country"] = values["country"].upper()
    filters = EventFilter(
        since_ms=since_ms,
        until_ms=until_ms,
        action=values["action"] or None,
        category=values["category"] or None,
        country=values["country"] or None,
        browser=values["browser"] or None,
        device=values["device"] or None,
        policy_version=values["policy_version"] or None,
        consent_id=values["consent_id"] or None,
        ip=ip,
    )
    return SearchForm(values=values, filters=filters, errors=errors)


def _moment_ms(values: Mapping[str, str], name: str, errors: dict[str, str], *, end: bool = False) -> int | None:
    """Where a date field (and its optional time, ``<name>_time``) starts, in UTC ms; for the inclusive end,
    where the day (or the minute) after it starts. A problem goes into ``errors`` as its catalog key."""
    time_name = f"{name}_time"
    if not values[name]:
        if values[time_name]:
            errors[time_name] = "date_first"
        return None
    try:
        day = date.fromisoformat(values[name])
    except ValueError:
        errors[name] = "date"
        return None
    if not values[time_name]:
        return day_start_ms(day + timedelta(days=1) if end else day)
    try:
        at = time.fromisoformat(values[time_name])
    except ValueError:
        errors[time_name] = "time"
        return None
    seconds = at.hour * 3600 + at.minute * 60 + at.second
    if end:
        seconds += 1 if at.second else 60
    return day_start_ms(day) + seconds * 1000


def describe(form: SearchForm) -> str:
    """The filters in one line, for the audit log (``country=FR action=consent-given``)."""
    return " ".join(f"{k}={v}" for k, v in form.values.items() if v) or "all"
