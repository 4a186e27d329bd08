"""HostView travels as JSON: ``to_dict`` and ``host_view_from_dict`` are exact inverses,
including the firewall inputs (security groups, address sets, address pairs), for random
views too, however the server encoded them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.client import decode_agent_answer, view_answer_from_dict
from dvr.model.hostview import (
    AddressPair,
    AddressSetView,
    FixedIp,
    HostMac,
    HostView,
    PortView,
    SecurityGroupRuleView,
    SecurityGroupView,
    host_view_from_dict,
)
from dvr.server.jsonbody import FastJSONResponse
from tests.unit.model.test_hostview_delta import (
    ADDRESS_SETS,
    GROUPS,
    HOSTS,
    IPS,
    MACS,
    NETWORKS,
    PORTS,
    ROUTERS,
    keyed,
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


# -- random views, encoded as the server encodes them -----------------------------------------

# any text, often with lone surrogates (the server then writes the view with JSON escapes);
# high ones only: an escaped high-low pair reads back as one character in any JSON decoder.
# (st.text leaves surrogates out of a mixed alphabet: a list of characters keeps them)
TEXT = st.lists(st.sampled_from(["\ud800", "\udbff", "\x00"]) | st.characters(),
                max_size=6).map("".join)


def renamed(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(strategy, TEXT).map(lambda pair: replace(pair[0], name=pair[1]))


VIEWS = st.builds(
    HostView, host=HOSTS, revision=st.integers(0, 2**63 - 1),
    agent_mode=st.sampled_from(["dvr", "dvr_snat", "legacy"]), host_mac=st.none() | MACS,
    tunnel_ip=st.none() | IPS, ports=keyed(PORTS, lambda p: p.id),
    networks=keyed(renamed(NETWORKS), lambda n: n.id),
    routers=keyed(renamed(ROUTERS), lambda r: r.id),
    peer_host_macs=keyed(st.builds(HostMac, HOSTS, MACS), lambda m: m.host),
    fip_agent_gateways=keyed(PORTS, lambda p: p.id),
    security_groups=keyed(GROUPS, lambda g: g.id),
    address_sets=keyed(ADDRESS_SETS, lambda a: (a.kind, a.id)),
)


def served(view: HostView) -> bytes:
    """``view?since=0`` as the server writes it (``dvr_protocol.view_answer``)."""
    fields = {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}
    return FastJSONResponse({**fields, "full": True}).body


@settings(max_examples=200, deadline=None)
@given(VIEWS)
def test_a_random_view_reads_back_equal_from_each_encoding(view: HostView) -> None:
    assert host_view_from_dict(json.loads(json.dumps(view.to_dict()))) == view
    body = served(view)
    assert view_answer_from_dict(decode_agent_answer(body), len(body)).update == view


@settings(max_examples=100, deadline=None)
@given(VIEWS)
def test_a_view_decoded_twice_is_equal_and_encodes_identically(view: HostView) -> None:
    """The decoder builds values, not shared state: two reads are equal, and the objects
    are dataclasses that the server would write byte for byte as it wrote them."""
    body = served(view)
    first, second = (host_view_from_dict(decode_agent_answer(body)) for _ in range(2))
    assert first == second == view and first is not second
    assert served(first) == body
