"""The web view's endpoints against an in-process app: /dvr/v1/topology, /dvr/v1/events
(long poll and Server-Sent Events), /dvr/v1/trace and the /ui page."""

from __future__ import annotations

import asyncio
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from dvr.server.app import create_app
from dvr.server.config import ServerConfig
from dvr.server.services import agents as agent_service
from dvr.web.events import revision_events
from dvr.web.routes import STATIC_DIR, web_routes
from tests.web.cloud import Cloud, build_cloud, create_group, create_vm, report_plugged

with warnings.catch_warnings():  # starlette nudges towards httpx2; httpx works fine
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture
def app(tmp_path: Path) -> Starlette:
    url = f"sqlite:///{tmp_path}/dvr.db"
    return create_app(ServerConfig(db_url=url, state_dir=tmp_path, no_auth=True))


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def cloud(client: TestClient) -> Cloud:
    return build_cloud(client)


def topology(client: TestClient) -> dict[str, Any]:
    response = client.get("/dvr/v1/topology")
    assert response.status_code == 200
    return response.json()


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            fields[key] = value
        events.append(fields)
    return events


# --- /dvr/v1/topology ---------------------------------------------------------------------


def test_topology_lists_hosts_networks_routers_and_vms(client: TestClient, cloud: Cloud) -> None:
    doc = topology(client)
    router_id = cloud.router["id"]

    hosts = {h["host"]: h for h in doc["hosts"]}
    assert set(hosts) == {"compute-1", "compute-2"}
    for name, host in hosts.items():
        assert host["registered"] and host["alive"]
        assert host["agent_mode"] == "dvr"
        assert host["host_mac"] == cloud.host_macs[name]
        assert host["routers"] == [router_id]
        assert host["heartbeat_timestamp"]
    assert hosts["compute-1"]["tunnel_ip"] == "192.0.2.11"

    networks = {n["name"]: n for n in doc["networks"]}
    assert set(networks) == {"blue", "orange"}
    assert [s["cidr"] for s in networks["blue"]["subnets"]] == ["198.51.100.0/24"]
    assert networks["orange"]["segmentation_id"] == cloud.networks["orange"][
        "provider:segmentation_id"]

    (router,) = doc["routers"]
    assert router["id"] == router_id and router["name"] == "r1" and router["distributed"]
    assert router["hosts"] == ["compute-1", "compute-2"]
    assert sorted(i["ip_address"] for i in router["interfaces"]) == [
        "198.51.100.1", "203.0.113.1"]
    assert {i["network_id"] for i in router["interfaces"]} == {
        n["id"] for n in cloud.networks.values()}

    vms = {v["name"]: v for v in doc["vms"]}
    assert set(vms) == {"blue-1", "blue-2", "orange-1"}  # compute ports only
    blue_1 = vms["blue-1"]
    assert blue_1["host"] == "compute-1"
    assert blue_1["network_id"] == cloud.networks["blue"]["id"]
    assert blue_1["mac_address"] == cloud.vms["blue-1"]["mac_address"]
    assert blue_1["fixed_ips"][0]["ip_address"] == cloud.ip("blue-1")
    assert blue_1["status"] == "ACTIVE"  # the agent reported it up
    assert doc["revision"] >= max(h["applied_revision"] for h in hosts.values())


def test_topology_tracks_which_hosts_lag_behind_their_changes(
    client: TestClient, cloud: Cloud
) -> None:
    before = {h["host"]: h for h in topology(client)["hosts"]}
    assert before["compute-1"]["in_sync"] and before["compute-1"]["pending_revisions"] == 0

    late = create_vm(client, "blue-3", cloud.networks["blue"]["id"], "compute-1")
    doc = topology(client)
    lagging = {h["host"]: h for h in doc["hosts"]}["compute-1"]
    assert not lagging["in_sync"] and lagging["pending_revisions"] >= 1

    report_plugged(client, "compute-1", [cloud.vms["blue-1"], late], doc["revision"])
    caught_up = {h["host"]: h for h in topology(client)["hosts"]}["compute-1"]
    assert caught_up["in_sync"] and caught_up["pending_revisions"] == 0
    assert caught_up["applied_revision"] == doc["revision"]


