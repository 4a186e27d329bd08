"""/v2.0/networks"""

from __future__ import annotations

from dvr.db.tables import networks
from dvr.server.api.common import Collection, prefilter
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.services import cascades
from dvr.server.services import networks as service
from dvr.server.services.common import list_rows
from dvr.server.validate import (
    INTEGER_SCHEMA,
    accepts,
    nullable,
    one_of,
    to_bool,
    to_int,
    to_str,
    to_str_list,
    to_str_or_none,
)


@accepts(nullable(INTEGER_SCHEMA))
def _segmentation_id(value: object) -> int | None:
    return None if value is None else to_int(value)


SPEC = ResourceSpec(
    singular="network",
    plural="networks",
    attrs=(
        Attr("name", to_str),
        Attr("description", to_str),
        Attr("admin_state_up", to_bool),
        Attr("shared", to_bool),
        Attr("mtu", to_int),
        Attr("router:external", to_bool),
        Attr("port_security_enabled", to_bool),
        Attr("availability_zone_hints", to_str_list),
        Attr("provider:network_type", one_of("vxlan", "flat", "vlan"), put=False),
        Attr("provider:physical_network", to_str_or_none, put=False),
        Attr("provider:segmentation_id", _segmentation_id, put=False),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
    output_only=frozenset(
        {"subnets", "availability_zones", "status", "ipv4_address_scope", "ipv6_address_scope"}
    ),
)

SQL_FILTERS = {"id": "id", "name": "name"}

COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: service.render_networks(
        tx.conn, list_rows(tx.conn, networks, *prefilter(networks, filters, SQL_FILTERS))
    ),
    show=lambda tx, network_id: service.show(tx.conn, network_id),
    create=service.create,
    update=service.update_network,
    delete=cascades.delete_network,
)
