"""Building blocks of the OpenAPI document: error responses, parameters, bodies, operations."""

from __future__ import annotations

from typing import Any

from dvr.server.validate import JsonSchema

ERROR_REF = "#/components/schemas/Error"
ERROR_SCHEMA: JsonSchema = {
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
            "additionalProperties": False,
        }
    },
    "required": ["NeutronError"],
    "additionalProperties": False,
}

ERROR_DESCRIPTIONS = {
    400: "Bad request: the body, a parameter or a value is invalid (Neutron's type names)",
    401: "No valid X-Auth-Token (none, unknown, revoked or rotated)",
    403: "The caller's identity may not make this call (a host credential outside its own "
         "host's agent protocol)",
    404: "Not found: the object, or the URL",
    409: "Conflict with the current state (HostIdentityConflict: the admin may not change "
         "the tunnel IP or mode of a host that has a credential)",
    413: "The request body is larger than the server's limit",
    429: "Too many failed authentications from this address (see Retry-After)",
    503: "ServiceUnavailable (see Retry-After): the server is overloaded or its database "
         "unreachable; or a resource pool is exhausted",
}
AUTH_ERRORS = (401, 403, 429)  # any operation that is not public
BODY_ERRORS = (400, 413)  # any operation that reads a JSON body
LOAD_ERRORS = (503,)  # any operation: load shedding, the database unreachable


def json_content(schema: JsonSchema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def path_param(name: str, schema: JsonSchema, description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
    if description:
        param["description"] = description
    return param


def query_param(
    name: str, schema: JsonSchema, description: str = "", required: bool = False
) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        param["description"] = description
    if schema.get("type") == "array":
        param["style"] = "form"
        param["explode"] = True
    return param


def request_body(schema: JsonSchema, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": json_content(schema)}


def operation(
    operation_id: str,
    summary: str,
    ok: tuple[int, str, JsonSchema | None],
    errors: tuple[int, ...] = (),
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    links: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
    public: bool = False,
) -> dict[str, Any]:
    """One operation: its success response (status, description, schema or None for no
    body), and every error status it can answer (401 unless ``public``; 400 and 413 when it
    reads a body; 401, 403 and 429 unless ``public``)."""
    status, description, schema = ok
    success: dict[str, Any] = {"description": description}
    if schema is not None:
        success["content"] = json_content(schema)
    if links:
        success["links"] = links
    codes = set(errors) | set(LOAD_ERRORS) | (set(BODY_ERRORS) if body is not None else set())
    if not public:
        codes.update(AUTH_ERRORS)
    responses: dict[str, Any] = {str(status): success}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": ERROR_DESCRIPTIONS[code],
            "content": json_content({"$ref": ERROR_REF}),
        }
    result: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if tags:
        result["tags"] = list(tags)
    if parameters:
        result["parameters"] = parameters
    if body is not None:
        result["requestBody"] = body
    result["responses"] = responses
    if public:
        result["security"] = []
    return result


def link(operation_id: str, parameters: dict[str, str] | None = None,
         body: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = {"operationId": operation_id}
    if parameters:
        result["parameters"] = parameters
    if body is not None:
        result["requestBody"] = body
    return result


def obj(properties: dict[str, JsonSchema], required: tuple[str, ...] = (),
        additional: bool | JsonSchema = True) -> JsonSchema:
    result: JsonSchema = {"type": "object", "properties": properties}
    if required:
        result["required"] = list(required)
    if additional is not True:
        result["additionalProperties"] = additional
    return result
