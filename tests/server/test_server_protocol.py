"""The agent protocol: registration, heartbeat, host MACs, host listings."""

import re
from datetime import timedelta

from server_helpers import make_config
from sqlalchemy import update
from starlette.testclient import TestClient

from dvr.client import host_path
from dvr.db.tables import dvr_hosts
from dvr.server.app import create_app


def test_register_creates_two_neutron_agents(api):
    result = api.register("compute-1", "dvr", "192.0.2.11", datapath_type="netdev")
    types = sorted(a["agent_type"] for a in result["agents"])
    assert types == ["L3 agent", "Open vSwitch agent"]
    listed = api.list("agent", host="compute-1")
    assert {a["id"] for a in listed} == {a["id"] for a in result["agents"]}
    for agent in listed:
        assert agent["alive"] is True and agent["admin_state_up"] is True
        assert agent["configurations"]["agent_mode"] == "dvr"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", agent["heartbeat_timestamp"])
    ovs = next(a for a in listed if a["agent_type"] == "Open vSwitch agent")
    assert ovs["configurations"]["tunneling_ip"] == "192.0.2.11"
    assert ovs["configurations"]["datapath_type"] == "netdev"
    again = api.register("compute-1", "dvr_snat", "192.0.2.12")
    assert {a["id"] for a in again["agents"]} == {a["id"] for a in result["agents"]}
    l3 = next(a for a in again["agents"] if a["agent_type"] == "L3 agent")
    assert l3["configurations"]["agent_mode"] == "dvr_snat"


def test_a_registration_answers_with_the_host_mac_once_the_host_has_one(api):
    assert api.register("compute-1", "dvr", "192.0.2.11")["host_mac"] is None
    mac = api.host_mac("compute-1")
    assert api.register("compute-1", "dvr", "192.0.2.11")["host_mac"] == mac
    assert api.register("compute-2", "dvr", "192.0.2.12")["host_mac"] is None  # its own


def test_register_rejects_bad_input(api):
    for body in (
        {"host": "h", "agent_mode": "bogus"},
        {"agent_mode": "dvr"},
        {"host": "h", "tunnel_ip": "not-an-ip"},
        {"host": "h", "datapath_type": "x"},
    ):
        status, error = api.error("POST", "/dvr/v1/agents", body)
        assert (status, error["type"]) == (400, "InvalidInput")
    status, error = api.error("POST", "/dvr/v1/agents", None)
    assert status == 400
    assert api.list("agent") == []


def test_register_refuses_host_names_no_url_can_name(api):
    """A host registered as "a/b" (or "." or "..") could never be reached again: the hosts'
    URLs (/dvr/v1/hosts/{host}/...) would be 404s or another path (fuzzer-found)."""
    for host in ("a/b", "/", "compute-1/", ".", ".."):
        status, error = api.error("POST", "/dvr/v1/agents", {"host": host})
        assert (status, error["type"]) == (400, "InvalidInput"), host
        assert "URL path segment" in error["message"]
    assert api.list("agent") == []


def test_any_other_host_name_is_addressable(api):
    for host in ("...", ".hidden", "a.b", "a?b#c%d e", "\u00e9t\u00e9"):
        api.register(host)
        view = api.call("GET", host_path(host, "view"), expect=200)
        assert view["host"] == host
        api.call("POST", host_path(host, "heartbeat"), {}, expect=200)


