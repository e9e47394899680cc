"""The documentation keeps up with the code: every config key and command is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click

from consent_gateway.cli import main
from consent_gateway.config import Config

ROOT = Path(__file__).parent.parent
SHIPPED = (ROOT / "config" / "gateway.toml").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_config_key_is_documented_in_the_shipped_file() -> None:
    sections = {f.name: f for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.default)}
    for name, field in sections.items():
        assert re.search(rf"^\[{name}\]$", SHIPPED, re.MULTILINE), f"[{name}] is missing"
        for key in dataclasses.fields(field.default):  # type: ignore[arg-type]
            assert re.search(rf"^#? ?{key.name} = ", SHIPPED, re.MULTILINE), f"{name}.{key.name} is missing"
    assert "[[categories]]" in SHIPPED and "[[vendors]]" in SHIPPED


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names: list[str] = []
    for name, command in group.commands.items():
        names.append(f"{prefix}{name}")
        if isinstance(command, click.Group):
            names.extend(_commands(command, f"{prefix}{name} "))
    return names


def test_every_command_is_in_the_readme() -> None:
    for command in _commands(main):
        top = command.split(" ")[0]
        assert f"consent-gateway {top}" in README, command
    for sub in main.commands["logs"].commands:  # type: ignore[attr-defined]
        assert sub in README, f"logs {sub}"


def test_readme_gives_the_two_setup_commands() -> None:
    assert "scripts/demo" in README and "scripts/test" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test" in ci
