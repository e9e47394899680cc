"""The privacy team's classifications: an overlay of decisions laid over the config's vendor catalog.

A host, a cookie name or a storage key the catalog does not know is, in one step, either

* **assigned to a vendor** the catalog knows (``action = "vendor"``): the host joins its host patterns, the
  cookie or key its cookie or storage rules;
* **given to a new vendor** (``"new-vendor"``: name, category, privacy policy URL), which later subjects can be
  assigned to;
* **marked essential** with a reason (``"essential"``): a host becomes a vendor of its own in the required
  category (always allowed, its reason as the vendor's ``purpose``), a cookie or key a rule of the site's
  own essential vendor (:data:`SITE_VENDOR_ID`) with the reason as its purpose.

The overlay is kept in the consent log's store (`classification_store.py`), so every instance applies it,
and it turns into ``[[vendors]]`` tables (:func:`vendor_tables`): the same tables are merged over the catalog
and exported as TOML the config accepts as it is, so the decisions can go under version control.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Any, Final, Literal, get_args

from .catalog import URL_KINDS, Catalog
from .catalog_schema import CookieRule, VendorRule
from .thirdparty import UNCLASSIFIED, normalise_host

SubjectKind = Literal["host", "cookie", "storage"]
Action = Literal["vendor", "new-vendor", "essential"]
SUBJECT_KINDS: Final[tuple[SubjectKind, ...]] = get_args(SubjectKind)
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
#: the vendor holding the essential cookies and storage keys the site sets itself
SITE_VENDOR_ID: Final = "site-essential"
SITE_VENDOR_NAME: Final = "This site"
#: a reason or a name longer than this is refused (it goes into the config and the declaration)
MAX_TEXT_CHARS: Final = 300
_HOST_FIELDS: Final = tuple(URL_KINDS.values())
_HOST_RE = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)+")
#: RFC 6265 cookie-name: a token (no separators, spaces or controls)
_COOKIE_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,200}")
_URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*")
_SLUG_RE = re.compile(r"[^a-z0-9]+")


class ClassificationError(ValueError):
    """A decision that cannot be taken as given; ``field`` names the form field at fault.

    ``reason`` and ``values`` say the same as ``message`` for another language: the dashboard's catalog has
    its words under ``classify.error.<reason>`` (admin/i18n.py)."""

    def __init__(self, field: str, message: str, reason: str = "", **values: object) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.reason = reason
        self.values = values


@dataclass(frozen=True, slots=True)
class Classification:
    """One decision about one subject (a host, a cookie name or a storage key)."""

    kind: SubjectKind
    subject: str
    action: Action
    #: the vendor the subject goes to (for "essential", the vendor made for it)
    vendor_id: str
    #: "new-vendor": the vendor's name, category and privacy policy
    vendor_name: str = ""
    category: str = ""
    policy_url: str = ""
    #: "essential": why the site cannot work without it
    reason: str = ""
    #: a cookie's or key's lifetime as the declaration shows it ("13 months", "session")
    lifetime: str = ""
    #: who decided, and when (UTC ms)
    by: str = ""
    at_ms: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.subject)


def normalise_subject(kind: str, subject: str) -> str:
    """A subject as decisions are keyed: a host lowercased without port or trailing dot; names as written.

    :raises ClassificationError: for an unknown kind or a subject that cannot be one.
    """
    if kind not in SUBJECT_KINDS:
        choices = ", ".join(SUBJECT_KINDS)
        raise ClassificationError("kind", f"expected one of {choices}", "one_of", choices=choices)
    subject = subject.strip()
    if kind == "host":
        host = normalise_host(subject.partition("/")[0].rpartition("@")[2].partition(":")[0])
        if not _HOST_RE.fullmatch(host):
            raise ClassificationError("subject", f"not a host name: {subject[:80]!r}", "not_host", name=subject[:80])
        return host
    if kind == "cookie" and not _COOKIE_RE.fullmatch(subject):
        raise ClassificationError("subject", f"not a cookie name: {subject[:80]!r}", "not_cookie", name=subject[:80])
    if not subject or len(subject) > 200 or not subject.isprintable():
        raise ClassificationError(
            "subject", "expected a storage key name of 1 to 200 printable characters", "not_storage"
        )
    return subject


def slug(text: str) -> str:
    """A vendor id from a name: "Météo du quartier" → "meteo-du-quartier" (accents dropped, not the letters)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SLUG_RE.sub("-", plain.lower()).strip("-")[:60]


