"""HostView travels as JSON: ``to_dict`` and ``host_view_from_dict`` are exact inverses,
including the firewall inputs (security groups, address sets, address pairs)."""

from __future__ import annotations

import json

from dvr.model.hostview import (
    AddressPair,
    AddressSetView,
    FixedIp,
    HostView,
    PortView,
    SecurityGroupRuleView,
    SecurityGroupView,
    host_view_from_dict,
)


def _view() -> HostView:
    port = PortView(
        id="p1", network_id="n1", mac_address="fa:16:3e:00:00:01",
        fixed_ips=(FixedIp("s1", "192.0.2.10"),), device_owner="compute:nova",
        device_id="vm1", host="compute-1", port_security_enabled=True,
        security_group_ids=("g1", "g2"),
        allowed_address_pairs=(AddressPair("fa:16:3e:00:00:01", "192.0.2.128/25"),),
    )
    rules = (
        SecurityGroupRuleView(id="r1", direction="egress", ethertype="IPv4"),
        SecurityGroupRuleView(id="r2", direction="ingress", ethertype="IPv4", protocol=6,
                              port_range_min=80, port_range_max=80, remote_group_id="g1"),
        SecurityGroupRuleView(id="r3", direction="ingress", ethertype="IPv6", protocol=58,
                              icmp_type=128, icmp_code=0, remote_ip_prefix="2001:db8::/32"),
    )
    return HostView(
        host="compute-1", revision=7, agent_mode="dvr", host_mac="fa:16:3f:00:00:01",
        tunnel_ip="198.51.100.1", ports=(port,), networks=(), routers=(), peer_host_macs=(),
        security_groups=(SecurityGroupView("g1", True, rules), SecurityGroupView("g2", False, ())),
        address_sets=(AddressSetView("ag1", "address_group", ("203.0.113.0/24",)),
                      AddressSetView("g1", "security_group", ("192.0.2.10/32",))),
    )


def test_round_trip_through_json_is_exact() -> None:
    view = _view()
    assert host_view_from_dict(json.loads(json.dumps(view.to_dict()))) == view


def test_a_view_without_firewall_fields_reads_as_unfiltered() -> None:
    raw = _view().to_dict()
    del raw["security_groups"], raw["address_sets"]
    for port in raw["ports"]:
        del port["port_security_enabled"], port["security_group_ids"]
        del port["allowed_address_pairs"]
    view = host_view_from_dict(raw)
    assert view.security_groups == () and view.address_sets == ()
    assert view.ports[0].port_security_enabled is False
    assert view.ports[0].security_group_ids == () and view.ports[0].allowed_address_pairs == ()
