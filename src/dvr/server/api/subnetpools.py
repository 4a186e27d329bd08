"""/v2.0/subnetpools (+ ``PUT .../add_prefixes``, ``PUT .../remove_prefixes``)"""

from __future__ import annotations

from starlette.routing import Route

from dvr.db.tables import subnetpools
from dvr.server.api.common import Collection, list_action_routes, prefilter
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.context import ServerContext
from dvr.server.services import subnetpools as service
from dvr.server.services.common import list_rows
from dvr.server.validate import (
    NON_NEGATIVE_INT_SCHEMA,
    accepts,
    nullable,
    to_bool,
    to_cidr_list,
    to_non_negative_int,
    to_not_empty_str,
    to_str,
    to_uuid_or_none,
)


@accepts({"anyOf": [NON_NEGATIVE_INT_SCHEMA, {"type": "string", "pattern": "^[0-9]+$"}]})
def _prefixlen(value: object) -> int:
    """A prefix length bound: Neutron renders it as a decimal string, takes either form."""
    return to_non_negative_int(value)


@accepts(nullable(NON_NEGATIVE_INT_SCHEMA))
def _quota(value: object) -> int:
    """A pool without a quota shows null; a request cannot ask for null (as in Neutron)."""
    return to_non_negative_int(value)


SPEC = ResourceSpec(
    singular="subnetpool",
    plural="subnetpools",
    attrs=(
        Attr("name", to_not_empty_str, required=True),
        Attr("description", to_str),
        Attr("prefixes", to_cidr_list, required=True),
        Attr("default_prefixlen", _prefixlen),
        Attr("min_prefixlen", _prefixlen),
        Attr("max_prefixlen", _prefixlen),
        Attr("default_quota", _quota),
        Attr("is_default", to_bool),
        Attr("shared", to_bool, put=False),
        Attr("address_scope_id", to_uuid_or_none),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
    output_only=frozenset({"ip_version"}),
)

SQL_FILTERS = {"id": "id", "name": "name"}

COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: [
        service.render_subnetpool(row)
        for row in list_rows(tx.conn, subnetpools, *prefilter(subnetpools, filters, SQL_FILTERS))
    ],
    show=lambda tx, subnetpool_id: service.show(tx.conn, subnetpool_id),
    create=service.create,
    update=service.update_subnetpool,
    delete=service.delete_subnetpool,
)


def extra_routes(context: ServerContext) -> list[Route]:
    """``subnetpool-prefix-ops``: add or remove address space without restating the rest."""
    actions = {"add_prefixes": service.add_prefixes, "remove_prefixes": service.remove_prefixes}
    return list_action_routes(context, SPEC, "prefixes", to_cidr_list, actions, "prefixes")