def test_topology_shows_a_host_without_agent_and_an_empty_cloud(client: TestClient) -> None:
    empty = topology(client)
    assert (empty["hosts"], empty["networks"], empty["routers"], empty["vms"]) == ([], [], [], [])

    network = client.post("/v2.0/networks", json={"network": {"name": "blue"}}).json()["network"]
    client.post("/v2.0/subnets", json={"subnet": {
        "network_id": network["id"], "cidr": "198.51.100.0/24", "ip_version": 4}})
    create_vm(client, "lonely", network["id"], "compute-9")
    doc = topology(client)
    (host,) = doc["hosts"]
    assert host["host"] == "compute-9"
    assert not host["registered"] and not host["alive"] and host["host_mac"] is None
    assert doc["vms"][0]["host"] == "compute-9"


def _vm_named(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in doc["vms"] if v["name"] == name)


def test_topology_carries_each_ports_groups_and_their_rules(
    client: TestClient, cloud: Cloud
) -> None:
    web = create_group(client, "web", [{"direction": "ingress", "protocol": "tcp",
                                        "port_range_min": 80, "port_range_max": 80,
                                        "remote_ip_prefix": "0.0.0.0/0"}])
    create_vm(client, "web-1", cloud.networks["blue"]["id"], "compute-1",
              security_groups=[web["id"]])
    create_vm(client, "open-1", cloud.networks["blue"]["id"], "compute-2",
              port_security_enabled=False, security_groups=[])
    doc = topology(client)
    groups = {g["name"]: g for g in doc["security_groups"]}
    assert set(groups) == {"default", "web"}
    default = groups["default"]

    # every VM of the cloud is in its project's default group, filtered
    for name in ("blue-1", "blue-2", "orange-1"):
        vm = _vm_named(doc, name)
        assert vm["security_groups"] == [default["id"]] and vm["port_security_enabled"] is True
    assert _vm_named(doc, "web-1")["security_groups"] == [web["id"]]
    open_1 = _vm_named(doc, "open-1")
    assert open_1["port_security_enabled"] is False and open_1["security_groups"] == []

    # the groups as the security-group API renders them, rules included
    for group in (default, web):
        api = _ok(client.get(f"/v2.0/security-groups/{group['id']}"))["security_group"]
        assert group == api
    rules = {(r["direction"], r["ethertype"], r["protocol"], r["port_range_min"],
              r["remote_ip_prefix"], r["remote_group_id"])
             for r in default["security_group_rules"]}
    assert rules == {("egress", "IPv4", None, None, None, None),
                     ("egress", "IPv6", None, None, None, None),
                     ("ingress", "IPv4", None, None, None, default["id"]),
                     ("ingress", "IPv6", None, None, None, default["id"])}
    assert ("ingress", "tcp", 80, "0.0.0.0/0") in {
        (r["direction"], r["protocol"], r["port_range_min"], r["remote_ip_prefix"])
        for r in web["security_group_rules"]}


# --- /dvr/v1/events -------------------------------------------------------------------------


def test_events_long_poll_answers_at_once_when_the_revision_moved(
    client: TestClient, cloud: Cloud
) -> None:
    revision = topology(client)["revision"]
    assert client.get("/dvr/v1/events").json() == {"revision": revision, "changed": False}
    answer = client.get("/dvr/v1/events", params={"since": 0, "timeout": 30}).json()
    assert answer == {"revision": revision, "changed": True}


def test_events_long_poll_without_change_ends_at_its_timeout(
    client: TestClient, cloud: Cloud
) -> None:
    revision = topology(client)["revision"]
    answer = client.get("/dvr/v1/events", params={"since": revision, "timeout": 0.2}).json()
    assert answer == {"revision": revision, "changed": False}


