"""OpenFlow 1.5 on the wire for the agent's flows (pure): the messages that install a
``FlowBundle`` over a connection to the switch, and the replies that come back.

Encoded: hello, echo reply, barrier, bundle open/add/commit/discard, and flow_mods -- add
(table, priority, cookie, an OXM match, apply-actions) and delete (table + exact cookie) --
for exactly the vocabulary of ``dvr.agent.desired.openflow``.  Each flow is encoded as
``ovs-ofctl -O OpenFlow15`` encodes the text ``render_flow`` makes of it, byte for byte:
OXM fields in Open vSwitch's order (prerequisites first: a switch checks them in order),
registers as OF1.5 64-bit ``xreg`` pairs, a VLAN match as VID+CFI (``dl_vlan=0xffff`` is
``vlan_tci=0/0x1fff`` in OF1.5), ``mod_vlan_vid`` preceded by ``push_vlan`` unless the
match (or an earlier action) holds a tag, ``load`` and ``mod_dl_*`` as ``set_field``.  A
flow it cannot express raises ``NotEncodable`` (the driver then hands the bundle to
``ovs-ofctl``, which refuses what is wrong in its own words).

Decoded: the replies the connection waits for (``Hello``, ``ErrorReply`` with the name of
its type and code, ``EchoRequest``, ``BarrierReply``, ``BundleReply``); anything else is
``OtherMessage``.  Ports are numbers: the caller binds names (``port`` below).
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from dvr.agent.desired.openflow import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    PROTOCOLS,
    Action,
    Conjunction,
    Ct,
    DecTtl,
    Drop,
    LoadRegister,
    LoadZone,
    Match,
    ModDlDst,
    ModDlSrc,
    ModVlanVid,
    Normal,
    Output,
    OutputInPort,
    Resubmit,
    SetTunnel,
    StripVlan,
    render_flow,
)
from dvr.agent.desired.state import Flow
from dvr.agent.reconcile.commands import FlowBundle, FlowRef

OFP15_VERSION = 0x06
HEADER = struct.Struct("!BBHI")  # version, type, length, xid
MAX_MESSAGE = 0xFFFF


class MessageType(IntEnum):
    HELLO = 0
    ERROR = 1
    ECHO_REQUEST = 2
    ECHO_REPLY = 3
    FLOW_MOD = 14
    BARRIER_REQUEST = 20
    BARRIER_REPLY = 21
    BUNDLE_CONTROL = 33
    BUNDLE_ADD_MESSAGE = 34


class BundleControl(IntEnum):
    OPEN_REQUEST = 0
    OPEN_REPLY = 1
    CLOSE_REQUEST = 2
    CLOSE_REPLY = 3
    COMMIT_REQUEST = 4
    COMMIT_REPLY = 5
    DISCARD_REQUEST = 6
    DISCARD_REPLY = 7


BUNDLE_ATOMIC_ORDERED = 0x0001 | 0x0002  # OFPBF_ATOMIC | OFPBF_ORDERED, as ovs-ofctl asks


class NotEncodable(ValueError):
    """A flow (or bundle) this encoder cannot express; the message says what."""


# --- ports ------------------------------------------------------------------------------------

OFPP_IN_PORT, OFPP_NORMAL, OFPP_ANY = 0xFFFFFFF8, 0xFFFFFFFA, 0xFFFFFFFF
OFPP10_IN_PORT = 0xFFF8  # the 16-bit in_port of resubmit(,table)
OFPG_ANY = 0xFFFFFFFF
OFP_NO_BUFFER = 0xFFFFFFFF


def of11_port(number: int) -> int:
    """An Open vSwitch port number (16 bits; LOCAL is 65534) as OpenFlow 1.1+ writes it."""
    if not 0 <= number <= 0xFFFF:
        raise NotEncodable(f"port number {number} out of range")
    return number + 0xFFFF0000 if number >= 0xFF00 else number


def port_binder(numbers: Mapping[str, int]) -> Callable[[str], int]:
    """name -> OpenFlow 1.1+ port number; a name without a number raises NotEncodable."""

    def bind(name: str) -> int:
        found = numbers.get(name)
        if found is None:
            raise NotEncodable(f"port {name!r} has no OpenFlow number")
        return of11_port(found)

    return bind


# --- OXM entries ------------------------------------------------------------------------------

OXM_BASIC, NXM_1, OXM_PACKET_REGS = 0x8000, 0x0001, 0x8001

# (class, field) of each field we match or set
IN_PORT = (OXM_BASIC, 0)
ETH_DST, ETH_SRC, ETH_TYPE = (OXM_BASIC, 3), (OXM_BASIC, 4), (OXM_BASIC, 5)
VLAN_VID, VLAN_PCP = (OXM_BASIC, 6), (OXM_BASIC, 7)
IP_PROTO, IPV4_SRC, IPV4_DST = (OXM_BASIC, 10), (OXM_BASIC, 11), (OXM_BASIC, 12)
TP_FIELDS = {6: ((OXM_BASIC, 13), (OXM_BASIC, 14)),  # TCP src, dst
             17: ((OXM_BASIC, 15), (OXM_BASIC, 16)),  # UDP
             132: ((OXM_BASIC, 17), (OXM_BASIC, 18))}  # SCTP
ICMPV4_TYPE, ICMPV4_CODE = (OXM_BASIC, 19), (OXM_BASIC, 20)
ARP_OP, ARP_SPA, ARP_TPA, ARP_SHA = (OXM_BASIC, 21), (OXM_BASIC, 22), (OXM_BASIC, 23), \
    (OXM_BASIC, 24)
IPV6_SRC, IPV6_DST = (OXM_BASIC, 26), (OXM_BASIC, 27)
ICMPV6_TYPE, ICMPV6_CODE, ND_TARGET = (OXM_BASIC, 29), (OXM_BASIC, 30), (OXM_BASIC, 31)
TUNNEL_ID = (OXM_BASIC, 38)
IP_TTL, CONJ_ID = (NXM_1, 29), (NXM_1, 37)
CT_STATE, CT_LABEL = (NXM_1, 105), (NXM_1, 108)


def register_field(register: int) -> tuple[int, int]:
    """``NXM_NX_REG<n>``: what ``load``/``set_field`` writes (matches use xregs)."""
    return (NXM_1, register)


def oxm_header(field: tuple[int, int], size: int, masked: bool = False) -> int:
    """The 32-bit header of an OXM/NXM entry whose value has ``size`` bytes."""
    oxm_class, number = field
    return oxm_class << 16 | number << 9 | int(masked) << 8 | size * (2 if masked else 1)


def oxm_entry(field: tuple[int, int], value: bytes, mask: bytes | None = None) -> bytes:
    """One entry: exact when ``mask`` is None or all ones, nothing when it is all zeros."""
    if mask is not None:
        if not any(mask):
            return b""
        if all(b == 0xFF for b in mask):
            mask = None
        else:
            value = bytes(v & m for v, m in zip(value, mask, strict=True))
    body = value if mask is None else value + mask
    return oxm_header(field, len(value), mask is not None).to_bytes(4, "big") + body


def _uint(value: int, size: int, what: str) -> bytes:
    if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
        raise NotEncodable(f"{what} {value!r} does not fit {size} bytes")
    return value.to_bytes(size, "big")


def _mac(text: str, what: str) -> bytes:
    raw = text.replace(":", "")
    if len(raw) != 12:
        raise NotEncodable(f"{what} {text!r} is not a MAC address")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise NotEncodable(f"{what} {text!r} is not a MAC address") from None


def _prefix(text: str, version: int, what: str) -> tuple[bytes, bytes]:
    """An address or prefix as (value, mask)."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise NotEncodable(f"{what} {text!r} is not an address or prefix") from None
    if network.version != version:
        raise NotEncodable(f"{what} {text!r} is not IPv{version}")
    return network.network_address.packed, network.netmask.packed


