"""Networks and subnets through the API: attributes, validation, listing semantics."""

from urllib.parse import urlsplit

import pytest


def test_network_defaults_vxlan_mtu_and_vni_from_range(api):
    net = api.network("blue")
    assert net["provider:network_type"] == "vxlan"
    assert net["mtu"] == 1450
    assert 1000 <= net["provider:segmentation_id"] <= 1999
    assert net["provider:physical_network"] is None
    assert net["router:external"] is False
    assert net["status"] == "ACTIVE"
    assert net["project_id"] == net["tenant_id"] == "fake_project_id"
    assert net["revision_number"] == 1
    assert net["created_at"].endswith("Z") and "T" in net["created_at"]
    assert net["subnets"] == [] and net["tags"] == [] and net["description"] == ""


def test_vnis_are_distinct_and_explicit_vni_conflicts(api):
    vnis = {api.network(f"n{i}")["provider:segmentation_id"] for i in range(20)}
    assert len(vnis) == 20
    taken = vnis.pop()
    status, error = api.error(
        "POST",
        "/v2.0/networks",
        {
            "network": {
                "name": "x",
                "provider:network_type": "vxlan",
                "provider:segmentation_id": taken,
            }
        },
    )
    assert (status, error["type"]) == (409, "TunnelIdInUse")


def test_external_flat_network(api):
    net = api.network(
        "ext",
        **{
            "router:external": True,
            "provider:network_type": "flat",
            "provider:physical_network": "physnet1",
        },
    )
    assert net["router:external"] is True
    assert net["mtu"] == 1500 and net["provider:segmentation_id"] is None
    status, error = api.error(
        "POST",
        "/v2.0/networks",
        {"network": {"provider:network_type": "flat", "provider:physical_network": "physnet1"}},
    )
    assert (status, error["type"]) == (409, "FlatNetworkInUse")


def test_mtu_too_big_is_invalid_input(api):
    status, error = api.error("POST", "/v2.0/networks", {"network": {"mtu": 1500}})
    assert (status, error["type"]) == (400, "InvalidInput")
    assert "1450" in error["message"]


def test_vni_range_exhaustion_is_503(app, db_url):
    from server_helpers import make_config
    from starlette.testclient import TestClient

    from dvr.server.app import create_app

    small = create_app(make_config(db_url, vni_range=(5000, 5001)), migrate=False)
    with TestClient(small) as client:
        assert client.post("/v2.0/networks", json={"network": {}}).status_code == 201
        assert client.post("/v2.0/networks", json={"network": {}}).status_code == 201
        response = client.post("/v2.0/networks", json={"network": {}})
    assert response.status_code == 503
    assert response.json()["NeutronError"]["type"] == "NoNetworkAvailable"


def test_network_update_and_revision(api):
    net = api.network("a")
    updated = api.update("network", net["id"], name="b", mtu=1400)
    assert (updated["name"], updated["mtu"], updated["revision_number"]) == ("b", 1400, 2)
    status, error = api.error(
        "PUT", f"/v2.0/networks/{net['id']}", {"network": {"provider:segmentation_id": 7}}
    )
    assert (status, error["type"]) == (400, "HTTPBadRequest")


def test_subnet_defaults_ipv4(api):
    net = api.network()
    subnet = api.subnet(net["id"], "198.51.100.0/24")
    assert subnet["gateway_ip"] == "198.51.100.1"
    assert subnet["allocation_pools"] == [{"start": "198.51.100.2", "end": "198.51.100.254"}]
    assert subnet["enable_dhcp"] is True and subnet["ip_version"] == 4
    assert api.show("network", net["id"])["subnets"] == [subnet["id"]]


def test_subnet_ipv6_defaults(api):
    net = api.network()
    subnet = api.subnet(net["id"], "2001:db8::/64")
    assert subnet["gateway_ip"] == "2001:db8::1"
    assert subnet["allocation_pools"] == [
        {"start": "2001:db8::2", "end": "2001:db8::ffff:ffff:ffff:ffff"}
    ]


def test_subnet_explicit_gateway_and_pools(api):
    net = api.network()
    subnet = api.subnet(
        net["id"],
        "192.0.2.0/24",
        gateway_ip="192.0.2.254",
        allocation_pools=[{"start": "192.0.2.10", "end": "192.0.2.20"}],
    )
    assert subnet["gateway_ip"] == "192.0.2.254"
    assert subnet["allocation_pools"] == [{"start": "192.0.2.10", "end": "192.0.2.20"}]
    nogw = api.subnet(api.network()["id"], "192.0.2.0/25", gateway_ip=None)
    assert nogw["gateway_ip"] is None
    assert nogw["allocation_pools"] == [{"start": "192.0.2.1", "end": "192.0.2.126"}]


