"""GET /openapi.json: an OpenAPI 3.1 description generated from the resource specs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dvr.server.api.common import Collection, json_response, visible_keys

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "NeutronError": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "detail": {"type": "string"},
            },
            "required": ["type", "message", "detail"],
        }
    },
}

DVR_PATHS: dict[str, dict[str, str]] = {
    "/dvr/v1/agents": {"post": "Register or update a host's agents"},
    "/dvr/v1/hosts": {"get": "Host summaries"},
    "/dvr/v1/hosts/{host}/heartbeat": {"post": "Heartbeat, applied revision, port status"},
    "/dvr/v1/hosts/{host}/host-mac": {"post": "Allocate or return the host's DVR MAC"},
    "/dvr/v1/hosts/{host}/view": {"get": "Everything the host needs (HostView)"},
    "/dvr/v1/hosts/{host}/watch": {"get": "Long poll: changes for the host since a revision"},
    "/dvr/v1/hosts/{host}/routers": {"get": "Routers hosted on the host"},
    "/dvr/v1/routers/{id}/hosts": {"get": "Hosts of the router"},
}


def _errors() -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "400": {"description": "Bad request", **ref},
        "404": {"description": "Not found", **ref},
        "409": {"description": "Conflict", **ref},
    }


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


def build_document(collections: list[Collection]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for coll in collections:
        spec = coll.spec
        name = spec.singular.capitalize()
        schemas[name] = {
            "type": "object",
            "properties": {key: {} for key in sorted(visible_keys(spec))},
        }
        ref = {"$ref": f"#/components/schemas/{name}"}
        one = {"type": "object", "properties": {spec.singular: ref}}
        many = {"type": "object", "properties": {spec.plural: {"type": "array", "items": ref}}}
        base = spec.url_path
        item = f"{base}/{{id}}"
        paths[base] = {
            "get": {
                "summary": f"List {spec.plural}",
                "responses": {"200": _ok("OK", many), **_errors()},
            }
        }
        paths[item] = {
            "get": {
                "summary": f"Show a {spec.singular}",
                "responses": {"200": _ok("OK", one), **_errors()},
            }
        }
        if coll.create:
            paths[base]["post"] = {
                "summary": f"Create a {spec.singular}",
                "requestBody": {"content": {"application/json": {"schema": one}}},
                "responses": {"201": _ok("Created", one), **_errors()},
            }
        if coll.update:
            paths[item]["put"] = {
                "summary": f"Update a {spec.singular}",
                "requestBody": {"content": {"application/json": {"schema": one}}},
                "responses": {"200": _ok("OK", one), **_errors()},
            }
        if coll.delete:
            paths[item]["delete"] = {
                "summary": f"Delete a {spec.singular}",
                "responses": {"204": _ok("Deleted"), **_errors()},
            }
    for action in ("add_router_interface", "remove_router_interface"):
        paths[f"/v2.0/routers/{{id}}/{action}"] = {
            "put": {
                "summary": action.replace("_", " "),
                "responses": {"200": _ok("OK"), **_errors()},
            }
        }
    paths["/v2.0/routers/{id}/l3-agents"] = {
        "get": {"summary": "L3 agents hosting a router", "responses": {"200": _ok("OK")}}
    }
    paths["/v2.0/agents/{id}/l3-routers"] = {
        "get": {"summary": "Routers hosted by an L3 agent", "responses": {"200": _ok("OK")}}
    }
    paths["/v2.0/extensions"] = {"get": {"summary": "Extensions", "responses": {"200": _ok("OK")}}}
    paths["/"] = {"get": {"summary": "API versions", "responses": {"200": _ok("OK")}}}
    for path, methods in DVR_PATHS.items():
        paths[path] = {
            method: {"summary": summary, "responses": {"200": _ok("OK"), **_errors()}}
            for method, summary in methods.items()
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dvr server: Neutron API v2.0 and the dvr agent protocol",
            "version": "2.0",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_endpoint(collections: list[Collection]):  # type: ignore[no-untyped-def]
    document = build_document(collections)

    async def handler(request: Request) -> Response:
        return json_response(document)

    return handler