def test_events_long_poll_is_woken_by_a_write(client: TestClient, cloud: Cloud) -> None:
    revision = topology(client)["revision"]
    answers: list[dict[str, Any]] = []
    poll = threading.Thread(target=lambda: answers.append(client.get(
        "/dvr/v1/events", params={"since": revision, "timeout": 30}).json()))
    poll.start()
    create_vm(client, "blue-3", cloud.networks["blue"]["id"], "compute-1")
    poll.join(timeout=60)
    assert not poll.is_alive()
    assert answers[0]["changed"] and answers[0]["revision"] > revision


def test_events_rejects_bad_parameters(client: TestClient) -> None:
    assert client.get("/dvr/v1/events", params={"since": "x"}).status_code == 400
    assert client.get("/dvr/v1/events", params={"since": 1, "timeout": "-1"}).status_code == 400


@pytest.mark.parametrize(
    "params",
    [{"since": "\u00b2"}, {"since": "9" * 40}, {"since": "1", "timeout": "nan"},
     {"since": "1", "timeout": "inf"}],
)
def test_events_rejects_odd_numbers_with_a_400(client: TestClient, params: dict[str, str]) -> None:
    """The same checks as the agent's watch: ASCII revisions of at most 18 digits, finite
    timeouts (a superscript digit or a NaN timeout must not reach the code as a number)."""
    response = client.get("/dvr/v1/events", params=params)
    assert response.status_code == 400
    assert response.json()["NeutronError"]["type"] == "HTTPBadRequest"


