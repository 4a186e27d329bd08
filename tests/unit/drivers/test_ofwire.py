"""The OpenFlow 1.5 encoder and decoder (pure): message framing, lengths and padding, every
match field and action (the expected bytes are ovs-ofctl's, from ``ovs-ofctl -O OpenFlow15
-mmmmm parse-flow``), bundles, the replies, and a typed error for what it cannot encode."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest

from dvr.agent.desired.openflow import (
    DEC_TTL,
    DROP,
    IN_PORT,
    NORMAL,
    STRIP_VLAN,
    Conjunction,
    Ct,
    LoadRegister,
    LoadZone,
    Match,
    ModDlDst,
    ModDlSrc,
    ModVlanVid,
    Output,
    Resubmit,
    SetTunnel,
)
from dvr.agent.desired.state import Flow
from dvr.agent.drivers import ofwire
from dvr.agent.drivers.ofwire import (
    BarrierReply,
    BundleReply,
    EchoRequest,
    ErrorReply,
    Hello,
    NotEncodable,
    OtherMessage,
    ProtocolError,
)
from dvr.agent.reconcile.commands import FlowBundle, FlowRef

PORTS = {"tap-a": 1, "tap-b": 2, "br-int": 65534}
BIND = ofwire.port_binder(PORTS)
MAC_1, MAC_2 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def flow_mod(flow: Flow, xid: int = 1) -> bytes:
    return ofwire.flow_add(xid, flow, BIND)


def match_fields(match: Match) -> bytes:
    """The OXM entries of a match, without the ofp_match header and padding."""
    data = ofwire.encode_match(match, BIND).data
    kind, length = struct.unpack_from("!HH", data)
    assert kind == 1 and len(data) == length + (-length % 8)
    return data[4:length]


def actions_of(flow: Flow) -> bytes:
    """The actions of the flow_mod's apply-actions instruction (b"" without one)."""
    message = flow_mod(flow)
    match_length = struct.unpack_from("!H", message, 50)[0]
    at = 48 + match_length + (-match_length % 8)
    if at == len(message):
        return b""
    kind, length = struct.unpack_from("!HH", message, at)
    assert kind == 4 and at + length == len(message)
    return message[at + 8:]


# --- framing ------------------------------------------------------------------------------------

# ovs-ofctl -O OpenFlow15 parse-flow "table=3,priority=10,cookie=0x1234,in_port=1,tcp,
# nw_src=192.0.2.0/24,tp_dst=80,actions=mod_vlan_vid:3,output:2"
OFCTL_FLOW_MOD = h(
    "060e0090 00000001 0000000000001234 0000000000000000 03 00 0000 0000 000a ffffffff"
    " ffffffff ffffffff 0000 0000"
    " 0001 0029 80000004 00000001 80000a02 0800 80001708 c0000200 ffffff00 80001401 06"
    " 80001c02 0050 00000000000000"
    " 0004 0030 00000000 0011 0008 8100 0000 0019 0010 80000c02 1003 000000000000"
    " 0000 0010 00000002 0000 000000000000")


def test_a_flow_mod_is_ovs_ofctls_byte_for_byte():
    flow = Flow(3, 10, Match(in_port="tap-a", proto="tcp", nw_src="192.0.2.0/24", tp_dst=80),
                (ModVlanVid(3), Output("tap-b")), "port:x")
    expected = OFCTL_FLOW_MOD[:8] + flow.cookie.to_bytes(8, "big") + OFCTL_FLOW_MOD[16:]
    assert flow_mod(flow) == expected


