"""GET /openapi.json: an OpenAPI 3.1 description of every route of the server.

The Neutron collections are described from the same ``ResourceSpec``s that validate their
requests: each attribute's schema is its converter's (``validate.schema_of``) or, for
output-only attributes, ``attributes.OUTPUT_SCHEMAS``; which attributes a create or update
accepts is the spec's ``post``/``put``; the list maxima are the server's ``ApiLimits``.
Creates link to the operations that take the new object's id, so a stateful client (or
fuzzer) can walk from a created object to everything that uses it.

Not described: ``/ui`` (the web view's HTML and assets) and the Server-Sent-Events form of
``GET /dvr/v1/events`` (asked for with ``Accept: text/event-stream``); its JSON long-poll
form is described.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dvr.server.api import openapi_protocol
from dvr.server.api.address_groups import ACTIONS
from dvr.server.api.availability import (
    AVAILABILITY_ZONE_SPEC,
    IP_AVAILABILITY_SPEC,
    SERVICE_PROVIDER_SPEC,
)
from dvr.server.api.common import Collection, json_response
from dvr.server.api.extensions import EXTENSIONS
from dvr.server.api.openapi_parts import (
    ERROR_SCHEMA,
    link,
    obj,
    operation,
    path_param,
    query_param,
    ref,
    request_body,
)
from dvr.server.api.tags import TABLES as TAGGED_COLLECTIONS
from dvr.server.attributes import (
    COUNT_LIMITS,
    ResourceSpec,
    attribute_names,
    attribute_schema,
    filter_types,
)
from dvr.server.config import ApiLimits
from dvr.server.errors import RESOURCE_TITLES
from dvr.server.listing import FIXED_IPS_FILTER_KEYS, TAG_KEYS
from dvr.server.validate import INTEGER_SCHEMA, MAX_STRING, UUID_SCHEMA, JsonSchema, array_of

ID_PARAM = path_param("id", UUID_SCHEMA, "the object's id (a malformed id is a 404)")
TAG_SCHEMA: JsonSchema = {
    "type": "string", "minLength": 1, "maxLength": MAX_STRING, "pattern": "^[^,/]+$",
}
LINKS_SCHEMA = array_of(obj({"rel": {"type": "string"}, "href": {"type": "string"}}))
DOCUMENT_NOTE = (
    "Neutron API v2.0 (the subset dvr implements) and the dvr agent protocol. Errors have "
    "Neutron's shape. Not described here: /ui (the web view) and the Server-Sent-Events "
    "form of GET /dvr/v1/events."
)


def title(spec: ResourceSpec) -> str:
    """The schema name and operation-id stem of ``spec``: NetworkIpAvailability, SubnetPool."""
    camel = "".join(word.capitalize() for word in spec.singular.split("_"))
    return RESOURCE_TITLES.get(spec.singular, camel)


def _limited(spec: ResourceSpec, name: str, schema: JsonSchema, limits: ApiLimits) -> JsonSchema:
    limit = COUNT_LIMITS.get((spec.singular, name))
    if limit is None:
        return schema
    return {**schema, "maxItems": getattr(limits, limit.option)}


def _write_body(spec: ResourceSpec, method: str, limits: ApiLimits) -> JsonSchema:
    allowed = [a for a in spec.attrs if (a.post if method == "POST" else a.put)]
    inner = obj(
        {a.name: _limited(spec, a.name, attribute_schema(spec, a.name), limits) for a in allowed},
        tuple(a.name for a in allowed if a.required and method == "POST"),
        additional=False,
    )
    return obj({spec.singular: inner}, (spec.singular,))


def resource_schema(spec: ResourceSpec) -> JsonSchema:
    """The object as responses show it (any subset of it with ``fields``)."""
    return obj({name: attribute_schema(spec, name) for name in sorted(attribute_names(spec))})


def list_parameters(spec: ResourceSpec) -> list[dict[str, Any]]:
    """Neutron's list query: a filter per attribute, fields, sorting, pagination."""
    types = filter_types(spec)
    names = sorted(attribute_names(spec))
    params = []
    for name in names:
        if name in types.integers:
            schema: JsonSchema = INTEGER_SCHEMA
        elif name in types.booleans:
            schema = {"type": "boolean"}
        elif name == "fixed_ips":
            keys = "|".join(sorted(FIXED_IPS_FILTER_KEYS))
            schema = {"type": "string", "pattern": f"^({keys})=.+$"}
        else:
            schema = {"type": "string"}
        if name not in TAG_KEYS:
            params.append(query_param(name, schema, "keep objects with this value (repeatable)"))
    for key in sorted(TAG_KEYS):
        params.append(query_param(key, {"type": "string"}, "comma-separated tags"))
    sortable = [n for n in names if n not in types.unsortable and n not in TAG_KEYS]
    params += [
        fields_param(spec),
        query_param("sort_key", array_of({"enum": sortable})),
        query_param("sort_dir", array_of({"enum": ["asc", "desc"]}),
                    "one per sort_key when given"),
        query_param("limit", {"type": "integer", "minimum": 0}),
        query_param("marker", UUID_SCHEMA, "the id of the last object of the previous page"),
        query_param("page_reverse", {"type": "boolean"}),
    ]
    return params


