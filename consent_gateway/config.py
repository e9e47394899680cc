"""Configuration: one TOML file loaded into frozen, typed dataclasses.

Every section is a dataclass (in `config_sections`) whose defaults are the product's privacy-safe defaults;
`config/gateway.toml` documents the same values by example (a test keeps the two equal). Loading is strict: an
unknown key or a wrong type is a `ConfigError` naming the file, the line and the dotted key; `config_checks`
then checks what the sections say about each other. Every problem is reported at once (`ConfigErrors`).
Secrets never live here: see `signing.load_secret_keys`.
"""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config_checks import check_config
from .config_sections import (
    DEFAULT_CATEGORIES,
    LANGUAGES,
    UNCLASSIFIED_CATEGORY,
    AccountsConfig,
    AdminConfig,
    AdminUser,
    AllowedHost,
    BannerConfig,
    Category,
    Config,
    ConsentDomain,
    CookieConfig,
    CSPConfig,
    GatewayConfig,
    InventoryConfig,
    PolicyConfig,
    PrivacyConfig,
    ProxyConfig,
    RegionsConfig,
    RetentionConfig,
    StoreConfig,
    ThirdPartiesConfig,
)
from .errors import ConfigError, ConfigErrors
from .tomlmap import TableReader

__all__ = [
    "AccountsConfig",
    "DEFAULT_CATEGORIES",
    "DEFAULT_CONFIG_NAME",
    "LANGUAGES",
    "UNCLASSIFIED_CATEGORY",
    "AdminConfig",
    "AdminUser",
    "AllowedHost",
    "BannerConfig",
    "Category",
    "Config",
    "ConsentDomain",
    "CookieConfig",
    "CSPConfig",
    "GatewayConfig",
    "InventoryConfig",
    "PolicyConfig",
    "PrivacyConfig",
    "ProxyConfig",
    "RegionsConfig",
    "RetentionConfig",
    "StoreConfig",
    "ThirdPartiesConfig",
    "default_config_path",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_NAME = "gateway.toml"


# --------------------------------------------------------------------------------------------------------
# Loading


def default_config_path() -> Path:
    """The shipped, documented default: inside the wheel, or `config/` in a source checkout."""
    packaged = Path(__file__).parent / "_static" / DEFAULT_CONFIG_NAME
    if packaged.exists():
        return packaged
    return Path(__file__).resolve().parent.parent / "config" / DEFAULT_CONFIG_NAME


def load_config(path: str | Path | None = None) -> Config:
    """Load and check a config file; without a path, the built-in defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("-", f"cannot read the config file: {exc.strerror}", file=str(path)) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))  # tomllib names the line only in its message
        line = int(found.group(1)) if found else None
        raise ConfigError("-", f"not valid TOML: {exc}", file=str(path), line=line) from exc
    return parse_config(data, source=str(path), text=text)


def parse_config(data: Mapping[str, Any], *, source: str | None = None, text: str | None = None) -> Config:
    """Check a parsed TOML document (or a dict built in code) and build the frozen `Config`."""
    loader = _Loader(source, text)
    sections = {k: v for k, v in data.items() if k != "vendors"}
    values = loader.fields(Config, sections, "", exclude=("source", "vendors"))
    values["vendors"] = loader.vendors(data.get("vendors", []))
    categories = values.get("categories")
    if categories is not None and all(c.id != UNCLASSIFIED_CATEGORY.id for c in categories):
        # third parties nobody classified need a category the visitor can grant ("accept all")
        values["categories"] = (*categories, UNCLASSIFIED_CATEGORY)
    config = Config(**values, source=source)
    check_config(config, loader)
    ConfigErrors.raise_any(loader.problems)
    return config


class _Loader(TableReader):
    """The generic table reading, plus what only the [[vendors]] tables need."""

    def vendors(self, tables: Any) -> tuple[Mapping[str, Any], ...]:
        from .catalog_schema import vendor_fields  # the one vendor validation, shared with the catalog

        if not isinstance(tables, list):
            self.problems.append(self.error("vendors", "expected [[vendors]] tables"))
            return ()
        checked: list[Mapping[str, Any]] = []
        for index, table in enumerate(tables):
            key = f"vendors[{index}]"
            if isinstance(table, Mapping) and "id" not in table:
                self.problems.append(self.error(f"{key}.id", "is required"))
                continue
            try:
                checked.append(types.MappingProxyType(vendor_fields(table, key)))
            except ConfigError as exc:
                self.problems.append(self.error(exc.key, exc.message))
        return tuple(checked)
