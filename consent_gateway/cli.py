"""The `consent-gateway` command."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar
from urllib.parse import urlsplit

import click

from . import __version__
from ._types import ASGIApp
from .config import Config, load_config
from .errors import ConfigError

T = TypeVar("T")
CONFIG_HELP = "TOML config file (default: the built-in defaults, documented in config/gateway.toml)."


def _load(path: str | None) -> Config:
    return _built(lambda: load_config(path))


def _built(build: Callable[[], T]) -> T:
    """What `build` makes, or one clear line per problem (file, line and key, or the environment variable)
    instead of a traceback."""
    try:
        return build()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "CONSENT_GATEWAY"})
@click.version_option(__version__, prog_name="consent-gateway")
def main() -> None:
    """Server-side cookie consent: holds trackers back until each visitor agrees, and keeps the proof."""


def _serve(
    app: ASGIApp, host: str, port: int, log_level: str, certfile: str | None = None, keyfile: str | None = None
) -> None:
    import uvicorn

    from .serving import http_protocol, settle_garbage_collector

    settle_garbage_collector()
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=http_protocol(),  # HTTP/1.0 clients get close-delimited bodies, never chunks
        log_level=log_level,
        proxy_headers=False,  # the gateway reads forwarded headers itself, from gateway.trusted_proxies only
        server_header=False,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )


@main.command()
@click.option(
    "--upstream", required=True, metavar="URL", help="The site to put behind the gateway, e.g. http://127.0.0.1:8080."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option(
    "--certfile",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM certificate (chain) to listen on HTTPS instead of HTTP; needs --keyfile unless it holds the key.",
)
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="PEM private key of --certfile.")
def proxy(
    upstream: str,
    host: str,
    port: int,
    config_path: str | None,
    log_level: str,
    certfile: str | None,
    keyfile: str | None,
) -> None:
    """Run the gateway as a reverse proxy in front of any site (PHP, static, Node…)."""
    if not upstream.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--upstream")
    if keyfile and not certfile:
        raise click.BadParameter("needs --certfile", param_hint="--keyfile")
    from .accesslog import install_access_log

    config = _load(config_path)
    install_access_log(config)  # no full visitor address nor query string in the access log
    app = _built(lambda: proxy_app(upstream, config))
    _warn_if_unreachable(upstream, config.proxy.connect_timeout_seconds)
    _serve(app, host, port, log_level, certfile, keyfile)


def _warn_if_unreachable(upstream: str, timeout: float) -> None:
    """Say at start, not at the first visitor's 502, that the site behind the gateway does not answer."""
    url = urlsplit(upstream)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        click.secho(
            f"warning: the upstream {upstream} does not answer ({exc.strerror or exc}); "
            "visitors get an error page until it does",
            fg="yellow",
            err=True,
        )


def proxy_app(upstream: str, config: Config) -> ASGIApp:
    """What `consent-gateway proxy` serves: the request limits, the gateway, the proxy to the site."""
    from .limits import RequestLimits
    from .middleware import ConsentGateway
    from .proxy import UpstreamProxy

    upstream_app = UpstreamProxy(
        upstream,
        connect_timeout=config.proxy.connect_timeout_seconds,
        read_timeout=config.proxy.read_timeout_seconds,
        max_connections=config.proxy.max_connections,
        websocket=config.proxy.websocket,
        preserve_host=config.proxy.preserve_host,
    )
    return RequestLimits.from_config(ConsentGateway(upstream_app, config), config)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
def demo(host: str, port: int, config_path: str | None) -> None:
    """Serve a sample site with real-shaped trackers behind the gateway (nothing leaves this machine)."""
    from .demo import build_demo_site, bypass_for_vendor_hosts
    from .middleware import ConsentGateway

    config = _load(config_path)
    token = _demo_admin_token(config)
    if token:  # the one who started the demo may do everything: classify, erase, make users and tokens
        config = replace(config, admin=replace(config.admin, token_role="admin"))  # noqa: S106 - a role
    site = build_demo_site()
    app = bypass_for_vendor_hosts(_built(lambda: ConsentGateway(site, config)), site)
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host  # noqa: S104 - only compared
    click.echo(f"consent-gateway demo: open http://{shown_host}:{port}/ (consent log: {config.store_url})")
    dashboard = f"http://{shown_host}:{port}{config.gateway.prefix}/admin/"
    if token:
        click.echo(f"privacy team dashboard: {dashboard} (leave the user name empty; password: {token})")
    else:
        click.echo(f"privacy team dashboard: {dashboard} (your [admin] users, or a token of {config.admin.tokens_env})")
    _serve(app, host, port, "info")


def _demo_admin_token(config: Config) -> str | None:
    """A token that opens the demo's dashboard for this run only, when nobody configured a way in."""
    if not config.admin.enabled or config.admin.users or os.environ.get(config.admin.tokens_env, "").strip():
        return None
    token = secrets.token_urlsafe(18)
    os.environ[config.admin.tokens_env] = token  # read by the admin app being built, and by nothing after
    return token