def test_every_message_carries_its_length_and_is_padded_to_8_bytes():
    flows = [Flow(0, 1, Match(), (DROP,), "a:b"),
             Flow(1, 2, Match(proto="arp", arp_op=1), (NORMAL,), "a:b"),
             Flow(2, 3, Match(dl_dst=MAC_1, reg6=3, ct_state="+trk+new-est"),
                  (Ct(commit=True, label=1, label_mask=1), Resubmit(9)), "a:b")]
    for flow in flows:
        message = flow_mod(flow, xid=0x1234)
        version, kind, length, xid = struct.unpack_from("!BBHI", message)
        assert (version, kind, length, xid) == (6, 14, len(message), 0x1234)
        assert length % 8 == 0
    assert len(flow_mod(flows[0])) == 56  # header + flow_mod + an empty match; no actions


def test_drop_is_no_instruction_at_all():
    assert actions_of(Flow(0, 1, Match(), (DROP,), "a:b")) == b""
    assert actions_of(Flow(0, 1, Match(), (), "a:b")) == b""


def test_a_delete_names_the_table_and_the_whole_cookie():
    message = ofwire.flow_delete(9, FlowRef(4, 0xABC))
    assert message == h(
        "060e0038 00000009 0000000000000abc ffffffffffffffff 04 03 0000 0000 8000 ffffffff"
        " ffffffff ffffffff 0000 0000 0001 0004 00000000")


# --- matches ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("match", "entries"), [
    (Match(in_port="tap-a"), "80000004 00000001"),
    (Match(in_port="br-int"), "80000004 fffffffe"),
    (Match(dl_src=MAC_1, dl_dst=MAC_2), "80000806 fa163e000001 80000606 fa163e000002"),
    (Match(dl_dst="01:00:00:00:00:00", dl_dst_mask="01:00:00:00:00:00"),
     "8000070c 010000000000 010000000000"),
    (Match(dl_vlan=5), "80000c02 1005"),
    (Match(dl_vlan=0xFFFF), "80000c02 0000"),  # untagged: VID+CFI 0 (OF1.5's VLAN field)
    (Match(vlan_tci=0x1000, vlan_tci_mask=0x1000), "80000d04 1000 1000"),
    (Match(vlan_tci=0x3003), "80000c02 1003 80000e01 01"),  # the PCP too
    (Match(proto="ip", nw_proto=47), "80000a02 0800 80001401 2f"),
    (Match(proto="icmp", icmp_type=8, icmp_code=0),
     "80000a02 0800 80001401 01 80002601 08 80002801 00"),
    (Match(proto="udp", tp_src=0x44, tp_src_mask=0xFFF0),
     "80000a02 0800 80001401 11 80001f04 0040 fff0"),
    (Match(proto="sctp", tp_dst=5), "80000a02 0800 80001401 84 80002402 0005"),
    (Match(proto="tcp6", tp_src=5), "80000a02 86dd 80001401 06 80001a02 0005"),
    (Match(proto="ip", nw_ttl=1), "80000a02 0800 00013a01 01"),
    (Match(proto="ip", nw_src="192.0.2.1", nw_dst="0.0.0.0/0"),
     "80000a02 0800 80001604 c0000201"),
    (Match(proto="icmp6", icmp_type=135, nd_target="2001:db8::1"),
     "80000a02 86dd 80001401 3a 80003a01 87 80003e10 20010db8000000000000000000000001"),
    (Match(proto="ipv6", ipv6_src="2001:db8::/64"),
     "80000a02 86dd 80003520 20010db8000000000000000000000000"
     " ffffffffffffffff0000000000000000"),
    (Match(proto="arp", arp_op=1, arp_spa="192.0.2.1", arp_tpa="192.0.2.0/24", arp_sha=MAC_1),
     "80000a02 0806 80002a02 0001 80002c04 c0000201 80002f08 c0000200 ffffff00"
     " 80003006 fa163e000001"),
    (Match(tun_id=0x10), "80004c08 0000000000000010"),
    (Match(tun_id=0x10, tun_id_mask=0xFF), "80004d10 0000000000000010 00000000000000ff"),
    (Match(registers=((5, 7),), reg6=3),
     "80010510 0000000000000007 00000000ffffffff 80010710 0000000300000000 ffffffff00000000"),
    (Match(registers=((2, 1), (3, 2))), "80010208 0000000100000002"),
    (Match(ct_state="+trk+new-est"), "0001d308 00000021 00000023"),
    (Match(ct_label=1, ct_label_mask=1),
     "0001d920 00000000000000000000000000000001 00000000000000000000000000000001"),
    (Match(conj_id=7), "00014a04 00000007"),
])
def test_each_match_field_is_the_oxm_entry_ovs_ofctl_writes(match, entries):
    assert match_fields(match) == h(entries)


