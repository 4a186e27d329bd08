"""Attribute converters/validators for request bodies and filters.

Each converter takes the raw JSON value and returns the normalized value or raises
ValueError with a human reason; ``dvr.server.attributes`` wraps the reason into
Neutron's "Invalid input for <attr>. Reason: <reason>." HTTPBadRequest.

Each converter also carries the JSON schema of the value it stands for (``@accepts``), read
with ``schema_of``: the served OpenAPI document and the list-filter types are built from it,
so what is validated and what is documented have one home.  The schema describes the
canonical form (the one responses use); a converter may be more lenient on input (``to_bool``
also takes ``"True"`` and ``1``, as Neutron does).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from dvr.server.jsonbody import has_surrogate

MAC_RE = re.compile(r"^([0-9a-fA-F]{2})([:-][0-9a-fA-F]{2}){5}$")
MAX_STRING = 255
INT32_MAX = 2**31 - 1

JsonSchema = dict[str, Any]
Converter = TypeVar("Converter", bound=Callable[..., Any])
SCHEMA_ATTRIBUTE = "json_schema"


def accepts(schema: JsonSchema) -> Callable[[Converter], Converter]:
    """Declare the JSON schema of the values ``convert`` stands for."""

    def mark(convert: Converter) -> Converter:
        setattr(convert, SCHEMA_ATTRIBUTE, schema)
        return convert

    return mark


def schema_of(convert: Callable[..., Any]) -> JsonSchema | None:
    """The JSON schema declared on a converter (None when it declares none)."""
    return getattr(convert, SCHEMA_ATTRIBUTE, None)


def nullable(schema: JsonSchema) -> JsonSchema:
    return {"anyOf": [schema, {"type": "null"}]}


def array_of(schema: JsonSchema) -> JsonSchema:
    return {"type": "array", "items": schema}


def json_types(schema: JsonSchema) -> set[str]:
    """The JSON types a schema admits (through ``type``, ``enum`` and ``anyOf``/``oneOf``)."""
    declared = schema.get("type")
    found = set([declared] if isinstance(declared, str) else declared or [])
    for value in schema.get("enum", ()):
        found.add(_json_type(value))
    for branch in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        found |= json_types(branch)
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {str: "string", float: "number", list: "array", dict: "object"}[type(value)]


STRING_SCHEMA: JsonSchema = {"type": "string", "maxLength": MAX_STRING}
INTEGER_SCHEMA: JsonSchema = {"type": "integer", "minimum": -INT32_MAX - 1, "maximum": INT32_MAX}
NON_NEGATIVE_INT_SCHEMA: JsonSchema = {"type": "integer", "minimum": 0, "maximum": INT32_MAX}
UUID_SCHEMA: JsonSchema = {"type": "string", "format": "uuid"}
IP_SCHEMA: JsonSchema = {"anyOf": [{"type": "string", "format": "ipv4"},
                                   {"type": "string", "format": "ipv6"}]}
MAC_SCHEMA: JsonSchema = {"type": "string", "pattern": MAC_RE.pattern}
CIDR_SCHEMA: JsonSchema = {"type": "string", "format": "cidr"}
ADDRESS_OR_CIDR_SCHEMA: JsonSchema = {"type": "string", "description": "an IP address or a CIDR"}


@accepts({"type": "boolean"})
def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ValueError(f"'{value}' cannot be converted to boolean")


@accepts(STRING_SCHEMA)
def to_str(value: Any, max_len: int = MAX_STRING) -> str:
    if not isinstance(value, str) or "\x00" in value or has_surrogate(value):
        raise ValueError(f"{value!r} is not a valid string")
    if len(value) > max_len:
        raise ValueError(f"'{value}' exceeds maximum length of {max_len}")
    return value


@accepts(nullable(STRING_SCHEMA))
def to_str_or_none(value: Any) -> str | None:
    return None if value is None else to_str(value)


@accepts(INTEGER_SCHEMA)
def to_int(value: Any) -> int:
    """An integer (or its decimal string) that fits a signed 32-bit column."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"'{value}' is not an integer")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"'{value}' is not an integer") from None
    if not -INT32_MAX - 1 <= number <= INT32_MAX:
        raise ValueError(f"'{value}' is out of range")
    return number


def is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@accepts(UUID_SCHEMA)
def to_uuid(value: Any) -> str:
    if not is_uuid(value):
        raise ValueError(f"'{value}' is not a valid UUID")
    return str(value)


