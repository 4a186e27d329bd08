"""/v2.0/security-group-rules (no update: a rule is replaced, as in Neutron); the rule
attributes' converters are shared with /v2.0/default-security-group-rules."""

from __future__ import annotations

import ipaddress
from typing import Any

from dvr.db.tables import security_group_rules
from dvr.server.api.common import Collection, prefilter
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.services import security_group_rules as service
from dvr.server.services.common import list_rows
from dvr.server.services.firewall_rules import (
    ANY_PROTOCOL,
    DIRECTIONS,
    ETHERTYPES,
    PROTOCOL_NUMBERS,
)
from dvr.server.validate import (
    CIDR_SCHEMA,
    accepts,
    nullable,
    one_of,
    to_str,
    to_uuid,
    to_uuid_or_none,
)

PORT_SCHEMA = {"type": "integer", "minimum": 0, "maximum": 65535}
PROTOCOL_SCHEMA = nullable({"anyOf": [
    {"enum": sorted(PROTOCOL_NUMBERS)},
    {"type": "string", "pattern": "^[0-9]{1,3}$"},
]})


@accepts(PROTOCOL_SCHEMA)
def to_protocol(value: Any) -> str | None:
    """A protocol name (any case) or number 0-255 (an integer or its decimal string), as
    Neutron shows it: the lower-case name or the number as a string; ``any``: null."""
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in (*PROTOCOL_NUMBERS, ANY_PROTOCOL):
        return None if value.lower() == ANY_PROTOCOL else value.lower()
    if isinstance(value, bool) or not isinstance(value, int | str):
        number = None
    else:
        text = str(value)
        number = int(text) if text.isascii() and text.isdigit() and len(text) <= 3 else None
    if number is None or not 0 <= number <= 255:
        raise ValueError(
            f"Security group rule protocol {value} not supported. Only protocol values "
            f"{sorted(PROTOCOL_NUMBERS)} and integer representations [0 to 255] are supported"
        )
    return str(number)


@accepts({"enum": list(ETHERTYPES)})
def to_ethertype(value: Any) -> str:
    for ethertype in ETHERTYPES:
        if isinstance(value, str) and value.lower() == ethertype.lower():
            return ethertype
    raise ValueError(
        f"Security group rule for ethertype '{value}' not supported. Allowed values are "
        f"{list(ETHERTYPES)}"
    )


@accepts(nullable(PORT_SCHEMA))
def to_port(value: Any) -> int | None:
    """A port number, or an ICMP type or code (checked against the protocol later)."""
    if value is None:
        return None
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        raise ValueError(f"Invalid value for port {value}")
    return int(text)


@accepts(nullable(CIDR_SCHEMA))
def to_remote_ip_prefix(value: Any) -> str | None:
    """A CIDR (host bits cleared) or an address (a /32 or /128)."""
    if value is None:
        return None
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except (TypeError, ValueError):
        raise ValueError(f"'{value}' is not a valid IP subnet") from None


MATCH_ATTRS = (
    Attr("direction", one_of(*DIRECTIONS), required=True, put=False),
    Attr("ethertype", to_ethertype, put=False),
    Attr("protocol", to_protocol, put=False),
    Attr("port_range_min", to_port, put=False),
    Attr("port_range_max", to_port, put=False),
    Attr("remote_ip_prefix", to_remote_ip_prefix, put=False),
    Attr("remote_address_group_id", to_uuid_or_none, put=False),
    Attr("description", to_str, put=False),
)

SPEC = ResourceSpec(
    singular="security_group_rule",
    plural="security_group_rules",
    path="security-group-rules",
    attrs=(
        Attr("security_group_id", to_uuid, required=True, put=False),
        *MATCH_ATTRS,
        Attr("remote_group_id", to_uuid_or_none, put=False),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
)

SQL_FILTERS = {"id": "id", "security_group_id": "security_group_id", "direction": "direction"}

COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: [
        service.render_rule(row)
        for row in list_rows(
            tx.conn,
            security_group_rules,
            *prefilter(security_group_rules, filters, SQL_FILTERS),
        )
    ],
    show=lambda tx, rule_id: service.show(tx.conn, rule_id),
    create=service.create,
    delete=service.delete_rule,
)
