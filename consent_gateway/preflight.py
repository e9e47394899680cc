"""What the gateway builds from a config, built once without side effects: the second half of `check-config`.

`load_config` checks the file itself. The gateway then builds its parts — the catalog, the allow-list, the
banner, the admin users, the keys from the environment, the consent log's backend — and each part refuses
what it cannot use. Building the same parts here, with the same constructors, makes `check-config` approve
exactly what the gateway starts with, and list every problem at once. Nothing is written or connected:
keys are read from the environment or the data folder, never generated, and the log is not opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from .config import Config
from .errors import ConfigError
from .tomlmap import TableReader


def build_problems(config: Config, environ: Mapping[str, str] | None = None) -> list[ConfigError]:
    """Every `ConfigError` the gateway's parts raise for this config and environment, in build order."""
    from .admin.auth import Authenticator
    from .banner import Banner
    from .store import open_log
    from .store.proof import find_checkpoint_key, find_log_keys
    from .thirdparty import ThirdParties, site_catalog

    environ = os.environ if environ is None else environ
    attempt = _Attempts()
    catalog = attempt(lambda: site_catalog(config))
    attempt(lambda: ThirdParties.from_config(config))
    if catalog is not None:
        attempt(lambda: Banner(config, catalog))  # type: ignore[arg-type]  # a Catalog when not None
    if config.admin.enabled:
        attempt(lambda: Authenticator({user.name: user.password_hash for user in config.admin.users}))
    attempt(lambda: find_log_keys(config.data_path, environ))  # the variable, or the data folder's file
    attempt(lambda: find_checkpoint_key(config.data_path, environ))
    attempt(lambda: open_log(config.store_url))
    located = [_located(problem, config) for problem in attempt.problems]
    return located + environment_problems(config, environ, files=False)


def environment_problems(
    config: Config, environ: Mapping[str, str] | None = None, *, files: bool = True
) -> list[ConfigError]:
    """The problems of the gateway's environment variables alone: what can be said even of a broken file.
    ``files=False`` leaves out the log and checkpoint keys, which `build_problems` reads with their files."""
    from .admin.auth import tokens_from_env
    from .signing import SECRET_KEYS_ENV, load_secret_keys
    from .store.proof import CHECKPOINT_KEY_ENV, LOG_KEYS_ENV, load_checkpoint_key, load_log_keys

    environ = os.environ if environ is None else environ
    attempt = _Attempts()
    if environ.get(SECRET_KEYS_ENV, "").strip():
        attempt(lambda: load_secret_keys(config, dict(environ)))
    if files and environ.get(LOG_KEYS_ENV, "").strip():
        attempt(lambda: load_log_keys(config.data_path, environ))
    if files and environ.get(CHECKPOINT_KEY_ENV, "").strip():
        attempt(lambda: load_checkpoint_key(config.data_path, environ))
    attempt(lambda: tokens_from_env(environ, config.admin.tokens_env))
    return attempt.problems


class _Attempts:
    """Builds one part after another, keeping each part's `ConfigError` instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[ConfigError] = []

    def __call__(self, build: Callable[[], object]) -> object | None:
        try:
            return build()
        except ConfigError as exc:
            self.problems.append(exc)
            return None


def build_warnings(config: Config) -> list[str]:
    """What the gateway accepts but will not work as the owner probably expects."""
    warnings: list[str] = []
    database = config.privacy.geoip_database
    if database and not Path(database).is_file():
        warnings.append(f"privacy.geoip_database: no file at {database!r}: every visitor's country will be unknown")
    return warnings


def _located(problem: ConfigError, config: Config) -> ConfigError:
    """The problem with the config file and line of its key, when the key is the file's and not a variable's."""
    if problem.file is not None or config.source is None:
        return problem
    try:
        text = Path(config.source).read_text(encoding="utf-8")
    except OSError:
        text = None
    return TableReader(config.source, text).error(problem.key, problem.message)
