"""Every bad input answers Neutron's error shape with Neutron's type and status — never a
500, never a half-written change."""

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import UPPER_POOL

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def world(api):
    net = api.network("blue")
    sub = api.subnet(net["id"], "198.51.100.0/24", allocation_pools=UPPER_POOL)
    ext = api.network("ext", **{"router:external": True})
    api.subnet(ext["id"], "203.0.113.0/24")
    router = api.router()
    api.add_interface(router["id"], subnet_id=sub["id"])
    api.set_gateway(router["id"], ext["id"])
    port = api.port(
        net["id"],
        host="h1",
        mac_address="fa:16:3e:00:00:aa",
        fixed_ips=[{"ip_address": "198.51.100.50"}],
    )
    fip = api.fip(ext["id"], port_id=port["id"])
    return {"net": net, "sub": sub, "ext": ext, "router": router, "port": port, "fip": fip}


def raw(api, method, path, content):
    response = api.client.request(
        method, path, content=content, headers={"Content-Type": "application/json"}
    )
    return response.status_code, response.json()["NeutronError"]


@pytest.mark.parametrize("resource", ["network", "subnet", "port", "router", "floatingip", "agent"])
@pytest.mark.parametrize("object_id", [UNKNOWN, "not-a-uuid", "1"])
def test_not_found_for_unknown_and_malformed_ids(api, resource, object_id):
    status, error = api.error("GET", f"/v2.0/{resource}s/{object_id}")
    title = {"floatingip": "FloatingIP"}.get(resource, resource.capitalize())
    assert (status, error["type"], error["detail"]) == (404, f"{title}NotFound", "")
    assert object_id in error["message"]


def test_unknown_url_and_method(api):
    status, error = api.error("GET", "/v2.0/bogus")
    assert (status, error["type"]) == (404, "HTTPNotFound")
    status, error = api.error("PATCH", "/v2.0/networks")
    assert (status, error["type"]) == (405, "HTTPMethodNotAllowed")


def test_body_errors(api):
    assert raw(api, "POST", "/v2.0/networks", b"{not json") == (
        400,
        {"type": "HTTPBadRequest", "message": "Body contains invalid data", "detail": ""},
    )
    status, error = raw(api, "POST", "/v2.0/networks", b'{"net": {}}')
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    assert "Unable to find 'network' in request body" == error["message"]
    status, error = raw(api, "POST", "/v2.0/networks", b"[]")
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    status, error = raw(api, "POST", "/v2.0/networks", b"")
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    status, error = api.error("POST", "/v2.0/networks", {"network": {"bogus_attr": 1}})
    assert (status, error["message"]) == (400, "Unrecognized attribute(s) 'bogus_attr'")
    status, error = api.error("POST", "/v2.0/networks", {"network": {"status": "DOWN"}})
    assert (status, error["message"]) == (400, "Attribute 'status' not allowed in POST")
    net = api.network()
    status, error = api.error("PUT", f"/v2.0/networks/{net['id']}", {"network": {"id": "x"}})
    assert (status, error["message"]) == (400, "Cannot update read-only attribute id")
    status, error = api.error("POST", "/v2.0/networks", {"network": {"admin_state_up": "x"}})
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    assert error["message"].startswith("Invalid input for admin_state_up. Reason:")


