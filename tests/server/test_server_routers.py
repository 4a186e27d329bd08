"""Routers through the API: interfaces, gateway, SNAT ports, one router per subnet."""

import pytest

INTERFACE = "network:router_interface_distributed"
SNAT = "network:router_centralized_snat"
GATEWAY = "network:router_gateway"


@pytest.fixture
def topo(api):
    blue = api.network("blue")
    blue_sub = api.subnet(blue["id"], "198.51.100.0/24")
    orange = api.network("orange")
    orange_sub = api.subnet(orange["id"], "192.0.2.0/24")
    ext = api.network("ext", **{"router:external": True})
    ext_sub = api.subnet(ext["id"], "203.0.113.0/24")
    return {
        "blue": blue,
        "blue_sub": blue_sub,
        "orange": orange,
        "orange_sub": orange_sub,
        "ext": ext,
        "ext_sub": ext_sub,
    }


def test_router_defaults(api):
    router = api.router("r1")
    assert router["distributed"] is True and router["ha"] is False
    assert router["external_gateway_info"] is None and router["routes"] == []
    assert router["status"] == "ACTIVE"
    legacy = api.create("router", name="legacy")
    assert legacy["distributed"] is False
    ha = api.create("router", name="ha", distributed=True, ha=True)
    assert (ha["distributed"], ha["ha"]) == (True, True)


def test_add_interface_by_subnet(api, topo):
    router = api.router()
    info = api.add_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    assert set(info) == {
        "id",
        "tenant_id",
        "project_id",
        "port_id",
        "network_id",
        "subnet_id",
        "subnet_ids",
    }
    assert info["id"] == router["id"] and info["subnet_ids"] == [topo["blue_sub"]["id"]]
    port = api.show("port", info["port_id"])
    assert port["device_owner"] == INTERFACE and port["device_id"] == router["id"]
    assert port["binding:vif_type"] == "distributed" and port["binding:host_id"] == ""
    assert port["fixed_ips"] == [
        {"subnet_id": topo["blue_sub"]["id"], "ip_address": "198.51.100.1"}
    ]


def test_add_interface_by_port(api, topo):
    router = api.router()
    port = api.create(
        "port", network_id=topo["orange"]["id"], fixed_ips=[{"ip_address": "192.0.2.1"}]
    )
    info = api.add_interface(router["id"], port_id=port["id"])
    assert info["port_id"] == port["id"] and info["subnet_id"] == topo["orange_sub"]["id"]
    shown = api.show("port", port["id"])
    assert (shown["device_owner"], shown["device_id"]) == (INTERFACE, router["id"])
    busy = api.port(topo["orange"]["id"], device_id="vm-1")
    status, error = api.error(
        "PUT", f"/v2.0/routers/{router['id']}/add_router_interface", {"port_id": busy["id"]}
    )
    assert (status, error["type"]) == (409, "PortInUse")


def test_interface_request_errors(api, topo):
    router = api.router()
    path = f"/v2.0/routers/{router['id']}/add_router_interface"
    status, error = api.error("PUT", path, {})
    assert (status, error["type"]) == (400, "BadRequest")
    status, error = api.error(
        "PUT", path, {"subnet_id": topo["blue_sub"]["id"], "port_id": topo["blue_sub"]["id"]}
    )
    assert (status, error["type"]) == (400, "BadRequest")
    status, error = api.error("PUT", path, {"subnet_id": "0b0b0b0b-0000-4000-8000-000000000000"})
    assert (status, error["type"]) == (404, "SubnetNotFound")
    status, error = api.error(
        "PUT", "/v2.0/routers/nope/add_router_interface", {"subnet_id": topo["blue_sub"]["id"]}
    )
    assert (status, error["type"]) == (404, "RouterNotFound")
    nogw_net = api.network()
    nogw = api.subnet(nogw_net["id"], "10.9.0.0/24", gateway_ip=None)
    status, error = api.error("PUT", path, {"subnet_id": nogw["id"]})
    assert (status, error["type"]) == (400, "BadRequest")
    api.add_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    status, error = api.error("PUT", path, {"subnet_id": topo["blue_sub"]["id"]})
    assert (status, error["type"]) == (400, "BadRequest")
    assert "already has a port" in error["message"]


def test_second_router_on_a_subnet_is_rejected(api, topo):
    first, second = api.router("a"), api.router("b")
    api.add_interface(first["id"], subnet_id=topo["blue_sub"]["id"])
    status, error = api.error(
        "PUT",
        f"/v2.0/routers/{second['id']}/add_router_interface",
        {"subnet_id": topo["blue_sub"]["id"]},
    )
    assert (status, error["type"]) == (409, "RouterInterfaceInUseByOtherRouter")
    assert first["id"] in error["message"] and "only one router" in error["message"]
    # nothing half-written: no second interface port on the subnet
    owners = [p["device_owner"] for p in api.list("port", network_id=topo["blue"]["id"])]
    assert owners == [INTERFACE]


