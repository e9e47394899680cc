"""Build hook: compile the rewriter core with mypyc when a C compiler is there; else the wheel is pure Python.

Hatchling runs it for every wheel, editable ones included (``scripts/install`` does ``pip install -e``):

* a standard wheel gets the compiled modules, their shared library and ``_core_build.json`` (the hash of each
  source compiled, which ``consent_gateway.compiled`` checks at import) and a platform tag;
* an editable install builds them in place, next to the sources (git ignores them), which Python's import
  then prefers;
* without a compiler, or with ``CONSENT_GATEWAY_PURE=1``, nothing is compiled (a warning says why, and an
  editable install removes compiled files left from an earlier build): the pure-Python modules run, with
  the same bytes.

The modules to compile are ``consent_gateway.compiled.COMPILED_MODULES``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _core_settings(root: Path) -> Any:
    """consent_gateway/compiled.py, loaded by path (the package itself is not importable here)."""
    spec = importlib.util.spec_from_file_location("_cg_compiled_settings", root / "consent_gateway" / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # under another name it chooses no path: only its constants are used
    return module


class CompiledCoreHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        settings = _core_settings(root)
        editable = version == "editable"
        if editable:
            _remove_in_place(root, settings)
        if os.environ.get(settings.PURE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
            self.app.display_info(f"consent-gateway: {settings.PURE_ENV}=1, the rewriter core stays pure Python")
            return
        try:
            built = _compile(root, settings, in_place=editable)
        except (Exception, SystemExit) as error:  # no compiler, no headers, a mypyc failure (it exits): the
            # pure path still works
            self.app.display_warning(f"consent-gateway: the compiled rewriter core was not built ({error!r}); "
                                     "the pure-Python path runs (same output, slower)")
            if editable:
                _remove_in_place(root, settings)
            return
        build_data["pure_python"] = False
        if not editable:
            build_data["infer_tag"] = True
            for source, target in built.items():
                build_data["force_include"][str(source)] = target
        self.app.display_info(f"consent-gateway: compiled rewriter core built ({len(built)} files)")


def _extension_files(directory: Path, stem: str) -> list[Path]:
    return [directory / (stem + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if (directory / (stem + suffix)).exists()]


def _remove_in_place(root: Path, settings: Any) -> None:
    """Compiled files an earlier editable build left next to the sources."""
    html_dir = root / "consent_gateway" / "html"
    stems = [module.rpartition(".")[2] for module in (*settings.COMPILED_MODULES, *settings.C_EXTENSIONS)]
    stems.append(settings.GROUP_NAME.rpartition(".")[2] + "__mypyc")
    for stem in stems:
        for path in _extension_files(html_dir, stem):
            path.unlink()
    (html_dir / settings.MANIFEST_NAME).unlink(missing_ok=True)


def _compile(root: Path, settings: Any, *, in_place: bool) -> dict[Path, str]:
    """Compile the modules; return {built file: its path in the wheel}."""
    from mypyc.build import mypycify
    from setuptools import Distribution, Extension

    sources = [str(Path(*module.split(".")).with_suffix(".py")) for module in settings.COMPILED_MODULES]
    work = root / "build" / "mypyc"
    out = Path(tempfile.mkdtemp(prefix="cg-core-"))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        extensions = mypycify(
            # Only the compiled modules are type-checked strictly: the rest of the package and its
            # dependencies (not installed in an isolated build) are followed silently, unknown ones as Any.
            # An optional accelerator missing here (hyperscan, xxhash) is Any: its `try: import` fallback is then
            # a redefinition to mypy, not an error. A cache of its own: the project's .mypy_cache, made with
            # every dependency installed, would hide what a clean build sees.
            ["--follow-imports=silent", "--ignore-missing-imports", "--no-warn-unused-ignores",
             "--disable-error-code=no-redef", "--cache-dir", str(work / "mypy-cache"), *sources],
            target_dir=str(work),
            group_name=settings.GROUP_NAME,
            opt_level=os.environ.get("CONSENT_GATEWAY_MYPYC_OPT_LEVEL", "3"),
        )
        # the C extensions beside them (hot loops the mypyc-compiled code calls; pure-Python fallbacks exist)
        extensions += [Extension(module, [str(Path(*module.split(".")).with_suffix(".c"))], extra_compile_args=["-O2"])
                       for module in settings.C_EXTENSIONS]
        distribution = Distribution({"name": "consent-gateway-core", "ext_modules": extensions})
        command: Any = distribution.get_command_obj("build_ext")
        command.build_lib = str(out)
        command.build_temp = str(work / "temp")
        command.parallel = os.cpu_count() or 1
        command.ensure_finalized()
        command.run()
    finally:
        os.chdir(cwd)
    built: dict[Path, str] = {}
    for path in out.rglob("*"):
        if path.is_file():
            built[path] = path.relative_to(out).as_posix()
    manifest = out / "consent_gateway" / "html" / settings.MANIFEST_NAME
    manifest.write_text(json.dumps({"sources": settings.source_digests(root / "consent_gateway"),
                                    "python": sys.version.split()[0]}, indent=1), encoding="utf-8")
    built[manifest] = manifest.relative_to(out).as_posix()
    if in_place:
        for path, target in built.items():
            destination = root / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            # a new file, not the old one overwritten: a running process may have the old one mapped
            shutil.copyfile(path, destination.with_name(destination.name + ".tmp"))
            os.replace(destination.with_name(destination.name + ".tmp"), destination)
        shutil.rmtree(out, ignore_errors=True)
    return built
