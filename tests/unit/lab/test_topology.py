import ipaddress

import pytest

from dvr.lab.topology import default_topology, lab_hosts, validate_lab_name
from dvr.lab.vm import VmPlug, plug_commands, tap_name, unplug_commands, vm_namespace

DOC_RANGES = [ipaddress.ip_network(n) for n in
              ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15")]


def in_doc_ranges(addr):
    ip = ipaddress.ip_interface(addr).ip if "/" in addr else ipaddress.ip_address(addr)
    return any(ip in net for net in DOC_RANGES)


def test_default_topology_is_the_dvr_md_scenario():
    t = default_topology()
    assert [(h.name, h.mode) for h in t.hosts] == [
        ("compute-1", "dvr"), ("compute-2", "dvr"), ("network-1", "dvr_snat")]
    assert t.router == "demo-router"
    assert set(t.router_networks) == {"blue", "orange"}
    assert {(v.name, v.network, v.host) for v in t.vms} == {
        ("blue-1", "blue", "compute-1"), ("orange-1", "orange", "compute-2"),
        ("blue-2", "blue", "compute-2")}


@pytest.mark.parametrize("computes", [1, 2, 3, 10])
def test_every_address_is_from_documentation_ranges_and_unique(computes):
    t = default_topology(computes=computes)
    ips = [h.tunnel_ip for h in t.hosts]
    assert len(set(ips)) == len(ips) == computes + 1
    assert all(in_doc_ranges(ip) for ip in ips)
    assert all(in_doc_ranges(n.cidr.split("/")[0]) for n in t.networks)


def test_external_network_is_flat_and_the_outside_host_is_its_gateway():
    t = default_topology()
    public = t.external_network
    assert (public.name, public.cidr) == ("public", "203.0.113.0/24")
    assert public.api_body() == {
        "name": "public",
        "router:external": True,
        "provider:network_type": "flat",
        "provider:physical_network": "public",
    }
    assert t.outside_cidr == "203.0.113.1/24" and in_doc_ranges(t.outside_cidr)
    blue = next(n for n in t.networks if n.name == "blue")
    assert blue.api_body() == {"name": "blue"}  # tenant networks: VXLAN by default
    assert blue.gateway_ip == "192.0.2.1"


def test_the_external_subnets_pool_leaves_its_top_to_outside_hosts():
    public = default_topology().external_network
    body = public.subnet_body("net-id")
    assert body == {"name": "public-subnet", "network_id": "net-id", "cidr": "203.0.113.0/24",
                    "ip_version": 4,
                    "allocation_pools": [{"start": "203.0.113.2", "end": "203.0.113.222"}]}
    outside = public.outside_addresses()
    assert (outside[0], outside[-1], len(outside)) == ("203.0.113.223", "203.0.113.254", 32)
    pool_end = ipaddress.ip_address(body["allocation_pools"][0]["end"])
    assert all(ipaddress.ip_address(a) > pool_end for a in outside)
    blue = next(n for n in default_topology().networks if n.name == "blue")
    assert "allocation_pools" not in blue.subnet_body("b")  # tenant subnets: all of it
    assert blue.outside_addresses() == ()


def test_computes_bounds_and_names():
    with pytest.raises(ValueError):
        lab_hosts(0)
    assert [h.name for h in lab_hosts(3)][:3] == ["compute-1", "compute-2", "compute-3"]
    with pytest.raises(ValueError):
        validate_lab_name("Bad_Name")
    with pytest.raises(ValueError):
        default_topology().host("compute-9")


def test_plug_commands_configure_the_vm_and_tag_the_bridge_port():
    vm = VmPlug(name="blue-1", port_id="0123456789abcdef", mac_address="fa:16:3e:00:00:05",
                ip_address="192.0.2.5", cidr="192.0.2.0/24", gateway_ip="192.0.2.1", mtu=1450,
                ovsdb="unix:/x/db.sock")
    cmds = plug_commands(vm)
    flat = [" ".join(c) for c in cmds]
    assert flat[0] == "ip netns add vm-blue-1"
    assert any("ip addr add 192.0.2.5/24 dev eth0" in c for c in flat)
    assert any(c.endswith("ethtool -K eth0 tx off") for c in flat)
    assert any("external_ids:iface-id=0123456789abcdef" in c and "add-port br-int tap0123456789a"
               in c for c in flat)
    assert flat[-1].endswith("ip route add default via 192.0.2.1")
    assert len(tap_name(vm.port_id)) <= 15


def test_unplug_removes_port_nic_and_namespace():
    flat = [" ".join(c) for c in unplug_commands("blue-1", "0123456789abcdef", "unix:/x")]
    assert flat == ["ovs-vsctl --db=unix:/x --if-exists del-port br-int tap0123456789a",
                    "ip link del tap0123456789a", "ip netns del " + vm_namespace("blue-1")]
