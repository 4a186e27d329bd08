"""The documents a client reads first: versions, resources, extensions, OpenAPI."""


def test_version_document(api):
    response = api.client.get("/")
    assert response.status_code == 200
    assert response.headers["x-openstack-request-id"].startswith("req-")
    body = response.json()
    assert body["versions"][0]["id"] == "v2.0"
    assert body["versions"][0]["status"] == "CURRENT"
    assert body["versions"][0]["links"][0]["href"].endswith("/v2.0/")


def test_resource_list(api):
    names = {r["collection"] for r in api.call("GET", "/v2.0/", expect=200)["resources"]}
    assert {"networks", "subnets", "ports", "routers", "floatingips", "agents"} <= names


def test_extensions(api):
    extensions = api.call("GET", "/v2.0/extensions", expect=200)["extensions"]
    aliases = {e["alias"] for e in extensions}
    assert {
        "router",
        "dvr",
        "external-net",
        "extraroute",
        "binding",
        "agent",
        "l3_agent_scheduler",
        "allowed-address-pairs",
        "provider",
        "net-mtu",
        "pagination",
        "sorting",
    } <= aliases
    assert "trunk" not in aliases and "external-gateway-multihoming" not in aliases
    assert all(set(e) == {"name", "alias", "description", "updated", "links"} for e in extensions)
    assert api.call("GET", "/v2.0/extensions/dvr", expect=200)["extension"]["alias"] == "dvr"
    status, error = api.error("GET", "/v2.0/extensions/trunk")
    assert status == 404


def test_openapi_document(api):
    document = api.call("GET", "/openapi.json", expect=200)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in (
        "/v2.0/networks",
        "/v2.0/ports/{id}",
        "/v2.0/routers/{id}/add_router_interface",
        "/dvr/v1/hosts/{host}/view",
        "/dvr/v1/hosts/{host}/watch",
    ):
        assert path in paths
    assert set(paths["/v2.0/networks"]) == {"get", "post"}
    assert set(paths["/v2.0/networks/{id}"]) == {"get", "put", "delete"}
    assert "Error" in document["components"]["schemas"]
