from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from consent_gateway.cli import main


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
