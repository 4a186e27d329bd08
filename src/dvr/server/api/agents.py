"""/v2.0/agents (+ /v2.0/agents/{id}/l3-routers)"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.server.api.common import Collection, json_response, list_payload
from dvr.server.api.routers import SPEC as ROUTER_SPEC
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.context import ServerContext
from dvr.server.errors import http_bad_request
from dvr.server.jsonbody import decode_json
from dvr.server.services import agents as service
from dvr.server.services import l3_scheduling
from dvr.server.tx import ReadTx
from dvr.server.validate import is_plain_text, to_bool, to_str

SPEC = ResourceSpec(
    singular="agent",
    plural="agents",
    attrs=(Attr("admin_state_up", to_bool, post=False), Attr("description", to_str, post=False)),
    output_only=frozenset(
        {
            "agent_type",
            "binary",
            "topic",
            "host",
            "alive",
            "configurations",
            "heartbeat_timestamp",
            "started_at",
            "availability_zone",
            "resources_synced",
        }
    ),
)


def _list(tx: ReadTx, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    hosts = filters.get("host")
    if hosts is not None:
        hosts = [h for h in hosts if is_plain_text(h)]
    return [service.render_agent(tx, row) for row in service.list_agent_rows(tx.conn, hosts)]


COLLECTION = Collection(
    spec=SPEC,
    list_items=_list,
    show=lambda tx, agent_id: service.render_agent(tx, service.get_agent(tx.conn, agent_id)),
    update=service.update_agent,
    delete=service.delete_agent,
)


def extra_routes(context: ServerContext) -> list[Route]:
    async def l3_routers(request: Request) -> Response:
        agent_id = request.path_params["id"]
        items = await context.read(lambda tx: service.routers_on_agent(tx, agent_id))
        return json_response(list_payload(request, ROUTER_SPEC, items))

    async def add_router(request: Request) -> Response:
        agent_id = request.path_params["id"]
        body = await _json_object(request)
        await context.write(
            lambda tx: l3_scheduling.add_router_to_agent(tx, agent_id, body.get("router_id"))
        )
        return json_response(None, 201)

    async def remove_router(request: Request) -> Response:
        agent_id, router_id = request.path_params["id"], request.path_params["router_id"]
        await context.write(
            lambda tx: l3_scheduling.remove_router_from_agent(tx, agent_id, router_id)
        )
        return Response(status_code=204)

    return [
        Route("/v2.0/agents/{id}/l3-routers", l3_routers, methods=["GET"]),
        Route("/v2.0/agents/{id}/l3-routers", add_router, methods=["POST"]),
        Route("/v2.0/agents/{id}/l3-routers/{router_id}", remove_router, methods=["DELETE"]),
    ]


async def _json_object(request: Request) -> dict[str, Any]:
    body = decode_json(await request.body())
    if not isinstance(body, dict):
        raise http_bad_request("Body contains invalid data")
    return body
