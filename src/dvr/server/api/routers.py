"""/v2.0/routers (+ add/remove_router_interface, l3-agents)"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.db.tables import routers
from dvr.server.api.common import Collection, json_response, prefilter
from dvr.server.attributes import Attr, ResourceSpec, decode_json
from dvr.server.context import ServerContext
from dvr.server.errors import http_bad_request
from dvr.server.services import router_interfaces
from dvr.server.services import routers as service
from dvr.server.services.agents import l3_agents_hosting
from dvr.server.services.common import list_rows
from dvr.server.validate import (
    GATEWAY_INFO_SCHEMA,
    accepts,
    is_uuid,
    to_bool,
    to_dict,
    to_fixed_ips,
    to_routes,
    to_str,
    to_str_list,
    to_str_or_none,
    to_uuid,
)


@accepts(GATEWAY_INFO_SCHEMA)
def _gateway_info(value: Any) -> dict[str, Any] | None:
    info = to_dict(value)
    if not info:
        return None
    unknown = set(info) - {"network_id", "enable_snat", "external_fixed_ips", "qos_policy_id"}
    if unknown:
        raise ValueError(f"Unexpected keys supplied: {', '.join(sorted(unknown))}")
    if "network_id" not in info:
        raise ValueError("network_id is required")
    result: dict[str, Any] = {"network_id": to_uuid(info["network_id"])}
    if "enable_snat" in info:
        result["enable_snat"] = to_bool(info["enable_snat"])
    if info.get("external_fixed_ips") is not None:
        result["external_fixed_ips"] = to_fixed_ips(info["external_fixed_ips"])
    return result


SPEC = ResourceSpec(
    singular="router",
    plural="routers",
    attrs=(
        Attr("name", to_str),
        Attr("description", to_str),
        Attr("admin_state_up", to_bool),
        Attr("distributed", to_bool),
        Attr("ha", to_bool),
        Attr("external_gateway_info", _gateway_info),
        Attr("routes", to_routes, post=False),
        Attr("availability_zone_hints", to_str_list, put=False),
        Attr("flavor_id", to_str_or_none, put=False),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
    output_only=frozenset({"availability_zones", "status"}),
)

SQL_FILTERS = {"id": "id", "name": "name"}

COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: service.render_routers(
        tx.conn, list_rows(tx.conn, routers, *prefilter(routers, filters, SQL_FILTERS))
    ),
    show=lambda tx, router_id: service.show(tx.conn, router_id),
    create=service.create,
    update=service.update_router,
    delete=service.delete_router,
)


def _interface_body(raw: bytes) -> dict[str, Any]:

    body = decode_json(raw)
    if not isinstance(body, dict):
        raise http_bad_request("Body contains invalid data")
    result = {}
    for key in ("subnet_id", "port_id"):
        value = body.get(key)
        if value is not None:
            if not is_uuid(value):
                raise http_bad_request(
                    f"Invalid input for {key}. Reason: '{value}' is not a valid UUID."
                )
            result[key] = value
    return result


def extra_routes(context: ServerContext) -> list[Route]:
    async def add_interface(request: Request) -> Response:
        router_id = request.path_params["id"]
        body = _interface_body(await request.body())
        info = await context.write(lambda tx: router_interfaces.add_interface(tx, router_id, body))
        return json_response(info)

    async def remove_interface(request: Request) -> Response:
        router_id = request.path_params["id"]
        body = _interface_body(await request.body())
        info = await context.write(
            lambda tx: router_interfaces.remove_interface(tx, router_id, body)
        )
        return json_response(info)

    async def l3_agents(request: Request) -> Response:
        router_id = request.path_params["id"]
        agents = await context.read(lambda tx: l3_agents_hosting(tx, router_id))
        return json_response({"agents": agents})

    return [
        Route("/v2.0/routers/{id}/add_router_interface", add_interface, methods=["PUT"]),
        Route("/v2.0/routers/{id}/remove_router_interface", remove_interface, methods=["PUT"]),
        Route("/v2.0/routers/{id}/l3-agents", l3_agents, methods=["GET"]),
    ]
