"""``consent-gateway catalog import``: turn a tracker list the owner holds the rights to into ``[[vendors]]``.

Two common formats are read:

* the Open Cookie Database CSV (cookie names per platform, with category, domain and retention);
* Disconnect's ``services.json`` (tracker domains per company and category).

The result is TOML for the owner to review and paste into the config: every table passes the same vendor
validation as the built-in data and the config (`catalog_schema.vendor_from_table`), and what the built-in
catalog already knows is left out, so an import never silently overrides a built-in entry.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import URL_KINDS, Catalog
from .catalog_schema import FIELD_NAMES, vendor_from_table
from .cookie_database import SOURCE_URL as OCD_URL
from .cookie_database import domains_of
from .errors import ConfigError

FORMATS = ("ocd", "disconnect")
#: Open Cookie Database category -> (consent category, role); other categories are not trackers
_OCD_CATEGORIES = {"Marketing": ("marketing", "advertising"), "Analytics": ("analytics", "analytics"),
                   "Personalization": ("preferences", "")}
#: Disconnect category -> (consent category, role); "ConsentManagers" and unknown ones are left out
_DISCONNECT_CATEGORIES = {
    "Advertising": ("marketing", "advertising"),
    "Analytics": ("analytics", "analytics"),
    "Social": ("marketing", "social"),
    "Disconnect": ("marketing", "social"),
    "Content": ("preferences", "embed"),
    "FingerprintingInvasive": ("marketing", "advertising"),
    "FingerprintingGeneral": ("marketing", "advertising"),
    "Cryptomining": ("marketing", ""),
    "Email": ("marketing", "marketing-automation"),
    "EmailAggressive": ("marketing", "marketing-automation"),
}
_OCD_COLUMNS = ("Platform", "Category", "Cookie / Data Key name", "Domain", "Retention period", "Wildcard match")
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_HOST_RE = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")


@dataclass
class ImportResult:
    """The vendor tables of an import, and what was left out (reported to the owner)."""

    tables: list[dict[str, Any]] = field(default_factory=list)
    #: vendor name -> why it was left out ("already in the built-in catalog as criteo", "functional")
    skipped: dict[str, str] = field(default_factory=dict)

    def to_toml(self, source: str) -> str:
        lines = [
            f"# [[vendors]] imported from {source} by `consent-gateway catalog import`.",
            "# Review each entry (category, hosts, cookies) before including it in your config.",
        ]
        for table in self.tables:
            lines.append("")
            lines.append("[[vendors]]")
            for key, value in table.items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def detect_format(path: Path, text: str) -> str:
    """ "ocd" or "disconnect", from the file's content (not only its name)."""
    head = text.lstrip("\ufeff \t\r\n")[:2000]
    if head.startswith("{"):
        return "disconnect"
    if "Cookie / Data Key name" in head.partition("\n")[0]:
        return "ocd"
    raise ConfigError("-", "unknown list format: expected the Open Cookie Database CSV or Disconnect's services.json "
                      "(or say which with --format)", file=str(path))


def import_file(path: Path, fmt: str | None = None, *, catalog: Catalog | None = None) -> ImportResult:
    """Read ``path`` and build the vendor tables the built-in (or given) catalog does not have yet."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("-", f"cannot read the list: {exc}", file=str(path)) from exc
    fmt = fmt or detect_format(path, text)
    known = catalog if catalog is not None else Catalog.builtin()
    if fmt == "ocd":
        result = _from_ocd(csv.DictReader(io.StringIO(text)), known, str(path))
    elif fmt == "disconnect":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("-", f"not valid JSON: {exc}", file=str(path), line=exc.lineno) from exc
        result = _from_disconnect(data, known, str(path))
    else:
        raise ConfigError("--format", f"expected one of {', '.join(FORMATS)}, got {fmt!r}")
    for index, table in enumerate(result.tables):
        vendor_from_table(table, f"vendors[{index}]", None, str(path))  # the one vendor validation
    return result


def _from_ocd(rows: Iterable[Mapping[str, str]], known: Catalog, file: str) -> ImportResult:
    result = ImportResult()
    vendors: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        missing = [column for column in _OCD_COLUMNS if column not in row]
        if missing:
            raise ConfigError(f"row {number}", f"missing column {missing[0]!r}", file=file, line=number)
        platform = (row["Platform"] or "").strip()
        name = (row["Cookie / Data Key name"] or "").strip()
        if not platform or not name:
            continue
        mapped = _OCD_CATEGORIES.get((row["Category"] or "").strip())
        if mapped is None:
            result.skipped.setdefault(platform, f"{row['Category'] or 'uncategorised'} cookies only")
            continue
        cookie = _ocd_cookie(row, name)
        owner = known.vendor_for_set_cookie(name, cookie.get("domain", ""))
        if owner is not None and not owner.id.startswith("ocd-"):
            result.skipped.setdefault(platform, f"already in the catalog as {owner.id}")
            continue
        vendor = _ocd_vendor(vendors, platform, mapped, known)
        _add_ocd_row(vendor, row, cookie)
        result.skipped.pop(platform, None)
    result.tables = [_without_empty(v) for v in vendors.values()]
    return result


def _ocd_cookie(row: Mapping[str, str], name: str) -> dict[str, str]:
    """One row's cookie table: its pattern (a wildcard row is a prefix), lifetime, purpose and domain."""
    wildcard = (row["Wildcard match"] or "").strip() == "1"
    domains = [d for d in domains_of(row["Domain"] or "") if _HOST_RE.fullmatch(d)]
    pattern = name + "*" if wildcard and not name.endswith("*") else name
    cookie: dict[str, str] = {"pattern": pattern, "lifetime": (row["Retention period"] or "").strip()}
    description = _first_sentence(row.get("Description") or "")
    if description:
        cookie["purpose"] = description
    if domains:
        cookie["domain"] = domains[0]
    return cookie