def test_events_stream_sends_the_revision_then_ticks(client: TestClient, cloud: Cloud) -> None:
    revision = topology(client)["revision"]
    with client.stream("GET", "/dvr/v1/events", params={"timeout": 0.5, "keepalive": 0.1},
                       headers={"Accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.read().decode())
    assert events[0] == {"retry": "2000"}
    assert events[1] == {"id": str(revision), "event": "revision",
                         "data": f'{{"revision":{revision}}}'}
    ticks = events[2:]
    assert ticks and all(e == {"event": "tick", "data": f'{{"revision":{revision}}}'}
                         for e in ticks)


def test_event_stream_emits_each_new_revision(app: Starlette) -> None:
    context = app.state.context

    async def scenario() -> list[str]:
        stream = revision_events(context, duration=60, keepalive=60, reconnect_ms=2000)
        seen = [await anext(stream), await anext(stream)]
        following = asyncio.ensure_future(anext(stream))
        await context.write(lambda tx: agent_service.register(
            tx, {"host": "compute-3", "tunnel_ip": "192.0.2.13"}))
        seen.append(await asyncio.wait_for(following, 30))
        await stream.aclose()
        await context.hub.close()
        return seen

    retry, first, second = asyncio.run(scenario())
    assert retry.startswith("retry:")
    first_revision = int(re.search(r"^id: (\d+)$", first, re.M).group(1))
    second_revision = int(re.search(r"^id: (\d+)$", second, re.M).group(1))
    assert "event: revision" in second and second_revision == first_revision + 1


# --- /dvr/v1/trace ----------------------------------------------------------------------------


def test_trace_of_a_routed_cross_host_path(client: TestClient, cloud: Cloud) -> None:
    response = client.get("/dvr/v1/trace", params={"src": "blue-1", "dst": "orange-1"})
    assert response.status_code == 200
    doc = response.json()
    router_id = cloud.router["id"]
    orange_vni = cloud.networks["orange"]["provider:segmentation_id"]

    assert doc["verdict"] == "delivered" and doc["reason"] is None
    assert doc["reply"]["verdict"] == "delivered"
    assert doc["src"]["id"] == cloud.vms["blue-1"]["id"] and doc["src"]["host"] == "compute-1"
    assert doc["dst"]["ip"] == cloud.ip("orange-1") and doc["dst"]["host"] == "compute-2"
    assert [(h["kind"], h["host"]) for h in doc["hops"]] == [
        ("vm", "compute-1"), ("router", "compute-1"), ("tunnel", "compute-1"),
        ("vm", "compute-2")]
    assert doc["hops"][1]["id"] == router_id
    assert doc["hops"][2]["to_host"] == "compute-2" and doc["hops"][2]["vni"] == orange_vni
    assert doc["hops"][3]["id"] == cloud.vms["orange-1"]["id"]

    forward = [s for s in doc["steps"] if s["direction"] == "forward"]
    assert [s["index"] for s in doc["steps"]] == list(range(1, len(doc["steps"]) + 1))
    rewrite = next(s for s in forward if (s["host"], s["bridge"], s["table"]) ==
                   ("compute-1", "br-tun", 1))
    assert f"mod_dl_src:{cloud.host_macs['compute-1']}" in rewrite["actions"]
    assert rewrite["priority"] is not None and rewrite["owner"].startswith("subnet:")
    # routed by the east/west fast path in br-int, not in the namespace
    assert not any(s["kind"] == "router" for s in forward)
    (routing,) = [s for s in forward if s["table"] == 65 and s["priority"] == 10]
    assert routing["host"] == "compute-1" and routing["owner"] == f"fastpath:{router_id}"
    assert routing["owner_description"].startswith("east/west fast path of router")
    assert "nw_ttl 64 → 63" in routing["summary"], routing
    assert doc["hops"][1]["name"] == "br-int (east/west fast path)"
    (tunnel,) = [s for s in forward if s["kind"] == "tunnel"]
    assert f"VXLAN VNI {orange_vni}: 192.0.2.11 → 192.0.2.12" == tunnel["actions"]
    assert ("compute-2", "br-tun", 9) in [(s["host"], s["bridge"], s["table"]) for s in forward]
    assert forward[-1]["kind"] == "deliver" and forward[-1]["host"] == "compute-2"
    assert doc["assumed_plugged"] == []  # both agents reported their VIFs


def test_trace_uses_reported_vif_names_and_assumes_them_only_without_a_report(
    client: TestClient, cloud: Cloud
) -> None:
    blue_1 = cloud.vms["blue-1"]
    revision = topology(client)["revision"]
    client.post("/dvr/v1/hosts/compute-1/heartbeat", json={
        "applied_revision": revision, "vifs": {blue_1["id"]: "vm-blue-1"}, "local_vlans": {}})
    doc = client.get("/dvr/v1/trace", params={"src": "orange-1", "dst": "blue-1"}).json()
    assert doc["verdict"] == "delivered"
    assert doc["steps"][[s["direction"] for s in doc["steps"]].index("reply")]["bridge"] == (
        "vm-blue-1")  # the reply is sent from the VIF the agent reported

    client.post("/dvr/v1/agents", json={"host": "compute-3", "tunnel_ip": "192.0.2.13"})
    create_vm(client, "blue-4", cloud.networks["blue"]["id"], "compute-3")
    doc = client.get("/dvr/v1/trace", params={"src": "blue-4", "dst": "blue-1"}).json()
    assert doc["verdict"] == "delivered"
    assert doc["assumed_plugged"] == ["compute-3"]


def test_trace_of_a_same_subnet_path_has_no_router(client: TestClient, cloud: Cloud) -> None:
    doc = client.get("/dvr/v1/trace", params={
        "src": cloud.vms["blue-2"]["id"], "dst": cloud.ip("blue-1"),
        "proto": "tcp", "dport": "22"}).json()
    assert doc["verdict"] == "delivered" and doc["proto"] == "tcp" and doc["dport"] == 22
    assert [(h["kind"], h["host"]) for h in doc["hops"]] == [
        ("vm", "compute-2"), ("tunnel", "compute-2"), ("vm", "compute-1")]
    assert doc["hops"][1]["vni"] == cloud.networks["blue"]["provider:segmentation_id"]
    assert not any(s["kind"] == "router" for s in doc["steps"])


def test_trace_of_a_drop_points_at_the_router_namespace(client: TestClient, cloud: Cloud) -> None:
    doc = client.get("/dvr/v1/trace", params={"src": "blue-1", "dst": "192.0.2.99"}).json()
    assert doc["verdict"] == "dropped" and "no route to 192.0.2.99" in doc["reason"]
    assert doc["reply"] is None
    assert doc["hops"][-1] == {"kind": "drop", "host": "compute-1", "id": cloud.router["id"],
                               "name": f"qrouter-{cloud.router['id']}", "firewall": None,
                               "port_id": None}
    assert doc["steps"][-1]["kind"] == "drop" and doc["steps"][-1]["host"] == "compute-1"
    assert doc["denied"] is None  # dropped by routing, not by a firewall


def _plug(client: TestClient, cloud: Cloud, host: str, *more: dict[str, Any]) -> None:
    """The host's agent reports the cloud's VMs on it and ``more`` plugged."""
    ports = [p for p in cloud.vms.values() if p["binding:host_id"] == host] + list(more)
    report_plugged(client, host, ports, topology(client)["revision"])


def test_trace_of_an_allowed_path_names_its_firewall_steps(
    client: TestClient, cloud: Cloud
) -> None:
    doc = client.get("/dvr/v1/trace", params={"src": "blue-1", "dst": "orange-1"}).json()
    assert doc["verdict"] == "delivered"
    assert doc["denied"] is None and doc["reply"]["denied"] is None
    forward = [s for s in doc["steps"] if s["direction"] == "forward"]
    sides = {(s["host"], s["firewall"]) for s in forward if s["firewall"]}
    # the sender's egress firewall on compute-1, the receiver's ingress firewall on compute-2
    assert sides == {("compute-1", "egress"), ("compute-2", "ingress")}
    assert all(s["bridge"] == "br-int" for s in forward if s["firewall"])
    tunnel = next(s for s in forward if s["kind"] == "tunnel")
    assert tunnel["firewall"] is None


def test_trace_denied_by_the_receivers_ingress_firewall_is_marked(
    client: TestClient, cloud: Cloud
) -> None:
    locked = create_group(client, "locked")  # egress only: nobody may come in
    target = create_vm(client, "locked-1", cloud.networks["orange"]["id"], "compute-2",
                       security_groups=[locked["id"]])
    _plug(client, cloud, "compute-2", target)
    doc = client.get("/dvr/v1/trace", params={"src": "blue-1", "dst": "locked-1",
                                              "proto": "tcp", "dport": "22"}).json()
    assert doc["verdict"] == "dropped" and doc["reply"] is None
    forward = [s for s in doc["steps"] if s["direction"] == "forward"]
    denied = doc["denied"]
    assert denied == {
        "step": forward[-1]["index"], "direction": "forward", "host": "compute-2",
        "firewall": "ingress", "port_id": target["id"], "port_name": "locked-1",
        "reason": denied["reason"]}
    assert "no rule of the port's groups allows it" in denied["reason"]
    assert forward[-1]["kind"] == "drop" and forward[-1]["firewall"] == "ingress"
    assert forward[-1]["bridge"] == "br-int"
    assert doc["hops"][-1] == {"kind": "drop", "host": "compute-2", "id": None,
                               "name": forward[-1]["bridge"] + f" table {forward[-1]['table']}",
                               "firewall": "ingress", "port_id": target["id"]}
    # the same VM is reachable once its group lets SSH in: the mark goes with the verdict
    _ok(client.post("/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": locked["id"], "direction": "ingress", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22}}))
    doc = client.get("/dvr/v1/trace", params={"src": "blue-1", "dst": "locked-1",
                                              "proto": "tcp", "dport": "22"}).json()
    assert doc["verdict"] == "delivered" and doc["denied"] is None


