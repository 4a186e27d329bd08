"""Ports through the API: addresses, MACs, binding, updates, service-port protection."""

import ipaddress

import pytest


@pytest.fixture
def net(api):
    network = api.network("blue")
    subnet = api.subnet(network["id"], "198.51.100.0/24")
    return network, subnet


def test_port_defaults(api, net):
    network, subnet = net
    port = api.port(network["id"], host="compute-1", name="vm1", device_id="vm-1")
    assert port["mac_address"].startswith("fa:16:3e:")
    assert port["binding:host_id"] == "compute-1"
    assert port["binding:vif_type"] == "unbound"  # no live agent on compute-1 yet
    assert port["binding:vnic_type"] == "normal"
    assert port["status"] == "DOWN"
    assert port["device_owner"] == "compute:nova" and port["device_id"] == "vm-1"
    [fixed] = port["fixed_ips"]
    assert fixed["subnet_id"] == subnet["id"]
    address = ipaddress.ip_address(fixed["ip_address"])
    assert address in ipaddress.ip_network("198.51.100.0/24")
    assert str(address) not in ("198.51.100.0", "198.51.100.1", "198.51.100.255")
    assert port["allowed_address_pairs"] == [] and port["port_security_enabled"] is True
    [default] = api.list("security_group", name="default")
    assert port["security_groups"] == [default["id"]]  # the project's, created on first use


def test_addresses_are_random_not_lowest(api, net):
    network, _ = net
    addresses = [api.port(network["id"])["fixed_ips"][0]["ip_address"] for _ in range(6)]
    assert len(set(addresses)) == 6
    lowest = [f"198.51.100.{i}" for i in range(2, 8)]
    assert sorted(addresses, key=ipaddress.ip_address) != lowest


