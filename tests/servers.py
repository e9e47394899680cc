"""Real servers for tests: an ASGI app under uvicorn on an ephemeral loopback port, and Chromium's flags."""

from __future__ import annotations

import threading
import time
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
