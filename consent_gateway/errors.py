"""The exceptions consent-gateway raises.

    ConsentGatewayError
    ├── ConfigError          a config file or value is wrong (names file, line and key)
    │   └── ConfigErrors     several of them, found in one reading
    ├── StoreUnavailable     the consent log cannot take or give events right now
    ├── SpoolError           neither the log nor the local spool could keep an event
    ├── APIError             a request to the gateway's own routes is refused (status, code, message)
    └── UpstreamError        the proxied site failed (mapped to 502/504, details logged)
        └── UpstreamTimeout

Every JSON error the gateway answers has one shape, `{"error": {"code": …, "message": …}}`, written by
`consent_gateway.responses.error_response`.

A forged or expired consent cookie is *not* an error: it means "no consent".
"""

from __future__ import annotations

from collections.abc import Sequence


class ConsentGatewayError(Exception):
    """Base class of every error raised by consent-gateway."""


class ConfigError(ConsentGatewayError):
    """A configuration value is missing, unknown or of the wrong type."""

    def __init__(self, key: str, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.key = key
        self.file = file
        self.line = line
        self.message = message
        where = file or "<config>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {key}: {message}")


class ConfigErrors(ConfigError):
    """Every problem one reading of a config found; `key`, `file` and `line` are the first one's."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.key, first.message, file=first.file, line=first.line)
        self.errors = tuple(errors)
        self.args = ("\n".join(str(error) for error in self.errors),)

    @staticmethod
    def raise_any(errors: Sequence[ConfigError]) -> None:
        """Raise nothing for no problem, the problem itself for one, `ConfigErrors` for several."""
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ConfigErrors(errors)


class StoreUnavailable(ConsentGatewayError):
    """The consent log backend cannot be reached or did not answer in time."""

    def __init__(self, message: str, *, original_error: BaseException | None = None) -> None:
        self.original_error = original_error
        super().__init__(message)


class SpoolError(ConsentGatewayError):
    """An event could be kept neither by the consent log nor by the local spool."""


class APIError(ConsentGatewayError):
    """A request to the gateway's routes that is answered with a JSON error instead of a result.

    :param status: the HTTP status (4xx, or 503 when a store is down)
    :param code: a stable snake_case code a script can test
    :param message: one sentence for a person
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


class UpstreamError(ConsentGatewayError):
    """The upstream site could not be reached or broke off its answer.

    `kind` says what went wrong for the metrics (`connect`, `bad_response`, `timeout`); the
    visitor only ever sees the generic `status` and `code`.
    """

    status = 502
    code = "upstream_unavailable"
    #: all the visitor is told: nothing of the upstream's internals
    visitor_message = "The site could not be reached."

    def __init__(self, message: str, *, kind: str = "connect", original_error: BaseException | None = None) -> None:
        self.kind = kind
        self.original_error = original_error
        super().__init__(message)


class UpstreamTimeout(UpstreamError):
    """The upstream site did not answer in time."""

    status = 504
    code = "upstream_timeout"
    visitor_message = "The site did not answer in time."
