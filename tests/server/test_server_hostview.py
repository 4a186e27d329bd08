"""HostView contents: everything one host needs, nothing it does not."""

import json

import pytest
from server_helpers import UPPER_POOL, pool

from dvr.model.hostview import HostView, host_view_from_dict


@pytest.fixture
def cloud(api):
    api.register("compute-1", "dvr", "192.0.2.11")
    api.register("compute-2", "dvr", "192.0.2.12")
    api.register("net-1", "dvr_snat", "192.0.2.21")
    macs = {h: api.host_mac(h) for h in ("compute-1", "compute-2", "net-1")}
    c = {"macs": macs}
    c["blue"] = api.network("blue")
    c["blue_sub"] = api.subnet(c["blue"]["id"], "198.51.100.0/24", allocation_pools=UPPER_POOL)
    c["orange"] = api.network("orange")
    c["orange_sub"] = api.subnet(c["orange"]["id"], "10.1.0.0/24", allocation_pools=pool("10.1.0"))
    c["green"] = api.network("green")
    c["green_sub"] = api.subnet(c["green"]["id"], "10.2.0.0/24")
    c["ext"] = api.network("ext", **{"router:external": True})
    c["ext_sub"] = api.subnet(c["ext"]["id"], "203.0.113.0/24")
    c["router"] = api.router("R")
    c["if_blue"] = api.add_interface(c["router"]["id"], subnet_id=c["blue_sub"]["id"])
    c["if_orange"] = api.add_interface(c["router"]["id"], subnet_id=c["orange_sub"]["id"])
    api.set_gateway(c["router"]["id"], c["ext"]["id"])
    c["b1"] = api.port(
        c["blue"]["id"], host="compute-1", fixed_ips=[{"ip_address": "198.51.100.10"}]
    )
    c["b2"] = api.port(
        c["blue"]["id"], host="compute-2", fixed_ips=[{"ip_address": "198.51.100.11"}]
    )
    c["o1"] = api.port(c["orange"]["id"], host="compute-2", fixed_ips=[{"ip_address": "10.1.0.20"}])
    c["g1"] = api.port(c["green"]["id"], host="compute-2")
    c["fip"] = api.fip(c["ext"]["id"], port_id=c["b1"]["id"])
    return c


def ports_by_owner(api, owner):
    return {p["id"]: p for p in api.list("port", device_owner=owner)}


def test_compute_host_view(api, cloud):
    view = api.view("compute-1")
    assert view.host == "compute-1" and view.agent_mode == "dvr"
    assert view.tunnel_ip == "192.0.2.11" and view.host_mac == cloud["macs"]["compute-1"]
    assert view.revision == api.revision()
    [fg] = ports_by_owner(api, "network:floatingip_agent_gateway").values()
    assert [p.id for p in view.ports] == sorted([cloud["b1"]["id"], fg["id"]])
    assert [p.id for p in view.fip_agent_gateways] == [fg["id"]]
    assert {n.id for n in view.networks} == {
        cloud["blue"]["id"],
        cloud["orange"]["id"],
        cloud["ext"]["id"],
    }  # not green
    assert [n.id for n in view.networks] == sorted(n.id for n in view.networks)

    blue = view.network(cloud["blue"]["id"])
    assert (blue.network_type, blue.mtu, blue.external) == ("vxlan", 1450, False)
    assert blue.segmentation_id == cloud["blue"]["provider:segmentation_id"]
    assert [s.cidr for s in blue.subnets] == ["198.51.100.0/24"]
    snat = {
        p["fixed_ips"][0]["subnet_id"]: p
        for p in ports_by_owner(api, "network:router_centralized_snat").values()
    }
    remote = {r.host: r for r in blue.remote_hosts}
    assert list(remote) == ["compute-2", "net-1"]
    assert remote["compute-2"].tunnel_ip == "192.0.2.12"
    assert [(e.mac_address, e.ip_addresses) for e in remote["compute-2"].entries] == [
        (cloud["b2"]["mac_address"], ("198.51.100.11",))
    ]
    snat_blue = snat[cloud["blue_sub"]["id"]]
    assert [(e.mac_address, e.ip_addresses) for e in remote["net-1"].entries] == [
        (snat_blue["mac_address"], (snat_blue["fixed_ips"][0]["ip_address"],))
    ]
    # no distributed interface port is ever an L2 entry
    interface_macs = {
        p["mac_address"]
        for p in api.list("port", device_owner="network:router_interface_distributed")
    }
    for network in view.networks:
        for host in network.remote_hosts:
            assert not {e.mac_address for e in host.entries} & interface_macs

    orange = view.network(cloud["orange"]["id"])
    assert [r.host for r in orange.remote_hosts] == ["compute-2", "net-1"]
    ext = view.network(cloud["ext"]["id"])
    assert ext.external is True and [r.host for r in ext.remote_hosts] == ["net-1"]

    [router] = view.routers
    assert router.id == cloud["router"]["id"] and router.distributed
    assert [(i.subnet_id, i.ip_address, i.cidr, i.mtu) for i in router.interfaces] == sorted(
        [
            (cloud["blue_sub"]["id"], "198.51.100.1", "198.51.100.0/24", 1450),
            (cloud["orange_sub"]["id"], "10.1.0.1", "10.1.0.0/24", 1450),
        ]
    )
    arp = {(a.subnet_id, a.ip_address): a.mac_address for a in router.arp_entries}
    expected = {
        (cloud["blue_sub"]["id"], "198.51.100.10"): cloud["b1"]["mac_address"],
        (cloud["blue_sub"]["id"], "198.51.100.11"): cloud["b2"]["mac_address"],
        (cloud["orange_sub"]["id"], "10.1.0.20"): cloud["o1"]["mac_address"],
    }
    for subnet_id, port in snat.items():
        expected[(subnet_id, port["fixed_ips"][0]["ip_address"])] = port["mac_address"]
    assert arp == expected
    assert list(router.arp_entries) == sorted(
        router.arp_entries, key=lambda a: (a.subnet_id, a.ip_address)
    )
    assert router.snat_host == "net-1"
    assert [s.subnet_id for s in router.snat_ports] == sorted(snat)
    assert router.gateway.network_id == cloud["ext"]["id"]
    assert [s.id for s in router.gateway.subnets] == [cloud["ext_sub"]["id"]]
    assert router.gateway.enable_snat is True
    [fip] = router.floating_ips
    assert (fip.id, fip.fixed_ip_address, fip.port_id, fip.host) == (
        cloud["fip"]["id"],
        "198.51.100.10",
        cloud["b1"]["id"],
        "compute-1",
    )
    assert fip.floating_ip_address == cloud["fip"]["floating_ip_address"]
    assert [(m.host, m.mac_address) for m in view.peer_host_macs] == [
        ("compute-2", cloud["macs"]["compute-2"]),
        ("net-1", cloud["macs"]["net-1"]),
    ]