# ct_state flags as ovs-ofctl names them
CT_FLAGS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10, "trk": 0x20,
            "snat": 0x40, "dnat": 0x80}
_CT_FLAG_TEXT = re.compile(r"(?:[+-](?:" + "|".join(CT_FLAGS) + r"))+")
_CT_HEX_TEXT = re.compile(r"(0x[0-9a-fA-F]+)(?:/(0x[0-9a-fA-F]+))?")


def ct_state_bits(text: str) -> tuple[int, int]:
    """``+trk+new-est`` (or ``0x21/0x23``) -> (value, mask)."""
    if _CT_FLAG_TEXT.fullmatch(text):
        value = mask = 0
        for sign, name in re.findall(r"([+-])([a-z]+)", text):
            mask |= CT_FLAGS[name]
            if sign == "+":
                value |= CT_FLAGS[name]
        return value, mask
    found = _CT_HEX_TEXT.fullmatch(text)
    if found is None:
        raise NotEncodable(f"ct_state {text!r} is not understood")
    return int(found[1], 16), int(found[2], 16) if found[2] else 0xFFFFFFFF


# --- matches ----------------------------------------------------------------------------------

VLAN_CFI, VLAN_VID_CFI = 0x1000, 0x1FFF
OFPMT_OXM = 1
_ENCODED_FIELDS = frozenset(Match._fields)  # every field below is handled


