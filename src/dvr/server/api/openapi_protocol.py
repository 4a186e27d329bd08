"""The agent protocol (/dvr/v1) and the web view's JSON routes in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from dvr.model.hostview import AGENT_MODES, LAYOUT_CHOICES
from dvr.server.api.openapi_parts import (
    link,
    obj,
    operation,
    path_param,
    query_param,
    ref,
    request_body,
)
from dvr.server.services.agents import DATAPATH_TYPES
from dvr.server.validate import (
    IP_SCHEMA,
    MAC_SCHEMA,
    MAX_STRING,
    PATH_SEGMENT_PATTERN,
    UUID_SCHEMA,
    JsonSchema,
    array_of,
    nullable,
)
from dvr.trace.steps import PROTOCOLS

# registration refuses a host name that could not be named in the hosts' URLs
HOST_SCHEMA: JsonSchema = {
    "type": "string", "minLength": 1, "maxLength": MAX_STRING, "pattern": PATH_SEGMENT_PATTERN,
}
HOST_PARAM = path_param("host", HOST_SCHEMA, "the host's name, as its agent registered it")
REVISION_SCHEMA: JsonSchema = {"type": "string", "pattern": "^[0-9]{1,18}$"}
SECONDS_SCHEMA: JsonSchema = {"type": "number", "minimum": 0}
STRING: JsonSchema = {"type": "string"}
STRINGS = array_of(STRING)
OBJECTS = array_of({"type": "object"})

HOST_SUMMARY = obj({
    "host": STRING, "agent_mode": STRING, "host_mac": nullable(STRING),
    "tunnel_ip": nullable(STRING), "datapath_type": STRING, "alive": {"type": "boolean"},
    "heartbeat_timestamp": nullable(STRING), "applied_revision": {"type": "integer"},
    "routers": array_of(UUID_SCHEMA),
})
HOST_VIEW = obj({
    "host": STRING, "revision": {"type": "integer"}, "agent_mode": nullable(STRING),
    "host_mac": nullable(STRING), "tunnel_ip": nullable(STRING), "ports": OBJECTS,
    "networks": OBJECTS, "routers": OBJECTS,
})
REGISTRATION = obj({
    "host": HOST_SCHEMA,
    "agent_mode": {"enum": list(AGENT_MODES)},
    "tunnel_ip": nullable(IP_SCHEMA),
    "datapath_type": {"enum": list(DATAPATH_TYPES)},
}, ("host",))
HEARTBEAT = obj({
    "applied_revision": {"type": "integer", "minimum": 0, "maximum": 2**62 - 1},
    "ports_up": STRINGS,
    "ports_down": STRINGS,
    "vifs": {"type": ["object", "null"], "additionalProperties": STRING},
    "local_vlans": {"type": ["object", "null"],
                    "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 4094}},
    **{name: {"enum": list(choices)} for name, (choices, _) in LAYOUT_CHOICES.items()},
})
HEARTBEAT_REPLY = obj({"host": STRING, "alive": {"type": "boolean"}, "ports_up": STRINGS,
                       "ports_down": STRINGS, "revision": {"type": "integer"}},
                      ("host", "alive"))
# what view?since=R answers: a HostViewDelta ("full": false) or the HostView ("full": true)
VIEW_UPDATE: JsonSchema = {"type": "object", "required": ["full"],
                           "properties": {"full": {"type": "boolean"}}}
WATCH_REPLY = obj({
    "revision": {"type": "integer"},
    "changes": array_of(obj({"kind": STRING, "id": STRING}, ("kind", "id"))),
    "resync": {"type": "boolean"},
    "view": VIEW_UPDATE,
    # the server is shutting down: ask again after the answer's Retry-After
    "closing": {"type": "boolean"},
}, ("revision", "changes", "resync"))
AGENT_STATE = obj({"host": STRING, "reported": {"type": "boolean"},
                   "applied_revision": {"type": "integer"},
                   "vifs": {"type": "object", "additionalProperties": STRING},
                   "local_vlans": {"type": "object", "additionalProperties": {"type": "integer"}}})
ROUTER_HOSTS = obj({"router_id": UUID_SCHEMA, "hosts": STRINGS,
                    "snat_host": nullable(STRING)}, ("router_id", "hosts", "snat_host"))
CREDENTIAL = obj({"host": STRING, "created_at": STRING}, ("host", "created_at"))
CREDENTIAL_CREATED = obj(
    {"host": STRING, "token": {"type": "string", "pattern": "^dvrh_[A-Za-z0-9_-]{43}$"},
     "created_at": STRING},
    ("host", "token", "created_at"),
)
TOPOLOGY = obj({"revision": {"type": "integer"}, "hosts": OBJECTS, "networks": OBJECTS,
                "routers": OBJECTS})
EVENTS_REPLY = obj({"revision": {"type": "integer"}, "changed": {"type": "boolean"}},
                   ("revision", "changed"))
TRACE = obj({"src": {"type": "object"}, "dst": {"type": "object"}, "proto": STRING,
             "verdict": STRING, "summary": STRING, "hops": OBJECTS, "steps": OBJECTS})


def _host_links() -> dict[str, Any]:
    host = {"host": "$response.body#/agents/0/host"}
    agent = {"id": "$response.body#/agents/0/id"}
    return {
        "Heartbeat": link("heartbeat", host),
        "HostMac": link("allocateHostMac", host),
        "HostView": link("showHostView", host),
        "Watch": link("watchHost", host),
        "HostRouters": link("listHostRouters", host),
        "AgentState": link("showAgentState", host),
        "ShowAgent": link("showAgent", agent),
        "UpdateAgent": link("updateAgent", agent),
        "DeleteAgent": link("deleteAgent", agent),
        "ListAgentL3Routers": link("listAgentL3Routers", agent),
    }


def describe(agent: JsonSchema) -> tuple[dict[str, JsonSchema], dict[str, Any]]:
    """Component schemas and paths of /dvr/v1 (``agent``: the Neutron agent's schema)."""
    kind = ("dvr agent protocol",)
    admin = ("dvr host credentials",)
    web = ("dvr web view",)
    p = "/dvr/v1"
    paths = {
        f"{p}/agents": {"post": operation(
            "registerAgents", "Register (or update) a host's agents",
            (200, "OK", obj({"agents": array_of(agent),
                             "host_mac": {"anyOf": [MAC_SCHEMA, {"type": "null"}]}},
                            ("agents",))), (409,),
            body=request_body(REGISTRATION), links=_host_links(), tags=kind,
        )},
        f"{p}/hosts": {"get": operation(
            "listHosts", "Host summaries", (200, "OK", array_of(ref("HostSummary"))), tags=kind,
        )},
        f"{p}/hosts/{{host}}/heartbeat": {"post": operation(
            "heartbeat", "Liveness, applied revision, port status (an empty body is allowed)",
            (200, "OK", HEARTBEAT_REPLY), (404,), parameters=[HOST_PARAM],
            body=request_body(HEARTBEAT, required=False), tags=kind,
        )},
        f"{p}/hosts/{{host}}/host-mac": {"post": operation(
            "allocateHostMac", "The host's DVR MAC (allocated on first call)",
            (200, "OK", obj({"host": STRING, "mac_address": MAC_SCHEMA},
                            ("host", "mac_address"))),
            (400, 404, 503), parameters=[HOST_PARAM], tags=kind,
        )},
        f"{p}/hosts/{{host}}/view": {"get": operation(
            "showHostView", "Everything the host's agent needs (HostView)",
            (200, "OK", ref("HostView")), (400, 404, 503),
            parameters=[HOST_PARAM, query_param("since", REVISION_SCHEMA,
                                                "the revision of the view the caller holds: "
                                                "the answer is the delta from it"),
                        query_param("wait", SECONDS_SCHEMA,
                                    "seconds the request waits for a view-build turn of a "
                                    "busy server (at most 60) instead of a 503")],
            tags=kind,
        )},
        f"{p}/hosts/{{host}}/watch": {"get": operation(
            "watchHost", "Long poll: what changed for the host since a revision",
            (200, "OK", WATCH_REPLY), (400, 404),
            parameters=[HOST_PARAM, query_param("since", REVISION_SCHEMA),
                        query_param("timeout", SECONDS_SCHEMA, "seconds, capped by the server"),
                        query_param("view_since", REVISION_SCHEMA,
                                    "the revision of the view the caller holds (0: none): an "
                                    "answer with changes also carries \"view\", what "
                                    "view?since=<view_since> answers, unless the server is "
                                    "busy building views")],
            tags=kind,
        )},
        f"{p}/hosts/{{host}}/routers": {"get": operation(
            "listHostRouters", "Routers hosted on the host",
            (200, "OK", obj({"host": STRING, "routers": array_of(UUID_SCHEMA)})), (400, 404),
            parameters=[HOST_PARAM], tags=kind,
        )},
        f"{p}/hosts/{{host}}/agent-state": {"get": operation(
            "showAgentState", "What the host's agent last reported applying",
            (200, "OK", AGENT_STATE), (400, 404), parameters=[HOST_PARAM], tags=kind,
        )},
        f"{p}/hosts/{{host}}/credential": {
            "post": operation(
                "createHostCredential",
                "A new credential for the host (the token is shown only here; a new one "
                "replaces the old at once)",
                (201, "Created", obj({"credential": CREDENTIAL_CREATED}, ("credential",))),
                (400, 404), parameters=[HOST_PARAM], tags=admin,
            ),
            "get": operation(
                "showHostCredential", "When the host's credential was made (never the token)",
                (200, "OK", obj({"credential": CREDENTIAL}, ("credential",))), (400, 404),
                parameters=[HOST_PARAM], tags=admin,
            ),
            "delete": operation(
                "revokeHostCredential", "Revoke the host's credential",
                (204, "Revoked", None), (400, 404), parameters=[HOST_PARAM], tags=admin,
            ),
        },
        f"{p}/routers/{{id}}/hosts": {"get": operation(
            "showRouterHosts", "Hosts of a router and its SNAT host", (200, "OK", ROUTER_HOSTS),
            (404,), parameters=[path_param("id", UUID_SCHEMA)], tags=kind,
        )},
        f"{p}/topology": {"get": operation(
            "showTopology", "The whole cloud in one document (the web view's model)",
            (200, "OK", TOPOLOGY), tags=web,
        )},
        f"{p}/events": {"get": operation(
            "waitForChange",
            "Long poll for a new revision (with Accept: text/event-stream: a Server-Sent-Events "
            "stream, not described here)",
            (200, "OK", EVENTS_REPLY), (400,),
            parameters=[query_param("since", REVISION_SCHEMA),
                        query_param("timeout", SECONDS_SCHEMA, "seconds, capped by the server")],
            tags=web,
        )},
        f"{p}/trace": {"get": operation(
            "tracePacket", "The path of a packet through the desired flows",
            (200, "OK", TRACE), (400,),
            parameters=[
                query_param("src", {"type": "string", "minLength": 1}, "VM name, port id or IP",
                            required=True),
                query_param("dst", {"type": "string", "minLength": 1}, "VM name, port id or IP",
                            required=True),
                query_param("proto", {"enum": list(PROTOCOLS)}),
                query_param("dport", {"type": "string", "pattern": "^[0-9]{1,5}$"}),
            ],
            tags=web,
        )},
    }
    schemas = {"HostSummary": HOST_SUMMARY, "HostView": HOST_VIEW}
    return schemas, paths
