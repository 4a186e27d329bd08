"""Read-only resources clients look for: ``/v2.0/availability_zones``,
``/v2.0/service-providers`` and ``/v2.0/network-ip-availabilities[/{network_id}]``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.db.tables import agents
from dvr.server.api.common import json_response, list_payload, query_of
from dvr.server.attributes import ResourceSpec
from dvr.server.context import ServerContext
from dvr.server.listing import select_fields
from dvr.server.services import agents as agent_service
from dvr.server.services.ip_availability import availabilities
from dvr.server.tx import ReadTx

AVAILABILITY_ZONE_SPEC = ResourceSpec(
    singular="availability_zone",
    plural="availability_zones",
    attrs=(),
    output_only=frozenset({"name", "resource", "state"}),
)
SERVICE_PROVIDER_SPEC = ResourceSpec(
    singular="service_provider",
    plural="service_providers",
    path="service-providers",
    attrs=(),
    output_only=frozenset({"service_type", "name", "default"}),
)
IP_AVAILABILITY_SPEC = ResourceSpec(
    singular="network_ip_availability",
    plural="network_ip_availabilities",
    path="network-ip-availabilities",
    attrs=(),
    output_only=frozenset(
        {"network_id", "network_name", "total_ips", "used_ips", "subnet_ip_availability",
         "ip_version"}
    ),
)

# The router flavors this server implements (L3_ROUTER_NAT, as Neutron names the service).
SERVICE_PROVIDERS = (
    {"service_type": "L3_ROUTER_NAT", "name": "single_node", "default": True},
    {"service_type": "L3_ROUTER_NAT", "name": "dvr", "default": False},
)


def availability_zones(tx: ReadTx) -> list[dict[str, Any]]:
    """One zone per availability zone of the L3 agents: ``available`` while one of its
    agents is alive and admin up (Neutron's router zones; there are no DHCP agents)."""
    rows = tx.conn.execute(
        select(agents.c.availability_zone, agents.c.host, agents.c.heartbeat_timestamp,
               agents.c.admin_state_up).where(agents.c.agent_type == agent_service.L3_AGENT)
    )
    state: dict[str, bool] = {}
    for zone, host, heartbeat, admin_up in rows:
        if zone:
            up = bool(admin_up) and agent_service.is_alive(tx, host, heartbeat)
            state[zone] = state.get(zone, False) or up
    return [
        {"name": zone, "resource": "router", "state": "available" if up else "unavailable"}
        for zone, up in sorted(state.items())
    ]


def _with_ip_version(item: dict[str, Any]) -> dict[str, Any]:
    """Neutron filters availabilities by ``ip_version`` of their subnets."""
    versions = sorted({s["ip_version"] for s in item["subnet_ip_availability"]})
    return {**item, "ip_version": versions}


def routes(context: ServerContext) -> list[Route]:
    async def list_zones(request: Request) -> Response:
        zones = await context.read(availability_zones)
        return json_response(list_payload(request, AVAILABILITY_ZONE_SPEC, zones))

    async def list_providers(request: Request) -> Response:
        providers = [dict(p) for p in SERVICE_PROVIDERS]
        return json_response(list_payload(request, SERVICE_PROVIDER_SPEC, providers))

    async def list_availabilities(request: Request) -> Response:
        items = await context.read(lambda tx: availabilities(tx.conn))
        payload = list_payload(request, IP_AVAILABILITY_SPEC, [_with_ip_version(i) for i in items])
        for item in payload[IP_AVAILABILITY_SPEC.plural]:
            item.pop("ip_version", None)
        return json_response(payload)

    async def show_availability(request: Request) -> Response:
        network_id = request.path_params["network_id"]
        [item] = await context.read(lambda tx: availabilities(tx.conn, network_id))
        return json_response(
            {IP_AVAILABILITY_SPEC.singular: select_fields(item, query_of(request).fields)}
        )

    return [
        Route(AVAILABILITY_ZONE_SPEC.url_path, list_zones, methods=["GET"]),
        Route(SERVICE_PROVIDER_SPEC.url_path, list_providers, methods=["GET"]),
        Route(IP_AVAILABILITY_SPEC.url_path, list_availabilities, methods=["GET"]),
        Route(IP_AVAILABILITY_SPEC.url_path + "/{network_id}", show_availability,
              methods=["GET"]),
    ]
