"""Tags on any resource: /v2.0/<collection>/<id>/tags[/<tag>] (standard-attr-tag)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, update
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.db.tables import (
    floatingips,
    networks,
    ports,
    routers,
    security_groups,
    subnetpools,
    subnets,
)
from dvr.server.api.common import json_response
from dvr.server.attributes import decode_json
from dvr.server.context import ServerContext
from dvr.server.errors import NotFoundError, http_bad_request, invalid_input
from dvr.server.services.common import get_row
from dvr.server.tx import ReadTx, WriteTx
from dvr.server.validate import is_plain_text

TABLES: dict[str, tuple[Table, str]] = {
    "networks": (networks, "network"),
    "subnets": (subnets, "subnet"),
    "ports": (ports, "port"),
    "routers": (routers, "router"),
    "floatingips": (floatingips, "floatingip"),
    "subnetpools": (subnetpools, "subnetpool"),
    "security-groups": (security_groups, "security_group"),
}


def _valid_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not tag or not is_plain_text(tag) or "," in tag or "/" in tag:
        raise http_bad_request(f"Invalid input for operation: '{tag}' is not a valid tag.")
    return tag


def _get_tags(tx: ReadTx, collection: str, object_id: str) -> list[str]:
    table, resource = TABLES[collection]
    return list(get_row(tx.conn, table, resource, object_id).tags or [])


def _set_tags(tx: WriteTx, collection: str, object_id: str, tags: list[str]) -> list[str]:
    table, resource = TABLES[collection]
    get_row(tx.conn, table, resource, object_id)
    unique = sorted(set(tags))
    if len(unique) > tx.config.limits.max_tags:
        raise invalid_input(
            f"the number of tags ({len(unique)}) exceeds the maximum "
            f"{tx.config.limits.max_tags} per resource."
        )
    tx.conn.execute(
        update(table)
        .where(table.c.id == object_id)
        .values(tags=unique, updated_at=tx.now, revision_number=table.c.revision_number + 1)
    )
    return unique


def _tag_not_found(object_id: str, tag: str) -> NotFoundError:
    return NotFoundError(
        f"Tag {tag} could not be found for resource {object_id}.", type_name="TagNotFound"
    )


async def _tags_body(request: Request) -> list[str]:
    """The valid tags of a ``{"tags": [...]}`` body (400 otherwise)."""
    body = decode_json(await request.body())
    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise http_bad_request("Invalid tags body")
    return [_valid_tag(t) for t in body["tags"]]


def routes(context: ServerContext) -> list[Route]:
    async def get_all(request: Request) -> Response:
        c, i = request.path_params["collection"], request.path_params["id"]
        return json_response({"tags": await context.read(lambda tx: _get_tags(tx, c, i))})

    async def replace_all(request: Request) -> Response:
        c, i = request.path_params["collection"], request.path_params["id"]
        tags = await _tags_body(request)
        result = await context.write(lambda tx: _set_tags(tx, c, i, tags))
        return json_response({"tags": result})

    async def add_many(request: Request) -> Response:
        """``POST .../tags`` (tag-creation): add the given tags to those already there."""
        c, i = request.path_params["collection"], request.path_params["id"]
        tags = await _tags_body(request)
        result = await context.write(lambda tx: _set_tags(tx, c, i, [*_get_tags(tx, c, i), *tags]))
        return json_response({"tags": result}, 201)

    async def delete_all(request: Request) -> Response:
        c, i = request.path_params["collection"], request.path_params["id"]
        await context.write(lambda tx: _set_tags(tx, c, i, []))
        return Response(status_code=204)

    async def check_one(request: Request) -> Response:
        c, i, tag = (request.path_params[k] for k in ("collection", "id", "tag"))
        if tag not in await context.read(lambda tx: _get_tags(tx, c, i)):
            raise _tag_not_found(i, tag)
        return Response(status_code=204)

    async def add_one(request: Request) -> Response:
        c, i, tag = (request.path_params[k] for k in ("collection", "id", "tag"))
        _valid_tag(tag)
        await context.write(lambda tx: _set_tags(tx, c, i, [*_get_tags(tx, c, i), tag]))
        return Response(status_code=201)

    async def delete_one(request: Request) -> Response:
        c, i, tag = (request.path_params[k] for k in ("collection", "id", "tag"))

        def work(tx: WriteTx) -> None:
            tags = _get_tags(tx, c, i)
            if tag not in tags:
                raise _tag_not_found(i, tag)
            _set_tags(tx, c, i, [t for t in tags if t != tag])

        await context.write(work)
        return Response(status_code=204)

    result = []
    for collection in TABLES:
        base = f"/v2.0/{collection}/{{id}}/tags"
        result += [
            Route(base, _bind(get_all, collection), methods=["GET"]),
            Route(base, _bind(replace_all, collection), methods=["PUT"]),
            Route(base, _bind(add_many, collection), methods=["POST"]),
            Route(base, _bind(delete_all, collection), methods=["DELETE"]),
            Route(base + "/{tag}", _bind(check_one, collection), methods=["GET"]),
            Route(base + "/{tag}", _bind(add_one, collection), methods=["PUT"]),
            Route(base + "/{tag}", _bind(delete_one, collection), methods=["DELETE"]),
        ]
    return result


def _bind(handler, collection: str):  # type: ignore[no-untyped-def]
    async def bound(request: Request) -> Response:
        request.path_params["collection"] = collection
        return await handler(request)

    return bound
