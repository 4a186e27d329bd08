"""/v2.0/subnets"""

from __future__ import annotations

from dvr.db.tables import subnets
from dvr.server.api.common import Collection, prefilter
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.services import cascades
from dvr.server.services import subnets as service
from dvr.server.services.common import list_rows
from dvr.server.validate import (
    CIDR_SCHEMA,
    accepts,
    one_of,
    one_of_ints,
    to_bool,
    to_host_routes,
    to_ip_list,
    to_ip_or_none,
    to_non_negative_int,
    to_pools,
    to_str,
    to_str_list,
    to_uuid,
    to_uuid_or_none,
)

IPV6_MODES = one_of(None, "slaac", "dhcpv6-stateful", "dhcpv6-stateless")


@accepts({"type": "null"})
def _null_only(value: object) -> None:
    if value is not None:
        raise ValueError("only null is supported")
    return None


@accepts(CIDR_SCHEMA)
def _cidr(value: object) -> object:
    """Checked by the subnet service (it answers Neutron's InvalidInput)."""
    return value


SPEC = ResourceSpec(
    singular="subnet",
    plural="subnets",
    attrs=(
        Attr("name", to_str),
        Attr("description", to_str),
        Attr("network_id", to_uuid, put=False, required=True),
        Attr("ip_version", one_of_ints(4, 6), put=False),
        Attr("cidr", _cidr, put=False),
        Attr("gateway_ip", to_ip_or_none),
        Attr("allocation_pools", to_pools),
        Attr("enable_dhcp", to_bool),
        Attr("dns_nameservers", to_ip_list),
        Attr("host_routes", to_host_routes),
        Attr("ipv6_ra_mode", IPV6_MODES, put=False),
        Attr("ipv6_address_mode", IPV6_MODES, put=False),
        Attr("subnetpool_id", to_uuid_or_none, put=False),
        Attr("use_default_subnetpool", to_bool, put=False),
        Attr("prefixlen", to_non_negative_int, put=False),
        Attr("segment_id", _null_only, put=False),
        Attr("service_types", to_str_list),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
)

SQL_FILTERS = {
    "id": "id",
    "name": "name",
    "network_id": "network_id",
    "cidr": "cidr",
}

COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: [
        service.render_subnet(row)
        for row in list_rows(tx.conn, subnets, *prefilter(subnets, filters, SQL_FILTERS))
    ],
    show=lambda tx, subnet_id: service.show(tx.conn, subnet_id),
    create=service.create,
    update=service.update_subnet,
    delete=cascades.delete_subnet,
)
