"""The one JSON error answer of the gateway: `{"error": {"code": …, "message": …}}`.

The consent API, the beacon forwarder, the proxy and the dashboard all answer errors through
`error_response`, so a script sees one shape whichever part refused it. A Starlette `Response` is an ASGI
app: bare ASGI code answers with `await error_response(…)(scope, receive, send)`, and on a WebSocket scope
that becomes the handshake's denial response. A browser navigating to a page gets the same error as a small
HTML page instead (`error_for`), so a visitor never reads raw JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from starlette.responses import HTMLResponse, JSONResponse, Response

from ._types import Scope

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{status} · {message}</title></head>
<body><main><h1>{message}</h1><p>Please try again in a moment. (Error {status}: {code})</p></main></body></html>
"""


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def error_for(scope: Scope, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The error as a page for a browser's navigation (it accepts HTML), as JSON for everyone else."""
    if not _wants_html(scope):
        return error_response(status, code, message, headers)
    page = _PAGE.format(status=status, code=escape(code), message=escape(message))
    return HTMLResponse(page, status_code=status, headers=headers)


def _wants_html(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"accept":
            return b"text/html" in value
    return False