def test_prerequisites_come_before_the_fields_that_need_them():
    fields = match_fields(Match(tp_dst=80, proto="tcp", conj_id=1, ct_state="+trk",
                                reg6=2, in_port="tap-a", dl_src=MAC_1))
    headers, at = [], 0
    while at < len(fields):
        header = int.from_bytes(fields[at:at + 4], "big")
        headers.append((header >> 16, header >> 9 & 0x7F))
        at += 4 + (header & 0xFF)
    assert headers == [(1, 37), (0x8000, 0), (0x8000, 4), (0x8000, 5), (0x8000, 10),
                       (0x8000, 14), (0x8001, 3), (1, 105)]


# --- actions ------------------------------------------------------------------------------------

IP = Match(proto="ip")


@pytest.mark.parametrize(("match", "actions", "encoded"), [
    (IP, (Output("tap-b"),), "0000 0010 00000002 0000 000000000000"),
    (IP, (NORMAL, IN_PORT), "0000 0010 fffffffa 0000 000000000000"
                            " 0000 0010 fffffff8 0000 000000000000"),
    (IP, (Resubmit(5),), "ffff 0010 00002320 000e fff8 05 000000"),
    (IP, (ModDlSrc(MAC_1), ModDlDst(MAC_2)),
     "0019 0010 80000806 fa163e000001 0000 0019 0010 80000606 fa163e000002 0000"),
    (IP, (ModVlanVid(3),), "0011 0008 8100 0000 0019 0010 80000c02 1003 000000000000"),
    (Match(dl_vlan=5), (ModVlanVid(7),), "0019 0010 80000c02 1007 000000000000"),
    (Match(dl_vlan=5), (STRIP_VLAN, ModVlanVid(7)),
     "0012 0008 00000000 0011 0008 8100 0000 0019 0010 80000c02 1007 000000000000"),
    (IP, (ModVlanVid(3), ModVlanVid(4)),  # pushed once
     "0011 0008 8100 0000 0019 0010 80000c02 1003 000000000000"
     " 0019 0010 80000c02 1004 000000000000"),
    (IP, (SetTunnel(0x20),), "0019 0010 80004c08 0000000000000020"),
    (IP, (DEC_TTL,), "0018 0008 00000000"),
    (IP, (LoadRegister(6, 5), LoadZone(5)),
     "0019 0010 00010c04 00000005 00000000 0019 0010 00010c04 00000005 00000000"),
    (IP, (Ct(table=4),), "ffff 0018 00002320 0023 0000 00010c04 000f 04 000000 0000"),
    (IP, (Ct(commit=True),), "ffff 0018 00002320 0023 0001 00010c04 000f ff 000000 0000"),
    (IP, (Ct(commit=True, table=3, label=1, label_mask=1),),
     "ffff 0040 00002320 0023 0001 00010c04 000f 03 000000 0000"
     " 0019 0028 0001d920 00000000000000000000000000000001"
     " 00000000000000000000000000000001"),
    (IP, (Conjunction((5, 9), 1, 2),), "ffff 0010 00002320 0022 00 02 00000005"
                                       " ffff 0010 00002320 0022 00 02 00000009"),
])
def test_each_action_is_what_ovs_ofctl_writes(match, actions, encoded):
    assert actions_of(Flow(0, 1, match, actions, "a:b")) == h(encoded)


# --- what it cannot encode ----------------------------------------------------------------------


