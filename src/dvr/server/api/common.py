"""Plumbing shared by the Neutron collections: JSON responses, list/show/create/update/delete
routes built from one description per resource."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.server.attributes import (
    ResourceSpec,
    attribute_names,
    check_count_limits,
    decode_json,
    filter_types,
    parse_body,
)
from dvr.server.context import ServerContext
from dvr.server.errors import http_bad_request
from dvr.server.jsonbody import SafeJSONResponse
from dvr.server.listing import (
    Query,
    apply_filters,
    apply_sort,
    paginate,
    select_fields,
    validated_filters,
)
from dvr.server.tx import ReadTx, WriteTx
from dvr.server.validate import is_plain_text


def json_response(data: Any, status: int = 200) -> SafeJSONResponse:
    return SafeJSONResponse(data, status_code=status)


def query_of(request: Request) -> Query:
    return Query.from_pairs(request.query_params.multi_items())


def visible_keys(spec: ResourceSpec) -> set[str]:
    return attribute_names(spec)


def list_payload(
    request: Request, spec: ResourceSpec, items: list[dict[str, Any]]
) -> dict[str, Any]:
    query = query_of(request)
    allowed = visible_keys(spec)
    types = filter_types(spec)
    items = apply_filters(items, validated_filters(query.filters(), types), allowed)
    items = apply_sort(items, query, allowed, types.unsortable)
    page = paginate(items, query, str(request.url.replace(query="")), spec.singular)
    payload: dict[str, Any] = {spec.plural: [select_fields(i, query.fields) for i in page.items]}
    if page.links:
        payload[f"{spec.plural}_links"] = page.links
    return payload


@dataclass(frozen=True)
class Collection:
    """How one Neutron collection is listed, shown, created, updated and deleted."""

    spec: ResourceSpec
    list_items: Callable[[ReadTx, dict[str, list[str]]], list[dict[str, Any]]]
    show: Callable[[ReadTx, str], dict[str, Any]]
    create: Callable[[WriteTx, dict[str, Any]], dict[str, Any]] | None = None
    update: Callable[[WriteTx, str, dict[str, Any]], dict[str, Any]] | None = None
    delete: Callable[[WriteTx, str], None] | None = None
    # run before a list is read (e.g. to create what a first list creates)
    before_list: Callable[[ServerContext, dict[str, list[str]]], Awaitable[None]] | None = None


def collection_routes(context: ServerContext, coll: Collection) -> list[Route]:
    spec = coll.spec
    base = spec.url_path

    async def list_(request: Request) -> Response:
        filters = query_of(request).filters()
        if coll.before_list is not None:
            await coll.before_list(context, filters)
        items = await context.read(lambda tx: coll.list_items(tx, filters))
        return json_response(list_payload(request, spec, items))

    async def show(request: Request) -> Response:
        object_id = request.path_params["id"]
        item = await context.read(lambda tx: coll.show(tx, object_id))
        return json_response({spec.singular: select_fields(item, query_of(request).fields)})

    async def create(request: Request) -> Response:
        raw = await request.body()
        data = decode_json(raw)
        if isinstance(data, dict) and spec.plural in data:
            bodies = _bulk_bodies(data, spec)
            for bulk_body in bodies:
                check_count_limits(spec, bulk_body, context.config.limits)

            def work_bulk(tx: WriteTx) -> list[dict[str, Any]]:
                return [coll.create(tx, body) for body in bodies]  # type: ignore[misc]

            items = await context.write(work_bulk)
            return json_response({spec.plural: items}, 201)
        body = parse_body(raw, spec, "POST")
        check_count_limits(spec, body, context.config.limits)
        item = await context.write(lambda tx: coll.create(tx, body))  # type: ignore[misc]
        return json_response({spec.singular: item}, 201)

    async def update(request: Request) -> Response:
        object_id = request.path_params["id"]
        body = parse_body(await request.body(), spec, "PUT")
        check_count_limits(spec, body, context.config.limits, object_id)
        item = await context.write(lambda tx: coll.update(tx, object_id, body))  # type: ignore[misc]
        return json_response({spec.singular: item})

    async def delete(request: Request) -> Response:
        object_id = request.path_params["id"]
        await context.write(lambda tx: coll.delete(tx, object_id))  # type: ignore[misc]
        return Response(status_code=204)

    routes = [Route(base, list_, methods=["GET"])]
    if coll.create is not None:
        routes.append(Route(base, create, methods=["POST"]))
    routes.append(Route(base + "/{id}", show, methods=["GET"]))
    if coll.update is not None:
        routes.append(Route(base + "/{id}", update, methods=["PUT"]))
    if coll.delete is not None:
        routes.append(Route(base + "/{id}", delete, methods=["DELETE"]))
    return routes


def _bulk_bodies(data: dict[str, Any], spec: ResourceSpec) -> list[dict[str, Any]]:
    items = data[spec.plural]
    if not isinstance(items, list) or not items:
        raise http_bad_request("Resources required")
    return [parse_body(json.dumps({spec.singular: i}).encode(), spec, "POST") for i in items]


def prefilter(table: Any, filters: dict[str, list[str]], columns: dict[str, str]) -> list[Any]:
    """SQL ``IN`` clauses for filters on plain string columns (the rest is done in Python)."""
    return [
        table.c[column].in_([v for v in filters[key] if is_plain_text(v)])
        for key, column in columns.items()
        if key in filters
    ]


ListAction = Callable[[WriteTx, str, list[Any]], Any]


def list_action_routes(
    context: ServerContext,
    spec: ResourceSpec,
    key: str,
    convert: Callable[[Any], list[Any]],
    actions: dict[str, ListAction],
    answer_key: str,
) -> list[Route]:
    """``PUT <collection>/{id}/<action>`` with ``{"<key>": [...]}``: each action changes a
    list of the object (add_prefixes, remove_addresses, ...); answers ``{answer_key: ...}``.
    """

    def handler(operation: ListAction) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            object_id = request.path_params["id"]
            items = _list_of(await request.body(), key, convert)
            result = await context.write(lambda tx: operation(tx, object_id, items))
            return json_response({answer_key: result})

        return handle

    base = spec.url_path + "/{id}"
    return [
        Route(f"{base}/{action}", handler(operation), methods=["PUT"])
        for action, operation in actions.items()
    ]


def _list_of(raw: bytes, key: str, convert: Callable[[Any], list[Any]]) -> list[Any]:
    body = decode_json(raw)
    if not isinstance(body, dict) or key not in body:
        raise http_bad_request(f"Unable to find '{key}' in request body")
    try:
        return convert(body[key])
    except ValueError as exc:
        raise http_bad_request(f"Invalid input for {key}. Reason: {exc}.") from None