def test_trace_denied_by_the_senders_egress_firewall_names_the_sender(
    client: TestClient, cloud: Cloud
) -> None:
    mute = create_group(client, "mute", egress=False)  # no rule at all
    sender = create_vm(client, "mute-1", cloud.networks["blue"]["id"], "compute-1",
                       security_groups=[mute["id"]])
    _plug(client, cloud, "compute-1", sender)
    doc = client.get("/dvr/v1/trace", params={"src": "mute-1", "dst": "blue-2"}).json()
    assert doc["verdict"] == "dropped"
    denied = doc["denied"]
    assert (denied["firewall"], denied["port_id"], denied["port_name"], denied["host"]) == (
        "egress", sender["id"], "mute-1", "compute-1")
    assert doc["steps"][denied["step"] - 1]["kind"] == "drop"
    assert [h["kind"] for h in doc["hops"]] == ["vm", "drop"]  # it never left its host
    assert (doc["hops"][-1]["firewall"], doc["hops"][-1]["port_id"]) == ("egress", sender["id"])


def test_trace_from_a_port_without_port_security_passes_no_egress_firewall(
    client: TestClient, cloud: Cloud
) -> None:
    sender = create_vm(client, "open-1", cloud.networks["blue"]["id"], "compute-1",
                       port_security_enabled=False, security_groups=[])
    _plug(client, cloud, "compute-1", sender)
    doc = client.get("/dvr/v1/trace", params={"src": "open-1", "dst": "orange-1"}).json()
    # orange-1's default group admits only its group-mates: open-1 is none
    assert doc["verdict"] == "dropped" and doc["denied"]["firewall"] == "ingress"
    assert doc["denied"]["port_name"] == "orange-1"
    assert not any(s["firewall"] == "egress" for s in doc["steps"])