def _ocd_vendor(
    vendors: dict[str, dict[str, Any]], platform: str, mapped: tuple[str, str], known: Catalog
) -> dict[str, Any]:
    """The platform's vendor table, made at its first row; its category is the strictest of its cookies'."""
    category, role = mapped
    vendor = vendors.get(platform)
    if vendor is None:
        vendor = vendors[platform] = {
            "id": _free_id(platform, known, vendors), "name": platform, "category": category, "role": role,
            "source": OCD_URL, "cookies": [],
        }
    if category == "marketing":
        vendor["category"] = "marketing"
    return vendor


def _add_ocd_row(vendor: dict[str, Any], row: Mapping[str, str], cookie: dict[str, str]) -> None:
    """Add the row's privacy portal (the first one found) and its cookie, unless a row had the same pattern."""
    portal = (row.get("User Privacy & GDPR Rights Portals") or "").strip()
    if portal.startswith(("https://", "http://")) and "policy_url" not in vendor:
        vendor["policy_url"] = portal
    if all(existing["pattern"] != cookie["pattern"] for existing in vendor["cookies"]):
        vendor["cookies"].append(cookie)


def _from_disconnect(data: Any, known: Catalog, file: str) -> ImportResult:
    result = ImportResult()
    categories = data.get("categories") if isinstance(data, Mapping) else None
    if not isinstance(categories, Mapping):
        raise ConfigError("categories", "expected Disconnect's services.json: an object with \"categories\"", file=file)
    vendors: dict[str, dict[str, Any]] = {}
    for category_name, entries in categories.items():
        mapped = _DISCONNECT_CATEGORIES.get(category_name)
        if not isinstance(entries, list):
            raise ConfigError(f"categories.{category_name}", "expected a list of companies", file=file)
        for position, entry in enumerate(entries):
            where = f"categories.{category_name}[{position}]"
            if not isinstance(entry, Mapping) or len(entry) != 1:
                raise ConfigError(where, "expected {company name: {homepage: [domains]}}", file=file)
            (company, sites), = entry.items()
            if mapped is None:
                result.skipped.setdefault(company, f"category {category_name}")
                continue
            homepage, hosts = _disconnect_hosts(sites, f"{where}.{company}", file)
            new_hosts = [h for h in hosts if not _known_host(known, h)]
            if not new_hosts:
                result.skipped.setdefault(company, "every domain is already in the catalog")
                continue
            category, role = mapped
            vendor = vendors.setdefault(company, {
                "id": _free_id(company, known, vendors), "name": company, "category": category, "role": role,
                "source": homepage, "policy_url": homepage, "hosts": [],
            })
            vendor["hosts"] += [h for h in new_hosts if h not in vendor["hosts"]]
            result.skipped.pop(company, None)
    for vendor in vendors.values():
        hosts = vendor.pop("hosts")
        for kind in ("script_hosts", "iframe_hosts", "img_hosts", "link_hosts"):
            vendor[kind] = list(hosts)
        result.tables.append(_without_empty(vendor))
    return result


def _known_host(known: Catalog, host: str) -> bool:
    return any(known.vendor_for_url(f"https://{host}/", kind) is not None for kind in URL_KINDS)


def _disconnect_hosts(sites: Any, where: str, file: str) -> tuple[str, list[str]]:
    if not isinstance(sites, Mapping):
        raise ConfigError(where, "expected {homepage: [domains]}", file=file)
    homepage, hosts = "", []
    for url, domains in sites.items():
        if not isinstance(domains, list):
            continue  # flags such as "dnt": "eff"
        if not homepage and str(url).startswith(("https://", "http://")):
            homepage = str(url)
        hosts += [d.strip().lower() for d in domains if isinstance(d, str) and _HOST_RE.fullmatch(d.strip().lower())]
    return homepage, hosts


def _free_id(name: str, known: Catalog, taken: Mapping[str, Mapping[str, Any]]) -> str:
    """A vendor id for ``name`` that neither the catalog nor this import uses yet (an import must never
    override a built-in entry by accident)."""
    base = _SLUG_RE.sub("-", name.lower()).strip("-") or "vendor"
    used = set(known.vendors) | {v["id"] for v in taken.values()}
    candidate, number = base, 2
    while candidate in used:
        candidate, number = f"{base}-{number}", number + 1
    return candidate


def _first_sentence(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    sentence = text.split(". ")[0].rstrip(".")
    return (sentence[: limit - 1] + "…") if len(sentence) > limit else (sentence + "." if sentence else "")


def _without_empty(table: dict[str, Any]) -> dict[str, Any]:
    """The table's non-empty fields, in the order of the data format (id first, cookies last)."""
    return {key: table[key] for key in FIELD_NAMES if table.get(key) not in ("", [], None)}


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        if value and isinstance(value[0], Mapping):
            return "[\n" + "".join(f"    {_toml_value(v)},\n" for v in value) + "]"
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