@pytest.mark.parametrize(
    ("body", "status", "error_type", "text"),
    [
        (
            {"cidr": "198.51.100.0/33"},
            400,
            "InvalidInput",
            "Invalid input for operation: 198.51.100.0/33 is not in a CIDR format.",
        ),
        ({"cidr": "banana"}, 400, "InvalidInput", "is not in a CIDR format"),
        ({"cidr": "198.51.100.5/24"}, 400, "InvalidInput", "198.51.100.0/24"),
        ({"cidr": "2001:db8::/64", "ip_version": 4}, 400, "InvalidInput", "ip_version"),
        ({"cidr": "198.51.100.0/24", "gateway_ip": "192.0.2.1"}, 400, "InvalidInput", "Gateway"),
        (
            {
                "cidr": "198.51.100.0/24",
                "allocation_pools": [{"start": "198.51.100.1", "end": "198.51.100.9"}],
            },
            409,
            "GatewayConflictWithAllocationPools",
            "198.51.100.1",
        ),
        (
            {
                "cidr": "198.51.100.0/24",
                "allocation_pools": [{"start": "198.51.101.1", "end": "198.51.101.9"}],
            },
            400,
            "OutOfBoundsAllocationPool",
            "spans beyond",
        ),
        (
            {
                "cidr": "198.51.100.0/24",
                "allocation_pools": [{"start": "198.51.100.9", "end": "198.51.100.5"}],
            },
            400,
            "InvalidAllocationPool",
            "not valid",
        ),
        (
            {
                "cidr": "198.51.100.0/24",
                "allocation_pools": [
                    {"start": "198.51.100.5", "end": "198.51.100.20"},
                    {"start": "198.51.100.10", "end": "198.51.100.30"},
                ],
            },
            409,
            "OverlappingAllocationPools",
            "overlapping",
        ),
        (
            {"cidr": "198.51.100.0/24", "bogus_attr": 1},
            400,
            "HTTPBadRequest",
            "Unrecognized attribute(s) 'bogus_attr'",
        ),
        (
            {"cidr": "198.51.100.0/24", "ip_version": 5},
            400,
            "HTTPBadRequest",
            "Invalid input for ip_version",
        ),
        (
            {"cidr": "198.51.100.0/24", "enable_dhcp": "maybe"},
            400,
            "HTTPBadRequest",
            "cannot be converted to boolean",
        ),
    ],
)
def test_subnet_validation_errors(api, body, status, error_type, text):
    net = api.network()
    got_status, error = api.error(
        "POST", "/v2.0/subnets", {"subnet": {"network_id": net["id"], **body}}
    )
    assert (got_status, error["type"]) == (status, error_type)
    assert text in error["message"]
    assert api.list("subnet") == []  # nothing half-written


def test_overlapping_subnets_on_one_network_rejected(api):
    net = api.network()
    api.subnet(net["id"], "198.51.100.0/24")
    status, error = api.error(
        "POST",
        "/v2.0/subnets",
        {"subnet": {"network_id": net["id"], "cidr": "198.51.100.128/25", "ip_version": 4}},
    )
    assert (status, error["type"]) == (400, "InvalidInput")
    assert "overlaps" in error["message"]


def test_subnet_on_unknown_network(api):
    status, error = api.error(
        "POST",
        "/v2.0/subnets",
        {"subnet": {"network_id": "6d7e2b0e-1b6f-4b43-9d8a-000000000000", "cidr": "192.0.2.0/24"}},
    )
    assert (status, error["type"]) == (404, "NetworkNotFound")


def test_subnet_update_gateway_and_delete(api):
    net = api.network()
    subnet = api.subnet(
        net["id"], "192.0.2.0/24", allocation_pools=[{"start": "192.0.2.10", "end": "192.0.2.20"}]
    )
    updated = api.update("subnet", subnet["id"], gateway_ip="192.0.2.200", name="s2")
    assert (updated["gateway_ip"], updated["name"]) == ("192.0.2.200", "s2")
    status, error = api.error(
        "PUT", f"/v2.0/subnets/{subnet['id']}", {"subnet": {"cidr": "10.0.0.0/8"}}
    )
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    api.delete("subnet", subnet["id"])
    assert api.show("network", net["id"])["subnets"] == []


