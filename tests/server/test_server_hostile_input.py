"""Hostile input at the API boundary (issue "The API under fire"): every case answers a
Neutron-shaped 4xx with Neutron's type, changes nothing, and every list still works after it.

Each test runs on SQLite and on PostgreSQL (the ``api`` fixture)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from server_helpers import UPPER_POOL

LISTS = ("networks", "subnets", "ports", "routers", "floatingips", "agents")
SURROGATE = "\ud800"  # valid JSON as an escape, not valid Unicode


@pytest.fixture
def cloud(api):
    net = api.network("blue", availability_zone_hints=["nova"])
    sub = api.subnet(net["id"], "198.51.100.0/24", allocation_pools=UPPER_POOL)
    ext = api.network("ext", **{"router:external": True})
    api.subnet(ext["id"], "203.0.113.0/24")
    router = api.router()
    api.add_interface(router["id"], subnet_id=sub["id"])
    port = api.port(net["id"], host="h1", fixed_ips=[{"ip_address": "198.51.100.50"}])
    api.register("h1", tunnel_ip="198.18.0.11")
    api.call("PUT", f"/v2.0/networks/{net['id']}/tags", {"tags": ["red"]}, expect=200)
    return {"net": net, "sub": sub, "ext": ext, "router": router, "port": port}


def snapshot(api) -> dict[str, Any]:
    """Every collection as a client lists it (each list must answer 200)."""
    result = {}
    for plural in LISTS:
        response = api.client.get(f"/v2.0/{plural}")
        assert response.status_code == 200, (plural, response.text)
        result[plural] = response.json()[plural]
    result["agents"] = [{**a, "heartbeat_timestamp": None} for a in result["agents"]]
    return result


def send(api, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
         params: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    content = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    response = api.client.request(method, path, content=content, params=params,
                                  headers={"Content-Type": "application/json"})
    payload = response.json()
    assert set(payload) == {"NeutronError"}, payload
    return response.status_code, payload["NeutronError"]


def refused(api, expected: tuple[int, str], method: str, path: str, body: Any = None,
            **kwargs: Any) -> dict[str, str]:
    """Send a request that must be refused; assert its status/type and that nothing changed."""
    before = snapshot(api)
    status, error = send(api, method, path, body, **kwargs)
    assert (status, error["type"]) == expected, error
    assert snapshot(api) == before
    return error


def deep(depth: int) -> bytes:
    return b'{"network": ' + b"[" * depth + b"]" * depth + b"}"


# -- strings that are not Unicode -------------------------------------------------------------


def test_tag_with_lone_surrogate_is_refused_and_lists_keep_working(api, cloud):
    net = cloud["net"]["id"]
    refused(api, (400, "HTTPBadRequest"), "PUT", f"/v2.0/networks/{net}/tags",
            {"tags": ["ok", SURROGATE]})
    refused(api, (400, "HTTPBadRequest"), "POST", "/v2.0/networks",
            {"network": {"name": "x", SURROGATE: 1}})
    assert api.show("network", net)["tags"] == ["red"]


@pytest.mark.parametrize(
    ("path", "resource", "attribute", "value"),
    [
        ("ports", "port", "binding:profile", {"k": SURROGATE}),
        ("ports", "port", "binding:profile", {SURROGATE: "v"}),
        ("ports", "port", "security_groups", [SURROGATE]),
        ("ports", "port", "name", SURROGATE),
        ("ports", "port", "binding:host_id", "h" + SURROGATE),
        ("networks", "network", "availability_zone_hints", [SURROGATE]),
        ("networks", "network", "name", "a" + SURROGATE + "b"),
        ("routers", "router", "name", SURROGATE),
    ],
)
def test_surrogates_refused_on_create_and_update(api, cloud, path, resource, attribute, value):
    body: dict[str, Any] = {attribute: value}
    if resource == "port":
        body["network_id"] = cloud["net"]["id"]
    refused(api, (400, "HTTPBadRequest"), "POST", f"/v2.0/{path}", {resource: body})
    target = {"port": cloud["port"], "network": cloud["net"], "router": cloud["router"]}[resource]
    update = {attribute: value}
    if attribute == "availability_zone_hints" or attribute == "security_groups":
        return  # not updatable here
    refused(api, (400, "HTTPBadRequest"), "PUT", f"/v2.0/{path}/{target['id']}",
            {resource: update})


def test_agent_host_with_surrogate_is_refused(api, cloud):
    refused(api, (400, "HTTPBadRequest"), "POST", "/dvr/v1/agents",
            {"host": "h" + SURROGATE, "agent_mode": "dvr", "tunnel_ip": "198.18.0.12"})


# -- JSON that is too deep, numbers that are not finite ----------------------------------------


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deep_json_is_refused_everywhere(api, cloud, depth):
    router, net = cloud["router"]["id"], cloud["net"]["id"]
    bodies = {
        ("POST", "/v2.0/networks"): deep(depth),
        ("PUT", f"/v2.0/networks/{net}"): deep(depth),
        ("PUT", f"/v2.0/networks/{net}/tags"): b'{"tags": ' + b"[" * depth + b"]" * depth + b"}",
        ("PUT", f"/v2.0/routers/{router}/add_router_interface"):
            b'{"subnet_id": ' + b"[" * depth + b"]" * depth + b"}",
        ("POST", "/dvr/v1/agents"): b'{"host": ' + b"{" * 0 + b"[" * depth + b"]" * depth + b"}",
    }
    for (method, path), raw in bodies.items():
        error = refused(api, (400, "HTTPBadRequest"), method, path, raw=raw)
        assert "nested deeper" in error["message"], (path, error)


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"Infinity", b"-Infinity", b"NaN",
                                    b"9" * 30, b"99999999999"])
def test_numbers_out_of_range_are_refused(api, cloud, number):
    refused(api, (400, "HTTPBadRequest"), "POST", "/v2.0/networks",
            raw=b'{"network": {"name": "n", "mtu": ' + number + b"}}")
    refused(api, (400, "HTTPBadRequest"), "PUT", f"/v2.0/networks/{cloud['net']['id']}",
            raw=b'{"network": {"mtu": ' + number + b"}}")


def test_fractional_integer_is_refused(api, cloud):
    refused(api, (400, "HTTPBadRequest"), "POST", "/v2.0/networks",
            {"network": {"mtu": 1400.5}})


# -- the query string -------------------------------------------------------------------------


@pytest.mark.parametrize("plural", LISTS)
def test_page_reverse_must_be_a_boolean(api, cloud, plural):
    error = refused(api, (400, "HTTPBadRequest"), "GET", f"/v2.0/{plural}",
                    params={"limit": "1", "page_reverse": "maybe"})
    assert "page_reverse" in error["message"]


@pytest.mark.parametrize(
    ("plural", "params"),
    [
        ("networks", {"mtu": "abc"}),
        ("networks", {"admin_state_up": "maybe"}),
        ("networks", {"provider:segmentation_id": "x"}),
        ("subnets", {"ip_version": "abc"}),
        ("networks", {"revision_number": "1.5"}),
        ("networks", {"sort_key": "tags"}),
        ("networks", {"sort_key": "subnets"}),
        ("ports", {"sort_key": "fixed_ips"}),
        ("ports", {"fixed_ips": "bogus"}),
        ("ports", {"fixed_ips": "mac_address=fa:16:3e:00:00:01"}),
        ("ports", {"fixed_ips": "ip_address="}),
        ("networks", {"no_such_attribute": "1"}),
    ],
)
def test_bad_filters_and_sort_keys_are_refused(api, cloud, plural, params):
    refused(api, (400, "HTTPBadRequest"), "GET", f"/v2.0/{plural}", params=params)


def test_valid_typed_filters_still_match(api, cloud):
    mtu = api.show("network", cloud["net"]["id"])["mtu"]
    assert [n["id"] for n in api.list("network", mtu=f"0{mtu}", name="blue")] == [
        cloud["net"]["id"]
    ]
    assert len(api.list("subnet", ip_version="4")) == 2
    assert api.list("subnet", ip_version="6") == []
    assert [p["id"] for p in api.list("port", fixed_ips="ip_address=198.51.100.50")] == [
        cloud["port"]["id"]
    ]


# -- sizes and counts (Neutron's limits) --------------------------------------------------------


def test_body_above_the_limit_is_413(api, cloud):
    limit = api.context.config.limits.max_request_body_bytes
    name = "x" * (limit + 1)
    refused(api, (413, "HTTPRequestEntityTooLarge"), "POST", "/v2.0/networks",
            {"network": {"name": name}})


def test_chunked_body_above_the_limit_is_413(api, cloud):
    limit = api.context.config.limits.max_request_body_bytes
    before = snapshot(api)

    def chunks():
        yield b'{"network": {"name": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}}'

    response = api.client.post("/v2.0/networks", content=chunks(),
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["NeutronError"]["type"] == "HTTPRequestEntityTooLarge"
    assert snapshot(api) == before


def ips(prefix: str, count: int) -> list[str]:
    return [f"{prefix}.{i}" for i in range(1, count + 1)]


def test_count_limits_use_neutron_exception_types(api, cloud):
    limits = api.context.config.limits
    net, sub = cloud["net"]["id"], cloud["sub"]["id"]
    too_many_dns = ips("192.0.2", limits.max_dns_nameservers + 1)
    error = refused(api, (400, "DNSNameServersExhausted"), "PUT", f"/v2.0/subnets/{sub}",
                    {"subnet": {"dns_nameservers": too_many_dns}})
    assert sub in error["message"]
    refused(api, (400, "DNSNameServersExhausted"), "POST", "/v2.0/subnets",
            {"subnet": {"network_id": net, "cidr": "192.0.2.0/24", "ip_version": 4,
                        "dns_nameservers": too_many_dns}})
    routes = [{"destination": f"10.{i}.0.0/16", "nexthop": "198.51.100.9"}
              for i in range(limits.max_subnet_host_routes + 1)]
    refused(api, (400, "HostRoutesExhausted"), "PUT", f"/v2.0/subnets/{sub}",
            {"subnet": {"host_routes": routes}})
    pairs = [{"ip_address": ip} for ip in ips("192.0.2", limits.max_allowed_address_pair + 1)]
    refused(api, (400, "AllowedAddressPairExhausted"), "PUT",
            f"/v2.0/ports/{cloud['port']['id']}", {"port": {"allowed_address_pairs": pairs}})
    router_routes = [{"destination": f"10.{i}.0.0/16", "nexthop": "198.51.100.9"}
                     for i in range(limits.max_routes + 1)]
    refused(api, (400, "RoutesExhausted"), "PUT", f"/v2.0/routers/{cloud['router']['id']}",
            {"router": {"routes": router_routes}})
    tags = [f"t{i}" for i in range(limits.max_tags + 1)]
    refused(api, (400, "InvalidInput"), "PUT", f"/v2.0/networks/{net}/tags", {"tags": tags})


def test_counts_at_the_limit_are_accepted(api, cloud):
    limits = api.context.config.limits
    sub = cloud["sub"]["id"]
    dns = ips("192.0.2", limits.max_dns_nameservers)
    assert api.update("subnet", sub, dns_nameservers=dns)["dns_nameservers"] == dns
    tags = sorted(f"t{i}" for i in range(limits.max_tags))
    net = cloud["net"]["id"]
    assert api.call("PUT", f"/v2.0/networks/{net}/tags", {"tags": tags}, expect=200)["tags"] == tags


@pytest.mark.parametrize(("path", "resource", "attribute"),
                         [("subnets", "subnet", "host_routes"), ("routers", "router", "routes")])
def test_routes_must_be_a_list(api, cloud, path, resource, attribute):
    target = cloud["sub"] if resource == "subnet" else cloud["router"]
    refused(api, (400, "HTTPBadRequest"), "PUT", f"/v2.0/{path}/{target['id']}",
            {resource: {attribute: {}}})


# -- what still goes wrong inside -------------------------------------------------------------


def test_rows_stored_by_an_older_version_still_render(api, cloud, db_url):
    """A lone surrogate that an older version let into a JSON column lists and shows again."""
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's jsonb never stored lone surrogates")
    import sqlalchemy as sa

    from dvr.db.tables import networks

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.update(networks).where(networks.c.id == cloud["net"]["id"])
                     .values(tags=["red", SURROGATE]))
    engine.dispose()
    listed = api.client.get("/v2.0/networks")
    assert listed.status_code == 200
    [net] = [n for n in listed.json()["networks"] if n["id"] == cloud["net"]["id"]]
    assert net["tags"] == ["red", SURROGATE]
    assert api.client.get(f"/v2.0/networks/{cloud['net']['id']}").status_code == 200
    api.call("PUT", f"/v2.0/networks/{cloud['net']['id']}/tags", {"tags": ["red"]}, expect=200)
    assert api.show("network", cloud["net"]["id"])["tags"] == ["red"]


# -- Neutron's address rules ----------------------------------------------------------------


@pytest.mark.parametrize("address", ["198.51.100.0", "198.51.100.255"])
def test_fixed_ip_on_network_or_broadcast_address_is_refused(api, cloud, address):
    refused(api, (400, "InvalidIpForSubnet"), "POST", "/v2.0/ports",
            {"port": {"network_id": cloud["net"]["id"], "fixed_ips": [{"ip_address": address}]}})
    refused(api, (400, "InvalidIpForSubnet"), "PUT", f"/v2.0/ports/{cloud['port']['id']}",
            {"port": {"fixed_ips": [{"subnet_id": cloud["sub"]["id"], "ip_address": address}]}})


def test_fixed_ip_at_the_edges_of_a_slash_31_is_fine(api, cloud):
    net = api.network("p2p")
    sub = api.subnet(net["id"], "192.0.2.0/31", gateway_ip=None)
    port = api.port(net["id"], fixed_ips=[{"subnet_id": sub["id"], "ip_address": "192.0.2.0"}])
    assert port["fixed_ips"][0]["ip_address"] == "192.0.2.0"


def test_route_via_the_routers_own_address_is_refused(api, cloud):
    router = cloud["router"]["id"]
    own = api.show("subnet", cloud["sub"]["id"])["gateway_ip"]
    error = refused(api, (400, "InvalidRoutes"), "PUT", f"/v2.0/routers/{router}",
                    {"router": {"routes": [{"destination": "10.1.0.0/16", "nexthop": own}]}})
    assert "used by router" in error["message"]
    api.set_gateway(router, cloud["ext"]["id"])
    [gateway_ip] = [i["ip_address"] for i in
                    api.show("router", router)["external_gateway_info"]["external_fixed_ips"]]
    refused(api, (400, "InvalidRoutes"), "PUT", f"/v2.0/routers/{router}",
            {"router": {"routes": [{"destination": "10.1.0.0/16", "nexthop": gateway_ip}]}})


def test_gateway_on_an_external_network_without_subnets(api, cloud):
    bare = api.network("bare-ext", **{"router:external": True})
    router = api.router("gw-only")
    info = api.set_gateway(router["id"], bare["id"])["external_gateway_info"]
    assert info["network_id"] == bare["id"] and info["external_fixed_ips"] == []
    [gateway] = api.list("port", device_id=router["id"], device_owner="network:router_gateway")
    assert gateway["fixed_ips"] == []
    snapshot(api)
