"""Resources and calls clients expect besides the core ones (issue "The API under fire"):
tag-creation, availability zones, service providers, network IP availability, on SQLite
and PostgreSQL (openstacksdk's calls for them: test_server_openstacksdk.py)."""

from __future__ import annotations


def test_tag_creation_adds_tags_idempotently(api):
    net = api.network("tagged")
    base = f"/v2.0/networks/{net['id']}/tags"
    assert api.call("POST", base, {"tags": ["red", "green"]}, expect=201)["tags"] == [
        "green", "red"]
    api.call("POST", base, {"tags": ["blue", "red"]}, expect=201)
    api.call("POST", base, {"tags": []}, expect=201)
    assert api.show("network", net["id"])["tags"] == ["blue", "green", "red"]
    status, error = api.error("POST", base, {"tags": "red"})
    assert (status, error["type"]) == (400, "HTTPBadRequest")
    status, error = api.error("POST", "/v2.0/networks/00000000-0000-4000-8000-000000000000/tags",
                              {"tags": ["x"]})
    assert (status, error["type"]) == (404, "NetworkNotFound")
    aliases = {e["alias"] for e in api.call("GET", "/v2.0/extensions")["extensions"]}
    assert {"tag-creation", "availability_zone", "network-ip-availability",
            "service-type"} <= aliases


def test_availability_zones_come_from_the_l3_agents(api):
    assert api.call("GET", "/v2.0/availability_zones") == {"availability_zones": []}
    api.register("h1", tunnel_ip="198.18.0.11")
    api.register("h2", tunnel_ip="198.18.0.12", availability_zone="az-2")
    zones = api.call("GET", "/v2.0/availability_zones")["availability_zones"]
    assert zones == [{"name": "az-2", "resource": "router", "state": "available"},
                     {"name": "nova", "resource": "router", "state": "available"}]
    [agent] = api.list("agent", host="h2", agent_type="L3 agent")
    assert agent["availability_zone"] == "az-2"
    api.update("agent", agent["id"], admin_state_up=False)
    zones = api.call("GET", "/v2.0/availability_zones", name="az-2")["availability_zones"]
    assert zones == [{"name": "az-2", "resource": "router", "state": "unavailable"}]
    status, error = api.error("POST", "/dvr/v1/agents",
                              {"host": "h3", "availability_zone": ""})
    assert (status, error["type"]) == (400, "InvalidInput")


def test_service_providers(api):
    providers = api.call("GET", "/v2.0/service-providers")["service_providers"]
    assert {(p["service_type"], p["name"], p["default"]) for p in providers} == {
        ("L3_ROUTER_NAT", "single_node", True), ("L3_ROUTER_NAT", "dvr", False)}


def test_network_ip_availability_counts_pools_and_allocations(api):
    net = api.network("counted")
    v4 = api.subnet(net["id"], "192.0.2.0/24",
                    allocation_pools=[{"start": "192.0.2.10", "end": "192.0.2.19"}])
    api.port(net["id"])
    api.port(net["id"], fixed_ips=[{"subnet_id": v4["id"], "ip_address": "192.0.2.200"}])
    shown = api.call("GET", f"/v2.0/network-ip-availabilities/{net['id']}")
    item = shown["network_ip_availability"]
    assert (item["network_id"], item["network_name"]) == (net["id"], "counted")
    assert (item["total_ips"], item["used_ips"]) == (10, 2)
    assert item["subnet_ip_availability"] == [{
        "subnet_id": v4["id"], "subnet_name": v4["name"], "cidr": "192.0.2.0/24",
        "ip_version": 4, "total_ips": 10, "used_ips": 2}]
    listed = api.call("GET", "/v2.0/network-ip-availabilities")["network_ip_availabilities"]
    assert [i["network_id"] for i in listed] == [net["id"]]
    assert api.call("GET", "/v2.0/network-ip-availabilities",
                    ip_version="6")["network_ip_availabilities"] == []
    status, error = api.error("GET",
                              "/v2.0/network-ip-availabilities/00000000-0000-4000-8000-0000000000ff")
    assert status == 404



def _l3_agent(api, host):
    [agent] = api.list("agent", host=host, agent_type="L3 agent")
    return agent["id"]


def _hosted(api, agent_id):
    return {r["id"] for r in api.call("GET", f"/v2.0/agents/{agent_id}/l3-routers")["routers"]}


def test_manual_l3_scheduling_with_neutrons_rules(api):
    api.register("compute-1", "dvr", "198.18.0.11")
    net_a = _l3_agent(api, "compute-1")
    legacy = api.create("router", name="legacy")  # no central host yet: no snat agent
    distributed = api.router("dvr")
    status, error = api.error("POST", f"/v2.0/agents/{net_a}/l3-routers",
                              {"router_id": legacy["id"]})
    assert (status, error["type"]) == (400, "DVRL3CannotAssignToDvrAgent")

    api.register("old-1", "legacy", "198.18.0.21")
    old = _l3_agent(api, "old-1")  # registering scheduled the pending legacy router there
    assert legacy["id"] in _hosted(api, old)
    status, error = api.error("POST", f"/v2.0/agents/{old}/l3-routers",
                              {"router_id": distributed["id"]})
    assert (status, error["type"]) == (409, "RouterL3AgentMismatch")
    api.call("POST", f"/v2.0/agents/{old}/l3-routers", {"router_id": legacy["id"]}, expect=201)

    api.register("network-1", "dvr_snat", "198.18.0.101")
    snat = _l3_agent(api, "network-1")
    status, error = api.error("POST", f"/v2.0/agents/{snat}/l3-routers",
                              {"router_id": legacy["id"]})
    assert (status, error["type"]) == (409, "RouterHostedByL3Agent")
    assert old in error["message"]

    api.call("DELETE", f"/v2.0/agents/{old}/l3-routers/{legacy['id']}", expect=204)
    assert legacy["id"] not in _hosted(api, old)
    status, error = api.error("DELETE", f"/v2.0/agents/{old}/l3-routers/{legacy['id']}")
    assert (status, error["type"]) == (409, "RouterNotHostedByL3Agent")
    api.call("POST", f"/v2.0/agents/{snat}/l3-routers", {"router_id": legacy["id"]}, expect=201)
    assert legacy["id"] in _hosted(api, snat)
    api.call("POST", f"/v2.0/agents/{snat}/l3-routers", {"router_id": distributed["id"]},
             expect=201)
    assert distributed["id"] in _hosted(api, snat)
    assert {a["host"] for a in api.call(
        "GET", f"/v2.0/routers/{legacy['id']}/l3-agents")["agents"]} == {"network-1"}

    api.update("agent", old, admin_state_up=False)
    status, error = api.error("POST", f"/v2.0/agents/{old}/l3-routers",
                              {"router_id": legacy["id"]})
    assert (status, error["type"]) == (404, "InvalidL3Agent")
    status, error = api.error("POST", f"/v2.0/agents/{snat}/l3-routers", {"router": 1})
    assert (status, error["type"]) == (400, "InvalidInput")