@dataclass(frozen=True)
class Teleport:
    where: str


@pytest.mark.parametrize(("match", "actions", "says"), [
    (Match(in_port="nosuch"), (DROP,), "no OpenFlow number"),
    (Match(), (Output("elsewhere"),), "no OpenFlow number"),
    (Match(), (DROP, NORMAL), "drop with other actions"),
    (Match(), (STRIP_VLAN,), "strip_vlan"),
    (Match(nw_src="192.0.2.1"), (DROP,), "nw_src needs an IP protocol"),
    (Match(proto="ip", tp_dst=80), (DROP,), "tp_dst needs an IP protocol"),
    (Match(proto="tcp", icmp_type=8), (DROP,), "icmp_type needs ICMP"),
    (Match(proto="icmp", tp_src=1), (DROP,), "tp_src needs TCP, UDP or SCTP"),
    (Match(proto="icmp6", icmp_type=128, nd_target="2001:db8::1"), (DROP,), "nd_target"),
    (Match(proto="ip", arp_op=1), (DROP,), "arp_op needs arp"),
    (Match(proto="ip", ipv6_src="2001:db8::1"), (DROP,), "ipv6_src needs IPv6"),
    (Match(proto="ipv6", nw_src="192.0.2.1"), (DROP,), "nw_src needs IPv4"),
    (Match(proto="arp", nw_src="192.0.2.1", arp_spa="192.0.2.1"), (DROP,), "together"),
    (Match(dl_vlan=3, vlan_tci=0x1003), (DROP,), "together"),
    (Match(dl_vlan=5000), (DROP,), "dl_vlan 5000"),
    (Match(registers=((6, 1),), reg6=1), (DROP,), "register 6 twice"),
    (Match(registers=((16, 1),)), (DROP,), "out of range"),
    (Match(ct_state="tracked"), (DROP,), "ct_state"),
    (Match(proto="ip", nw_src="192.0.2.300"), (DROP,), "not an address"),
    (Match(dl_src="fa:16:3e"), (DROP,), "not a MAC"),
    (Match(proto="tcp", nw_proto=17), (DROP,), "nw_proto=17 with tcp"),
    (Match(), (Resubmit(255),), "resubmit table"),
    (Match(), (LoadRegister(6, 1 << 32),), "register value"),
    (Match(), (Teleport("mars"),), "not known to the encoder"),
    (Match(), (Conjunction(tuple(range(5000)), 1, 2),), "at most 65535"),
])
def test_what_it_cannot_encode_raises_a_typed_error(match, actions, says):
    with pytest.raises(NotEncodable, match=says):
        flow_mod(Flow(0, 1, match, actions, "a:b"))


def test_a_table_beyond_254_is_not_encoded():
    with pytest.raises(NotEncodable, match="table"):
        flow_mod(Flow(255, 1, Match(), (DROP,), "a:b"))
    with pytest.raises(NotEncodable, match="table"):
        ofwire.flow_delete(1, FlowRef(255, 1))


# --- bundles ------------------------------------------------------------------------------------


