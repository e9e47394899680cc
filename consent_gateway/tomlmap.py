"""TOML tables → frozen dataclasses, by their type hints: what `config` uses to read `gateway.toml` strictly.

An unknown key or a value of the wrong type is a `ConfigError` with the dotted key, and the file and line
where the key is set when the text is known. The reader keeps going after a bad key (that key keeps its
default) and collects every problem in `problems`, so one run of `check-config` lists them all.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from .errors import ConfigError

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


class Incomplete(Exception):
    """A table lacks a required key (already in `problems`): the value that holds it cannot be built."""


class TableReader:
    """Reads TOML tables into dataclass arguments, with errors that name the file, the line and the key."""

    def __init__(self, source: str | None, text: str | None) -> None:
        self.source = source
        self.lines = text.splitlines() if text else []
        #: every problem found so far, in the order of the file's keys
        self.problems: list[ConfigError] = []

    def collect(self, hint: Any, value: Any, key: str) -> tuple[bool, Any]:
        """One key's conversion: (True, the value), or (False, None) with its problem kept."""
        try:
            return True, self.convert(hint, value, key)
        except ConfigError as exc:
            self.problems.append(exc)
        except Incomplete:
            pass
        return False, None

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(key, message, file=self.source, line=self.line_of(key))

    def line_of(self, key: str) -> int | None:
        """Best effort: the line where the key's last part is set, after its section header (or where the
        inline table holding it is)."""
        if not self.lines:
            return None
        parts = [p for p in re.split(r"[.\[\]]", key) if p and not p.isdigit()]
        if not parts:
            return None
        name = parts[-1]
        section = ".".join(parts[:-1])
        start = 0
        if section:
            header = re.compile(rf"^\s*\[\[?\s*{re.escape(section)}\s*\]\]?\s*$")
            for number, line in enumerate(self.lines):
                if header.match(line):
                    start = number
                    break
        pattern = re.compile(rf"^\s*{re.escape(name)}\s*=|^\s*\[\[?\s*{re.escape(key)}\s*\]\]?")
        for number in range(start, len(self.lines)):
            if pattern.match(self.lines[number]):
                return number + 1
        # a key inside an inline table (`theme = { colour = "red" }`): the line of the table's key
        return self.line_of(section) if len(parts) > 2 else None

    def fields(self, cls: type, table: Any, prefix: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """Convert one table to the keyword arguments of a dataclass; `exclude`d fields are set elsewhere."""
        if not isinstance(table, Mapping):
            raise self.error(prefix.rstrip(".") or "-", f"expected a table, got {_describe(table)}")
        hints = get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls) if f.name not in exclude}
        for key in table:
            if key not in known:
                expected = ", ".join(sorted(known))
                self.problems.append(self.error(f"{prefix}{key}", f"unknown key (expected one of: {expected})"))
        values: dict[str, Any] = {}
        complete = True
        for name, spec in known.items():
            key = f"{prefix}{name}"
            if name in table:
                ok, value = self.collect(hints[name], table[name], key)
                if ok:
                    values[name] = value
            elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                self.problems.append(self.error(key, "is required"))
                complete = False
        if not complete:
            raise Incomplete
        return values

    def convert(self, hint: Any, value: Any, key: str) -> Any:
        """`value` as the type `hint` names, or a `ConfigError` for `key`."""
        if hint is Any:
            return value
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return hint(**self.fields(hint, value, f"{key}."))
        origin = get_origin(hint)
        if origin is Literal:
            return self._literal(get_args(hint), value, key)
        if origin in (Union, types.UnionType):
            return self._union(get_args(hint), value, key)
        if origin is tuple:
            return self._tuple(get_args(hint)[0], value, key)
        if origin in (Mapping, dict) or hint is Mapping:
            return self._mapping(get_args(hint), value, key)
        return self._scalar(hint, value, key)

    def _literal(self, choices: tuple[Any, ...], value: Any, key: str) -> Any:
        if value not in choices:
            raise self.error(key, f"expected {' | '.join(repr(c) for c in choices)}, got {value!r}")
        return value

    def _union(self, hints: tuple[Any, ...], value: Any, key: str) -> Any:
        """The first member type that takes the value; the last member's error otherwise."""
        if value is None and type(None) in hints:
            return None
        last: ConfigError | None = None
        for hint in hints:
            found = len(self.problems)
            try:
                converted = self.convert(hint, value, key)
            except ConfigError as exc:
                last = exc
                continue
            except Incomplete:
                converted = None
            if len(self.problems) == found:
                return converted
            last = self.problems[found]  # a member that only half fits is no fit: try the next one
            del self.problems[found:]
        assert last is not None
        raise last

    def _tuple(self, item_hint: Any, value: Any, key: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise self.error(key, f"expected an array, got {_describe(value)}")
        items = [self.collect(item_hint, item, f"{key}[{i}]") for i, item in enumerate(value)]
        if not all(ok for ok, _ in items):
            raise Incomplete  # each bad item is in `problems`; the array keeps its default
        return tuple(item for _, item in items)

    def _mapping(self, args: tuple[Any, ...], value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {_describe(value)}")
        value_hint = args[1] if args else Any
        return types.MappingProxyType({str(k): self.convert(value_hint, v, f"{key}.{k}") for k, v in value.items()})

    def _scalar(self, hint: Any, value: Any, key: str) -> Any:
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(key, f"expected a number, got {_describe(value)}")
            return float(value)
        if hint in (str, int, bool):
            if type(value) is not hint:
                raise self.error(key, f"expected {_TYPE_NAMES[hint]}, got {_describe(value)}")
            return value
        raise self.error(key, f"unsupported type {hint!r}")  # a bug in the caller's dataclass, not in the file


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__