def test_snat_host_view(api, cloud):
    view = api.view("net-1")
    assert view.agent_mode == "dvr_snat"
    owners = sorted(p.device_owner for p in view.ports)
    assert owners == [
        "network:router_centralized_snat",
        "network:router_centralized_snat",
        "network:router_gateway",
    ]
    [router] = view.routers
    assert router.snat_host == "net-1" and len(router.snat_ports) == 2
    assert router.floating_ips == ()  # the FIP lives on compute-1
    ext = view.network(cloud["ext"]["id"])
    fg = ports_by_owner(api, "network:floatingip_agent_gateway")
    assert [r.host for r in ext.remote_hosts] == ["compute-1"]
    assert [e.mac_address for e in ext.remote_hosts[0].entries] == [
        next(iter(fg.values()))["mac_address"]
    ]


def test_host_without_router_ports(api, cloud):
    view = api.view("compute-2")
    assert {n.id for n in view.networks} == {
        cloud["blue"]["id"],
        cloud["orange"]["id"],
        cloud["green"]["id"],
    }
    green = view.network(cloud["green"]["id"])
    assert green.remote_hosts == ()  # nobody else on green
    assert view.routers[0].floating_ips == ()
    assert view.fip_agent_gateways == ()


def test_unknown_host_has_an_empty_view(api, cloud):
    view = api.view("nobody")
    assert (view.ports, view.networks, view.routers) == ((), (), ())
    assert view.host_mac is None and view.tunnel_ip is None
    assert len(view.peer_host_macs) == 3


def test_unregistered_hosts_are_not_remote_tunnel_endpoints(api, cloud):
    api.port(cloud["blue"]["id"], host="compute-9")  # no agent on compute-9 yet
    blue = api.view("compute-1").network(cloud["blue"]["id"])
    assert "compute-9" not in [r.host for r in blue.remote_hosts]
    api.register("compute-9", "dvr", "192.0.2.19")
    blue = api.view("compute-1").network(cloud["blue"]["id"])
    assert "compute-9" in [r.host for r in blue.remote_hosts]


def test_view_json_round_trips_and_is_deterministic(api, cloud):
    raw = api.call("GET", "/dvr/v1/hosts/compute-1/view", expect=200)
    view = host_view_from_dict(raw)
    assert isinstance(view, HostView)
    assert json.loads(json.dumps(view.to_dict())) == raw
    assert api.call("GET", "/dvr/v1/hosts/compute-1/view", expect=200) == raw


def test_fast_serialization_equals_asdict(api, cloud):
    from dvr.server.hostview import build_host_view
    from dvr.server.serialize import to_jsonable

    for host in ("compute-1", "net-1", "nobody"):
        view = api.context.run_read(lambda tx, h=host: build_host_view(tx.conn, h))
        assert to_jsonable(view) == json.loads(json.dumps(view.to_dict()))