@main.command("check-config")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
def check_config(config_path: str | None) -> None:
    """Check a config file and the environment's keys as the gateway would: every problem, with file, line
    and key (or the variable's name)."""
    from .preflight import build_problems, build_warnings, environment_problems
    from .thirdparty import ThirdParties, site_catalog

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _print_problems(exc, *environment_problems(Config()))
        sys.exit(1)
    problems = build_problems(config)
    if problems:
        _print_problems(*problems)
        sys.exit(1)
    catalog = site_catalog(config)
    parties = ThirdParties.from_config(config)
    source = config.source or "built-in defaults"
    click.echo(f"{source}: ok")
    click.echo(
        f"  categories: {', '.join(config.category_ids)} (required: {', '.join(sorted(config.required_categories))})"
    )
    click.echo(f"  vendors: {len(catalog.vendors)} ({len(config.vendors)} from the config)")
    allowed = ", ".join(entry.id.removeprefix("config:") for entry in parties.allowed)
    click.echo(f"  third parties nobody classified: {parties.mode} (in opt-in regions); allowed: {allowed}")
    click.echo(f"  store: {config.store_url}")
    click.echo(f"  policy version: {config.policy.version}")
    warnings = build_warnings(config)
    unused = sorted({v.category for v in catalog.vendors.values()} - set(config.category_ids))
    if unused:
        warnings.append(f"vendors use categories the banner does not show: {', '.join(unused)}")
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow")


def _print_problems(*problems: ConfigError) -> None:
    for problem in problems:
        for one in getattr(problem, "errors", (problem,)):
            click.secho(f"error: {one}", fg="red", err=True)


@main.group(invoke_without_command=True)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="CONSENT_GATEWAY_CONFIG", help=CONFIG_HELP
)
@click.pass_context
def keys(ctx: click.Context, config_path: str | None) -> None:
    """Keys: the cookie signing keys, the consent log's key, and the checkpoint key pair.

    Without a subcommand, prints the public key that verifies the gateway's signed checkpoints (give it to
    auditors) and the id of the log key that writes; both keys are generated into the data folder on
    first use unless CONSENT_GATEWAY_CHECKPOINT_KEY and CONSENT_GATEWAY_LOG_KEYS are set.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .store.proof import load_checkpoint_key, load_log_keys, public_key_text

    config = _load(config_path)
    try:
        public = public_key_text(load_checkpoint_key(config.data_path))
        log_keys = load_log_keys(config.data_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"checkpoint public key: {public}")
    click.echo(f"log key id (writing): {log_keys.writing_id}")


@keys.command("checkpoint")
def keys_checkpoint() -> None:
    """Print a new Ed25519 checkpoint key pair: the private key for CONSENT_GATEWAY_CHECKPOINT_KEY, the public
    key for auditors."""
    from .store.proof import new_checkpoint_key_pair

    private, public = new_checkpoint_key_pair()
    click.echo(f"private (CONSENT_GATEWAY_CHECKPOINT_KEY): {private}")
    click.echo(f"public (for auditors): {public}")


@keys.command("generate")
def keys_generate() -> None:
    """Print a new secret key: for CONSENT_GATEWAY_SECRET_KEYS (cookies) or CONSENT_GATEWAY_LOG_KEYS (the
    consent log), never the same one for both. Put it first; keep the old ones after it."""
    from .signing import generate_key

    click.echo(generate_key())


@main.group()
def admin() -> None:
    """The privacy team's dashboard."""


@admin.command("hash-password")
@click.password_option(help="The password (asked for when not given).")
def admin_hash_password(password: str) -> None:
    """Print a password hash for [[admin.users]] in the config."""
    from .admin import hash_password

    click.echo(hash_password(password))


@main.group()
def catalog() -> None:
    """The vendor catalog: which tags and cookies belong to which vendor."""


@catalog.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["ocd", "disconnect"]), help="The list's format (default: detect).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the TOML here (default: standard output).")
def catalog_import(file: str, fmt: str | None, output: str | None) -> None:
    """Turn a tracker list you hold the rights to (Open Cookie Database CSV, Disconnect services.json) into
    [[vendors]] tables to review and include in your config. Vendors the catalog already knows are left out."""
    from pathlib import Path

    from .catalog_import import import_file

    try:
        result = import_file(Path(file), fmt)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    text = result.to_toml(Path(file).name)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    click.echo(
        f"{len(result.tables)} vendors written, {len(result.skipped)} left out "
        "(already in the catalog, or not trackers)",
        err=True,
    )


def _register_logs() -> None:
    from .inventory_cli import inventory
    from .logs_cli import logs

    main.add_command(logs)
    main.add_command(inventory)


_register_logs()


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig()
    main()
