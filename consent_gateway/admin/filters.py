"""The dashboard's search form ↔ :class:`~consent_gateway.store.EventFilter`.

The same query string drives the event search, the exports and their links, so a filtered search can be
exported as it is shown. Dates are whole UTC days; the end date is included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final
from urllib.parse import urlencode

from consent_gateway.events import ACTIONS, DEVICE_TYPES
from consent_gateway.store import EventFilter

FIELDS: Final = ("since", "until", "action", "category", "country", "browser", "device", "policy_version", "consent_id")
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


def parse_search(params: Mapping[str, str], categories: Sequence[str]) -> SearchForm:
    values = {name: params.get(name, "").strip()[:_MAX_TEXT] for name in FIELDS}
    errors: dict[str, str] = {}
    since_ms = _day_ms(values, "since", errors)
    until_ms = _day_ms(values, "until", errors, next_day=True)
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        errors["until"] = "The end date is before the start date."
    for name, known, message in (
        ("action", ACTIONS, "Unknown action."),
        ("category", categories, "Unknown category."),
        ("device", DEVICE_TYPES, "Unknown device type."),
    ):
        if values[name] and values[name] not in known:
            errors[name] = message
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
    )
    return SearchForm(values=values, filters=filters, errors=errors)


def _day_ms(values: Mapping[str, str], name: str, errors: dict[str, str], *, next_day: bool = False) -> int | None:
    """The start of the day a date field names (of the next day for an inclusive end), in UTC ms."""
    if not values[name]:
        return None
    try:
        day = date.fromisoformat(values[name])
    except ValueError:
        errors[name] = "Use a date like 2025-03-31."
        return None
    return day_start_ms(day + timedelta(days=1) if next_day else day)


def describe(form: SearchForm) -> str:
    """The filters in one line, for the audit log (``country=FR action=consent-given``)."""
    return " ".join(f"{k}={v}" for k, v in form.values.items() if v) or "all"