def test_heartbeat_reports_status_and_binds_ports(api, app):
    network = api.network()
    api.subnet(network["id"], "198.51.100.0/24")
    mine = api.port(network["id"], host="compute-1")
    other = api.port(network["id"], host="compute-2")
    assert mine["binding:vif_type"] == "unbound"
    status, error = api.error("POST", "/dvr/v1/hosts/compute-1/heartbeat", {})
    assert (status, error["type"]) == (404, "AgentNotFoundByTypeHost")
    api.register("compute-1", "dvr", "192.0.2.11")
    result = api.heartbeat("compute-1", applied_revision=7, ports_up=[mine["id"], other["id"]])
    assert result["ports_up"] == [mine["id"]]  # a host reports only its own ports
    shown = api.show("port", mine["id"])
    assert (shown["status"], shown["binding:vif_type"]) == ("ACTIVE", "ovs")
    assert shown["binding:vif_details"]["bridge_name"] == "br-int"
    assert api.show("port", other["id"])["status"] == "DOWN"
    api.heartbeat("compute-1", ports_down=[mine["id"]])
    assert api.show("port", mine["id"])["status"] == "DOWN"
    [host] = api.call("GET", "/dvr/v1/hosts", expect=200)
    assert host["applied_revision"] == 7
    # a port created on a host with a live agent is bound at once
    assert api.port(network["id"], host="compute-1")["binding:vif_type"] == "ovs"
    status, error = api.error("POST", "/dvr/v1/hosts/compute-1/heartbeat", {"applied_revision": -1})
    assert (status, error["type"]) == (400, "InvalidInput")


def test_agents_die_without_heartbeats(api, app):
    api.register("compute-1", "dvr", "192.0.2.11")
    context = app.state.context
    stale = timedelta(seconds=context.config.agent_down_time + 1)

    def age(tx):
        tx.conn.execute(update(dvr_hosts).values(heartbeat_at=tx.now - stale))
        from dvr.db.tables import agents

        tx.conn.execute(update(agents).values(heartbeat_timestamp=tx.now - stale))

    context.run_write(age)
    assert {a["alive"] for a in api.list("agent")} == {False}
    assert api.call("GET", "/dvr/v1/hosts", expect=200)[0]["alive"] is False
    api.heartbeat("compute-1")
    assert {a["alive"] for a in api.list("agent")} == {True}


def test_host_macs_are_stable_and_under_the_base(api):
    for i in range(1, 30):
        api.register(f"compute-{i}", "dvr", f"192.0.2.{i}")
    first = api.host_mac("compute-1")
    assert first.startswith("fa:16:3f:") and api.host_mac("compute-1") == first
    others = {api.host_mac(f"compute-{i}") for i in range(2, 30)}
    assert first not in others and len(others) == 28


def test_host_mac_base_is_configurable(db_url):
    app = create_app(make_config(db_url, host_mac_base="fa:16:3f:aa:00:00"), migrate=False)
    with TestClient(app) as client:
        client.post("/dvr/v1/agents", json={"host": "h1", "tunnel_ip": "192.0.2.1"})
        mac = client.post("/dvr/v1/hosts/h1/host-mac").json()["mac_address"]
    assert mac.startswith("fa:16:3f:aa:")


def test_host_listings(api):
    network = api.network()
    subnet = api.subnet(network["id"], "198.51.100.0/24")
    router = api.router()
    api.add_interface(router["id"], subnet_id=subnet["id"])
    api.register("compute-1", "dvr", "192.0.2.11")
    mac = api.host_mac("compute-1")
    api.port(network["id"], host="compute-1")
    [host] = api.call("GET", "/dvr/v1/hosts", expect=200)
    assert set(host) >= {
        "host",
        "agent_mode",
        "host_mac",
        "tunnel_ip",
        "alive",
        "heartbeat_timestamp",
        "applied_revision",
        "routers",
    }
    assert (host["host"], host["host_mac"], host["routers"]) == ("compute-1", mac, [router["id"]])
    assert api.call("GET", "/dvr/v1/hosts/compute-1/routers", expect=200) == {
        "host": "compute-1",
        "routers": [router["id"]],
    }
    assert api.call("GET", f"/dvr/v1/routers/{router['id']}/hosts", expect=200) == {
        "router_id": router["id"],
        "hosts": ["compute-1"],
        "snat_host": None,
    }
    status, error = api.error("GET", "/dvr/v1/routers/nope/hosts")
    assert (status, error["type"]) == (404, "RouterNotFound")


def test_agent_delete(api):
    api.register("compute-1", "dvr", "192.0.2.11")
    for agent in api.list("agent"):
        api.delete("agent", agent["id"])
    assert api.list("agent") == [] and api.call("GET", "/dvr/v1/hosts", expect=200) == []
