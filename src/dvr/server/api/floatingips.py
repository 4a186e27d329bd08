"""/v2.0/floatingips"""

from __future__ import annotations

from dvr.db.tables import floatingips
from dvr.server.api.common import Collection, prefilter
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.services import cascades
from dvr.server.services import floatingips as service
from dvr.server.services.common import list_rows
from dvr.server.validate import to_ip, to_ip_or_none, to_str, to_uuid, to_uuid_or_none

SPEC = ResourceSpec(
    singular="floatingip",
    plural="floatingips",
    attrs=(
        Attr("description", to_str),
        Attr("floating_network_id", to_uuid, put=False, required=True),
        Attr("floating_ip_address", to_ip, put=False),
        Attr("subnet_id", to_uuid_or_none, put=False),
        Attr("port_id", to_uuid_or_none),
        Attr("fixed_ip_address", to_ip_or_none),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
    output_only=frozenset({"router_id", "port_details", "port_forwardings"}),
)

SQL_FILTERS = {
    "id": "id",
    "floating_network_id": "floating_network_id",
    "router_id": "router_id",
    "port_id": "fixed_port_id",
    "floating_ip_address": "floating_ip_address",
}

COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: service.render_floatingips(
        tx.conn,
        list_rows(tx.conn, floatingips, *prefilter(floatingips, filters, SQL_FILTERS)),
    ),
    show=lambda tx, fip_id: service.show(tx.conn, fip_id),
    create=service.create,
    update=service.update_floatingip,
    delete=cascades.delete_floatingip,
)
