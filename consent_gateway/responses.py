"""The one JSON error answer of the gateway: `{"error": {"code": …, "message": …}}`.

The consent API, the beacon forwarder, the proxy and the dashboard all answer errors through
`error_response`, so a script sees one shape whichever part refused it. A Starlette `Response` is an ASGI
app: bare ASGI code answers with `await error_response(…)(scope, receive, send)`, and on a WebSocket scope
that becomes the handshake's denial response.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