def fields_param(spec: ResourceSpec) -> dict[str, Any]:
    return query_param(
        "fields", array_of({"enum": sorted(attribute_names(spec))}), "only these attributes"
    )


def list_schema(spec: ResourceSpec) -> JsonSchema:
    return obj({spec.plural: array_of(ref(title(spec))), f"{spec.plural}_links": LINKS_SCHEMA},
               (spec.plural,))


def _created_links(spec: ResourceSpec, coll: Collection) -> dict[str, Any]:
    name = title(spec)
    new_id = {"id": f"$response.body#/{spec.singular}/id"}
    links = {f"Show{name}": link(f"show{name}", new_id)}
    if coll.update is not None:
        links[f"Update{name}"] = link(f"update{name}", new_id)
    if coll.delete is not None:
        links[f"Delete{name}"] = link(f"delete{name}", new_id)
    if (spec.path or spec.plural) in TAGGED_COLLECTIONS:
        for verb in ("list", "replace", "clear"):
            links[f"{verb.capitalize()}{name}Tags"] = link(f"{verb}{name}Tags", new_id)
        for verb in ("check", "add", "remove"):
            links[f"{verb.capitalize()}{name}Tag"] = link(f"{verb}{name}Tag", new_id)
    network = f"$response.body#/{spec.singular}/id"
    extra: dict[str, dict[str, Any]] = {
        "network": {
            "CreateSubnet": link("createSubnet", body={"subnet": {"network_id": network}}),
            "CreatePort": link("createPort", body={"port": {"network_id": network}}),
            "CreateFloatingIP": link(
                "createFloatingIP", body={"floatingip": {"floating_network_id": network}}
            ),
            "ShowNetworkIpAvailability": link(
                "showNetworkIpAvailability", {"network_id": network}
            ),
        },
        "subnetpool": {
            "AddSubnetPoolPrefixes": link("addSubnetPoolPrefixes", new_id),
            "RemoveSubnetPoolPrefixes": link("removeSubnetPoolPrefixes", new_id),
        },
        "address_group": {
            "AddAddressGroupAddresses": link("addAddressGroupAddresses", new_id),
            "RemoveAddressGroupAddresses": link("removeAddressGroupAddresses", new_id),
        },
        "security_group": {
            "CreateSecurityGroupRule": link(
                "createSecurityGroupRule",
                body={"security_group_rule": {
                    "security_group_id": f"$response.body#/{spec.singular}/id",
                    "direction": "ingress",
                }},
            ),
        },
        "router": {
            "AddRouterInterface": link("addRouterInterface", new_id),
            "RemoveRouterInterface": link("removeRouterInterface", new_id),
            "ListRouterL3Agents": link("listRouterL3Agents", new_id),
            "ShowRouterHosts": link("showRouterHosts", new_id),
        },
    }
    links.update(extra.get(spec.singular, {}))
    return links


