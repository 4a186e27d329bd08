"""The served OpenAPI document: valid 3.1, complete, and in step with the routes."""

from __future__ import annotations

import re
import warnings

from starlette.routing import Route

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import schemathesis

from dvr.server.api.availability import (
    AVAILABILITY_ZONE_SPEC,
    IP_AVAILABILITY_SPEC,
    SERVICE_PROVIDER_SPEC,
)
from dvr.server.api.openapi import title
from dvr.server.app import COLLECTIONS
from dvr.server.attributes import attribute_names, attribute_schema

UNDESCRIBED = {"/ui", "/ui/"}  # the web view's page (HTML); its assets are a Mount


def document(api):  # type: ignore[no-untyped-def]
    return api.call("GET", "/openapi.json", expect=200)


def operations(doc):  # type: ignore[no-untyped-def]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            yield path, method, op


def test_document_is_valid_openapi_3_1(api):
    doc = document(api)
    assert doc["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(doc).validate()


def test_every_route_is_described_and_nothing_else(api):
    routes = {
        (route.path, method.lower())
        for route in api.client.app.routes
        if isinstance(route, Route) and route.path not in UNDESCRIBED
        for method in route.methods or ()
        if method != "HEAD"
    }
    described = {(path, method) for path, method, _ in operations(document(api))}
    assert described == routes


def test_every_operation_declares_its_path_parameters(api):
    for path, method, op in operations(document(api)):
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)


def test_lookups_by_id_declare_404_and_bodies_declare_400_and_413(api):
    doc = document(api)
    for path, method, op in operations(doc):
        if "{" in path:  # an unknown object, or a value with "/" (no route then)
            assert "404" in op["responses"], (method, path)
        if "requestBody" in op:
            assert {"400", "413"} <= set(op["responses"]), (method, path)
    assert "404" in doc["paths"]["/v2.0/routers/{id}/l3-agents"]["get"]["responses"]
    assert "404" in doc["paths"]["/v2.0/agents/{id}/l3-routers"]["get"]["responses"]


def test_attributes_are_typed_from_the_specs(api):
    schemas = document(api)["components"]["schemas"]
    read_only = (AVAILABILITY_ZONE_SPEC, SERVICE_PROVIDER_SPEC, IP_AVAILABILITY_SPEC)
    for spec in (*(coll.spec for coll in COLLECTIONS), *read_only):
        shown = schemas[title(spec)]
        assert set(shown["properties"]) == attribute_names(spec)
        for name in attribute_names(spec):
            assert shown["properties"][name] == attribute_schema(spec, name)
            assert shown["properties"][name], f"{spec.singular}.{name} is untyped"


def test_create_bodies_follow_post_put_and_required(api):
    paths = document(api)["paths"]
    body = paths["/v2.0/subnets"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    single = body["anyOf"][0]["properties"]["subnet"]
    assert single["required"] == ["network_id"]
    assert single["additionalProperties"] is False
    assert single["properties"]["dns_nameservers"]["maxItems"] == 5  # ApiLimits
    update = paths["/v2.0/subnets/{id}"]["put"]["requestBody"]["content"]["application/json"]
    assert "network_id" not in update["schema"]["properties"]["subnet"]["properties"]
    links = paths["/v2.0/networks"]["post"]["responses"]["201"]["links"]
    assert links["ShowNetwork"]["parameters"] == {"id": "$response.body#/network/id"}
    assert links["CreateSubnet"]["requestBody"] == {
        "subnet": {"network_id": "$response.body#/network/id"}
    }


def body_schema(op):  # type: ignore[no-untyped-def]
    return op["requestBody"]["content"]["application/json"]["schema"]


def test_pools_scheduling_and_tag_creation_are_typed(api):
    paths = document(api)["paths"]
    pool = paths["/v2.0/subnetpools"]["post"]
    links = pool["responses"]["201"]["links"]
    assert {"AddSubnetPoolPrefixes", "RemoveSubnetPoolPrefixes"} <= set(links)
    add_prefixes = paths["/v2.0/subnetpools/{id}/add_prefixes"]["put"]
    prefixes = body_schema(add_prefixes)["properties"]["prefixes"]
    assert prefixes["items"] == {"type": "string", "format": "cidr"}
    assert prefixes["uniqueItems"] is True
    assert "/v2.0/address-scopes/{id}" in paths
    schedule = paths["/v2.0/agents/{id}/l3-routers"]["post"]
    assert body_schema(schedule)["required"] == ["router_id"]
    assert {"201", "400", "404", "409"} <= set(schedule["responses"])
    unschedule = paths["/v2.0/agents/{id}/l3-routers/{router_id}"]["delete"]
    assert {"204", "404", "409"} <= set(unschedule["responses"])
    add_many = paths["/v2.0/networks/{id}/tags"]["post"]
    assert body_schema(add_many)["properties"]["tags"]["maxItems"] == 50  # ApiLimits
    assert "201" in add_many["responses"]
    network_links = paths["/v2.0/networks"]["post"]["responses"]["201"]["links"]
    assert network_links["ShowNetworkIpAvailability"]["parameters"] == {
        "network_id": "$response.body#/network/id"
    }