@dataclass(frozen=True)
class Overlay:
    """Every decision taken, one per subject, in the order they were taken."""

    decisions: tuple[Classification, ...] = ()
    #: the store's version of the document this came from (0: never written)
    version: int = 0

    @cached_property
    def _by_key(self) -> dict[tuple[str, str], Classification]:
        return {d.key: d for d in self.decisions}

    def get(self, kind: str, subject: str) -> Classification | None:
        return self._by_key.get((kind, subject))

    def created_vendors(self) -> dict[str, Classification]:
        """Vendor id → the decision that created it (new vendors and essential hosts)."""
        return {d.vendor_id: d for d in self.decisions if d.action == "new-vendor" or (
            d.action == "essential" and d.kind == "host")}

    def with_decision(self, decision: Classification) -> Overlay:
        """This overlay with ``decision`` replacing any earlier one about the same subject."""
        kept = tuple(d for d in self.decisions if d.key != decision.key)
        previous = self.get(*decision.key)
        if previous is not None and previous.vendor_id != decision.vendor_id:
            self._check_not_needed(previous, kept)
        return replace(self, decisions=(*kept, decision))

    def without(self, kind: str, subject: str) -> Overlay:
        """This overlay without its decision about the subject (unchanged when there is none)."""
        previous = self.get(kind, subject)
        if previous is None:
            return self
        kept = tuple(d for d in self.decisions if d.key != (kind, subject))
        self._check_not_needed(previous, kept)
        return replace(self, decisions=kept)

    def _check_not_needed(self, previous: Classification, kept: Sequence[Classification]) -> None:
        """A new vendor cannot go while other subjects are assigned to it."""
        if previous.action != "new-vendor":
            return
        others = [d.subject for d in kept if d.vendor_id == previous.vendor_id]
        if others:
            listed = f"{', '.join(others[:3])}{'…' if len(others) > 3 else ''}"
            raise ClassificationError(
                "subject",
                f"{previous.subject} created the vendor {previous.vendor_id!r}, to which {listed} still belong: "
                "reassign them first",
                "still_used",
                subject=previous.subject,
                vendor=previous.vendor_id,
                others=listed,
            )

    # -- the stored form ---------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({"decisions": [asdict(d) for d in self.decisions]}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, version: int) -> Overlay:
        """The overlay of a stored document; a decision that does not read (written by a newer gateway) is
        skipped, never the whole overlay."""
        data = json.loads(text)
        decisions: list[Classification] = []
        fields = set(Classification.__dataclass_fields__)
        for raw in data.get("decisions", []):
            if not isinstance(raw, Mapping):
                continue
            try:
                decision = Classification(**{k: v for k, v in raw.items() if k in fields})
            except TypeError:
                continue
            if decision.kind in SUBJECT_KINDS and decision.action in ACTIONS:
                decisions.append(decision)
        return cls(tuple(decisions), version)


EMPTY_OVERLAY: Final = Overlay()


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """What the dashboard's form (or the CLI) asks for, before it is checked against the catalog."""

    kind: str
    subject: str
    action: str
    vendor_id: str = ""
    vendor_name: str = ""
    category: str = ""
    policy_url: str = ""
    reason: str = ""
    lifetime: str = ""