def collection_paths(coll: Collection, limits: ApiLimits) -> dict[str, Any]:
    spec = coll.spec
    name = title(spec)
    one = obj({spec.singular: ref(name)}, (spec.singular,))
    base = spec.url_path
    item = f"{base}/{{id}}"
    tag = (spec.plural,)
    paths: dict[str, Any] = {
        base: {"get": operation(
            f"list{name}s", f"List {spec.plural}", (200, "OK", list_schema(spec)), (400, 404),
            parameters=list_parameters(spec), tags=tag,
        )},
        item: {"get": operation(
            f"show{name}", f"Show a {spec.singular}", (200, "OK", one), (404,),
            parameters=[ID_PARAM, fields_param(spec)], tags=tag,
        )},
    }
    if coll.create is not None:
        single = _write_body(spec, "POST", limits)
        bulk = obj({spec.plural: {**array_of(single["properties"][spec.singular]),
                                  "minItems": 1}}, (spec.plural,))
        many = obj({spec.plural: array_of(ref(name))}, (spec.plural,))
        paths[base]["post"] = operation(
            f"create{name}", f"Create a {spec.singular} (or several: {{\"{spec.plural}\": []}})",
            (201, "Created", {"anyOf": [one, many]}), (404, 409, 503),
            body=request_body({"anyOf": [single, bulk]}), links=_created_links(spec, coll),
            tags=tag,
        )
    if coll.update is not None:
        paths[item]["put"] = operation(
            f"update{name}", f"Update a {spec.singular}", (200, "OK", one), (404, 409),
            parameters=[ID_PARAM], body=request_body(_write_body(spec, "PUT", limits)),
            tags=tag,
        )
    if coll.delete is not None:
        paths[item]["delete"] = operation(
            f"delete{name}", f"Delete a {spec.singular}", (204, "Deleted", None), (404, 409),
            parameters=[ID_PARAM], tags=tag,
        )
    return paths


def tag_paths(plural: str, singular_title: str, limits: ApiLimits) -> dict[str, Any]:
    base = f"/v2.0/{plural}/{{id}}/tags"
    tags_body = obj({"tags": {**array_of(TAG_SCHEMA), "maxItems": limits.max_tags}}, ("tags",))
    tag_param = path_param("tag", TAG_SCHEMA)
    name, kind = singular_title, ("tags",)
    return {
        base: {
            "get": operation(f"list{name}Tags", f"Tags of a {plural[:-1]}",
                             (200, "OK", tags_body), (404,), parameters=[ID_PARAM], tags=kind),
            "put": operation(f"replace{name}Tags", "Replace all tags", (200, "OK", tags_body),
                             (404,), parameters=[ID_PARAM], body=request_body(tags_body),
                             tags=kind),
            "post": operation(f"addMany{name}Tags", "Add tags to those set (tag-creation)",
                              (201, "Added; all the tags now set", tags_body), (404,),
                              parameters=[ID_PARAM], body=request_body(tags_body), tags=kind),
            "delete": operation(f"clear{name}Tags", "Remove all tags", (204, "Removed", None),
                                (404,), parameters=[ID_PARAM], tags=kind),
        },
        base + "/{tag}": {
            "get": operation(f"check{name}Tag", "Is the tag set? (204 yes, 404 no)",
                             (204, "Set", None), (404,), parameters=[ID_PARAM, tag_param],
                             tags=kind),
            "put": operation(f"add{name}Tag", "Add one tag", (201, "Added", None), (400, 404),
                             parameters=[ID_PARAM, tag_param], tags=kind),
            "delete": operation(f"remove{name}Tag", "Remove one tag", (204, "Removed", None),
                                (404,), parameters=[ID_PARAM, tag_param], tags=kind),
        },
    }