def test_network_delete_in_use_lists_ports_then_succeeds(api):
    net = api.network()
    api.subnet(net["id"], "192.0.2.0/24")
    port = api.port(net["id"])
    status, error = api.error("DELETE", f"/v2.0/networks/{net['id']}")
    assert (status, error["type"]) == (409, "NetworkInUse")
    assert port["id"] in error["message"]
    api.delete("port", port["id"])
    api.delete("network", net["id"])
    assert api.list("subnet") == []
    status, error = api.error("GET", f"/v2.0/networks/{net['id']}")
    assert (status, error["type"]) == (404, "NetworkNotFound")


def test_subnet_in_use(api):
    net = api.network()
    subnet = api.subnet(net["id"], "192.0.2.0/24")
    api.port(net["id"])
    status, error = api.error("DELETE", f"/v2.0/subnets/{subnet['id']}")
    assert (status, error["type"]) == (409, "SubnetInUse")


def test_filters_fields_sorting(api):
    a = api.network("alpha", shared=True)
    b = api.network("beta")
    c = api.network("gamma", **{"router:external": True})
    assert [n["id"] for n in api.list("network", name="beta")] == [b["id"]]
    both = api.list("network", name=["alpha", "gamma"])
    assert {n["id"] for n in both} == {a["id"], c["id"]}
    assert [n["id"] for n in api.list("network", **{"router:external": "True"})] == [c["id"]]
    assert [n["id"] for n in api.list("network", shared="false")] in (
        [b["id"], c["id"]],
        [c["id"], b["id"]],
    )
    only = api.list("network", fields=["id", "name"])
    assert all(set(n) == {"id", "name"} for n in only)
    desc = api.list("network", sort_key="name", sort_dir="desc")
    assert [n["name"] for n in desc] == ["gamma", "beta", "alpha"]
    shown = api.call("GET", f"/v2.0/networks/{a['id']}", expect=200, fields="mtu")
    assert shown == {"network": {"mtu": 1450}}


def test_unknown_filter_and_sort_key_are_bad_requests(api):
    status, error = api.error("GET", "/v2.0/networks", bogus="1")
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    status, error = api.error("GET", "/v2.0/networks", sort_key="bogus")
    assert (status, error["type"]) == (400, "HTTPBadRequest")


def test_pagination_with_links(api):
    ids = sorted(api.network(f"n{i}")["id"] for i in range(5))
    page1 = api.call("GET", "/v2.0/networks", expect=200, limit=2, sort_key="id")
    assert [n["id"] for n in page1["networks"]] == ids[:2]
    links = {link["rel"]: link["href"] for link in page1["networks_links"]}
    assert set(links) == {"next"}
    next_url = urlsplit(links["next"])
    page2 = api.call("GET", f"{next_url.path}?{next_url.query}", expect=200)
    assert [n["id"] for n in page2["networks"]] == ids[2:4]
    rels = {link["rel"] for link in page2["networks_links"]}
    assert rels == {"next", "previous"}
    last = api.call("GET", "/v2.0/networks", expect=200, limit=2, sort_key="id", marker=ids[3])
    assert [n["id"] for n in last["networks"]] == ids[4:]
    assert {link["rel"] for link in last["networks_links"]} == {"previous"}
    previous = api.call(
        "GET",
        "/v2.0/networks",
        expect=200,
        limit=2,
        sort_key="id",
        marker=ids[2],
        page_reverse="True",
    )
    assert [n["id"] for n in previous["networks"]] == ids[:2]


def test_tags(api):
    net = api.network()
    api.call("PUT", f"/v2.0/networks/{net['id']}/tags", {"tags": ["b", "a"]}, expect=200)
    api.call("PUT", f"/v2.0/networks/{net['id']}/tags/c", expect=201)
    assert api.show("network", net["id"])["tags"] == ["a", "b", "c"]
    assert [n["id"] for n in api.list("network", tags="a,c")] == [net["id"]]
    assert api.list("network", **{"not-tags-any": "a"}) == []
    api.call("DELETE", f"/v2.0/networks/{net['id']}/tags/a", expect=204)
    status, error = api.error("DELETE", f"/v2.0/networks/{net['id']}/tags/zzz")
    assert (status, error["type"]) == (404, "TagNotFound")
