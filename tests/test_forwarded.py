"""Behind a TLS terminator: the scheme a trusted proxy reports decides the Origin check and `Secure` cookies;
the proxy command listens on TLS itself with --certfile/--keyfile (issue 10, item 4)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.config import Config, GatewayConfig, parse_config
from consent_gateway.errors import ConfigError
from consent_gateway.middleware import ConsentGateway
from tests.admin.conftest import DPO_PASSWORD, SECRET_KEYS, admin_config, csrf_of
from tests.conftest import TEST_SECRET_KEYS, free_port
from tests.servers import ServerThread

CHOICE = b'{"action":"accept_all"}'
JSON = {"Content-Type": "application/json"}


def site() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: HTMLResponse(f"<p>{request.url.scheme}</p>"))])


def behind_proxy(config: Config, *proxies: str) -> Config:
    return replace(config, gateway=replace(config.gateway, trusted_proxies=proxies))


def consent_cookie(response: httpx.Response) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("cg_consent=")]
    return header


@pytest.mark.parametrize(
    "forwarded", [{"X-Forwarded-Proto": "https"}, {"Forwarded": "for=1.2.3.4;proto=https"}], ids=["xfp", "forwarded"]
)
def test_an_old_browser_behind_a_trusted_tls_terminator_can_choose_and_gets_a_secure_cookie(
    config: Config, forwarded: dict[str, str]
) -> None:
    gateway = ConsentGateway(site(), behind_proxy(config, "127.0.0.1"), secret_keys=TEST_SECRET_KEYS)
    with TestClient(gateway, base_url="http://shop.example", client=("127.0.0.1", 5000)) as client:
        # Safari before 16.4: no Sec-Fetch-Site, an https Origin; the gateway itself is reached over http.
        headers = {**JSON, "Origin": "https://shop.example", **forwarded}
        response = client.post("/_consent/choices", content=CHOICE, headers=headers)
        assert response.status_code == 200, response.text
        assert "; secure" in consent_cookie(response).lower()
        assert client.get("/", headers=forwarded).text.endswith("<p>https</p>")  # the site sees it too


def test_forwarded_headers_from_an_untrusted_peer_change_nothing(config: Config) -> None:
    gateway = ConsentGateway(site(), behind_proxy(config, "10.0.0.0/8"), secret_keys=TEST_SECRET_KEYS)
    with TestClient(gateway, base_url="http://shop.example", client=("127.0.0.1", 5000)) as client:
        headers = {**JSON, "Origin": "https://shop.example", "X-Forwarded-Proto": "https"}
        refused = client.post("/_consent/choices", content=CHOICE, headers=headers)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "cross_site_request"
        plain = client.post("/_consent/choices", content=CHOICE, headers={**JSON, "Origin": "http://shop.example"})
        assert plain.status_code == 200
        assert "secure" not in consent_cookie(plain).lower()


def test_the_admin_cookie_is_secure_behind_a_trusted_tls_terminator(admin_config: Config) -> None:
    config = behind_proxy(admin_config, "127.0.0.1")
    gateway = ConsentGateway(site(), config, secret_keys=SECRET_KEYS)
    https = {"X-Forwarded-Proto": "https"}
    with TestClient(gateway, follow_redirects=False, client=("127.0.0.1", 5000)) as client:
        plain = client.get("/_consent/admin/login")
        assert plain.headers["set-cookie"] and "secure" not in plain.headers["set-cookie"].lower()
        client.cookies.clear()
        page = client.get("/_consent/admin/login", headers=https)
        assert "; secure" in page.headers["set-cookie"].lower()
        # the browser sends the Secure cookie back over https, which the terminator forwards as http
        session = page.headers["set-cookie"].split(";", 1)[0]
        response = client.post(
            "/_consent/admin/login",
            data={"csrf_token": csrf_of(page.text), "name": "dpo", "password": DPO_PASSWORD, "next": "/"},
            headers={**https, "Origin": "https://testserver", "Cookie": session},
        )
        assert response.status_code == 303, response.text
        assert "; secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize("proxies", [["0.0.0.0/0"], ["::/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["10.0.0.0/8", "::/0"]])
def test_trusting_every_address_is_a_config_error_naming_the_key_unless_forced(proxies: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"gateway\.trusted_proxies.*trusted_proxies_allow_all"):
        parse_config({"gateway": {"trusted_proxies": proxies}})
    forced = parse_config({"gateway": {"trusted_proxies": proxies, "trusted_proxies_allow_all": True}})
    assert forced.gateway.trusted_proxies == tuple(proxies)
    assert parse_config({"gateway": {"trusted_proxies": ["10.0.0.0/8", "::1"]}}).gateway.trusted_proxies


# -- the proxy command on TLS


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the proxy exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the proxy did not start")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_proxy_command_listens_on_tls_and_sets_secure_cookies(config: Config, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n')
    port = free_port()
    with ServerThread(site()) as upstream:
        process = subprocess.Popen(
            [sys.executable, "-m", "consent_gateway", "proxy", "--upstream", upstream.url, "--port", str(port),
             "--config", str(config_file), "--certfile", str(cert), "--keyfile", str(key), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "CONSENT_GATEWAY_SECRET_KEYS": TEST_SECRET_KEYS[0]},
        )  # fmt: skip
        try:
            wait_for_port(port, process)
            context = ssl.create_default_context(cafile=str(cert))
            with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context) as client:
                assert client.get("/").status_code == 200
                response = client.post(
                    "/_consent/choices", content=CHOICE, headers={**JSON, "Origin": f"https://127.0.0.1:{port}"}
                )
                assert response.status_code == 200, response.text
                assert "; secure" in consent_cookie(response).lower()
            with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
                httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        finally:
            process.terminate()
            process.wait(10)
            if process.stderr is not None:
                process.stderr.close()


__all__ = ["admin_config"]  # the dashboard's fixture, used here behind a proxy


def test_gateway_config_default_trusts_no_proxy() -> None:
    assert GatewayConfig().trusted_proxies == () and GatewayConfig().trusted_proxies_allow_all is False