def router_extra_paths(router: ResourceSpec, limits: ApiLimits) -> dict[str, Any]:
    """Router interfaces, and manual L3 scheduling. (Scheduling has no link to its undoing:
    a link would make it the one "reliable" start of schemathesis' walks, whose random agent
    ids are all 404s, and the Neutron walk would never reach a create.)"""
    interface_body = obj({"subnet_id": {"type": ["string", "null"], "format": "uuid"},
                         "port_id": {"type": ["string", "null"], "format": "uuid"}})
    interface = obj({
        "id": UUID_SCHEMA, "tenant_id": {"type": "string"}, "project_id": {"type": "string"},
        "port_id": UUID_SCHEMA, "network_id": UUID_SCHEMA, "subnet_id": UUID_SCHEMA,
        "subnet_ids": array_of(UUID_SCHEMA),
    })
    kind = ("routers",)
    paths: dict[str, Any] = {}
    for verb, action in (("add", "add_router_interface"), ("remove", "remove_router_interface")):
        links = None
        if verb == "add":
            links = {"RemoveRouterInterface": link(
                "removeRouterInterface", {"id": "$request.path.id"},
                body={"subnet_id": "$response.body#/subnet_id"},
            )}
        paths[f"/v2.0/routers/{{id}}/{action}"] = {"put": operation(
            f"{verb}RouterInterface", f"{verb.capitalize()} a router interface (subnet or port)",
            (200, "OK", interface), (404, 409), parameters=[ID_PARAM],
            body=request_body(interface_body), links=links, tags=kind,
        )}
    l3_agent = {"allOf": [ref("Agent"), obj({"ha_state": {"type": ["string", "null"]}})]}
    paths["/v2.0/routers/{id}/l3-agents"] = {"get": operation(
        "listRouterL3Agents", "L3 agents hosting a router",
        (200, "OK", obj({"agents": array_of(l3_agent)}, ("agents",))), (404,),
        parameters=[ID_PARAM], tags=kind,
    )}
    paths["/v2.0/agents/{id}/l3-routers"] = {"get": operation(
        "listAgentL3Routers", "Routers hosted by an L3 agent (a list query on routers)",
        (200, "OK", list_schema(router)), (400, 404),
        parameters=[ID_PARAM, *list_parameters(router)], tags=("agents",),
    ), "post": operation(
        "addAgentL3Router", "Host a router on an L3 agent (manual scheduling)",
        (201, "Scheduled", {"type": "null"}), (404, 409), parameters=[ID_PARAM],
        body=request_body(obj({"router_id": UUID_SCHEMA}, ("router_id",))),
        tags=("agents",),
    )}
    paths["/v2.0/agents/{id}/l3-routers/{router_id}"] = {"delete": operation(
        "removeAgentL3Router", "Stop hosting a router on an L3 agent",
        (204, "Unscheduled", None), (404, 409),
        parameters=[ID_PARAM, path_param("router_id", UUID_SCHEMA)], tags=("agents",),
    )}
    return paths


def subnetpool_extra_paths(subnetpool: ResourceSpec) -> dict[str, Any]:
    """``subnetpool-prefix-ops``: both take and answer ``{"prefixes": [...]}``."""
    prefixes = attribute_schema(subnetpool, "prefixes")
    body = obj({"prefixes": prefixes}, ("prefixes",))
    answer = obj({"prefixes": prefixes}, ("prefixes",))
    return {
        f"{subnetpool.url_path}/{{id}}/{action}": {"put": operation(
            f"{verb}SubnetPoolPrefixes", f"{verb.capitalize()} prefixes; the pool's prefixes after",
            (200, "OK", answer), (404, 409), parameters=[ID_PARAM], body=request_body(body),
            tags=(subnetpool.plural,),
        )}
        for verb, action in (("add", "add_prefixes"), ("remove", "remove_prefixes"))
    }


def address_group_extra_paths(address_group: ResourceSpec) -> dict[str, Any]:
    """Both take ``{"addresses": [...]}`` and answer the address group."""
    body = obj({"addresses": attribute_schema(address_group, "addresses")}, ("addresses",))
    answer = obj({address_group.singular: ref(title(address_group))}, (address_group.singular,))
    return {
        f"{address_group.url_path}/{{id}}/{action}": {"put": operation(
            f"{verb}AddressGroupAddresses",
            f"{verb.capitalize()} addresses; the address group after",
            (200, "OK", answer), (400, 404), parameters=[ID_PARAM], body=request_body(body),
            tags=(address_group.plural,),
        )}
        for verb, action in ACTIONS
    }