def decide(
    request: DecisionRequest,
    catalog: Catalog,
    overlay: Overlay,
    *,
    categories: Iterable[str],
    required_category: str | None,
    by: str,
    at_ms: int,
) -> Classification:
    """Check a request against the catalog in force and make it a decision.

    :param catalog: the catalog with ``overlay`` applied (a vendor made earlier can be assigned to).
    :param categories: the categories a new vendor may have (the config's, but ``unclassified``).
    :raises ClassificationError: naming the form field at fault; nothing is changed.
    """
    kind = request.kind
    subject = normalise_subject(kind, request.subject)
    action = request.action
    lifetime = _text("lifetime", request.lifetime, required=False, limit=40)
    common: dict[str, Any] = {"kind": kind, "subject": subject, "by": by, "at_ms": at_ms, "lifetime": lifetime}
    if action == "vendor":
        vendor_id = request.vendor_id.strip()
        if vendor_id not in catalog.vendors:
            raise ClassificationError(
                "vendor_id", f"no vendor {vendor_id[:80]!r} in the catalog", "no_vendor", vendor=vendor_id[:80]
            )
        return Classification(action="vendor", vendor_id=vendor_id, **common)
    if action == "new-vendor":
        name = _text("vendor_name", request.vendor_name, required=True)
        category = request.category.strip()
        allowed = [c for c in categories if c != UNCLASSIFIED]
        if category not in allowed:
            raise ClassificationError(
                "category", f"expected one of {', '.join(allowed)}", "one_of", choices=", ".join(allowed)
            )
        policy_url = request.policy_url.strip()
        if policy_url and not _URL_RE.fullmatch(policy_url):
            raise ClassificationError("policy_url", "expected an http(s) URL", "url")
        vendor_id = slug(name)
        if not vendor_id:
            raise ClassificationError("vendor_name", "needs at least one letter or digit", "no_letter")
        previous = overlay.get(kind, subject)
        updating = previous is not None and previous.action == "new-vendor" and previous.vendor_id == vendor_id
        if vendor_id in catalog.vendors and not updating:  # (its own new vendor, given again: an update)
            raise ClassificationError(
                "vendor_name",
                f"a vendor {vendor_id!r} is already in the catalog: assign to it instead",
                "vendor_exists",
                vendor=vendor_id,
            )
        return Classification(
            action="new-vendor", vendor_id=vendor_id, vendor_name=name, category=category, policy_url=policy_url,
            **common,
        )
    if action == "essential":
        reason = _text("reason", request.reason, required=True)
        if required_category is None:
            raise ClassificationError(
                "action", "the config has no required category to put essential items in", "no_required_category"
            )
        vendor_id = f"essential-{slug(subject)}" if kind == "host" else SITE_VENDOR_ID
        if kind == "host" and vendor_id in catalog.vendors and vendor_id not in overlay.created_vendors():
            raise ClassificationError(
                "subject", f"the vendor id {vendor_id!r} is taken in the catalog", "id_taken", vendor=vendor_id
            )
        return Classification(action="essential", vendor_id=vendor_id, category=required_category, reason=reason,
                              **common)
    raise ClassificationError("action", f"expected one of {', '.join(ACTIONS)}", "one_of", choices=", ".join(ACTIONS))


def _text(name: str, value: str, *, required: bool, limit: int = MAX_TEXT_CHARS) -> str:
    text = " ".join(value.split())
    if required and not text:
        raise ClassificationError(name, "is required", "required")
    if len(text) > limit:
        raise ClassificationError(name, f"at most {limit} characters", "too_long", limit=limit)
    if not text.isprintable():
        raise ClassificationError(name, "only printable characters", "printable")
    return text


# -- the overlay as [[vendors]] tables ---------------------------------------------------------------------


def vendor_tables(base: Mapping[str, VendorRule], overlay: Overlay) -> list[dict[str, Any]]:
    """The ``[[vendors]]`` tables that lay ``overlay`` over the vendors ``base`` (the built-in catalog with
    the config's tables): a new vendor whole, a known one by its id and the fields the overlay changes, each
    given in full (a table's field replaces the catalog's). Assignments to a vendor that no longer exists are
    left out."""
    vendors: dict[str, VendorRule] = dict(base)
    touched: dict[str, None] = {}
    for d in overlay.decisions:  # first the vendors decisions made, so any decision can name them
        if d.vendor_id in vendors:
            continue
        if d.action == "new-vendor":
            made = VendorRule(id=d.vendor_id, category=d.category, name=d.vendor_name, policy_url=d.policy_url)
        elif d.action == "essential" and d.kind == "host":
            made = VendorRule(id=d.vendor_id, category=d.category, name=d.subject, purpose=d.reason)
        elif d.action == "essential":
            made = VendorRule(id=d.vendor_id, category=d.category, name=SITE_VENDOR_NAME,
                              purpose="What the site needs to work, set by the site itself.")
        else:
            continue  # assigned to a vendor that is gone: left out
        vendors[made.id] = made
        touched[made.id] = None
    for d in overlay.decisions:
        vendor = vendors.get(d.vendor_id)
        if vendor is None:
            continue
        vendors[vendor.id] = _with_subject(vendor, d)
        touched[vendor.id] = None
    return [_table(vendors[v], base.get(v)) for v in touched]


