from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from click.testing import CliRunner

from consent_gateway.cli import main
from tests.conftest import free_port


def test_every_command_explains_itself() -> None:
    runner = CliRunner()
    for args in (
        ["--help"],
        ["proxy", "--help"],
        ["demo", "--help"],
        ["check-config", "--help"],
        ["keys", "generate", "--help"],
        ["logs", "--help"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output
    proxy_help = runner.invoke(main, ["proxy", "--help"]).output
    assert "--upstream" in proxy_help and "--config" in proxy_help and "--port" in proxy_help


def test_keys_generate_prints_a_fresh_key() -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["keys", "generate"]).output.strip()
    second = runner.invoke(main, ["keys", "generate"]).output.strip()
    assert len(first) >= 32 and first != second


def test_check_config_accepts_the_shipped_file() -> None:
    shipped = Path(__file__).parent.parent / "config" / "gateway.toml"
    result = CliRunner().invoke(main, ["check-config", "--config", str(shipped)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    assert "categories: necessary, analytics, session-replay, marketing, preferences" in result.output


def test_check_config_explains_a_mistake_with_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[policy]\nversion = "2"\n\n[privacy]\nip_mode = "masked"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 1
    assert f"{path}:5: privacy.ip_mode: expected 'full' | 'truncated' | 'hashed', got 'masked'" in result.output


def test_proxy_refuses_a_bad_upstream() -> None:
    result = CliRunner().invoke(main, ["proxy", "--upstream", "ftp://example.org"])
    assert result.exit_code == 2
    assert "http://" in result.output


def test_check_config_names_the_file_of_a_bad_vendor_table(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[[vendors]]\nid = "acme"\nscript_hosts = ["cdn.acme.test"]\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 1
    assert str(path) in result.output and "vendors[0].category" in result.output


def test_check_config_lists_every_problem_of_the_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        '[gateway]\nprefix = "consent/"\ncolour = "blue"\n\n[cookie]\naccept_max_age_days = "13 months"\n'
        '\n[privacy]\nip_mode = "masked"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert [line.split(": ")[2] for line in problems] == [
        "gateway.colour",
        "cookie.accept_max_age_days",
        "privacy.ip_mode",
        "gateway.prefix",
    ]
    assert f"{path}:6: cookie.accept_max_age_days: expected an integer" in result.output


def test_check_config_refuses_what_the_gateway_would_refuse(tmp_path: Path) -> None:
    """A theme property the banner does not know, a plaintext password and a short key in the environment:
    each stops the gateway at start, so check-config must not say "ok" — and says all three at once."""
    path = tmp_path / "site.toml"
    path.write_text(
        '[banner]\ntheme = { colour = "red" }\n\n[[admin.users]]\nname = "dpo"\npassword_hash = "hunter2"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["check-config", "--config", str(path)], env={"CONSENT_GATEWAY_SECRET_KEYS": "too-short"}
    )
    assert result.exit_code == 1, result.output
    assert ": ok" not in result.output
    assert f"{path}:2: banner.theme.colour: unknown theme property" in result.output
    assert "admin.users.dpo.password_hash: unknown hash form" in result.output
    assert "environment: CONSENT_GATEWAY_SECRET_KEYS: key #1 is shorter than 32 characters" in result.output
    assert not (tmp_path / "consent-data").exists() and not Path("consent-data").exists()  # nothing written


def test_a_bad_key_in_the_environment_stops_the_proxy_with_one_line_not_a_traceback() -> None:
    result = CliRunner().invoke(
        main,
        ["proxy", "--upstream", "http://127.0.0.1:9"],
        env={"CONSENT_GATEWAY_CHECKPOINT_KEY": "not-base64!"},
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: environment: CONSENT_GATEWAY_CHECKPOINT_KEY: not a base64 Ed25519")
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@contextlib.contextmanager
def _gateway_command(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`consent-gateway ARGS` running in the background, stopped (and its pipe closed) afterwards."""
    with subprocess.Popen(
        [sys.executable, "-m", "consent_gateway", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def _read_until(process: subprocess.Popen[str], marker: str, seconds: float = 60) -> str:
    """The command's output up to the first line holding `marker` (the command keeps running)."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} never printed; output was:\n{''.join(seen)}")


def test_the_proxy_says_at_start_that_its_upstream_does_not_answer() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    with _gateway_command("proxy", "--upstream", f"http://127.0.0.1:{dead}", "--port", str(free_port())) as process:
        output = _read_until(process, "does not answer")
    assert f"warning: the upstream http://127.0.0.1:{dead} does not answer" in output


def test_the_demo_prints_a_token_that_opens_the_dashboard() -> None:
    port = free_port()
    with _gateway_command("demo", "--port", str(port)) as process:
        output = _read_until(process, "privacy team dashboard")
        token = re.search(r"password: (\S+)\)", output)
        assert token is not None, output
        _read_until(process, "Uvicorn running")
        dashboard = f"http://127.0.0.1:{port}/_consent/admin/"
        refused = httpx.get(dashboard, headers={"Accept": "application/json"})
        bearer = {"Authorization": f"Bearer {token.group(1)}"}
        opened = httpx.get(dashboard, headers=bearer)
        # the one who started the demo classifies its unknown widget, and the declaration names it
        classified = httpx.post(
            f"{dashboard}inventory/classify",
            headers={**bearer, "Origin": f"http://127.0.0.1:{port}"},
            data={"kind": "host", "subject": "widgets.meteo-quartier.net.localhost", "action": "new-vendor",
                  "vendor_name": "Météo du quartier", "category": "preferences"},
        )
        declared = httpx.get(f"http://127.0.0.1:{port}/_consent/cookies.json").json()
        users = httpx.get(f"{dashboard}users", headers=bearer)  # an admin: makes the team's users and tokens
    assert refused.status_code in (401, 303)
    assert users.status_code == 200 and "Users and tokens" in users.text
    assert opened.status_code == 200
    assert "consent" in opened.text.lower()
    assert classified.status_code == 303, classified.text
    names = [v["name"] for c in declared["categories"] if c["id"] == "preferences" for v in c["vendors"]]
    assert "Météo du quartier" in names