def read_only_paths() -> dict[str, Any]:
    """Availability zones, service providers and network IP availabilities: lists (and one
    show) computed from other resources."""
    paths: dict[str, Any] = {}
    for spec in (AVAILABILITY_ZONE_SPEC, SERVICE_PROVIDER_SPEC, IP_AVAILABILITY_SPEC):
        paths[spec.url_path] = {"get": operation(
            f"list{title(spec)}s", f"List {spec.plural}", (200, "OK", list_schema(spec)),
            (400, 404), parameters=list_parameters(spec), tags=(spec.plural,),
        )}
    spec = IP_AVAILABILITY_SPEC
    paths[f"{spec.url_path}/{{network_id}}"] = {"get": operation(
        f"show{title(spec)}", "One network's IP availability",
        (200, "OK", obj({spec.singular: ref(title(spec))}, (spec.singular,))), (404,),
        parameters=[path_param("network_id", UUID_SCHEMA, "a network's id"), fields_param(spec)],
        tags=(spec.plural,),
    )}
    return paths


def root_paths() -> dict[str, Any]:
    links_obj = obj({"links": LINKS_SCHEMA})
    versions = obj({"versions": array_of(
        {"allOf": [links_obj, obj({"id": {"type": "string"}, "status": {"type": "string"}})]}
    )}, ("versions",))
    resources = obj({"resources": array_of(
        {"allOf": [links_obj, obj({"name": {"type": "string"},
                                   "collection": {"type": "string"}})]}
    )}, ("resources",))
    extension = obj({key: {"type": "string"} for key in
                     ("alias", "name", "description", "updated")} | {"links": {"type": "array"}})
    aliases = {"enum": [alias for alias, _, _ in EXTENSIONS]}
    return {
        "/": {"get": operation("listVersions", "API versions (open even with a token)",
                               (200, "OK", versions), public=True)},
        "/v2.0": {"get": operation("listResources", "Resources of v2.0",
                                   (200, "OK", resources))},
        "/v2.0/": {"get": operation("listResourcesSlash", "Resources of v2.0",
                                    (200, "OK", resources))},
        "/v2.0/extensions": {"get": operation(
            "listExtensions", "Extensions",
            (200, "OK", obj({"extensions": array_of(extension)}, ("extensions",))),
        )},
        "/v2.0/extensions/{alias}": {"get": operation(
            "showExtension", "One extension", (200, "OK", obj({"extension": extension})),
            (404,), parameters=[path_param("alias", aliases)],
        )},
        "/openapi.json": {"get": operation("openapi", "This document",
                                           (200, "OK", {"type": "object"}))},
    }


def build_document(collections: list[Collection], limits: ApiLimits) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = root_paths()
    by_singular = {coll.spec.singular: coll.spec for coll in collections}
    for coll in collections:
        schemas[title(coll.spec)] = resource_schema(coll.spec)
        paths.update(collection_paths(coll, limits))
    for plural, (_, singular) in TAGGED_COLLECTIONS.items():
        paths.update(tag_paths(plural, title(by_singular[singular]), limits))
    paths.update(router_extra_paths(by_singular["router"], limits))
    paths.update(subnetpool_extra_paths(by_singular["subnetpool"]))
    paths.update(address_group_extra_paths(by_singular["address_group"]))
    for spec in (AVAILABILITY_ZONE_SPEC, SERVICE_PROVIDER_SPEC, IP_AVAILABILITY_SPEC):
        schemas[title(spec)] = resource_schema(spec)
    paths.update(read_only_paths())
    protocol_schemas, protocol_paths = openapi_protocol.describe(ref("Agent"))
    schemas.update(protocol_schemas)
    paths.update(protocol_paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dvr server: Neutron API v2.0 and the dvr agent protocol",
            "version": "2.0",
            "description": DOCUMENT_NOTE,
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                          "description": "the admin token or a host credential (none on "
                          "the unix socket, or with --no-auth)"},
            },
        },
        "security": [{"token": []}],
    }


def openapi_endpoint(collections: list[Collection], limits: ApiLimits):  # type: ignore[no-untyped-def]
    document = build_document(collections, limits)

    async def handler(request: Request) -> Response:
        return json_response(document)

    return handler

