"""Request-body parsing against per-resource attribute specs (Neutron's rules).

- bad JSON / wrong wrapper  -> 400 HTTPBadRequest "Body contains invalid data" / "Unable to
  find '<resource>' in request body"
- unknown attribute         -> 400 HTTPBadRequest "Unrecognized attribute(s) 'x'"
- output-only in POST/PUT   -> 400 HTTPBadRequest "Attribute 'x' not allowed in POST" /
  "Cannot update read-only attribute x"
- missing required          -> 400 HTTPBadRequest "Failed to parse request. Required
  attribute 'x' not specified"
- bad value                 -> 400 HTTPBadRequest "Invalid input for x. Reason: ..."
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dvr.server.errors import http_bad_request


@dataclass(frozen=True)
class Attr:
    name: str
    convert: Callable[[Any], Any]
    post: bool = True
    put: bool = True
    required: bool = False


@dataclass(frozen=True)
class ResourceSpec:
    singular: str
    plural: str
    attrs: tuple[Attr, ...]
    output_only: frozenset[str] = field(default_factory=frozenset)

    def attr(self, name: str) -> Attr | None:
        return next((a for a in self.attrs if a.name == name), None)


COMMON_OUTPUT_ONLY = frozenset(
    {"id", "created_at", "updated_at", "revision_number", "tags", "status"}
)


def decode_json(raw: bytes) -> Any:
    if not raw.strip():
        raise http_bad_request("Resource body required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise http_bad_request("Body contains invalid data") from None


def unwrap(raw: bytes, key: str) -> dict[str, Any]:
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise http_bad_request("Body contains invalid data")
    if key not in data:
        raise http_bad_request(f"Unable to find '{key}' in request body")
    body = data[key]
    if not isinstance(body, dict):
        raise http_bad_request("Body contains invalid data")
    return body


def parse_body(raw: bytes, spec: ResourceSpec, method: str) -> dict[str, Any]:
    """Validate and convert ``{"<singular>": {...}}``; returns only the given attributes."""
    body = unwrap(raw, spec.singular)
    known = {a.name for a in spec.attrs} | spec.output_only | COMMON_OUTPUT_ONLY
    unknown = sorted(k for k in body if k not in known)
    if unknown:
        raise http_bad_request(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    result: dict[str, Any] = {}
    for key, value in body.items():
        attr = spec.attr(key)
        if attr is None or (method == "POST" and not attr.post):
            if method == "POST":
                raise http_bad_request(f"Attribute '{key}' not allowed in POST")
            raise http_bad_request(f"Cannot update read-only attribute {key}")
        if method == "PUT" and not attr.put:
            raise http_bad_request(f"Cannot update read-only attribute {key}")
        try:
            result[key] = attr.convert(value)
        except ValueError as exc:
            raise http_bad_request(f"Invalid input for {key}. Reason: {exc}.") from None
    if method == "POST":
        for attr in spec.attrs:
            if attr.required and attr.name not in result:
                raise http_bad_request(
                    f"Failed to parse request. Required attribute '{attr.name}' not specified"
                )
    _merge_project(result)
    return result


def _merge_project(result: dict[str, Any]) -> None:
    tenant = result.pop("tenant_id", None)
    project = result.get("project_id")
    if tenant is not None and project is not None and tenant != project:
        raise http_bad_request("'project_id' and 'tenant_id' do not match")
    if tenant is not None:
        result["project_id"] = tenant