def test_gateway_ip_taken_by_a_port(api, topo):
    api.port(topo["blue"]["id"], fixed_ips=[{"ip_address": "198.51.100.1"}])
    router = api.router()
    status, error = api.error(
        "PUT",
        f"/v2.0/routers/{router['id']}/add_router_interface",
        {"subnet_id": topo["blue_sub"]["id"]},
    )
    assert (status, error["type"]) == (409, "IpAddressAlreadyAllocated")


def test_remove_interface(api, topo):
    router = api.router()
    info = api.add_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    status, error = api.error(
        "PUT",
        f"/v2.0/routers/{router['id']}/remove_router_interface",
        {"subnet_id": topo["orange_sub"]["id"]},
    )
    assert (status, error["type"]) == (404, "RouterInterfaceNotFoundForSubnet")
    status, error = api.error(
        "PUT",
        f"/v2.0/routers/{router['id']}/remove_router_interface",
        {"port_id": topo["orange_sub"]["id"]},
    )
    assert (status, error["type"]) == (404, "RouterInterfaceNotFound")
    removed = api.remove_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    assert removed["port_id"] == info["port_id"]
    assert api.list("port", network_id=topo["blue"]["id"]) == []


def test_interface_ports_cannot_be_deleted_directly(api, topo):
    router = api.router()
    info = api.add_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    status, error = api.error("DELETE", f"/v2.0/ports/{info['port_id']}")
    assert (status, error["type"]) == (409, "ServicePortInUse")


def test_router_in_use_then_delete(api, topo):
    router = api.router()
    info = api.add_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    status, error = api.error("DELETE", f"/v2.0/routers/{router['id']}")
    assert (status, error["type"]) == (409, "RouterInUse")
    assert error["message"] == f"Router {router['id']} has ports still attached: {info['port_id']}"
    api.remove_interface(router["id"], port_id=info["port_id"])
    api.set_gateway(router["id"], topo["ext"]["id"])
    api.delete("router", router["id"])
    assert api.list("port") == []


def test_gateway_creates_gateway_and_snat_ports(api, topo):
    router = api.router()
    api.add_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    updated = api.set_gateway(router["id"], topo["ext"]["id"])
    gateway = updated["external_gateway_info"]
    assert gateway["network_id"] == topo["ext"]["id"] and gateway["enable_snat"] is True
    [external_ip] = gateway["external_fixed_ips"]
    assert external_ip["subnet_id"] == topo["ext_sub"]["id"]
    gw_ports = api.list("port", device_owner=GATEWAY)
    assert len(gw_ports) == 1 and gw_ports[0]["project_id"] == ""
    assert gw_ports[0]["fixed_ips"] == [external_ip]
    [snat] = api.list("port", device_owner=SNAT)
    assert snat["project_id"] == "" and snat["device_id"] == router["id"]
    assert snat["fixed_ips"][0]["subnet_id"] == topo["blue_sub"]["id"]
    assert snat["fixed_ips"][0]["ip_address"] != "198.51.100.1"
    # a second interface gets its own SNAT port; removing it removes that SNAT port
    api.add_interface(router["id"], subnet_id=topo["orange_sub"]["id"])
    assert len(api.list("port", device_owner=SNAT)) == 2
    api.remove_interface(router["id"], subnet_id=topo["orange_sub"]["id"])
    assert [p["id"] for p in api.list("port", device_owner=SNAT)] == [snat["id"]]
    cleared = api.clear_gateway(router["id"])
    assert cleared["external_gateway_info"] is None
    assert api.list("port", device_owner=SNAT) == []
    assert api.list("port", device_owner=GATEWAY) == []


def test_gateway_errors(api, topo):
    router = api.router()
    status, error = api.error(
        "PUT",
        f"/v2.0/routers/{router['id']}",
        {"router": {"external_gateway_info": {"network_id": topo["blue"]["id"]}}},
    )
    assert (status, error["type"]) == (400, "BadRequest")
    assert error["message"] == (
        f"Bad router request: Network {topo['blue']['id']} is not an external network."
    )
    status, error = api.error(
        "PUT",
        f"/v2.0/routers/{router['id']}",
        {
            "router": {
                "external_gateway_info": {"network_id": "0b0b0b0b-0000-4000-8000-000000000000"}
            }
        },
    )
    assert (status, error["type"]) == (404, "NetworkNotFound")


def test_gateway_with_fixed_ip_and_snat_toggle(api, topo):
    router = api.router()
    updated = api.set_gateway(
        router["id"], topo["ext"]["id"], external_fixed_ips=[{"ip_address": "203.0.113.50"}]
    )
    assert updated["external_gateway_info"]["external_fixed_ips"][0]["ip_address"] == (
        "203.0.113.50"
    )
    toggled = api.set_gateway(router["id"], topo["ext"]["id"], enable_snat=False)
    assert toggled["external_gateway_info"]["enable_snat"] is False


