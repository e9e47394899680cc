"""The `proxy` command's access log, minimised like the consent log.

uvicorn writes every visitor's full address and query string (`?email=…`) to the access log; kept next to
a consent log that truncates addresses, it would undo the truncation. This filter rewrites each line before
it is written: the address minimised per ``[privacy]`` (truncated to the configured prefixes unless
``ip_mode = "full"``; a hashed mode is truncated here too), the port and the query dropped (kept only with
``privacy.keep_query``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .config import Config
from .enrich import Enricher
from .network import parse_ip

ACCESS_LOGGER = "uvicorn.access"


class MinimisedAccessLog(logging.Filter):
    """Rewrites uvicorn's access records: ``(client, method, path, http_version, status)``."""

    def __init__(self, minimise: Callable[[str], str | None], *, keep_query: bool) -> None:
        super().__init__()
        self.minimise = minimise
        self.keep_query = keep_query

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            address = parse_ip(str(client))
            shown = self.minimise(str(address)) if address is not None else None
            if not self.keep_query and isinstance(path, str):
                path = path.split("?", 1)[0]
            record.args = (shown or "-", method, path, version, status)
        return True


def install_access_log(config: Config) -> MinimisedAccessLog:
    """Puts the minimising filter on uvicorn's access logger (once per process)."""
    privacy = config.privacy
    enricher = Enricher(
        ip_mode="full" if privacy.ip_mode == "full" else "truncated",
        ipv4_prefix=privacy.ipv4_prefix,
        ipv6_prefix=privacy.ipv6_prefix,
    )
    log_filter = MinimisedAccessLog(enricher.minimise_ip, keep_query=privacy.keep_query)
    logger = logging.getLogger(ACCESS_LOGGER)
    for old in [f for f in logger.filters if isinstance(f, MinimisedAccessLog)]:
        logger.removeFilter(old)
    logger.addFilter(log_filter)
    return log_filter
