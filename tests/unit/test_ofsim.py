"""The OpenFlow pipeline simulator on hand-written bridges."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dvr.agent.desired.openflow import (
    DEC_TTL,
    DROP,
    IN_PORT,
    NORMAL,
    STRIP_VLAN,
    Action,
    LoadRegister,
    Match,
    ModDlDst,
    ModDlSrc,
    ModVlanVid,
    Output,
    Resubmit,
    SetTunnel,
)
from dvr.agent.desired.state import BridgeState, Flow, OvsPort
from dvr.trace.ofsim import (
    AmbiguousMatch,
    Delivered,
    Dropped,
    Packet,
    Pipeline,
    SimulationLimit,
    Tunnelled,
    UnsupportedFlow,
    compile_match,
)

VM_A, VM_B = "fa:16:3e:00:00:0a", "fa:16:3e:00:00:0b"
GROUP = "01:00:00:00:00:00"
OWNER = "bridge:test"


ANY = Match()


def flow(table: int, priority: int, match: Match, actions: tuple[Action, ...],
         owner: str = OWNER) -> Flow:
    return Flow(table, priority, match, actions, owner)


def out(port: str) -> tuple[Action, ...]:
    return (Output(port),)


def bridge(name: str, ports: list[OvsPort], flows: list[Flow]) -> BridgeState:
    return BridgeState(name=name, ports=tuple(sorted(ports)), flows=frozenset(flows))


def frame(src: str = VM_A, dst: str = VM_B, **fields) -> Packet:
    return Packet(dl_src=src, dl_dst=dst, **fields)


def single(flows: list[Flow], ports: list[OvsPort] | None = None) -> Pipeline:
    ports = ports or [OvsPort("p1"), OvsPort("p2"), OvsPort("p3")]
    return Pipeline([bridge("br0", ports, flows)])


# --- compiling --------------------------------------------------------------------


def test_values_the_simulator_cannot_model_are_rejected():
    with pytest.raises(UnsupportedFlow):
        compile_match(Match(dl_src="not-a-mac"))
    with pytest.raises(UnsupportedFlow):
        compile_match(Match(nw_dst="192.0.2.0/33"))
    with pytest.raises(UnsupportedFlow):
        single([flow(0, 0, Match(dl_dst="fa:16:3e:00:00"), (DROP,))])


def test_shorthand_protocols_expand():
    conditions = {(c.field, c.value) for c in compile_match(Match(proto="icmp6"))}
    assert conditions == {("dl_type", 0x86DD), ("nw_proto", 58)}


# --- matching --------------------------------------------------------------------


def test_highest_priority_match_wins():
    sim = single([flow(0, 1, ANY, out("p2")), flow(0, 5, Match(dl_dst=VM_B), out("p3"))])
    trace = sim.trace("br0", "p1", frame())
    assert [d.port for d in trace.delivered] == ["p3"]
    assert trace.steps[0].flow.priority == 5


def test_in_port_match_with_an_odd_name():
    ports = [OvsPort("tap 1"), OvsPort("p2")]
    sim = single([flow(0, 1, Match(in_port="tap 1"), out("p2"))], ports)
    assert sim.trace("br0", "tap 1", frame()).delivered[0].port == "p2"
    assert sim.trace("br0", "p2", frame()).dropped


@pytest.mark.parametrize(
    ("match", "dst", "hit"),
    [
        (Match(dl_dst="00:00:00:00:00:00", dl_dst_mask=GROUP), VM_B, True),
        (Match(dl_dst="00:00:00:00:00:00", dl_dst_mask=GROUP), "ff:ff:ff:ff:ff:ff", False),
        (Match(dl_dst="01:00:00:00:00:00", dl_dst_mask=GROUP), "33:33:00:00:00:01", True),
        (Match(dl_dst=VM_B), VM_B, True),
        (Match(dl_dst=VM_B), VM_A, False),
    ],
)
def test_mac_masks(match, dst, hit):
    sim = single([flow(0, 1, match, out("p2"))])
    assert bool(sim.trace("br0", "p1", frame(dst=dst)).delivered) is hit


def test_vlan_match_and_untagged_match():
    sim = single([flow(0, 2, Match(dl_vlan=5), out("p2")),
                  flow(0, 1, Match(dl_vlan=0xFFFF), out("p3"))])
    assert sim.trace("br0", "p1", frame(dl_vlan=5)).delivered[0].port == "p2"
    assert sim.trace("br0", "p1", frame()).delivered[0].port == "p3"
    assert sim.trace("br0", "p1", frame(dl_vlan=6)).dropped


def test_arp_and_ip_fields():
    sim = single([
        flow(0, 3, Match(proto="arp", arp_tpa="192.0.2.1"), (DROP,)),
        flow(0, 2, Match(proto="ip", nw_dst="198.51.100.0/24"), out("p2")),
        flow(0, 1, ANY, out("p3")),
    ])
    arp = Packet.arp_request(VM_A, "192.0.2.10", "192.0.2.1")
    assert sim.trace("br0", "p1", arp).dropped
    other_arp = Packet.arp_request(VM_A, "192.0.2.10", "192.0.2.2")
    assert sim.trace("br0", "p1", other_arp).delivered[0].port == "p3"
    ip = Packet.ipv4(VM_A, VM_B, "192.0.2.10", "198.51.100.7")
    assert sim.trace("br0", "p1", ip).delivered[0].port == "p2"
    outside = Packet.ipv4(VM_A, VM_B, "192.0.2.10", "203.0.113.7")
    assert sim.trace("br0", "p1", outside).delivered[0].port == "p3"


def test_neighbor_solicitation_fields():
    sim = single([flow(0, 1, Match(proto="icmp6", icmp_type=135, nd_target="2001:db8::1"),
                       (DROP,)),
                  flow(0, 0, ANY, out("p2"))])
    ns = Packet.neighbor_solicitation(VM_A, "2001:db8::5", "2001:db8::1")
    assert ns.dl_dst == "33:33:ff:00:00:01" and ns.nw_dst == "ff02::1:ff00:1"
    assert sim.trace("br0", "p1", ns).dropped
    assert sim.trace("br0", "p1", Packet.neighbor_solicitation(VM_A, "2001:db8::5",
                                                               "2001:db8::2")).delivered


def test_tun_id_match():
    sim = single([flow(0, 1, Match(tun_id=0x3E9), out("p2")),
                  flow(0, 1, Match(tun_id=0x100, tun_id_mask=0xF00), out("p3"))])
    assert sim.trace("br0", "p1", frame(tun_id=1001)).delivered[0].port == "p2"
    assert sim.trace("br0", "p1", frame(tun_id=0x1AB)).delivered[0].port == "p3"
    assert sim.trace("br0", "p1", frame()).dropped


def test_equal_priority_overlap_is_ambiguous():
    sim = single([flow(0, 1, Match(dl_dst=VM_B), out("p2")),
                  flow(0, 1, Match(dl_src=VM_A), out("p3"))])
    with pytest.raises(AmbiguousMatch):
        sim.trace("br0", "p1", frame())


# --- actions --------------------------------------------------------------------


def test_resubmit_continues_with_remaining_actions_and_keeps_modifications():
    sim = single([
        flow(0, 1, ANY, (ModDlSrc("fa:16:3f:00:00:01"), Resubmit(1), Output("p3"))),
        flow(1, 1, ANY, (ModVlanVid(7), Output("p2"))),
    ])
    trace = sim.trace("br0", "p1", frame())
    by_port = {d.port: d.packet for d in trace.delivered}
    assert by_port["p2"].dl_src == "fa:16:3f:00:00:01" and by_port["p2"].dl_vlan == 7
    assert by_port["p3"].dl_vlan == 7  # changes made in table 1 persist after the resubmit
    assert trace.tables("br0") == (0, 1)
    assert trace.steps[0].packet_out.dl_vlan == 7
    # what the flow itself did, without what the table it resubmitted to did
    assert trace.steps[0].packet_own == replace(frame(), dl_src="fa:16:3f:00:00:01")
    assert trace.steps[1].packet_own.dl_vlan == 7


def test_dec_ttl_decrements_the_ttl():
    sim = single([flow(0, 1, ANY, (DEC_TTL, Output("p2")))])
    (out,) = sim.trace("br0", "p1", frame(nw_ttl=64)).delivered
    assert out.packet.nw_ttl == 63


@pytest.mark.parametrize("ttl", [1, 0])
def test_dec_ttl_on_ttl_1_or_0_ends_the_actions(ttl):
    """OVS hands such a frame to a controller (none runs): nothing after dec_ttl happens."""
    sim = single([flow(0, 1, ANY, (DEC_TTL, Output("p2")))])
    trace = sim.trace("br0", "p1", frame(nw_ttl=ttl))
    assert not trace.delivered
    assert [d.reason.split(":")[0] for d in trace.drops] == ["dec_ttl"]


def test_nw_ttl_match():
    sim = single([flow(0, 2, Match(proto="ip", nw_ttl=1), out("p3")),
                  flow(0, 1, ANY, out("p2"))])
    assert [d.port for d in sim.trace("br0", "p1", frame(nw_ttl=1)).delivered] == ["p3"]
    assert [d.port for d in sim.trace("br0", "p1", frame(nw_ttl=2)).delivered] == ["p2"]


def test_registers_are_loaded_and_matched_and_start_at_zero():
    sim = single([flow(0, 1, ANY, (LoadRegister(8, 0x2A), Resubmit(1))),
                  flow(1, 2, Match(registers=((8, 0x2A),)), out("p2")),
                  flow(1, 1, ANY, out("p3"))])
    trace = sim.trace("br0", "p1", frame())
    assert [d.port for d in trace.delivered] == ["p2"]
    assert trace.steps[0].packet_out.register(8) == 0x2A
    unloaded = single([flow(0, 1, ANY, (Resubmit(2),)),
                       flow(2, 2, Match(registers=((8, 0),)), out("p3"))])
    assert [d.port for d in unloaded.trace("br0", "p1", frame()).delivered] == ["p3"]


def test_strip_vlan_and_mod_dl_dst():
    sim = single([flow(0, 1, ANY, (STRIP_VLAN, ModDlDst("fa:16:3e:00:00:99"), Output("p2")))])
    (out,) = sim.trace("br0", "p1", frame(dl_vlan=3)).delivered
    assert out.packet.dl_vlan is None and out.packet.dl_dst == "fa:16:3e:00:00:99"


def test_table_miss_and_drop_have_reasons():
    sim = single([flow(0, 1, ANY, (Resubmit(5),)), flow(1, 1, ANY, (DROP,))])
    miss = sim.trace("br0", "p1", frame())
    assert miss.dropped and miss.drops[0].table == 5 and "no flow" in miss.drops[0].reason
    explicit = single([flow(0, 1, ANY, (DROP,))]).trace("br0", "p1", frame())
    assert explicit.drops[0].flow is not None and explicit.drops[0].flow.owner == OWNER


def test_output_to_in_port_is_suppressed_unless_in_port_action():
    sim = single([flow(0, 1, ANY, out("p1"))])
    assert sim.trace("br0", "p1", frame()).dropped
    back = single([flow(0, 1, ANY, (IN_PORT,))]).trace("br0", "p1", frame())
    assert [d.port for d in back.delivered] == ["p1"]


def test_resubmit_loop_is_bounded():
    sim = single([flow(0, 1, ANY, (Resubmit(0),))])
    with pytest.raises(SimulationLimit):
        sim.trace("br0", "p1", frame())


def test_unknown_port_in_trace_call_is_an_error():
    with pytest.raises(KeyError):
        single([]).trace("br0", "nope", frame())
    with pytest.raises(KeyError):
        single([]).trace("br9", "p1", frame())


# --- patch ports and tunnels --------------------------------------------------------------------


def two_bridges() -> Pipeline:
    br_a = bridge("br-a", [OvsPort("vm1", tag=3), OvsPort("to-b", type="patch",
                                                            options=(("peer", "to-a"),))],
                  [flow(0, 1, Match(in_port="vm1"), (ModVlanVid(3), Output("to-b"))),
                   flow(0, 1, Match(in_port="to-b"), (STRIP_VLAN, Output("vm1")))])
    br_b = bridge("br-b", [
        OvsPort("to-a", type="patch", options=(("peer", "to-b"),)),
        OvsPort("vxlan-1", type="vxlan", options=(("local_ip", "198.51.100.1"),
                                                  ("remote_ip", "198.51.100.2"))),
    ], [flow(0, 1, Match(in_port="to-a", dl_vlan=3),
             (STRIP_VLAN, SetTunnel(0x64), Output("vxlan-1"))),
        flow(0, 1, Match(in_port="vxlan-1", tun_id=0x64), (ModVlanVid(3), Output("to-a")))])
    return Pipeline([br_a, br_b])


def test_patch_port_crosses_into_peer_bridge_and_tunnel_output_is_recorded():
    trace = two_bridges().trace("br-a", "vm1", frame())
    (out,) = trace.outcomes
    assert isinstance(out, Tunnelled)
    assert (out.port, out.remote_ip, out.local_ip, out.tun_id) == (
        "vxlan-1", "198.51.100.2", "198.51.100.1", 100)
    assert out.packet.dl_vlan is None and out.packet.tun_id is None
    assert [s.bridge for s in trace.steps] == ["br-a", "br-a", "br-b"]
    assert "patch to-b -> br-b:to-a" in trace.steps[1].note


def test_receive_from_tunnel_finds_port_by_remote_ip():
    sim = two_bridges()
    trace = sim.receive_from_tunnel("198.51.100.2", 100, frame())
    (out,) = trace.outcomes
    assert isinstance(out, Delivered) and out.port == "vm1" and out.packet.dl_vlan is None
    assert sim.receive_from_tunnel("198.51.100.2", 101, frame()).dropped
    assert sim.receive_from_tunnel("198.51.100.9", 100, frame()).dropped


def test_patch_crossing_clears_the_registers():
    br_a = bridge("br-a", [OvsPort("in"), OvsPort("x", type="patch", options=(("peer", "y"),))],
                  [flow(0, 1, ANY, (LoadRegister(8, 7), Output("x")))])
    br_b = bridge("br-b", [OvsPort("y", type="patch", options=(("peer", "x"),)), OvsPort("out")],
                  [flow(0, 2, Match(registers=((8, 7),)), (DROP,)), flow(0, 1, ANY, out("out"))])
    trace = Pipeline([br_a, br_b]).trace("br-a", "in", frame())
    assert [d.port for d in trace.delivered] == ["out"]


def test_patch_crossing_clears_tunnel_metadata():
    br_a = bridge("br-a", [OvsPort("in"), OvsPort("x", type="patch", options=(("peer", "y"),))],
                  [flow(0, 1, ANY, (SetTunnel(0x5), Output("x")))])
    br_b = bridge("br-b", [OvsPort("y", type="patch", options=(("peer", "x"),)), OvsPort("out")],
                  [flow(0, 2, Match(tun_id=0x5), (DROP,)), flow(0, 1, ANY, out("out"))])
    trace = Pipeline([br_a, br_b]).trace("br-a", "in", frame())
    assert [d.port for d in trace.delivered] == ["out"]


# --- NORMAL --------------------------------------------------------------------


def normal_bridge() -> Pipeline:
    ports = [OvsPort("a1", tag=1), OvsPort("a2", tag=1), OvsPort("b1", tag=2),
             OvsPort("trunk"), OvsPort("dead", tag=4095)]
    return Pipeline([bridge("br0", ports, [flow(0, 0, ANY, (NORMAL,))])])


def test_normal_floods_unknown_unicast_within_vlan_and_to_trunks():
    trace = normal_bridge().trace("br0", "a1", frame())
    out = {d.port: d.packet for d in trace.delivered}
    assert set(out) == {"a2", "trunk"}
    assert out["a2"].dl_vlan is None and out["trunk"].dl_vlan == 1


def test_normal_delivers_known_mac_only_there():
    trace = normal_bridge().trace("br0", "a1", frame(), mac_table={VM_B: "a2"})
    assert [d.port for d in trace.delivered] == ["a2"]


def test_normal_ignores_mac_known_on_other_vlan():
    trace = normal_bridge().trace("br0", "a1", frame(), mac_table={VM_B: "b1"})
    assert {d.port for d in trace.delivered} == {"a2", "trunk"}


def test_normal_from_trunk_uses_the_frame_tag_and_strips_on_access():
    trace = normal_bridge().trace("br0", "trunk", frame(dl_vlan=2))
    assert [(d.port, d.packet.dl_vlan) for d in trace.delivered] == [("b1", None)]


def test_normal_drops_tagged_frames_on_access_ports_and_dead_vlan():
    assert normal_bridge().trace("br0", "a1", frame(dl_vlan=1)).dropped
    dead = normal_bridge().trace("br0", "dead", frame())
    assert dead.dropped and "dead" in dead.drops[0].reason


def test_normal_drops_frame_for_mac_behind_in_port():
    trace = normal_bridge().trace("br0", "a1", frame(), mac_table={VM_B: "a1"})
    assert trace.dropped
    assert isinstance(trace.outcomes[0], Dropped)