@dataclass(frozen=True)
class EncodedMatch:
    """An ``ofp_match`` (OXM, padded) and whether a frame it matches carries a VLAN tag
    (which decides whether ``mod_vlan_vid`` pushes one)."""

    data: bytes
    has_vlan: bool


def _vlan(m) -> tuple[int, int] | None:
    """(tci, mask) the match requires, as ovs-ofctl parses ``dl_vlan``/``vlan_tci``."""
    if m.dl_vlan is not None and m.vlan_tci is not None:
        raise NotEncodable("dl_vlan and vlan_tci together")
    if m.dl_vlan is not None:
        if m.dl_vlan == 0xFFFF:
            return 0, 0xFFFF  # untagged
        return VLAN_CFI | _checked(m.dl_vlan, 0xFFF, "dl_vlan"), VLAN_VID_CFI
    if m.vlan_tci is not None:
        mask = 0xFFFF if m.vlan_tci_mask is None else _checked(m.vlan_tci_mask, 0xFFFF,
                                                               "vlan_tci mask")
        return _checked(m.vlan_tci, 0xFFFF, "vlan_tci") & mask, mask
    if m.vlan_tci_mask is not None:
        raise NotEncodable("vlan_tci_mask without vlan_tci")
    return None


def _checked(value: int, top: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= top:
        raise NotEncodable(f"{what} {value!r} out of range")
    return value


def _protocol(m) -> tuple[int | None, int | None]:
    """(eth_type, ip_proto) of ``proto`` and ``nw_proto``."""
    if m.proto is None:
        if m.nw_proto is not None:
            raise NotEncodable("nw_proto without an IP protocol")
        return None, None
    if m.proto not in PROTOCOLS:
        raise NotEncodable(f"protocol {m.proto!r} is not known")
    eth_type, ip_proto = PROTOCOLS[m.proto]
    if m.nw_proto is not None:
        if eth_type not in (ETH_TYPE_IP, ETH_TYPE_IPV6) or (
                ip_proto is not None and ip_proto != m.nw_proto):
            raise NotEncodable(f"nw_proto={m.nw_proto} with {m.proto}")
        ip_proto = _checked(m.nw_proto, 0xFF, "nw_proto")
    return eth_type, ip_proto


def _registers(m) -> dict[int, int]:
    found: dict[int, int] = {}
    pairs = [*m.registers, *([(6, m.reg6)] if m.reg6 is not None else [])]
    for register, value in pairs:
        if register in found or not 0 <= register < 16:
            raise NotEncodable(f"register {register} twice or out of range")
        found[register] = _checked(value, 0xFFFFFFFF, f"reg{register}")
    return found


def _require(condition: bool, field: str, needs: str) -> None:
    if not condition:
        raise NotEncodable(f"{field} needs {needs}")


def _ip_entries(m, eth_type: int, ip_proto: int | None) -> list[bytes]:
    ipv4 = eth_type == ETH_TYPE_IP
    out = []
    for name, v4, v6 in (("nw_src", IPV4_SRC, None), ("nw_dst", IPV4_DST, None),
                         ("ipv6_src", None, IPV6_SRC), ("ipv6_dst", None, IPV6_DST)):
        text = getattr(m, name)
        if text is None:
            continue
        _require((v4 is not None) == ipv4, name, "IPv4" if v4 else "IPv6")
        out.append(oxm_entry(v4 or v6, *_prefix(text, 4 if ipv4 else 6, name)))
    if m.nw_ttl is not None:
        out.append(oxm_entry(IP_TTL, _uint(m.nw_ttl, 1, "nw_ttl")))
    if ip_proto is None:
        for name in ("tp_src", "tp_dst", "icmp_type", "icmp_code", "nd_target"):
            _require(getattr(m, name) is None, name, "an IP protocol")
        return out
    out.append(oxm_entry(IP_PROTO, bytes([ip_proto])))
    icmp = (ICMPV4_TYPE, ICMPV4_CODE) if ipv4 and ip_proto == 1 else \
        (ICMPV6_TYPE, ICMPV6_CODE) if not ipv4 and ip_proto == 58 else None
    if ip_proto in TP_FIELDS:
        for name, field in zip(("tp_src", "tp_dst"), TP_FIELDS[ip_proto], strict=True):
            value, mask = getattr(m, name), getattr(m, f"{name}_mask")
            if value is not None:
                mask_bytes = None if mask is None else _uint(mask, 2, f"{name} mask")
                out.append(oxm_entry(field, _uint(value, 2, name), mask_bytes))
    else:
        for name in ("tp_src", "tp_dst"):
            _require(getattr(m, name) is None, name, "TCP, UDP or SCTP")
    if icmp is not None:
        for value, field, name in ((m.icmp_type, icmp[0], "icmp_type"),
                                   (m.icmp_code, icmp[1], "icmp_code")):
            if value is not None:
                out.append(oxm_entry(field, _uint(value, 1, name)))
    else:
        for name in ("icmp_type", "icmp_code"):
            _require(getattr(m, name) is None, name, "ICMP")
    if m.nd_target is not None:
        _require(icmp == (ICMPV6_TYPE, ICMPV6_CODE) and m.icmp_type in (135, 136)
                 and m.icmp_code in (None, 0), "nd_target", "an ICMPv6 neighbor message")
        out.append(oxm_entry(ND_TARGET, *_prefix(m.nd_target, 6, "nd_target")))
    return out


def _arp_entries(m) -> list[bytes]:
    out = []
    if m.arp_op is not None:
        out.append(oxm_entry(ARP_OP, _uint(m.arp_op, 2, "arp_op")))
    for names, field in ((("arp_spa", "nw_src"), ARP_SPA), (("arp_tpa", "nw_dst"), ARP_TPA)):
        given = [getattr(m, n) for n in names if getattr(m, n) is not None]
        if len(given) > 1:
            raise NotEncodable(f"{' and '.join(names)} together")
        if given:
            out.append(oxm_entry(field, *_prefix(given[0], 4, names[0])))
    if m.arp_sha is not None:
        out.append(oxm_entry(ARP_SHA, _mac(m.arp_sha, "arp_sha")))
    return out


def encode_match(match: Match, port: Callable[[str], int]) -> EncodedMatch:
    """The ``ofp_match`` of ``match`` (see the module docstring for the order)."""
    m = match.fields()
    if not {name for name, _ in match.items()} <= _ENCODED_FIELDS:
        raise NotEncodable(f"a field of {match!r} is not known to the encoder")
    out = []
    if m.conj_id is not None:
        out.append(oxm_entry(CONJ_ID, _uint(m.conj_id, 4, "conj_id")))
    if m.in_port is not None:
        out.append(oxm_entry(IN_PORT, port(m.in_port).to_bytes(4, "big")))
    for field, value, mask, name in ((ETH_SRC, m.dl_src, m.dl_src_mask, "dl_src"),
                                     (ETH_DST, m.dl_dst, m.dl_dst_mask, "dl_dst")):
        if value is not None:
            out.append(oxm_entry(field, _mac(value, name),
                                 None if mask is None else _mac(mask, f"{name} mask")))
        elif mask is not None:
            raise NotEncodable(f"{name} mask without {name}")
    eth_type, ip_proto = _protocol(m)
    if eth_type is not None:
        out.append(oxm_entry(ETH_TYPE, eth_type.to_bytes(2, "big")))
    vlan = _vlan(m)
    if vlan is not None:
        tci, mask = vlan
        vid, vid_mask = tci & VLAN_VID_CFI, mask & VLAN_VID_CFI
        if vid_mask:  # the VID and CFI bits are a whole field: 0x1fff is exact
            out.append(oxm_entry(VLAN_VID, vid.to_bytes(2, "big"),
                                 None if vid_mask == VLAN_VID_CFI else vid_mask.to_bytes(2, "big")))
        if vid and mask >> 13:
            out.append(oxm_entry(VLAN_PCP, bytes([tci >> 13])))
    if eth_type in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        out += _ip_entries(m, eth_type, ip_proto)
    else:
        for name in ("nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "nw_ttl", "tp_src", "tp_dst",
                     "icmp_type", "icmp_code", "nd_target"):
            if name.startswith("nw_") and name != "nw_ttl" and eth_type == ETH_TYPE_ARP:
                continue  # nw_src/nw_dst of ARP are its addresses
            _require(getattr(m, name) is None, name, "an IP protocol")
    if eth_type == ETH_TYPE_ARP:
        out += _arp_entries(m)
    else:
        for name in ("arp_op", "arp_spa", "arp_tpa", "arp_sha"):
            _require(getattr(m, name) is None, name, "arp")
    if m.tun_id is not None:
        mask = None if m.tun_id_mask is None else _uint(m.tun_id_mask, 8, "tun_id mask")
        out.append(oxm_entry(TUNNEL_ID, _uint(m.tun_id, 8, "tun_id"), mask))
    registers = _registers(m)
    for xreg in sorted({r // 2 for r in registers}):
        high, low = registers.get(2 * xreg), registers.get(2 * xreg + 1)
        value = (high or 0) << 32 | (low or 0)
        mask = (0xFFFFFFFF << 32 if high is not None else 0) | (
            0xFFFFFFFF if low is not None else 0)
        out.append(oxm_entry((OXM_PACKET_REGS, xreg), value.to_bytes(8, "big"),
                             mask.to_bytes(8, "big")))
    if m.ct_state is not None:
        value, mask = ct_state_bits(m.ct_state)
        out.append(oxm_entry(CT_STATE, _uint(value, 4, "ct_state"), _uint(mask, 4, "ct_state")))
    if m.ct_label is not None:
        mask = None if m.ct_label_mask is None else _uint(m.ct_label_mask, 16, "ct_label mask")
        out.append(oxm_entry(CT_LABEL, _uint(m.ct_label, 16, "ct_label"), mask))
    elif m.ct_label_mask is not None:
        raise NotEncodable("ct_label mask without ct_label")
    fields = b"".join(out)
    body = struct.pack("!HH", OFPMT_OXM, 4 + len(fields)) + fields
    return EncodedMatch(_padded(body), bool(vlan and vlan[0] & VLAN_CFI))


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


# --- actions ----------------------------------------------------------------------------------

OFPAT_OUTPUT, OFPAT_PUSH_VLAN, OFPAT_POP_VLAN = 0, 17, 18
OFPAT_DEC_NW_TTL, OFPAT_SET_FIELD, OFPAT_EXPERIMENTER = 24, 25, 0xFFFF
NX_VENDOR_ID = 0x00002320
NXAST_RESUBMIT_TABLE, NXAST_CONJUNCTION, NXAST_CT = 14, 34, 35
NX_CT_F_COMMIT = 0x0001
NX_CT_RECIRC_NONE = 0xFF
ZONE_REGISTER = 6  # the firewall's zone register: NXM_NX_REG6[0..15]
ETH_TYPE_VLAN = 0x8100
OFPIT_APPLY_ACTIONS = 4


def _output(port: int) -> bytes:
    return struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, port, 0)


def set_field(field: tuple[int, int], value: bytes, mask: bytes | None = None) -> bytes:
    """``OFPAT_SET_FIELD``: type, length, one OXM entry (masked unless the mask is all
    ones), padded to 8 bytes."""
    entry = oxm_entry(field, value, mask)
    if not entry:
        raise NotEncodable("set_field with an empty mask")
    return _padded(struct.pack("!HH", OFPAT_SET_FIELD, len(_padded(bytes(4) + entry))) + entry)


def _nx_action(subtype: int, body: bytes) -> bytes:
    data = struct.pack("!HHIH", OFPAT_EXPERIMENTER, 10 + len(body), NX_VENDOR_ID, subtype) + body
    if len(data) % 8:
        raise NotEncodable(f"Nicira action {subtype} of {len(data)} bytes")
    return data


def _ct(action: Ct) -> bytes:
    nested = b""
    if action.label_mask:
        nested = set_field(CT_LABEL, _uint(action.label, 16, "ct label"),
                           _uint(action.label_mask, 16, "ct label mask"))
    if action.table is not None:
        _checked(action.table, MAX_TABLE, "ct table")
    body = struct.pack("!HIHB3xH", NX_CT_F_COMMIT if action.commit else 0,
                       oxm_header(register_field(ZONE_REGISTER), 4), 0 << 6 | (16 - 1),
                       NX_CT_RECIRC_NONE if action.table is None else action.table, 0)
    return struct.pack("!HHIH", OFPAT_EXPERIMENTER, 24 + len(nested), NX_VENDOR_ID,
                       NXAST_CT) + body + nested


def _conjunction(action: Conjunction) -> bytes:
    if not 1 <= action.clause <= action.n_clauses <= 64:
        raise NotEncodable(f"conjunction clause {action.clause}/{action.n_clauses}")
    return b"".join(_nx_action(NXAST_CONJUNCTION, struct.pack(
        "!BBI", action.clause - 1, action.n_clauses, _checked(i, 0xFFFFFFFF, "conjunction id")))
        for i in action.ids)


def encode_actions(actions: Iterable[Action], port: Callable[[str], int],
                   has_vlan: bool) -> bytes:
    """The actions of one flow, in order; ``has_vlan``: the match holds a tag."""
    actions = tuple(actions)
    if any(type(a) is Drop for a in actions):
        if len(actions) > 1:
            raise NotEncodable("drop with other actions")
        return b""
    out = []
    for action in actions:
        kind = type(action)
        if kind is Output:
            out.append(_output(port(action.port)))
        elif kind is Resubmit:
            out.append(_nx_action(NXAST_RESUBMIT_TABLE, struct.pack(
                "!HB3x", OFPP10_IN_PORT, _checked(action.table, MAX_TABLE, "resubmit table"))))
        elif kind is ModDlSrc:
            out.append(set_field(ETH_SRC, _mac(action.mac, "mod_dl_src")))
        elif kind is ModDlDst:
            out.append(set_field(ETH_DST, _mac(action.mac, "mod_dl_dst")))
        elif kind is ModVlanVid:
            if not has_vlan:
                out.append(struct.pack("!HHH2x", OFPAT_PUSH_VLAN, 8, ETH_TYPE_VLAN))
                has_vlan = True
            vid = VLAN_CFI | _checked(action.vlan, 0xFFF, "mod_vlan_vid")
            out.append(set_field(VLAN_VID, vid.to_bytes(2, "big")))
        elif kind is StripVlan:
            if not has_vlan:  # ovs-ofctl refuses it for OF1.1+ (inconsistent match)
                raise NotEncodable("strip_vlan on a frame that may carry no tag")
            out.append(struct.pack("!HH4x", OFPAT_POP_VLAN, 8))
            has_vlan = False
        elif kind is SetTunnel:
            out.append(set_field(TUNNEL_ID, _uint(action.tun_id, 8, "set_tunnel")))
        elif kind is DecTtl:
            out.append(struct.pack("!HH4x", OFPAT_DEC_NW_TTL, 8))
        elif kind is LoadRegister:
            _checked(action.register, 15, "register")
            out.append(set_field(register_field(action.register),
                                 _uint(action.value, 4, "register value")))
        elif kind is LoadZone:
            out.append(set_field(register_field(ZONE_REGISTER), _uint(action.zone, 4, "zone")))
        elif kind is Normal:
            out.append(_output(OFPP_NORMAL))
        elif kind is OutputInPort:
            out.append(_output(OFPP_IN_PORT))
        elif kind is Ct:
            out.append(_ct(action))
        elif kind is Conjunction:
            out.append(_conjunction(action))
        else:
            raise NotEncodable(f"action {action!r} is not known to the encoder")
    return b"".join(out)


# --- messages ---------------------------------------------------------------------------------


def message(kind: MessageType, xid: int, body: bytes = b"") -> bytes:
    length = HEADER.size + len(body)
    if length > MAX_MESSAGE:
        raise NotEncodable(f"an OpenFlow message of {length} bytes (at most {MAX_MESSAGE})")
    return HEADER.pack(OFP15_VERSION, kind, length, xid) + body


OFPHET_VERSIONBITMAP = 1


def hello(xid: int) -> bytes:
    """A hello offering OpenFlow 1.5 only."""
    return message(MessageType.HELLO, xid,
                   struct.pack("!HHI", OFPHET_VERSIONBITMAP, 8, 1 << OFP15_VERSION))


def echo_reply(xid: int, data: bytes) -> bytes:
    return message(MessageType.ECHO_REPLY, xid, data)


def barrier_request(xid: int) -> bytes:
    return message(MessageType.BARRIER_REQUEST, xid)


def bundle_control(xid: int, bundle_id: int, kind: BundleControl,
                   flags: int = BUNDLE_ATOMIC_ORDERED) -> bytes:
    return message(MessageType.BUNDLE_CONTROL, xid, struct.pack("!IHH", bundle_id, kind, flags))


def bundle_add(bundle_id: int, inner: bytes, flags: int = BUNDLE_ATOMIC_ORDERED) -> bytes:
    """``inner`` added to the bundle, under the inner message's own xid (as ovs-ofctl)."""
    xid = HEADER.unpack_from(inner)[3]
    return message(MessageType.BUNDLE_ADD_MESSAGE, xid,
                   struct.pack("!IHH", bundle_id, 0, flags) + inner)


OFPFC_ADD, OFPFC_DELETE = 0, 3
OFP_DEFAULT_PRIORITY = 0x8000
MAX_COOKIE = (1 << 64) - 1
MAX_TABLE = 0xFE  # 0xff means "all tables"
_FLOW_MOD = struct.Struct("!QQBBHHHIIIHH")  # after the header, before the match


def flow_add(xid: int, flow: Flow, port: Callable[[str], int]) -> bytes:
    """``add table=..,priority=..,cookie=..,<match>,actions=..``."""
    match = encode_match(flow.match, port)
    actions = encode_actions(flow.actions, port, match.has_vlan)
    if 8 + len(actions) > MAX_MESSAGE:
        raise NotEncodable(f"{len(actions)} bytes of actions (a message holds at most "
                           f"{MAX_MESSAGE})")
    instructions = struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(actions)) + actions \
        if actions else b""
    head = _FLOW_MOD.pack(_checked(flow.cookie, MAX_COOKIE, "cookie"), 0,
                          _checked(flow.table, MAX_TABLE, "table"), OFPFC_ADD, 0, 0,
                          _checked(flow.priority, 0xFFFF, "priority"),
                          OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, 0, 0)
    return message(MessageType.FLOW_MOD, xid, head + match.data + instructions)


_MATCH_ALL = _padded(struct.pack("!HH", OFPMT_OXM, 4))


def flow_delete(xid: int, ref: FlowRef) -> bytes:
    """``delete table=<table>,cookie=<cookie>/-1``."""
    head = _FLOW_MOD.pack(_checked(ref.cookie, MAX_COOKIE, "cookie"), MAX_COOKIE,
                          _checked(ref.table, MAX_TABLE, "table"), OFPFC_DELETE, 0, 0,
                          OFP_DEFAULT_PRIORITY, OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, 0, 0)
    return message(MessageType.FLOW_MOD, xid, head + _MATCH_ALL)


@dataclass(frozen=True)
class BundleMessages:
    """The messages that apply one ``FlowBundle`` atomically, as ovs-ofctl sends them:
    ``staged`` (open, every flow_mod, then a barrier: a flow_mod the switch refuses is
    reported before the barrier's reply and does not stop the bundle, so nothing is
    committed unless none was refused), then ``commit`` or ``discard``.  ``what`` is the
    flow (or flow reference) of each flow_mod's xid; ``describe`` words it for an error
    message, only when there is one (rendering every flow's text cost a sixth of
    encoding them)."""

    bundle_id: int
    staged: bytes
    open_xid: int
    barrier_xid: int
    commit: bytes
    commit_xid: int
    discard: bytes
    discard_xid: int
    what: Mapping[int, Flow | FlowRef]


def describe(item: Flow | FlowRef) -> str:
    """A flow_mod as its line of an ``ovs-ofctl add-flows`` file (ports by name)."""
    if isinstance(item, FlowRef):
        return f"delete table={item.table},cookie={item.cookie:#x}/-1"
    return f"add {render_flow(item.table, item.priority, item.cookie, item.match, item.actions)}"


def bundle_messages(bundle: FlowBundle, numbers: Mapping[str, int], bundle_id: int,
                    first_xid: int) -> BundleMessages:
    """Encode ``bundle`` with xids from ``first_xid`` on (raises NotEncodable)."""
    port = port_binder(numbers)
    xid = first_xid
    open_xid = xid
    parts = [bundle_control(open_xid, bundle_id, BundleControl.OPEN_REQUEST)]
    what: dict[int, Flow | FlowRef] = {}
    for ref in bundle.delete:
        xid += 1
        parts.append(bundle_add(bundle_id, flow_delete(xid, ref)))
        what[xid] = ref
    for flow in bundle.add:
        xid += 1
        parts.append(bundle_add(bundle_id, flow_add(xid, flow, port)))
        what[xid] = flow
    barrier_xid, commit_xid, discard_xid = xid + 1, xid + 2, xid + 3
    parts.append(barrier_request(barrier_xid))
    return BundleMessages(
        bundle_id=bundle_id, staged=b"".join(parts), open_xid=open_xid,
        barrier_xid=barrier_xid,
        commit=bundle_control(commit_xid, bundle_id, BundleControl.COMMIT_REQUEST),
        commit_xid=commit_xid,
        discard=bundle_control(discard_xid, bundle_id, BundleControl.DISCARD_REQUEST),
        discard_xid=discard_xid, what=what)


# --- replies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    xid: int
    version: int
    versions: frozenset[int]  # from its version bitmap, else every version up to ``version``


@dataclass(frozen=True)
class ErrorReply:
    xid: int
    type: int
    code: int
    experimenter: int | None  # for experimenter errors (type 0xffff)
    data: bytes  # the start of the message that failed

    @property
    def name(self) -> str:
        """``OFPBAC_BAD_OUT_PORT`` and the like (the spec's names), or the numbers."""
        if self.experimenter is not None:
            return f"experimenter {self.experimenter:#x} error {self.code}"
        prefix, codes = ERROR_NAMES.get(self.type, (None, ()))
        if prefix is None:
            return f"error type {self.type} code {self.code}"
        if self.code < len(codes):
            return f"{prefix}_{codes[self.code]}"
        return f"{prefix} code {self.code}"


@dataclass(frozen=True)
class EchoRequest:
    xid: int
    data: bytes


@dataclass(frozen=True)
class BarrierReply:
    xid: int


@dataclass(frozen=True)
class BundleReply:
    xid: int
    bundle_id: int
    kind: int


@dataclass(frozen=True)
class OtherMessage:
    xid: int
    type: int


Reply = Hello | ErrorReply | EchoRequest | BarrierReply | BundleReply | OtherMessage


class ProtocolError(ValueError):
    """Bytes from the switch that are not OpenFlow we can read."""


def split_messages(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Whole messages at the start of ``buffer``, and the rest (an incomplete one)."""
    found, at = [], 0
    while len(buffer) - at >= HEADER.size:
        length = HEADER.unpack_from(buffer, at)[2]
        if length < HEADER.size:
            raise ProtocolError(f"an OpenFlow message claims {length} bytes")
        if len(buffer) - at < length:
            break
        found.append(buffer[at:at + length])
        at += length
    return found, buffer[at:]


def decode(data: bytes) -> Reply:
    """One whole message from the switch."""
    version, kind, length, xid = HEADER.unpack_from(data)
    body = data[HEADER.size:length]
    try:
        if kind == MessageType.HELLO:
            return Hello(xid, version, _hello_versions(version, body))
        if version != OFP15_VERSION:
            raise ProtocolError(f"OpenFlow version {version:#x} after negotiating 1.5")
        if kind == MessageType.ERROR:
            error_type, code = struct.unpack_from("!HH", body)
            if error_type == 0xFFFF:
                code, experimenter = struct.unpack_from("!HI", body, 2)
                return ErrorReply(xid, error_type, code, experimenter, body[8:])
            return ErrorReply(xid, error_type, code, None, body[4:])
        if kind == MessageType.ECHO_REQUEST:
            return EchoRequest(xid, body)
        if kind == MessageType.BARRIER_REPLY:
            return BarrierReply(xid)
        if kind == MessageType.BUNDLE_CONTROL:
            bundle_id, control, _ = struct.unpack_from("!IHH", body)
            return BundleReply(xid, bundle_id, control)
    except struct.error as error:
        raise ProtocolError(f"a short OpenFlow message of type {kind}: {error}") from None
    return OtherMessage(xid, kind)


def _hello_versions(version: int, body: bytes) -> frozenset[int]:
    at = 0
    while len(body) - at >= 4:
        element, length = struct.unpack_from("!HH", body, at)
        if length < 4:
            break
        if element == OFPHET_VERSIONBITMAP:
            words = body[at + 4:at + length]
            bits = 0
            for i in range(len(words) // 4):
                bits |= int.from_bytes(words[4 * i:4 * i + 4], "big") << (32 * i)
            return frozenset(v for v in range(bits.bit_length()) if bits >> v & 1)
        at += (length + 7) // 8 * 8
    return frozenset(range(1, version + 1))


# The OF1.5 error types and codes the agent's flows can meet (the spec's names).
ERROR_NAMES: dict[int, tuple[str, tuple[str, ...]]] = {
    0: ("OFPHFC", ("INCOMPATIBLE", "EPERM")),
    1: ("OFPBRC", ("BAD_VERSION", "BAD_TYPE", "BAD_MULTIPART", "BAD_EXPERIMENTER",
                   "BAD_EXP_TYPE", "EPERM", "BAD_LEN", "BUFFER_EMPTY", "BUFFER_UNKNOWN",
                   "BAD_TABLE_ID", "IS_SLAVE", "BAD_PORT", "BAD_PACKET",
                   "MULTIPART_BUFFER_OVERFLOW")),
    2: ("OFPBAC", ("BAD_TYPE", "BAD_LEN", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_OUT_PORT",
                   "BAD_ARGUMENT", "EPERM", "TOO_MANY", "BAD_QUEUE", "BAD_OUT_GROUP",
                   "MATCH_INCONSISTENT", "UNSUPPORTED_ORDER", "BAD_TAG", "BAD_SET_TYPE",
                   "BAD_SET_LEN", "BAD_SET_ARGUMENT")),
    3: ("OFPBIC", ("UNKNOWN_INST", "UNSUP_INST", "BAD_TABLE_ID", "UNSUP_METADATA",
                   "UNSUP_METADATA_MASK", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_LEN",
                   "EPERM", "DUP_INST")),
    4: ("OFPBMC", ("BAD_TYPE", "BAD_LEN", "BAD_TAG", "BAD_DL_ADDR_MASK", "BAD_NW_ADDR_MASK",
                   "BAD_WILDCARDS", "BAD_FIELD", "BAD_VALUE", "BAD_MASK", "BAD_PREREQ",
                   "DUP_FIELD", "EPERM")),
    5: ("OFPFMFC", ("UNKNOWN", "TABLE_FULL", "BAD_TABLE_ID", "OVERLAP", "EPERM",
                    "BAD_TIMEOUT", "BAD_COMMAND", "BAD_FLAGS", "CANT_SYNC", "BAD_PRIORITY",
                    "IS_SYNC")),
    17: ("OFPBFC", ("UNKNOWN", "EPERM", "BAD_ID", "BUNDLE_EXIST", "BUNDLE_CLOSED",
                    "OUT_OF_BUNDLES", "BAD_TYPE", "BAD_FLAGS", "MSG_BAD_LEN", "MSG_BAD_XID",
                    "MSG_UNSUP", "MSG_CONFLICT", "MSG_TOO_MANY", "MSG_FAILED", "TIMEOUT",
                    "BUNDLE_IN_PROGRESS")),
}
