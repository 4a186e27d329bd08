"""/v2.0/extensions: only what we implement."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.server.api.common import json_response
from dvr.server.errors import NotFoundError

UPDATED = "2024-01-01T00:00:00-00:00"

EXTENSIONS = (
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding"),
    ("dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers."),
    ("external-net", "Neutron external network", "Adds external network attribute to network."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "enable_snat on gateways"),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    ("l3_agent_scheduler", "L3 Agent Scheduler", "Schedule routers among l3 agents"),
    ("agent", "agent", "The agent management extension."),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
    ("binding-extended", "Port Bindings Extended", "Expose port bindings (extended)"),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("fip-port-details", "Floating IP Port Details Extension", "Port details of floating IPs"),
    ("project-id", "project_id field enabled", "Extension that indicates project_id is enabled."),
    ("standard-attr-revisions", "Resource revision numbers", "revision_number on resources"),
    ("standard-attr-timestamp", "Resource timestamps", "created_at/updated_at on resources"),
    ("standard-attr-description", "standard-attr-description", "description on resources"),
    ("standard-attr-tag", "Tag support for resources", "Enables setting tags on resources."),
    ("availability_zone", "Availability Zone", "The availability zone extension."),
    ("network-ip-availability", "Network IP Availability", "IP availability of networks"),
    ("service-type", "Neutron Service Type Management", "API for retrieving service providers"),
    ("tag-creation", "Tag creation extension", "Add several tags at once (POST .../tags)."),
    ("port-security", "Port Security", "Provides port security"),
    ("security-group", "security-group", "The security groups extension."),
    ("stateful-security-group", "Stateful security group", "stateful on security groups"),
    ("address-group", "Address group", "Support address group"),
    (
        "security-groups-remote-address-group",
        "Remote address group id field for security group rules",
        "Add new field of remote address group id in security group rules",
    ),
    (
        "security-groups-default-rules",
        "Default rules for security groups",
        "Configure the rules a new security group is created with",
    ),
    ("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"),
    ("address-scope", "Address scope", "Address scopes extension."),
    ("default-subnetpools", "Default Subnetpools", "Mark and use a subnetpool as the default"),
    (
        "subnetpool-prefix-ops",
        "Subnet Pool Prefix Operations",
        "Provides support for adjusting the prefix list of subnet pools",
    ),
    (
        "router-admin-state-down-before-update",
        "Enforce Router's Admin State Down Before Update",
        "distributed/ha changes need admin_state_up False",
    ),
)


def extension_list() -> list[dict]:
    return [
        {"alias": alias, "name": name, "description": description, "updated": UPDATED, "links": []}
        for alias, name, description in EXTENSIONS
    ]


async def list_extensions(request: Request) -> Response:
    return json_response({"extensions": extension_list()})


async def show_extension(request: Request) -> Response:
    alias = request.path_params["alias"]
    for extension in extension_list():
        if extension["alias"] == alias:
            return json_response({"extension": extension})
    raise NotFoundError(f"Extension with alias {alias} does not exist", type_name="NotFound")


ROUTES = [
    Route("/v2.0/extensions", list_extensions, methods=["GET"]),
    Route("/v2.0/extensions/{alias}", show_extension, methods=["GET"]),
]