def test_distributed_flag_needs_admin_down(api):
    router = api.create("router", name="legacy")
    status, error = api.error(
        "PUT", f"/v2.0/routers/{router['id']}", {"router": {"distributed": True}}
    )
    assert (status, error["type"]) == (400, "BadRequest")
    assert "admin_state_up to False" in error["message"]
    api.update("router", router["id"], admin_state_up=False)
    assert api.update("router", router["id"], distributed=True)["distributed"] is True
    assert api.update("router", router["id"], distributed=False)["distributed"] is False
    api.update("router", router["id"], admin_state_up=True)
    status, error = api.error(
        "PUT", f"/v2.0/routers/{router['id']}", {"router": {"distributed": True}}
    )
    assert (status, error["type"]) == (400, "BadRequest")
    assert api.show("router", router["id"])["distributed"] is False


def _router_ports(api, router_id):
    ports = api.list("port", device_id=router_id)
    return {(p["device_owner"], p["binding:host_id"]) for p in ports}


@pytest.fixture
def legacy_with_fip(api, topo):
    """A legacy router on net-1 (dvr_snat) with a gateway, and a FIP on a VM port of h1."""
    api.register("net-1", "dvr_snat", "192.0.2.201")
    api.register("h1", "dvr", "192.0.2.211")
    router = api.create("router", name="r", distributed=False)
    api.add_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    api.set_gateway(router["id"], topo["ext"]["id"])
    vm = api.port(topo["blue"]["id"], host="h1")
    fip = api.fip(topo["ext"]["id"], port_id=vm["id"])
    return router, vm, fip


def test_migration_legacy_to_distributed_and_back(api, legacy_with_fip):
    router, vm, fip = legacy_with_fip
    legacy_ports = {("network:router_interface", "net-1"), (GATEWAY, "net-1")}
    assert _router_ports(api, router["id"]) == legacy_ports
    assert api.list("port", device_owner="network:floatingip_agent_gateway") == []
    assert api.router_hosts(router["id"]) == {"net-1"}

    api.update("router", router["id"], admin_state_up=False)
    api.update("router", router["id"], distributed=True)
    assert _router_ports(api, router["id"]) == {(INTERFACE, ""), (GATEWAY, "net-1"),
                                                (SNAT, "net-1")}
    [fg] = api.list("port", device_owner="network:floatingip_agent_gateway")
    assert fg["binding:host_id"] == "h1"
    assert api.router_hosts(router["id"]) == {"net-1", "h1"}
    assert api.show("floatingip", fip["id"])["port_id"] == vm["id"]

    api.update("router", router["id"], distributed=False)
    assert _router_ports(api, router["id"]) == legacy_ports
    assert api.list("port", device_owner="network:floatingip_agent_gateway") == []
    assert api.router_hosts(router["id"]) == {"net-1"}
    assert api.show("floatingip", fip["id"])["port_id"] == vm["id"]
    assert api.view("h1").router(router["id"]) is None
    assert api.view("net-1").router(router["id"]) is not None


def test_extra_routes(api, topo):
    router = api.router()
    api.add_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    routes = [{"destination": "10.20.0.0/16", "nexthop": "198.51.100.9"}]
    assert api.update("router", router["id"], routes=routes)["routes"] == routes
    status, error = api.error(
        "PUT",
        f"/v2.0/routers/{router['id']}",
        {"router": {"routes": [{"destination": "10.30.0.0/16", "nexthop": "10.99.0.1"}]}},
    )
    assert (status, error["type"]) == (400, "InvalidRoutes")


def test_centralized_router_interfaces_live_on_its_host(api, topo):
    api.register("net-1", "dvr_snat", "192.0.2.201")
    router = api.create("router", name="legacy")
    info = api.add_interface(router["id"], subnet_id=topo["blue_sub"]["id"])
    port = api.show("port", info["port_id"])
    assert port["device_owner"] == "network:router_interface"
    assert port["binding:host_id"] == "net-1"
    assert api.router_hosts(router["id"]) == {"net-1"}


def test_legacy_router_floating_ips_are_all_in_its_central_host_view(api, legacy_with_fip):
    router, vm, fip = legacy_with_fip
    [seen] = api.view("net-1").router(router["id"]).floating_ips
    assert (seen.id, seen.port_id, seen.host) == (fip["id"], vm["id"], "h1")
    assert api.view("h1").router(router["id"]) is None
    # distributed again: the FIP follows its port's host, the central host has none
    api.update("router", router["id"], admin_state_up=False)
    api.update("router", router["id"], distributed=True)
    assert api.view("net-1").router(router["id"]).floating_ips == ()
    assert [f.id for f in api.view("h1").router(router["id"]).floating_ips] == [fip["id"]]
