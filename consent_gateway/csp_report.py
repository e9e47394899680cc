"""``POST <prefix>/csp-report``: the CSP backstop's violation reports, read strictly and counted.

Browsers post a report for each load the backstop policy (see csp.py) did not allow, in one of two shapes:
``application/csp-report`` (``report-uri``: one ``{"csp-report": {…}}`` object per violation) or
``application/reports+json`` (the Reporting API behind ``report-to``: a list of reports, batched). Anyone
can post here, so a body is size-limited, rate-limited per address, read by the strict JSON reader and
checked field by field; what it says is counted, never trusted beyond that. No cookie is needed.

Each violation becomes (blocked host, effective directive, page path without its query, consent state).
The consent state is the visitor's at report time when the report carries the consent cookie
(``report-uri`` does), else the one the page was served with (the ``state`` query the policy names), else
"unknown". A violation is *not* a load without consent when the visitor's consent at report time allows
the blocked host's vendor (the banner revived a tag after an in-page grant), or when the host needs no
consent (the site's own, an allowed functional host): those are counted as discarded, by reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from . import metrics
from .catalog import URL_KINDS, Catalog, VendorRule
from .choice_body import read_body
from .config import Config
from .csp import CONSENT_STATES, consent_state
from .decision import Decision
from .errors import APIError
from .jsonin import parse_json
from .limits import RateLimiter
from .thirdparty import normalise_host, site_of
from .visitor import VisitorReader

CSP_REPORT_TYPE: Final = "application/csp-report"
REPORTS_JSON_TYPE: Final = "application/reports+json"
#: reports taken from one Reporting API batch; the rest are counted as discarded
MAX_REPORTS_PER_BODY: Final = 100
#: distinct blocked hosts named on /metrics; past this, "other" (forged reports must not grow the metrics)
MAX_HOST_LABELS: Final = 200
MAX_PATH_CHARS: Final = 512
_MAX_FIELD_CHARS: Final = 4096
#: the directives a report may name (anything else is counted as "other")
DIRECTIVES: Final = frozenset({
    "default-src", "script-src", "script-src-elem", "script-src-attr", "style-src", "style-src-elem",
    "style-src-attr", "img-src", "font-src", "connect-src", "media-src", "frame-src", "child-src",
    "worker-src", "object-src", "manifest-src", "prefetch-src", "fenced-frame-src",
})  # fmt: skip
#: where a directive's loads are looked up in the catalog first (then every kind)
_DIRECTIVE_KINDS: Final = {
    "script": "script",
    "frame": "iframe",
    "child": "iframe",
    "img": "img",
    "style": "link",
    "font": "link",
}
_URL_SCHEMES: Final = frozenset({"http", "https", "ws", "wss"})


class ViolationSink(Protocol):
    """Where each load without consent goes (the inventory's collector). ``vendor``: the blocked host's
    catalog vendor, or "unclassified"."""

    def csp_violation(self, host: str, directive: str, page_path: str, consent_state: str, *,
                      vendor: str = "unclassified") -> None: ...


@dataclass(frozen=True, slots=True)
class Violation:
    """One report, reduced to what is kept: never the full URLs, which may carry personal data."""

    blocked_url: str
    #: the blocked URL's host ("" for inline code, eval, data: and the like) and path
    host: str
    blocked_path: str
    directive: str
    #: the page's path, without its query string
    page_path: str


def _string(report: Mapping[str, Any], *names: str) -> str:
    """The first of these fields present, as a string ("" when absent); a non-string is a bad report."""
    for name in names:
        value = report.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > _MAX_FIELD_CHARS:
            raise APIError(400, "invalid_report", f"{name} must be a string of at most {_MAX_FIELD_CHARS} chars")
        return value
    return ""


def _violation(fields: Mapping[str, Any], blocked: str, directive: str, document: str) -> Violation:
    blocked_url = _string(fields, blocked)
    host = blocked_path = ""
    try:
        parts = urlsplit(blocked_url)
        if parts.scheme.lower() in _URL_SCHEMES and parts.hostname:
            host, blocked_path = normalise_host(parts.hostname), parts.path
    except ValueError:  # a malformed URL ("http://[x"): reported, but names no host
        pass
    effective = _string(fields, directive, "violated-directive" if directive == "effective-directive" else "")
    effective = effective.strip().split(" ", 1)[0].lower()
    try:
        path = urlsplit(_string(fields, document)).path
    except ValueError:
        path = ""
    return Violation(
        blocked_url=blocked_url,
        host=host,
        blocked_path=blocked_path,
        directive=effective if effective in DIRECTIVES else "other",
        page_path=(path or "/")[:MAX_PATH_CHARS],
    )


def report_media_type(content_type: str) -> str:
    """The media type of a report body; `APIError` 415 when it is neither report format."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in (CSP_REPORT_TYPE, REPORTS_JSON_TYPE):
        raise APIError(415, "unsupported_media_type", f"send {CSP_REPORT_TYPE} or {REPORTS_JSON_TYPE}")
    return media_type


def parse_reports(content_type: str, body: bytes) -> tuple[list[Violation], int]:
    """The violations of a report body, and how many reports were left out (past the batch limit, or not
    CSP violations). Raises `APIError` 415 for another media type and 400 for a body that is not a report."""
    media_type = report_media_type(content_type)
    data = parse_json(body)
    if media_type == CSP_REPORT_TYPE:
        report = data.get("csp-report") if isinstance(data, dict) else None
        if not isinstance(report, dict):
            raise APIError(400, "invalid_report", 'expected {"csp-report": {…}}')
        return [_violation(report, "blocked-uri", "effective-directive", "document-uri")], 0
    if not isinstance(data, list):
        raise APIError(400, "invalid_report", "expected a list of reports")
    violations: list[Violation] = []
    left_out = max(0, len(data) - MAX_REPORTS_PER_BODY)
    for item in data[:MAX_REPORTS_PER_BODY]:
        if not isinstance(item, dict) or not isinstance(item.get("body"), dict):
            raise APIError(400, "invalid_report", "each report must be an object with a body object")
        if item.get("type") != "csp-violation":
            left_out += 1  # other report types (deprecation, intervention…) are not ours
            continue
        violations.append(_violation(item["body"], "blockedURL", "effectiveDirective", "documentURL"))
    return violations, left_out


class CSPReportEndpoint:
    """Takes the reports posted to the route: one per gateway."""

    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        visitors: VisitorReader,
        *,
        choosable: Sequence[str],
        sink: ViolationSink | None = None,
    ) -> None:
        self.catalog = catalog
        self.visitors = visitors
        self.choosable = tuple(choosable)
        self.sink = sink
        self.max_body_bytes = config.csp.report_max_body_bytes
        rate = config.csp.report_rate_per_minute
        self.rate_limiter = RateLimiter(rate, config.csp.report_rate_burst) if rate else None
        self._host_labels: set[str] = set()

    async def handle(self, request: Request) -> Response:
        """The route's endpoint: 204 once the reports are counted, a JSON 4xx for anything else."""
        if self.rate_limiter is not None:
            address = self.visitors.client_ip(request.scope) or "unknown"
            refused = self.rate_limiter.refusal(address, reason="csp_report_rate", what="reports")
            if refused is not None:
                return refused
        content_type = request.headers.get("content-type", "")
        report_media_type(content_type)  # a 415 before the body is read
        violations, left_out = parse_reports(content_type, await read_body(request, self.max_body_bytes))
        if left_out:
            metrics.inc("csp_reports_discarded_total", left_out, reason="not_a_csp_violation")
        site = site_of(request.headers.get("host", ""))
        state, decision = self._consent(request, site)
        for violation in violations:
            self._file(violation, site, state, decision)
        return Response(status_code=204, headers={"cache-control": "no-store"})

    def _consent(self, request: Request, site: str) -> tuple[str, Decision | None]:
        """The visitor's consent state and decision now (from the cookie), else the page's, else unknown."""
        header = request.headers.get("cookie")
        record = self.visitors.record_from_cookie(header) if header else None
        if record is not None:
            return consent_state(record.choices.items(), self.choosable), self.visitors.decision_for(record, site=site)
        state = request.query_params.get("state", "")
        return (state if state in CONSENT_STATES else "unknown"), None

    def _file(self, violation: Violation, site: str, state: str, decision: Decision | None) -> None:
        if not violation.host:
            metrics.inc("csp_reports_discarded_total", reason="no_host")
            return
        vendor = self._vendor(violation, site)
        if vendor is None:
            metrics.inc("csp_reports_discarded_total", reason="needs_no_consent")
            return
        if decision is not None and decision.allows_vendor(vendor.id, vendor.category):
            metrics.inc("csp_reports_discarded_total", reason="consented")
            return
        metrics.inc("csp_reports_total", directive=violation.directive, host=self._host_label(violation.host))
        if self.sink is not None:
            self.sink.csp_violation(violation.host, violation.directive, violation.page_path, state, vendor=vendor.id)

    def _vendor(self, violation: Violation, site: str) -> VendorRule | None:
        """The catalog vendor of the blocked URL, else "unclassified", else None (first party or allowed)."""
        for kind in self._kinds(violation.directive):
            vendor = self.catalog.vendor_for_url(violation.blocked_url, kind)
            if vendor is not None:
                return vendor
        return self.catalog.third_parties.classify(violation.host, site, violation.blocked_path)

    @staticmethod
    def _kinds(directive: str) -> Iterator[str]:
        first = _DIRECTIVE_KINDS.get(directive.split("-", 1)[0])
        if first is not None:
            yield first
        yield from (kind for kind in URL_KINDS if kind != first)

    def _host_label(self, host: str) -> str:
        if host in self._host_labels:
            return host
        if len(self._host_labels) >= MAX_HOST_LABELS:
            return "other"
        self._host_labels.add(host)
        return host
