"""Naming conventions and local VLAN allocation."""

from __future__ import annotations

import pytest

from dvr.agent.desired import names
from dvr.agent.desired.openflow import port_text
from dvr.agent.desired.state import OWNER_KIND_CODES
from dvr.agent.desired.vlans import (
    MAX_LOCAL_VLAN,
    LocalVlanExhausted,
    allocate_local_vlans,
)

PORT_ID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def test_router_device_names_are_short_distinct_and_deterministic():
    inside = names.router_interface_device_name(PORT_ID)
    bridge_end = names.router_interface_bridge_port_name(PORT_ID)
    assert inside == "qr-0a1b2c3d-4e"
    assert bridge_end == "qrb-0a1b2c3d-4e"
    assert len(inside) <= names.IFNAME_MAX and len(bridge_end) <= names.IFNAME_MAX
    assert inside != bridge_end


def test_namespace_names():
    assert names.router_namespace_name("r1") == "qrouter-r1"
    assert names.snat_namespace_name("r1") == "snat-r1"
    assert names.fip_namespace_name("ext") == "fip-ext"


def test_vxlan_port_name_is_hex_of_ipv4_like_neutron():
    assert names.vxlan_port_name("192.0.2.2") == "vxlan-c0000202"
    assert names.vxlan_port_name("198.51.100.12") == "vxlan-c633640c"


def test_vxlan_port_name_for_ipv6_is_short_and_stable():
    first = names.vxlan_port_name("2001:db8::1")
    assert first == names.vxlan_port_name("2001:db8:0::1")
    assert first != names.vxlan_port_name("2001:db8::2")
    assert len(first) <= names.IFNAME_MAX and first.startswith("vxlan-")


def test_owner_kinds_are_all_known_to_the_cookie_scheme():
    owners = [
        names.bridge_owner("br-int"), names.host_mac_owner("h"), names.network_owner("n"),
        names.subnet_owner("s"), names.port_owner("p"), names.router_owner("r"),
        names.tunnel_owner("192.0.2.1"), names.snat_owner("r"), names.fip_owner("e"),
    ]
    assert [o.split(":", 1)[0] for o in owners] == [
        "bridge", "hostmac", "network", "subnet", "port", "router", "tunnel", "snat", "fip",
    ]
    assert all(o.split(":", 1)[0] in OWNER_KIND_CODES for o in owners)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("patch-tun", '"patch-tun"'), ("tap1234", "tap1234"), ("1", '"1"'),
     ("local", '"local"'), ('we"ird', '"we\\"ird"'), ("a b", '"a b"')],
)
def test_port_text_quotes_only_when_needed(name, expected):
    assert port_text(name) == expected


# --- local VLANs ---------------------------------------------------------------------------


def test_new_networks_get_lowest_free_vlans_in_network_id_order():
    assert allocate_local_vlans(["b", "a", "c"], {}) == {"a": 1, "b": 2, "c": 3}


def test_previous_allocations_are_kept():
    assert allocate_local_vlans(["a", "b"], {"a": 7, "b": 3}) == {"a": 7, "b": 3}


def test_new_network_fills_the_lowest_gap_not_taken_by_kept_ones():
    assert allocate_local_vlans(["a", "b", "c"], {"a": 1, "b": 3}) == {"a": 1, "b": 3, "c": 2}


def test_unused_networks_release_their_vlan_for_reuse():
    first = allocate_local_vlans(["a", "b"], {})
    second = allocate_local_vlans(["b", "c"], first)
    assert second == {"b": 2, "c": 1}


def test_allocation_is_stable_across_repeated_calls():
    vlans = allocate_local_vlans(["x", "y", "z"], {"y": 100})
    assert allocate_local_vlans(["x", "y", "z"], vlans) == vlans


@pytest.mark.parametrize("bad", [0, -1, 4095, 4096, "5", None])
def test_invalid_previous_vlans_are_replaced(bad):
    assert allocate_local_vlans(["a"], {"a": bad}) == {"a": 1}


def test_duplicate_previous_vlan_goes_to_lowest_network_id():
    assert allocate_local_vlans(["a", "b"], {"a": 5, "b": 5}) == {"a": 5, "b": 1}


def test_all_4094_vlans_can_be_used():
    ids = [f"net-{i:05d}" for i in range(MAX_LOCAL_VLAN)]
    vlans = allocate_local_vlans(ids, {})
    assert sorted(vlans.values()) == list(range(1, MAX_LOCAL_VLAN + 1))


def test_exhaustion_raises():
    ids = [f"net-{i:05d}" for i in range(MAX_LOCAL_VLAN + 1)]
    with pytest.raises(LocalVlanExhausted):
        allocate_local_vlans(ids, {})
