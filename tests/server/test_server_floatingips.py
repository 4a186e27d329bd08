"""Floating IPs: create, associate, disassociate, delete, FIP agent gateway ports."""

import pytest

FIP_GW = "network:floatingip_agent_gateway"


@pytest.fixture
def topo(api):
    blue = api.network("blue")
    blue_sub = api.subnet(blue["id"], "198.51.100.0/24")
    ext = api.network("ext", **{"router:external": True})
    api.subnet(ext["id"], "203.0.113.0/24")
    router = api.router()
    api.add_interface(router["id"], subnet_id=blue_sub["id"])
    api.set_gateway(router["id"], ext["id"])
    vm = api.port(blue["id"], host="compute-1")
    return {"blue": blue, "ext": ext, "router": router, "vm": vm}


def test_create_associate_disassociate_delete(api, topo):
    fip = api.fip(topo["ext"]["id"])
    assert fip["port_id"] is None and fip["router_id"] is None and fip["port_details"] is None
    assert fip["floating_ip_address"].startswith("203.0.113.")
    [fip_port] = api.list("port", device_owner="network:floatingip")
    assert fip_port["device_id"] == fip["id"] and fip_port["project_id"] == ""
    associated = api.update("floatingip", fip["id"], port_id=topo["vm"]["id"])
    assert associated["port_id"] == topo["vm"]["id"]
    assert associated["router_id"] == topo["router"]["id"]
    assert associated["fixed_ip_address"] == topo["vm"]["fixed_ips"][0]["ip_address"]
    assert associated["port_details"]["mac_address"] == topo["vm"]["mac_address"]
    [gw] = api.list("port", device_owner=FIP_GW)
    assert gw["binding:host_id"] == "compute-1" and gw["network_id"] == topo["ext"]["id"]
    disassociated = api.update("floatingip", fip["id"], port_id=None)
    assert disassociated["port_id"] is None and disassociated["router_id"] is None
    assert api.list("port", device_owner=FIP_GW) == []  # last FIP of the host gone
    api.delete("floatingip", fip["id"])
    assert api.list("floatingip") == []
    assert api.list("port", device_owner="network:floatingip") == []


def test_one_fip_gateway_per_host_and_network(api, topo):
    vm2 = api.port(topo["blue"]["id"], host="compute-1")
    vm3 = api.port(topo["blue"]["id"], host="compute-2")
    for port in (topo["vm"], vm2, vm3):
        api.fip(topo["ext"]["id"], port_id=port["id"])
    hosts = sorted(p["binding:host_id"] for p in api.list("port", device_owner=FIP_GW))
    assert hosts == ["compute-1", "compute-2"]


def test_fip_gateway_follows_a_moving_port(api, topo):
    api.fip(topo["ext"]["id"], port_id=topo["vm"]["id"])
    api.update("port", topo["vm"]["id"], **{"binding:host_id": "compute-9"})
    hosts = [p["binding:host_id"] for p in api.list("port", device_owner=FIP_GW)]
    assert hosts == ["compute-9"]


def test_already_associated_fixed_ip(api, topo):
    api.fip(topo["ext"]["id"], port_id=topo["vm"]["id"])
    second = api.fip(topo["ext"]["id"])
    status, error = api.error(
        "PUT", f"/v2.0/floatingips/{second['id']}", {"floatingip": {"port_id": topo["vm"]["id"]}}
    )
    assert (status, error["type"]) == (409, "FloatingIPPortAlreadyAssociated")


def test_unreachable_external_network(api, topo):
    lonely = api.network("lonely")
    api.subnet(lonely["id"], "192.0.2.0/24")
    port = api.port(lonely["id"])
    status, error = api.error(
        "POST",
        "/v2.0/floatingips",
        {"floatingip": {"floating_network_id": topo["ext"]["id"], "port_id": port["id"]}},
    )
    assert (status, error["type"]) == (404, "ExternalGatewayForFloatingIPNotFound")
    assert api.list("floatingip") == []  # nothing half-written


def test_fip_on_internal_network_rejected(api, topo):
    status, error = api.error(
        "POST", "/v2.0/floatingips", {"floatingip": {"floating_network_id": topo["blue"]["id"]}}
    )
    assert (status, error["type"]) == (400, "BadRequest")


def test_fip_blocks_gateway_and_interface_removal(api, topo):
    fip = api.fip(topo["ext"]["id"], port_id=topo["vm"]["id"])
    status, error = api.error(
        "PUT", f"/v2.0/routers/{topo['router']['id']}", {"router": {"external_gateway_info": {}}}
    )
    assert (status, error["type"]) == (409, "RouterExternalGatewayInUseByFloatingIp")
    status, error = api.error(
        "PUT",
        f"/v2.0/routers/{topo['router']['id']}/remove_router_interface",
        {"subnet_id": topo["vm"]["fixed_ips"][0]["subnet_id"]},
    )
    assert (status, error["type"]) == (409, "RouterInterfaceInUseByFloatingIP")
    api.delete("port", topo["vm"]["id"])  # deleting the port disassociates
    assert api.show("floatingip", fip["id"])["port_id"] is None


def test_specific_floating_address(api, topo):
    # the router's gateway took a random address of the subnet: ask for one it did not take
    taken = {ip["ip_address"] for port in api.list("port", network_id=topo["ext"]["id"])
             for ip in port["fixed_ips"]}
    wanted = next(a for a in ("203.0.113.77", "203.0.113.78") if a not in taken)
    fip = api.fip(topo["ext"]["id"], floating_ip_address=wanted)
    assert fip["floating_ip_address"] == wanted
    status, error = api.error(
        "POST",
        "/v2.0/floatingips",
        {
            "floatingip": {
                "floating_network_id": topo["ext"]["id"],
                "floating_ip_address": wanted,
            }
        },
    )
    assert (status, error["type"]) == (409, "IpAddressAlreadyAllocated")
