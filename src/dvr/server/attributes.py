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
from dvr.server.validate import (
    CIDR_SCHEMA,
    STRING_SCHEMA,
    UUID_SCHEMA,
    JsonSchema,
    array_of,
    json_types,
    nullable,
    schema_of,
)


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


TIMESTAMP_SCHEMA: JsonSchema = {"type": "string"}
IP_COUNT_SCHEMA: JsonSchema = {"type": "integer", "minimum": 0}  # an IPv6 subnet has 2**64

# what the attributes that are never written through the API hold (by name: one name means
# one thing across resources)
OUTPUT_SCHEMAS: dict[str, JsonSchema] = {
    "id": UUID_SCHEMA,
    "tenant_id": STRING_SCHEMA,
    "project_id": STRING_SCHEMA,
    "created_at": TIMESTAMP_SCHEMA,
    "updated_at": TIMESTAMP_SCHEMA,
    "revision_number": {"type": "integer", "minimum": 0},
    "tags": array_of({"type": "string"}),
    "status": {"type": "string"},
    "subnets": array_of(UUID_SCHEMA),
    "availability_zones": array_of({"type": "string"}),
    "binding:vif_type": {"type": "string"},
    "binding:vif_details": {"type": "object"},
    "router_id": nullable(UUID_SCHEMA),
    "port_details": {"type": ["object", "null"]},
    "port_forwardings": {"type": "array"},
    "agent_type": {"type": "string"},
    "binary": {"type": "string"},
    "topic": {"type": "string"},
    "host": {"type": "string"},
    "alive": {"type": "boolean"},
    "configurations": {"type": "object"},
    "heartbeat_timestamp": TIMESTAMP_SCHEMA,
    "started_at": TIMESTAMP_SCHEMA,
    "availability_zone": {"type": ["string", "null"]},
    "resources_synced": {"type": ["boolean", "null"]},
    "ip_version": {"enum": [4, 6]},
    "ipv4_address_scope": nullable(UUID_SCHEMA),
    "ipv6_address_scope": nullable(UUID_SCHEMA),
    "security_group_rules": array_of({"type": "object"}),
    "shared": {"type": "boolean"},
    # availability zones, service providers, network IP availabilities (read-only lists)
    "name": STRING_SCHEMA,
    "resource": {"type": "string"},
    "state": {"enum": ["available", "unavailable"]},
    "service_type": {"type": "string"},
    "default": {"type": "boolean"},
    "network_id": UUID_SCHEMA,
    "network_name": STRING_SCHEMA,
    "total_ips": IP_COUNT_SCHEMA,
    "used_ips": IP_COUNT_SCHEMA,
    "subnet_ip_availability": array_of({
        "type": "object",
        "properties": {
            "subnet_id": UUID_SCHEMA, "subnet_name": STRING_SCHEMA, "cidr": CIDR_SCHEMA,
            "ip_version": {"enum": [4, 6]}, "total_ips": IP_COUNT_SCHEMA,
            "used_ips": IP_COUNT_SCHEMA,
        },
    }),
}


def attribute_names(spec: ResourceSpec) -> set[str]:
    """Every attribute a client of ``spec``'s collection may see, filter and sort on."""
    return (
        {a.name for a in spec.attrs}
        | set(spec.output_only)
        | COMMON_OUTPUT_ONLY
        | {"tenant_id", "project_id"}
    )


def attribute_schema(spec: ResourceSpec, name: str) -> JsonSchema:
    """The JSON schema of attribute ``name`` of ``spec`` (its converter's, else by name)."""
    attr = spec.attr(name)
    schema = schema_of(attr.convert) if attr is not None else None
    if schema is None:
        schema = OUTPUT_SCHEMAS.get(name)
    if schema is None:
        raise KeyError(f"{spec.singular}.{name} declares no JSON schema")
    return schema


def filter_types(spec: ResourceSpec) -> FilterTypes:
    """How list filters and sort keys of ``spec``'s collection are checked (from the
    attributes' JSON schemas)."""
    types = {name: json_types(attribute_schema(spec, name)) for name in attribute_names(spec)}
    return FilterTypes(
        integers=frozenset(n for n, t in types.items() if "integer" in t),
        booleans=frozenset(n for n, t in types.items() if t == {"boolean"}),
        unsortable=frozenset(n for n, t in types.items() if t & {"array", "object"}),
    )
