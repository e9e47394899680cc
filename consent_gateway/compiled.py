"""Which rewriter core runs: the modules compiled with mypyc when the install built them, else pure Python.

The same source files are both: ``pip install`` on a machine with a C compiler compiles
``COMPILED_MODULES`` (``hatch_build.py``) and the compiled extension modules sit next to the ``.py`` files,
which Python's import prefers. The pure-Python modules run instead when

* ``CONSENT_GATEWAY_PURE=1`` is set (read once, when the package is first imported),
* the install had no compiler (nothing was built), or
* a source file changed since it was compiled (an editable install after an edit or a rebase): running the
  old compiled code would silently ignore the edit. ``scripts/install`` rebuilds when these files change.

Both paths give the same bytes (the tests run the rewriter's checks on both). This module imports nothing from
the package: the build hook reads ``COMPILED_MODULES`` from it too.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

#: the modules the build compiles: the rewriter's tokenizer, scanner and per-tag decisions
COMPILED_MODULES = (
    "consent_gateway.html.cache",
    "consent_gateway.html.css",
    "consent_gateway.html.decisions",
    "consent_gateway.html.head",
    "consent_gateway.html.holdback",
    "consent_gateway.html.inline_loaders",
    "consent_gateway.html.rewriter",
    "consent_gateway.html.scanner",
    "consent_gateway.html.states",
    "consent_gateway.html.text_states",
    "consent_gateway.html.tokenizer",
)
#: C extension modules built with them (``<module>.c`` beside the Python module that uses it, which falls back
#: to its own pure-Python code on the pure path)
C_EXTENSIONS = ("consent_gateway.html._attrs",)
#: the name mypyc gives the shared library of the compiled modules (``<group>__mypyc``)
GROUP_NAME = "consent_gateway.html._core"
#: written by the build next to the compiled modules: the hash of each source it compiled
MANIFEST_NAME = "_core_build.json"
PURE_ENV = "CONSENT_GATEWAY_PURE"

_PACKAGE_DIR = Path(__file__).resolve().parent
_path: tuple[str, str] | None = None


def source_file(module: str, package_dir: Path = _PACKAGE_DIR) -> Path:
    """The ``.py`` file of a module of this package."""
    return package_dir.joinpath(*module.split(".")[1:]).with_suffix(".py")


def source_digests(package_dir: Path = _PACKAGE_DIR) -> dict[str, str]:
    """sha256 of each compiled module's source (and of each C extension's, keyed ``<module>.c``), as the build
    records them."""
    digests = {module: hashlib.sha256(source_file(module, package_dir).read_bytes()).hexdigest()
               for module in COMPILED_MODULES}
    for module in C_EXTENSIONS:
        source = source_file(module, package_dir).with_suffix(".c")
        digests[module + ".c"] = hashlib.sha256(source.read_bytes()).hexdigest()
    return digests


def env_wants_pure() -> bool:
    return os.environ.get(PURE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _compiled_files(module: str) -> list[Path]:
    base = source_file(module)
    return [base.with_name(base.stem + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if base.with_name(base.stem + suffix).exists()]


def _why_not_compiled() -> str | None:
    """None when the compiled modules are there and were built from the sources at hand, else why not."""
    if env_wants_pure():
        return f"{PURE_ENV}=1"
    if not all(_compiled_files(module) for module in (*COMPILED_MODULES, *C_EXTENSIONS)):
        return "not built (no C compiler at install, or built without it)"
    manifest = _PACKAGE_DIR / "html" / MANIFEST_NAME
    try:
        built = json.loads(manifest.read_text(encoding="utf-8"))["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no readable {MANIFEST_NAME} beside the compiled modules"
    try:
        current = source_digests()
    except OSError as error:  # an install without the .py files: what is there is what was built
        return None if built else f"sources unreadable ({error})"
    if built != current:
        changed = sorted(module.rpartition(".")[2] for module in current if built.get(module) != current[module])
        return f"sources changed since the build ({', '.join(changed)}): run scripts/install to rebuild"
    return None


class _SourceFirst:
    """A meta path finder that loads the compiled modules from their ``.py`` files (the pure path)."""

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name not in COMPILED_MODULES:
            return None
        return importlib.util.spec_from_file_location(name, source_file(name))


def select() -> tuple[str, str]:
    """Choose the path once per process, before any compiled module is imported; ("compiled", "") or
    ("pure", why)."""
    global _path
    if _path is None:
        reason = _why_not_compiled()
        if reason is None:
            _path = ("compiled", "")
        else:
            if any(module in sys.modules for module in COMPILED_MODULES):  # pragma: no cover - import order bug
                raise RuntimeError("consent_gateway.compiled.select() must run before the rewriter is imported")
            sys.meta_path.insert(0, _SourceFirst())
            _path = ("pure", reason)
    return _path


def core_path() -> tuple[str, str]:
    """("compiled", "") or ("pure", the reason): which rewriter core this process runs."""
    return select()


def running_compiled() -> bool:
    """Whether the rewriter modules imported in this process are the compiled ones (checked on the modules)."""
    module = sys.modules.get("consent_gateway.html.tokenizer")
    return module is not None and not str(getattr(module, "__file__", "")).endswith(".py")


# Chosen on the package's first import (consent_gateway/__init__.py imports this module first); not when the
# build hook reads this file under another name.
if __name__ == "consent_gateway.compiled":
    select()


def native_function(name: str) -> Any:
    """A function of the C helpers built beside the compiled core (``html/_attrs.c``; see C_EXTENSIONS), or
    None on the pure path, where the caller's own Python code is the reference."""
    if core_path()[0] != "compiled":
        return None
    try:
        module = importlib.import_module(C_EXTENSIONS[0])
    except ImportError:  # pragma: no cover - built together with the compiled modules
        return None
    return getattr(module, name)