@accepts(nullable(UUID_SCHEMA))
def to_uuid_or_none(value: Any) -> str | None:
    return None if value is None else to_uuid(value)


@accepts(MAC_SCHEMA)
def to_mac(value: Any) -> str:
    if not isinstance(value, str) or not MAC_RE.match(value):
        raise ValueError(f"'{value}' is not a valid MAC address")
    mac = value.lower().replace("-", ":")
    first = int(mac[:2], 16)
    if first & 1 or mac == "00:00:00:00:00:00":
        raise ValueError(f"'{value}' is not a valid MAC address")
    return mac


@accepts(IP_SCHEMA)
def to_ip(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except (TypeError, ValueError):
        raise ValueError(f"'{value}' is not a valid IP address") from None


@accepts(nullable(IP_SCHEMA))
def to_ip_or_none(value: Any) -> str | None:
    return None if value is None else to_ip(value)


@accepts(ADDRESS_OR_CIDR_SCHEMA)
def to_cidr_loose(value: Any) -> str:
    """A CIDR or a plain IP (allowed-address-pairs accept both)."""
    try:
        return str(ipaddress.ip_network(value, strict=False)) if "/" in str(value) else to_ip(value)
    except (TypeError, ValueError):
        raise ValueError(f"'{value}' is not a valid IP subnet") from None


@accepts({"type": "array"})
def to_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"'{value}' is not a list")
    return value


@accepts({"type": ["object", "null"]})
def to_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"'{value}' is not a dictionary")
    return value


@accepts(array_of(STRING_SCHEMA))
def to_str_list(value: Any) -> list[str]:
    items = to_list(value)
    for item in items:
        to_str(item)
    return list(items)


@accepts(array_of(UUID_SCHEMA))
def to_uuid_list(value: Any) -> list[str]:
    return [to_uuid(item) for item in to_list(value)]


FIXED_IP_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {"subnet_id": nullable(UUID_SCHEMA), "ip_address": nullable(IP_SCHEMA)},
    "additionalProperties": False,
    "minProperties": 1,
}


GATEWAY_INFO_SCHEMA: JsonSchema = {
    "description": "a router's external gateway: null or {} removes it",
    "anyOf": [
        {"type": "null"},
        {"type": "object", "maxProperties": 0},
        {
            "type": "object",
            "properties": {
                "network_id": UUID_SCHEMA,
                "enable_snat": {"type": "boolean"},
                "external_fixed_ips": nullable(array_of(FIXED_IP_SCHEMA)),
                "qos_policy_id": {},
            },
            "required": ["network_id"],
            "additionalProperties": False,
        },
    ],
}


