"""/v2.0/address-scopes (body keys ``address_scope`` / ``address_scopes``)"""

from __future__ import annotations

from dvr.server.api.common import Collection
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.services import address_scopes as service
from dvr.server.validate import one_of_ints, to_bool, to_str

SPEC = ResourceSpec(
    singular="address_scope",
    plural="address_scopes",
    path="address-scopes",
    attrs=(
        Attr("name", to_str),
        Attr("shared", to_bool),
        Attr("ip_version", one_of_ints(4, 6), put=False, required=True),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
)

COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: service.list_address_scopes(tx.conn),
    show=lambda tx, address_scope_id: service.show(tx.conn, address_scope_id),
    create=service.create,
    update=service.update_address_scope,
    delete=service.delete_address_scope,
)
