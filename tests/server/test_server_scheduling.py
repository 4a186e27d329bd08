"""Router scheduling (DVR.md §3): exactly the right hosts host each router."""

from datetime import timedelta

import pytest
from sqlalchemy import update

from dvr.db.tables import dvr_hosts


@pytest.fixture
def topo(api):
    blue = api.network("blue")
    blue_sub = api.subnet(blue["id"], "198.51.100.0/24")
    orange = api.network("orange")
    orange_sub = api.subnet(orange["id"], "192.0.2.0/24")
    ext = api.network("ext", **{"router:external": True})
    api.subnet(ext["id"], "203.0.113.0/24")
    router = api.router("r")
    api.add_interface(router["id"], subnet_id=blue_sub["id"])
    api.add_interface(router["id"], subnet_id=orange_sub["id"])
    return {
        "blue": blue,
        "orange": orange,
        "blue_sub": blue_sub,
        "orange_sub": orange_sub,
        "ext": ext,
        "router": router,
    }


def test_hosted_exactly_where_serviceable_ports_are(api, topo):
    r = topo["router"]["id"]
    api.port(topo["blue"]["id"], host="h1")  # VM
    api.port(topo["orange"]["id"], host="h2", owner="compute:az1")
    api.port(topo["blue"]["id"], host="h3", owner="")  # not DVR-serviceable
    api.port(topo["blue"]["id"], host="h4", owner="network:dhcp")
    api.port(topo["orange"]["id"], host="h5", owner="neutron:LOADBALANCERV2")
    api.port(topo["blue"]["id"], host="h6", fixed_ips=[])  # no address on the subnet
    other = api.network("other")
    api.subnet(other["id"], "10.50.0.0/24")
    api.port(other["id"], host="h7")  # subnet not on the router
    assert api.router_hosts(r) == {"h1", "h2", "h4", "h5"}
    for host in ("h1", "h2", "h4", "h5"):
        assert api.host_routers(host) == {r}
    for host in ("h3", "h6", "h7"):
        assert api.host_routers(host) == set()


def test_removed_when_last_serviceable_port_leaves(api, topo):
    r = topo["router"]["id"]
    a = api.port(topo["blue"]["id"], host="h1")
    b = api.port(topo["orange"]["id"], host="h1")
    c = api.port(topo["blue"]["id"], host="h2")
    assert api.router_hosts(r) == {"h1", "h2"}
    api.delete("port", a["id"])
    assert api.router_hosts(r) == {"h1", "h2"}  # b still there
    api.update("port", b["id"], **{"binding:host_id": "h3"})
    assert api.router_hosts(r) == {"h2", "h3"}
    api.update("port", c["id"], device_owner="")
    assert api.router_hosts(r) == {"h3"}
    api.update("port", b["id"], **{"binding:host_id": ""})
    assert api.router_hosts(r) == set()


def test_interface_add_and_remove_schedule(api, topo):
    r = topo["router"]["id"]
    green = api.network("green")
    green_sub = api.subnet(green["id"], "10.60.0.0/24")
    api.port(green["id"], host="h9")
    assert "h9" not in api.router_hosts(r)
    api.add_interface(r, subnet_id=green_sub["id"])
    assert "h9" in api.router_hosts(r)
    api.remove_interface(r, subnet_id=green_sub["id"])
    assert "h9" not in api.router_hosts(r)


def test_snat_part_scheduled_when_a_dvr_snat_agent_registers(api, topo):
    r = topo["router"]["id"]
    api.port(topo["blue"]["id"], host="compute-1")
    api.register("compute-1", "dvr", "192.0.2.11")
    api.set_gateway(r, topo["ext"]["id"])
    status = api.call("GET", f"/dvr/v1/routers/{r}/hosts", expect=200)
    assert status["snat_host"] is None  # no dvr_snat agent yet: compute hosts never get SNAT
    gateway_port = api.list("port", device_owner="network:router_gateway")[0]
    assert gateway_port["binding:host_id"] == ""
    api.register("net-1", "dvr_snat", "192.0.2.21")
    status = api.call("GET", f"/dvr/v1/routers/{r}/hosts", expect=200)
    assert status["snat_host"] == "net-1"
    assert set(status["hosts"]) == {"compute-1", "net-1"}  # the SNAT host hosts it too
    for owner in ("network:router_gateway", "network:router_centralized_snat"):
        assert {p["binding:host_id"] for p in api.list("port", device_owner=owner)} == {"net-1"}
    api.clear_gateway(r)
    assert api.router_hosts(r) == {"compute-1"}


def test_snat_goes_to_least_loaded_alive_admin_up_agent(api, app):
    ext = api.network("ext", **{"router:external": True})
    api.subnet(ext["id"], "203.0.113.0/24")
    api.register("net-a", "dvr_snat", "192.0.2.31")
    api.register("net-b", "dvr_snat", "192.0.2.32")
    api.register("net-dead", "dvr_snat", "192.0.2.33")
    api.register("net-down", "dvr_snat", "192.0.2.34")
    long_ago = app.state.context.config.agent_down_time + 10

    def kill(tx):
        tx.conn.execute(
            update(dvr_hosts)
            .where(dvr_hosts.c.host == "net-dead")
            .values(heartbeat_at=tx.now - timedelta(seconds=long_ago))
        )

    app.state.context.run_write(kill)
    down = [a for a in api.list("agent", host="net-down") if a["agent_type"] == "L3 agent"][0]
    api.update("agent", down["id"], admin_state_up=False)
    snat_hosts = []
    for i in range(4):
        router = api.router(f"r{i}")
        api.set_gateway(router["id"], ext["id"])
        snat_hosts.append(
            api.call("GET", f"/dvr/v1/routers/{router['id']}/hosts", expect=200)["snat_host"]
        )
    assert sorted(snat_hosts) == ["net-a", "net-a", "net-b", "net-b"]


def test_neutron_agent_views_of_scheduling(api, topo):
    r = topo["router"]["id"]
    api.register("compute-1", "dvr", "192.0.2.11")
    api.register("compute-2", "dvr", "192.0.2.12")
    api.port(topo["blue"]["id"], host="compute-1")
    agents = api.call("GET", f"/v2.0/routers/{r}/l3-agents", expect=200)["agents"]
    assert [(a["host"], a["agent_type"]) for a in agents] == [("compute-1", "L3 agent")]
    assert agents[0]["configurations"]["agent_mode"] == "dvr"
    agent_id = agents[0]["id"]
    routers = api.call("GET", f"/v2.0/agents/{agent_id}/l3-routers", expect=200)["routers"]
    assert [x["id"] for x in routers] == [r]
    idle = [a for a in api.list("agent", host="compute-2") if a["agent_type"] == "L3 agent"][0]
    assert api.call("GET", f"/v2.0/agents/{idle['id']}/l3-routers", expect=200) == {"routers": []}


def test_centralized_router_scheduled_to_one_legacy_or_snat_agent(api, topo):
    legacy = api.create("router", name="legacy")
    assert api.router_hosts(legacy["id"]) == set()
    api.register("compute-1", "dvr", "192.0.2.11")
    assert api.router_hosts(legacy["id"]) == set()  # dvr agents never host legacy routers
    api.register("net-1", "legacy", "192.0.2.21")
    assert api.router_hosts(legacy["id"]) == {"net-1"}
