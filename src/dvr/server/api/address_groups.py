"""/v2.0/address-groups (+ ``PUT .../add_addresses``, ``PUT .../remove_addresses``)"""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.routing import Route

from dvr.db.tables import address_groups
from dvr.server.api.common import Collection, list_action_routes, prefilter
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.context import ServerContext
from dvr.server.services import address_groups as service
from dvr.server.services.common import list_rows
from dvr.server.validate import CIDR_SCHEMA, accepts, array_of, to_list, to_str


@accepts(array_of(CIDR_SCHEMA))
def to_addresses(value: Any) -> list[str]:
    """Addresses or CIDRs, as normalized CIDRs (an address is a /32 or /128)."""
    result = []
    for item in to_list(value):
        try:
            result.append(str(ipaddress.ip_network(item, strict=False)))
        except (TypeError, ValueError):
            raise ValueError(f"'{item}' is not a valid IP subnet") from None
    return result


SPEC = ResourceSpec(
    singular="address_group",
    plural="address_groups",
    path="address-groups",
    attrs=(
        Attr("name", to_str),
        Attr("description", to_str),
        Attr("addresses", to_addresses, put=False),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
)

SQL_FILTERS = {"id": "id", "name": "name"}

COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: [
        service.render_address_group(row)
        for row in list_rows(
            tx.conn, address_groups, *prefilter(address_groups, filters, SQL_FILTERS)
        )
    ],
    show=lambda tx, address_group_id: service.show(tx.conn, address_group_id),
    create=service.create,
    update=service.update_address_group,
    delete=service.delete_address_group,
)

ACTIONS = (("add", "add_addresses"), ("remove", "remove_addresses"))


def extra_routes(context: ServerContext) -> list[Route]:
    actions = {name: getattr(service, name) for _, name in ACTIONS}
    return list_action_routes(context, SPEC, "addresses", to_addresses, actions, SPEC.singular)