@accepts(array_of(FIXED_IP_SCHEMA))
def to_fixed_ips(value: Any) -> list[dict[str, str]]:
    result = []
    for item in to_list(value):
        if not isinstance(item, dict):
            raise ValueError(f"'{item}' is not a dictionary")
        unknown = set(item) - {"subnet_id", "ip_address"}
        if unknown:
            raise ValueError(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
        entry = {}
        if item.get("subnet_id") is not None:
            entry["subnet_id"] = to_uuid(item["subnet_id"])
        if item.get("ip_address") is not None:
            entry["ip_address"] = to_ip(item["ip_address"])
        if not entry:
            raise ValueError(f"'{item}' needs subnet_id or ip_address")
        result.append(entry)
    return result


@accepts(array_of({
    "type": "object",
    "properties": {"ip_address": ADDRESS_OR_CIDR_SCHEMA, "mac_address": nullable(MAC_SCHEMA)},
    "required": ["ip_address"],
    "additionalProperties": False,
}))
def to_address_pairs(value: Any) -> list[dict[str, str]]:
    result = []
    for item in to_list(value):
        if not isinstance(item, dict) or "ip_address" not in item:
            raise ValueError("Allowed address pairs must be a list of dicts with 'ip_address'")
        unknown = set(item) - {"ip_address", "mac_address"}
        if unknown:
            raise ValueError(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
        pair = {"ip_address": to_cidr_loose(item["ip_address"])}
        if item.get("mac_address") is not None:
            pair["mac_address"] = to_mac(item["mac_address"])
        result.append(pair)
    return result


ROUTES_SCHEMA: JsonSchema = {
    "type": ["array", "null"],
    "items": {
        "type": "object",
        "properties": {"destination": CIDR_SCHEMA, "nexthop": IP_SCHEMA},
        "required": ["destination", "nexthop"],
        "additionalProperties": False,
    },
}


@accepts(ROUTES_SCHEMA)
def to_routes(value: Any) -> list[dict[str, str]]:
    result = []
    for item in to_list([] if value is None else value):
        if not isinstance(item, dict) or set(item) != {"destination", "nexthop"}:
            raise ValueError(f"'{item}' must be a dict with destination and nexthop")
        try:
            destination = str(ipaddress.ip_network(item["destination"], strict=True))
        except (TypeError, ValueError):
            raise ValueError(f"'{item['destination']}' is not a valid IP subnet") from None
        result.append({"destination": destination, "nexthop": to_ip(item["nexthop"])})
    return result


@accepts(array_of({
    "type": "object",
    "properties": {"start": IP_SCHEMA, "end": IP_SCHEMA},
    "required": ["start", "end"],
    "additionalProperties": False,
}))
def to_pools(value: Any) -> list[dict[str, str]]:
    result = []
    for item in to_list(value):
        if not isinstance(item, dict) or set(item) != {"start", "end"}:
            raise ValueError(f"'{item}' must be a dict with start and end")
        result.append({"start": to_ip(item["start"]), "end": to_ip(item["end"])})
    return result


@accepts(ROUTES_SCHEMA)
def to_host_routes(value: Any) -> list[dict[str, str]]:
    return to_routes(value)


@accepts(array_of(IP_SCHEMA))
def to_ip_list(value: Any) -> list[str]:
    return [to_ip(v) for v in to_list(value)]


def is_plain_text(value: str, max_len: int = MAX_STRING) -> bool:
    """Storable as-is in every database (PostgreSQL text cannot hold NUL) and renderable
    (valid Unicode: no lone surrogates)."""
    return "\x00" not in value and len(value) <= max_len and not has_surrogate(value)


# One URL path segment that names something: no "/" (a request's %2F is decoded before
# routing, so it would split the segment) and not "." or ".." (clients resolve those away).
PATH_SEGMENT_PATTERN = r"^([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)$"


def is_path_segment(value: str) -> bool:
    """Whether ``value`` can be addressed as ``.../{value}/...`` (percent-encoded)."""
    return re.fullmatch(PATH_SEGMENT_PATTERN, value) is not None


def one_of(*choices: str | None):  # type: ignore[no-untyped-def]
    @accepts({"enum": list(choices)})
    def convert(value: Any) -> str | None:
        if value not in choices:
            allowed = ", ".join(str(c) for c in choices)
            raise ValueError(f"'{value}' is not in [{allowed}]")
        return value

    return convert


@accepts(NON_NEGATIVE_INT_SCHEMA)
def to_non_negative_int(value: Any) -> int:
    number = to_int(value)
    if number < 0:
        raise ValueError(f"'{value}' should be non-negative")
    return number


@accepts(CIDR_SCHEMA)
def to_cidr(value: Any) -> str:
    """A network in canonical form (Neutron's ``type:subnet``: no host bits set)."""
    try:
        if not isinstance(value, str) or "/" not in value:
            raise ValueError
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"'{value}' is not a valid IP subnet") from None
    if str(network) != value:
        raise ValueError(f"'{value}' isn't a recognized IP subnet cidr, '{network}' is recommended")
    return value


@accepts({**array_of(CIDR_SCHEMA), "uniqueItems": True})
def to_cidr_list(value: Any) -> list[str]:
    """A list of distinct networks (Neutron's ``type:subnet_list``)."""
    items = [to_cidr(item) for item in to_list(value)]
    duplicates = sorted(item for item, count in Counter(items).items() if count > 1)
    if duplicates:
        raise ValueError(f"Duplicate items in the list: '{', '.join(duplicates)}'")
    return items


@accepts({**STRING_SCHEMA, "pattern": r"\S"})
def to_not_empty_str(value: Any) -> str:
    text = to_str(value)
    if not text.strip():
        raise ValueError("'' Blank strings are not permitted")
    return text


def one_of_ints(*choices: int):  # type: ignore[no-untyped-def]
    """An integer (or its decimal string) among ``choices`` (Neutron's ``type:values`` after
    ``convert_to_int``)."""

    @accepts({"enum": list(choices)})
    def convert(value: Any) -> int:
        number = to_int(value)
        if number not in choices:
            raise ValueError(f"{value} is not in {list(choices)}")
        return number

    return convert