def test_fixed_ip_and_mac_requests(api, net):
    network, subnet = net
    port = api.port(
        network["id"], mac_address="FA:16:3E:00:00:01", fixed_ips=[{"ip_address": "198.51.100.77"}]
    )
    assert port["mac_address"] == "fa:16:3e:00:00:01"
    assert port["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "198.51.100.77"}]
    status, error = api.error(
        "POST",
        "/v2.0/ports",
        {"port": {"network_id": network["id"], "fixed_ips": [{"ip_address": "198.51.100.77"}]}},
    )
    assert (status, error["type"]) == (409, "IpAddressAlreadyAllocated")
    assert error["message"] == (
        f"IP address 198.51.100.77 already allocated in subnet {subnet['id']}"
    )
    status, error = api.error(
        "POST",
        "/v2.0/ports",
        {"port": {"network_id": network["id"], "mac_address": "fa:16:3e:00:00:01"}},
    )
    assert (status, error["type"]) == (409, "MacAddressInUse")
    status, error = api.error(
        "POST",
        "/v2.0/ports",
        {"port": {"network_id": network["id"], "mac_address": "zz:16:3e:00:00:01"}},
    )
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    status, error = api.error(
        "POST",
        "/v2.0/ports",
        {"port": {"network_id": network["id"], "fixed_ips": [{"ip_address": "192.0.2.5"}]}},
    )
    assert (status, error["type"]) == (400, "InvalidInput")
    assert len(api.list("port")) == 1


def test_subnet_only_fixed_ip_and_dual_stack(api):
    network = api.network()
    v4 = api.subnet(network["id"], "192.0.2.0/24")
    v6 = api.subnet(network["id"], "2001:db8:1::/64")
    port = api.port(network["id"])
    assert {f["subnet_id"] for f in port["fixed_ips"]} == {v4["id"], v6["id"]}
    only_v6 = api.port(network["id"], fixed_ips=[{"subnet_id": v6["id"]}])
    assert [f["subnet_id"] for f in only_v6["fixed_ips"]] == [v6["id"]]
    none = api.port(network["id"], fixed_ips=[])
    assert none["fixed_ips"] == []


def test_slaac_address_is_eui64(api):
    network = api.network()
    subnet = api.subnet(
        network["id"], "2001:db8:2::/64", ipv6_address_mode="slaac", ipv6_ra_mode="slaac"
    )
    port = api.port(network["id"], mac_address="fa:16:3e:11:22:33")
    assert port["fixed_ips"] == [
        {"subnet_id": subnet["id"], "ip_address": "2001:db8:2:0:f816:3eff:fe11:2233"}
    ]


def test_pool_exhaustion(api):
    network = api.network()
    api.subnet(
        network["id"], "192.0.2.0/29", allocation_pools=[{"start": "192.0.2.2", "end": "192.0.2.3"}]
    )
    api.port(network["id"])
    api.port(network["id"])
    status, error = api.error("POST", "/v2.0/ports", {"port": {"network_id": network["id"]}})
    assert (status, error["type"]) == (409, "IpAddressGenerationFailure")


def test_gateway_never_auto_allocated(api):
    network = api.network()
    api.subnet(network["id"], "192.0.2.0/30")  # .1 gateway, .2 the only pool address
    assert api.port(network["id"])["fixed_ips"][0]["ip_address"] == "192.0.2.2"
    status, _ = api.error("POST", "/v2.0/ports", {"port": {"network_id": network["id"]}})
    assert status == 409


def test_port_update_fixed_ips_mac_host(api, net):
    network, subnet = net
    port = api.port(network["id"], fixed_ips=[{"ip_address": "198.51.100.10"}])
    moved = api.update(
        "port",
        port["id"],
        fixed_ips=[{"ip_address": "198.51.100.11"}],
        mac_address="fa:16:3e:aa:bb:cc",
        **{"binding:host_id": "compute-2"},
    )
    assert moved["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "198.51.100.11"}]
    assert moved["mac_address"] == "fa:16:3e:aa:bb:cc"
    assert moved["binding:host_id"] == "compute-2"
    assert moved["revision_number"] == 2
    # the old address is free again
    other = api.port(network["id"], fixed_ips=[{"ip_address": "198.51.100.10"}])
    assert other["fixed_ips"][0]["ip_address"] == "198.51.100.10"
    kept = api.update("port", port["id"], fixed_ips=[{"subnet_id": subnet["id"]}])
    assert kept["fixed_ips"][0]["ip_address"] == "198.51.100.11"


def test_allowed_address_pairs(api, net):
    network, _ = net
    port = api.port(
        network["id"],
        allowed_address_pairs=[{"ip_address": "198.51.100.200"}, {"ip_address": "10.1.0.0/16"}],
    )
    mac = port["mac_address"]  # a pair's MAC defaults to the port's, as Neutron shows it
    assert port["allowed_address_pairs"] == [
        {"ip_address": "198.51.100.200", "mac_address": mac},
        {"ip_address": "10.1.0.0/16", "mac_address": mac},
    ]
    status, error = api.error(
        "POST",
        "/v2.0/ports",
        {
            "port": {
                "network_id": network["id"],
                "port_security_enabled": False,
                "allowed_address_pairs": [{"ip_address": "198.51.100.201"}],
            }
        },
    )
    assert (status, error["type"]) == (409, "AddressPairAndPortSecurityRequired")


def test_port_filters(api, net):
    network, subnet = net
    a = api.port(network["id"], host="compute-1", fixed_ips=[{"ip_address": "198.51.100.50"}])
    api.port(network["id"], host="compute-2")
    by_host = api.list("port", **{"binding:host_id": "compute-1"})
    assert [p["id"] for p in by_host] == [a["id"]]
    by_ip = api.list("port", fixed_ips="ip_address=198.51.100.50")
    assert [p["id"] for p in by_ip] == [a["id"]]
    by_subnet = api.list("port", fixed_ips=f"subnet_id={subnet['id']}")
    assert len(by_subnet) == 2


def test_unknown_and_malformed_port_ids(api):
    for port_id in ("not-a-uuid", "1b1c1d1e-0000-4000-8000-000000000000"):
        status, error = api.error("GET", f"/v2.0/ports/{port_id}")
        assert (status, error["type"]) == (404, "PortNotFound")
        assert error["message"] == f"Port {port_id} could not be found."
        status, error = api.error("DELETE", f"/v2.0/ports/{port_id}")
        assert (status, error["type"]) == (404, "PortNotFound")


def test_port_on_unknown_network_and_bad_network_id(api):
    status, error = api.error("POST", "/v2.0/ports", {"port": {"network_id": "blue"}})
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    status, error = api.error(
        "POST", "/v2.0/ports", {"port": {"network_id": "1b1c1d1e-0000-4000-8000-000000000000"}}
    )
    assert (status, error["type"]) == (404, "NetworkNotFound")
    status, error = api.error("POST", "/v2.0/ports", {"port": {}})
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    assert "network_id" in error["message"]


def test_bulk_create_is_all_or_nothing(api, net):
    network, _ = net
    body = {
        "ports": [
            {"network_id": network["id"], "fixed_ips": [{"ip_address": "198.51.100.9"}]},
            {"network_id": network["id"], "fixed_ips": [{"ip_address": "198.51.100.9"}]},
        ]
    }
    status, error = api.error("POST", "/v2.0/ports", body)
    assert (status, error["type"]) == (409, "IpAddressAlreadyAllocated")
    assert api.list("port") == []
    ok = api.call("POST", "/v2.0/ports", {"ports": body["ports"][:1]}, expect=201)
    assert len(ok["ports"]) == 1
