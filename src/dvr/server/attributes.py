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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dvr.server.config import ApiLimits
from dvr.server.errors import BadRequestError, http_bad_request
from dvr.server.jsonbody import decode_json
from dvr.server.listing import FilterTypes
from dvr.server.validate import to_bool, to_int


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
    path: str | None = None  # the URL's collection segment when it is not ``plural``

    @property
    def url_path(self) -> str:
        return f"/v2.0/{self.path or self.plural}"

    def attr(self, name: str) -> Attr | None:
        return next((a for a in self.attrs if a.name == name), None)


COMMON_OUTPUT_ONLY = frozenset(
    {"id", "created_at", "updated_at", "revision_number", "tags", "status"}
)


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


@dataclass(frozen=True)
class CountLimit:
    """A Neutron maximum on the length of a list attribute (``ApiLimits`` field ``option``)."""

    option: str
    type_name: str
    message: str  # formatted with {id} (the object, or "new <resource>") and {quota}


COUNT_LIMITS: dict[tuple[str, str], CountLimit] = {
    ("subnet", "dns_nameservers"): CountLimit(
        "max_dns_nameservers", "DNSNameServersExhausted",
        "Unable to complete operation for {id}. "
        "The number of DNS nameservers exceeds the limit {quota}.",
    ),
    ("subnet", "host_routes"): CountLimit(
        "max_subnet_host_routes", "HostRoutesExhausted",
        "Unable to complete operation for {id}. "
        "The number of host routes exceeds the limit {quota}.",
    ),
    ("port", "allowed_address_pairs"): CountLimit(
        "max_allowed_address_pair", "AllowedAddressPairExhausted",
        "The number of allowed address pair exceeds the maximum {quota}.",
    ),
    ("router", "routes"): CountLimit(
        "max_routes", "RoutesExhausted",
        "Unable to complete operation for {id}. The number of routes exceeds the maximum {quota}.",
    ),
}


def check_count_limits(
    spec: ResourceSpec, body: dict[str, Any], limits: ApiLimits, object_id: str | None = None
) -> None:
    """Refuse list attributes longer than the configured maxima (Neutron's ``*Exhausted``)."""
    for (resource, key), limit in COUNT_LIMITS.items():
        if resource != spec.singular or not isinstance(body.get(key), list):
            continue
        quota = getattr(limits, limit.option)
        if len(body[key]) > quota:
            name = object_id or f"new {resource}"
            raise BadRequestError(
                limit.message.format(id=name, quota=quota), type_name=limit.type_name
            )


# attributes whose converter does not say what they hold (custom or output-only)
_INTEGER_NAMES = frozenset(
    {"ip_version", "provider:segmentation_id", "revision_number", "default_prefixlen",
     "min_prefixlen", "max_prefixlen", "default_quota"}
)
_STRUCTURED_NAMES = frozenset(
    {"tags", "subnets", "availability_zones", "external_gateway_info", "binding:vif_details",
     "binding:profile", "fixed_ips", "allowed_address_pairs", "security_groups", "routes",
     "host_routes", "dns_nameservers", "allocation_pools", "availability_zone_hints",
     "service_types", "configurations", "prefixes"}
)


def filter_types(spec: ResourceSpec) -> FilterTypes:
    """How list filters and sort keys of ``spec``'s collection are checked."""
    names = {a.name for a in spec.attrs} | set(spec.output_only) | COMMON_OUTPUT_ONLY
    return FilterTypes(
        integers=frozenset(a.name for a in spec.attrs if a.convert is to_int)
        | (_INTEGER_NAMES & names),
        booleans=frozenset(a.name for a in spec.attrs if a.convert is to_bool),
        unsortable=_STRUCTURED_NAMES & names,
    )