def test_trace_names_an_unknown_endpoint(client: TestClient, cloud: Cloud) -> None:
    doc = client.get("/dvr/v1/trace", params={"src": "nowhere", "dst": "blue-1"}).json()
    assert doc["verdict"] == "dropped"
    assert "'nowhere' not found" in doc["reason"]
    assert doc["hops"] == []


@pytest.mark.parametrize("params", [
    {"src": "blue-1"},
    {"dst": "blue-1"},
    {"src": "blue-1", "dst": "blue-2", "proto": "sctp"},
    {"src": "blue-1", "dst": "blue-2", "proto": "icmp", "dport": "22"},
    {"src": "blue-1", "dst": "blue-2", "proto": "tcp", "dport": "ssh"},
    {"src": "blue-1", "dst": "blue-2", "proto": "tcp", "dport": "70000"},
])
def test_trace_rejects_bad_requests(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/dvr/v1/trace", params=params)
    assert response.status_code == 400
    assert response.json()["NeutronError"]["type"] == "HTTPBadRequest"


# --- /ui ------------------------------------------------------------------------------------


def test_ui_serves_the_built_page_and_its_assets(client: TestClient) -> None:
    for path in ("/ui", "/ui/"):
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert 'id="diagram"' in page.text
    assets = re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert (STATIC_DIR / asset.removeprefix("/ui/")).read_bytes() == response.content


def test_ui_without_a_build_says_how_to_build_it(app: Starlette, tmp_path: Path) -> None:
    bare = Starlette(routes=web_routes(app.state.context, static_dir=tmp_path / "none"))
    with TestClient(bare) as bare_client:
        response = bare_client.get("/ui")
    assert response.status_code == 503
    assert "npm run build" in response.text


# --- north/south ------------------------------------------------------------------------------

EXTERNAL_CIDR, OUTSIDE_IP = "198.18.0.0/24", "198.18.0.1"
MAPPINGS = {"public": "br-ex"}


def _ok(response: Any) -> Any:
    assert response.status_code < 300, (response.status_code, response.text)
    return response.json() if response.content else None


def north_south(client: TestClient, cloud: Cloud) -> dict[str, Any]:
    """network-1 (dvr_snat), an external network, r1's gateway, a floating IP on orange-1;
    every agent reports its VIFs and the bridge mapping public:br-ex."""
    client.post("/dvr/v1/agents", json={"host": "network-1", "agent_mode": "dvr_snat",
                                         "tunnel_ip": "192.0.2.19", "datapath_type": "netdev"})
    _ok(client.post("/dvr/v1/hosts/network-1/host-mac"))
    public = _ok(client.post("/v2.0/networks", json={"network": {
        "name": "public", "router:external": True, "provider:network_type": "flat",
        "provider:physical_network": "public"}}))["network"]
    _ok(client.post("/v2.0/subnets", json={"subnet": {
        "network_id": public["id"], "cidr": EXTERNAL_CIDR, "ip_version": 4,
        "gateway_ip": OUTSIDE_IP}}))
    _ok(client.put(f"/v2.0/routers/{cloud.router['id']}", json={"router": {
        "external_gateway_info": {"network_id": public["id"]}}}))
    fip = _ok(client.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": public["id"], "port_id": cloud.vms["orange-1"]["id"]}}))
    revision = topology(client)["revision"]
    for host in ("compute-1", "compute-2", "network-1"):
        ports = [p for p in cloud.vms.values() if p["binding:host_id"] == host]
        _ok(client.post(f"/dvr/v1/hosts/{host}/heartbeat", json={
            "applied_revision": revision, "vifs": {p["id"]: f"tap{p['id'][:11]}" for p in ports},
            "local_vlans": {}, "bridge_mappings": MAPPINGS}))
    return fip["floatingip"]


def test_topology_shows_gateways_snat_hosts_and_floating_ips(
    client: TestClient, cloud: Cloud
) -> None:
    fip = north_south(client, cloud)
    doc = topology(client)
    (router,) = doc["routers"]
    assert router["snat_host"] == "network-1"
    assert router["gateway"]["fixed_ips"][0]["ip_address"].startswith("198.18.0.")
    (listed,) = doc["floating_ips"]
    assert listed["floating_ip_address"] == fip["floating_ip_address"]
    assert (listed["port_id"], listed["host"], listed["router_id"]) == (
        cloud.vms["orange-1"]["id"], "compute-2", cloud.router["id"])
    assert listed["fixed_ip_address"] == cloud.ip("orange-1")


def test_trace_north_south_paths(client: TestClient, cloud: Cloud) -> None:
    fip = north_south(client, cloud)
    address = fip["floating_ip_address"]
    # SNAT: blue-1 leaves through network-1's snat- namespace
    doc = client.get("/dvr/v1/trace", params={"src": "blue-1", "dst": OUTSIDE_IP}).json()
    assert doc["verdict"] == "delivered", doc["summary"]
    assert doc["dst"]["kind"] == "outside"
    assert [(h["kind"], h["host"]) for h in doc["hops"]] == [
        ("vm", "compute-1"), ("router", "compute-1"), ("tunnel", "compute-1"),
        ("router", "network-1"), ("segment", "network-1"), ("address", None)]
    assert doc["hops"][3]["name"] == f"snat-{cloud.router['id']}"
    assert any("snat to" in (s["actions"] or "") for s in doc["steps"])
    assert doc["reply"]["verdict"] == "delivered"
    # the floating IP: orange-1 leaves from compute-2, through fip-
    doc = client.get("/dvr/v1/trace", params={"src": "orange-1", "dst": OUTSIDE_IP}).json()
    assert doc["verdict"] == "delivered", doc["summary"]
    kinds = [(h["kind"], h["host"]) for h in doc["hops"]]
    assert ("namespace", "compute-2") in kinds and ("tunnel", "compute-2") not in kinds
    # and in: orange-1's security groups (the project's default) let nobody outside in ...
    doc = client.get("/dvr/v1/trace", params={"src": OUTSIDE_IP, "dst": address}).json()
    assert doc["verdict"] == "dropped" and "no rule of the port's groups" in doc["summary"]
    # ... until a rule does, as an operator opens ICMP to reach a floating IP
    (default,) = _ok(client.get("/v2.0/security-groups", params={"name": "default"}))[
        "security_groups"]
    _ok(client.post("/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": default["id"], "direction": "ingress", "protocol": "icmp"}}))
    # the outside router reaches the floating IP through proxy ARP on fg-
    doc = client.get("/dvr/v1/trace", params={"src": OUTSIDE_IP, "dst": address}).json()
    assert doc["verdict"] == "delivered", doc["summary"]
    assert doc["src"]["kind"] == "outside" and doc["hops"][0]["kind"] == "address"
    assert doc["hops"][-1] == {"kind": "vm", "host": "compute-2",
                               "id": cloud.vms["orange-1"]["id"], "name": "orange-1"}
    assert "proxy ARP" in doc["steps"][0]["summary"]
    assert doc["reply"]["verdict"] == "delivered"