@pytest.mark.parametrize(
    ("case", "status", "error_type"),
    [
        ("network_in_use", 409, "NetworkInUse"),
        ("subnet_in_use", 409, "SubnetInUse"),
        ("router_in_use", 409, "RouterInUse"),
        ("ip_allocated", 409, "IpAddressAlreadyAllocated"),
        ("mac_in_use", 409, "MacAddressInUse"),
        ("fip_associated", 409, "FloatingIPPortAlreadyAssociated"),
        ("second_router", 409, "RouterInterfaceInUseByOtherRouter"),
        ("service_port", 409, "ServicePortInUse"),
        ("gateway_in_use", 409, "RouterExternalGatewayInUseByFloatingIp"),
        ("not_external", 400, "BadRequest"),
        ("bad_cidr", 400, "InvalidInput"),
    ],
)
def test_conflicts_and_bad_requests(api, world, case, status, error_type):
    requests = {
        "network_in_use": ("DELETE", f"/v2.0/networks/{world['net']['id']}", None),
        "subnet_in_use": ("DELETE", f"/v2.0/subnets/{world['sub']['id']}", None),
        "router_in_use": ("DELETE", f"/v2.0/routers/{world['router']['id']}", None),
        "ip_allocated": (
            "POST",
            "/v2.0/ports",
            {
                "port": {
                    "network_id": world["net"]["id"],
                    "fixed_ips": [{"ip_address": "198.51.100.50"}],
                }
            },
        ),
        "mac_in_use": (
            "POST",
            "/v2.0/ports",
            {"port": {"network_id": world["net"]["id"], "mac_address": "fa:16:3e:00:00:aa"}},
        ),
        "fip_associated": (
            "POST",
            "/v2.0/floatingips",
            {
                "floatingip": {
                    "floating_network_id": world["ext"]["id"],
                    "port_id": world["port"]["id"],
                }
            },
        ),
        "second_router": (
            "PUT",
            f"/v2.0/routers/{api.router('other')['id']}/add_router_interface",
            {"subnet_id": world["sub"]["id"]},
        ),
        "service_port": (
            "DELETE",
            "/v2.0/ports/" + api.list("port", device_owner="network:router_gateway")[0]["id"],
            None,
        ),
        "gateway_in_use": (
            "PUT",
            f"/v2.0/routers/{world['router']['id']}",
            {"router": {"external_gateway_info": {}}},
        ),
        "not_external": (
            "POST",
            "/v2.0/floatingips",
            {"floatingip": {"floating_network_id": world["net"]["id"]}},
        ),
        "bad_cidr": (
            "POST",
            "/v2.0/subnets",
            {
                "subnet": {
                    "network_id": world["net"]["id"],
                    "cidr": "198.51.100.0/33",
                    "ip_version": 4,
                }
            },
        ),
    }
    method, path, body = requests[case]
    before = {r: api.list(r) for r in ("network", "subnet", "port", "floatingip")}
    got_status, error = api.error(method, path, body)
    assert (got_status, error["type"], error["detail"]) == (status, error_type, "")
    assert error["message"]
    after = {r: api.list(r) for r in ("network", "subnet", "port", "floatingip")}
    assert after == before  # nothing half-written


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.sampled_from(["198.51.100.0/24", "fa:16:3e:00:00:01", UNKNOWN, "dvr", "", "0", "a\x00b"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
KEYS = [
    "name",
    "network_id",
    "cidr",
    "ip_version",
    "fixed_ips",
    "mac_address",
    "gateway_ip",
    "allocation_pools",
    "external_gateway_info",
    "routes",
    "port_id",
    "subnet_id",
    "floating_network_id",
    "distributed",
    "mtu",
    "binding:host_id",
    "admin_state_up",
    "allowed_address_pairs",
    "provider:network_type",
    "provider:segmentation_id",
]
TARGETS = [
    ("POST", "/v2.0/networks", "network"),
    ("POST", "/v2.0/subnets", "subnet"),
    ("POST", "/v2.0/ports", "port"),
    ("POST", "/v2.0/routers", "router"),
    ("POST", "/v2.0/floatingips", "floatingip"),
    ("POST", "/dvr/v1/agents", None),
    ("PUT", "ROUTER/add_router_interface", None),
    ("PUT", "ROUTER", "router"),
    ("PUT", "PORT", "port"),
    ("POST", "/dvr/v1/hosts/h1/heartbeat", None),
]


@settings(
    max_examples=int(os.environ.get("DVR_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    target=st.sampled_from(TARGETS),
    attrs=st.dictionaries(st.sampled_from(KEYS), JSON_VALUES, max_size=5),
)
def test_garbage_never_yields_a_500(api, world, target, attrs):
    method, path, key = target
    path = path.replace("ROUTER", f"/v2.0/routers/{world['router']['id']}")
    path = path.replace("PORT", f"/v2.0/ports/{world['port']['id']}")
    body = {key: attrs} if key else attrs
    response = api.client.request(
        method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["NeutronError"]) == {"type", "message", "detail"}


@pytest.mark.parametrize(
    "path",
    [
        "/v2.0/networks?name=a%00b",
        "/v2.0/agents?host=a%00b",
        "/dvr/v1/hosts/a%00b/view",
        "/dvr/v1/hosts/h/watch?since=%C2%B2",
        "/dvr/v1/hosts/h/watch?timeout=nan",
        "/v2.0/networks?limit=x",
        "/v2.0/networks?sort_dir=up",
    ],
)
def test_odd_query_strings_never_yield_a_500(api, path):
    response = api.client.get(path)
    assert 200 <= response.status_code < 500, response.text
