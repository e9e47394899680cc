"""Real servers for tests: an ASGI app under uvicorn on an ephemeral loopback port, a caching nginx in front
of one, and Chromium's flags."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

WAIT_SECONDS = 10.0

#: Headless Chromium on a machine with no network beyond loopback: no background traffic, no sandbox (root).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ServerThread:
    """A uvicorn server on an ephemeral loopback port, in a thread with its own event loop."""

    def __init__(self, app: Any, **options: Any) -> None:
        options.setdefault("lifespan", "on")
        options.setdefault("proxy_headers", False)  # the peer's address is what a proxy must forward
        options.setdefault("port", 0)  # a free one, unless the test needs to know it before starting
        config = uvicorn.Config(app, host="127.0.0.1", log_level="warning", timeout_graceful_shutdown=1, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT_SECONDS)


NGINX_CACHING_CONF = """
worker_processes 1;
{user}
error_log {root}/error.log;
pid {root}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    proxy_cache_path {root}/cache keys_zone=pages:1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_cache pages;
            # the URL alone, as a CDN keys a page: a response that varied on the cookie would leak here
            proxy_cache_key $scheme$http_host$request_uri;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"""


def nginx_path() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


class CachingProxy:
    """nginx with ``proxy_cache`` in front of ``upstream``, as a CDN or page cache would be: it keeps what the
    response's own headers let a shared cache keep, keyed by URL only."""

    def __init__(self, nginx: str, upstream: str, root: Path) -> None:
        self.nginx = nginx
        self.upstream = upstream
        self.root = root
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def __enter__(self) -> CachingProxy:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        conf = self.root / "nginx.conf"
        # run as root (CI), nginx's workers would drop to "nobody", who cannot write a private temp folder
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(NGINX_CACHING_CONF.format(user=user, root=self.root, port=self.port, upstream=self.upstream))
        self._process = subprocess.Popen(
            [self.nginx, "-p", str(self.root), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"nginx did not start: {error}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("nginx did not listen within 10 s")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            if self._process.stderr is not None:
                self._process.stderr.close()
