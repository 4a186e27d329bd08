"""/v2.0/address-groups (+ ``PUT .../add_addresses``, ``PUT .../remove_addresses``)"""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.db.tables import address_groups
from dvr.server.api.common import Collection, json_response, prefilter
from dvr.server.attributes import Attr, ResourceSpec, decode_json
from dvr.server.context import ServerContext
from dvr.server.errors import http_bad_request
from dvr.server.services import address_groups as service
from dvr.server.services.common import list_rows
from dvr.server.tx import WriteTx
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


def _addresses_of(raw: bytes) -> list[str]:
    """The body of add_addresses/remove_addresses: ``{"addresses": [...]}``."""
    body = decode_json(raw)
    if not isinstance(body, dict) or "addresses" not in body:
        raise http_bad_request("Unable to find 'addresses' in request body")
    try:
        return to_addresses(body["addresses"])
    except ValueError as exc:
        raise http_bad_request(f"Invalid input for addresses. Reason: {exc}.") from None


def extra_routes(context: ServerContext) -> list[Route]:
    def action(operation: Any) -> Any:
        async def handler(request: Request) -> Response:
            address_group_id = request.path_params["id"]
            cidrs = _addresses_of(await request.body())

            def work(tx: WriteTx) -> dict[str, Any]:
                return operation(tx, address_group_id, cidrs)

            return json_response({SPEC.singular: await context.write(work)})

        return handler

    base = SPEC.url_path + "/{id}"
    operations = {"add": service.add_addresses, "remove": service.remove_addresses}
    return [
        Route(f"{base}/{name}", action(operations[verb]), methods=["PUT"])
        for verb, name in ACTIONS
    ]
