"""The body of a consent change, read and checked apart from the routes: the API's input contract in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request

from .catalog import Catalog
from .config import Config
from .csrf import is_same_origin
from .errors import APIError
from .jsonin import parse_json

_JSON_TYPES = ("application/json",)
#: The fields a POST to /choices may carry.
_CHOICE_FIELDS = ("choices", "vendors", "action", "referrer")


class ChoiceBody:
    """Reads a POST to `/choices` and turns it into category and vendor choices, refusing anything unexpected."""

    def __init__(self, config: Config, catalog: Catalog, optional_categories: tuple[str, ...]) -> None:
        self.config = config
        self.catalog = catalog
        self.optional_categories = optional_categories
        self.required_categories = config.required_categories

    async def read(self, request: Request) -> Mapping[str, Any]:
        """The JSON object sent by this site's own page, at most `max_body_bytes` long."""
        if not is_same_origin(request):
            raise APIError(403, "cross_site_request", "consent changes must come from this site's own pages")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in _JSON_TYPES:
            raise APIError(415, "unsupported_media_type", "send the body as application/json")
        data = parse_json(await read_body(request, self.config.gateway.max_body_bytes))
        if not isinstance(data, dict):
            raise APIError(400, "invalid_type", "the body must be a JSON object")
        return data

    def parse(self, data: Mapping[str, Any]) -> tuple[dict[str, bool], dict[str, bool]]:
        """Category and vendor choices: from an `action`, or from explicit `choices` (nothing pre-ticked)."""
        for key in data:
            if key not in _CHOICE_FIELDS:
                raise APIError(400, "unknown_field", f"unknown field {key!r} (expected: {', '.join(_CHOICE_FIELDS)})")
        action = data.get("action")
        if action is not None:
            if action not in ("accept_all", "reject_all"):
                raise APIError(400, "invalid_action", f"action must be 'accept_all' or 'reject_all', not {action!r}")
            if "choices" in data or "vendors" in data:
                raise APIError(400, "invalid_body", "send either an action or choices, not both")
            granted = action == "accept_all"
            return {c: granted for c in self.optional_categories}, {}
        return self._category_choices(data.get("choices")), self._vendor_choices(data.get("vendors", {}))

    def _category_choices(self, raw: object) -> dict[str, bool]:
        if not isinstance(raw, dict):
            raise APIError(400, "invalid_type", "choices must be an object of category → true/false")
        choices = {c: False for c in self.optional_categories}  # nothing is pre-ticked
        for category, value in raw.items():
            if category in self.required_categories:
                if value is not True:
                    raise APIError(400, "required_category", f"the {category!r} category cannot be refused")
                continue
            if category not in choices:
                raise APIError(400, "unknown_category", f"unknown category {category!r}")
            if not isinstance(value, bool):
                raise APIError(400, "invalid_type", f"choices.{category} must be true or false")
            choices[category] = value
        return choices

    def _vendor_choices(self, raw: object) -> dict[str, bool]:
        if not isinstance(raw, dict):
            raise APIError(400, "invalid_type", "vendors must be an object of vendor id → true/false")
        vendors: dict[str, bool] = {}
        for vendor_id, value in raw.items():
            if vendor_id not in self.catalog.vendors:
                raise APIError(400, "unknown_vendor", f"unknown vendor {vendor_id!r}")
            if not isinstance(value, bool):
                raise APIError(400, "invalid_type", f"vendors.{vendor_id} must be true or false")
            vendors[vendor_id] = value
        return vendors


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused past `limit` bytes: as soon as Content-Length says so, or as it streams in."""
    too_large = APIError(413, "body_too_large", f"the body must be at most {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
    except ClientDisconnect:
        raise APIError(400, "client_disconnected", "the request body did not arrive") from None
    return bytes(body)