def messages_in(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, xid, body) of each message of ``data``, which holds only whole messages."""
    found, rest = ofwire.split_messages(data)
    assert rest == b""
    return [(m[1], struct.unpack_from("!I", m, 4)[0], m[8:]) for m in found]


def test_a_bundle_is_open_every_flow_mod_in_order_a_barrier_then_commit_or_discard():
    add = (Flow(0, 1, Match(), (DROP,), "a:b"), Flow(1, 2, Match(in_port="tap-a"), (NORMAL,),
                                                       "a:c"))
    bundle = FlowBundle("br-int", add, (FlowRef(3, 0x77),))
    plan = ofwire.bundle_messages(bundle, PORTS, bundle_id=5, first_xid=100)
    staged = messages_in(plan.staged)
    assert [(kind, xid) for kind, xid, _ in staged] == [
        (33, 100), (34, 101), (34, 102), (34, 103), (20, 104)]
    assert staged[0][2] == struct.pack("!IHH", 5, 0, 3)  # open, atomic + ordered
    inner = [body[8:] for kind, _, body in staged if kind == 34]
    assert all(body[:8] == struct.pack("!IHH", 5, 0, 3) for kind, _, body in staged
               if kind == 34)
    assert inner == [ofwire.flow_delete(101, FlowRef(3, 0x77)), flow_mod(add[0], 102),
                     flow_mod(add[1], 103)]
    assert (plan.open_xid, plan.barrier_xid, plan.commit_xid, plan.discard_xid) == (
        100, 104, 105, 106)
    assert messages_in(plan.commit) == [(33, 105, struct.pack("!IHH", 5, 4, 3))]
    assert messages_in(plan.discard) == [(33, 106, struct.pack("!IHH", 5, 6, 3))]
    worded = {xid: ofwire.describe(item) for xid, item in plan.what.items()}
    assert worded == {101: "delete table=3,cookie=0x77/-1",
                      102: f"add table=0,priority=1,cookie={add[0].cookie:#x},actions=drop",
                      103: f"add table=1,priority=2,cookie={add[1].cookie:#x},"
                           f'in_port="tap-a",actions=NORMAL'}


def test_a_bundle_with_a_flow_it_cannot_encode_is_not_encoded_at_all():
    bundle = FlowBundle("br-int", (Flow(0, 1, Match(in_port="nosuch"), (DROP,), "a:b"),))
    with pytest.raises(NotEncodable):
        ofwire.bundle_messages(bundle, PORTS, 1, 1)


def test_hello_offers_openflow_15_only():
    assert ofwire.hello(3) == h("06000010 00000003 0001 0008 00000040")


# --- replies ------------------------------------------------------------------------------------


def test_messages_are_split_at_their_lengths_and_a_partial_one_waits():
    one, two = ofwire.barrier_request(1), ofwire.echo_reply(2, b"abc")
    found, rest = ofwire.split_messages(one + two[:5])
    assert (found, rest) == ([one], two[:5])
    found, rest = ofwire.split_messages(rest + two[5:])
    assert (found, rest) == ([two], b"")
    with pytest.raises(ProtocolError):
        ofwire.split_messages(h("06000004 00000000"))


def test_replies_are_decoded():
    ovs_hello = h("06000010 00000000 0001 0008 0000007e")  # OVS offering 1.0 to 1.5
    assert ofwire.decode(ovs_hello) == Hello(0, 6, frozenset({1, 2, 3, 4, 5, 6}))
    assert ofwire.decode(h("04000008 00000000")).versions == frozenset({1, 2, 3, 4})
    assert ofwire.decode(h("06020009 00000007 61")) == EchoRequest(7, b"a")
    assert ofwire.decode(h("06150008 00000008")) == BarrierReply(8)
    assert ofwire.decode(h("06210010 00000009 00000005 0005 0003")) == BundleReply(9, 5, 5)
    assert ofwire.decode(h("060a0008 0000000a")) == OtherMessage(10, 10)
    error = ofwire.decode(h("0601000e 0000000b 0002 0004 0600"))
    assert error == ErrorReply(11, 2, 4, None, b"\x06\x00")
    assert error.name == "OFPBAC_BAD_OUT_PORT"
    assert ofwire.decode(h("06010010 0000000c ffff 0009 00002320")).name == (
        "experimenter 0x2320 error 9")
    assert ofwire.decode(h("0601000c 0000000d 0011 000d")).name == "OFPBFC_MSG_FAILED"
    assert ofwire.decode(h("0601000c 0000000e 0063 0001")).name == "error type 99 code 1"
    with pytest.raises(ProtocolError):
        ofwire.decode(h("04150008 00000008"))  # another version after negotiating 1.5
    with pytest.raises(ProtocolError):
        ofwire.decode(h("0601000a 0000000f 0001"))  # an error too short to hold its code