def _with_subject(vendor: VendorRule, d: Classification) -> VendorRule:
    if d.kind == "host":
        return replace(
            vendor,
            script_hosts=_added(vendor.script_hosts, d.subject),
            iframe_hosts=_added(vendor.iframe_hosts, d.subject),
            img_hosts=_added(vendor.img_hosts, d.subject),
            link_hosts=_added(vendor.link_hosts, d.subject),
        )
    purpose = d.reason if d.action == "essential" else ""
    rule = CookieRule(d.subject, lifetime=d.lifetime, purpose=purpose)
    rules: tuple[CookieRule, ...] = vendor.cookies if d.kind == "cookie" else vendor.storage
    if any(r.pattern == d.subject for r in rules):
        rules = tuple(rule if r.pattern == d.subject else r for r in rules)
    else:
        rules = (*rules, rule)
    return replace(vendor, cookies=rules) if d.kind == "cookie" else replace(vendor, storage=rules)


def _added(values: tuple[str, ...], value: str) -> tuple[str, ...]:
    return values if value in values else (*values, value)


_TABLE_FIELDS: Final = ("id", "name", "category", "role", "policy_url", "purpose", "source", *_HOST_FIELDS,
                        "paths", "inline_signatures", "cookies", "storage", "beacon_endpoints")


def _table(vendor: VendorRule, base: VendorRule | None) -> dict[str, Any]:
    table: dict[str, Any] = {"id": vendor.id}
    for name in _TABLE_FIELDS[1:]:
        value = getattr(vendor, name)
        if base is not None and value == getattr(base, name):
            continue
        if base is None and value in ("", ()):
            continue
        if name in ("cookies", "storage"):
            table[name] = [_rule_table(r) for r in value]
        else:
            table[name] = list(value) if isinstance(value, tuple) else value
    return table


def _rule_table(rule: CookieRule) -> dict[str, str]:
    return {k: v for k, v in (("pattern", rule.pattern), ("lifetime", rule.lifetime), ("purpose", rule.purpose),
                              ("domain", rule.domain)) if v}


def apply_overlay(catalog: Catalog, overlay: Overlay) -> Catalog:
    """``catalog`` (the built-in vendors with the config's) with the overlay's tables merged over it."""
    if not overlay.decisions:
        return catalog
    return catalog.merged(vendor_tables(catalog.vendors, overlay), source="the dashboard's classifications")


def to_toml(tables: Sequence[Mapping[str, Any]], overlay: Overlay) -> str:
    """The tables as TOML for the config's ``[[vendors]]``, each decision recalled in a comment above its
    vendor (who, when, why)."""
    lines = [
        "# [[vendors]] from the dashboard's classifications (consent-gateway inventory export).",
        "# Append to your config file: each table adds a vendor or gives a known one's changed fields in full.",
    ]
    for table in tables:
        lines.append("")
        for d in overlay.decisions:
            if d.vendor_id == table["id"]:
                note = f"{d.kind} {d.subject}: {d.action}"
                if d.reason:
                    note += f" ({d.reason})"
                if d.by:
                    note += f", by {d.by}"
                lines.append("# " + " ".join(note.split()))
        lines.append("[[vendors]]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        if value and isinstance(value[0], Mapping):
            return "[\n" + "".join(f"    {toml_value(v)},\n" for v in value) + "]"
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
