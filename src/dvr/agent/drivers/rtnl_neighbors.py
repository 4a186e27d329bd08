"""Permanent neighbor entries set and removed with one rtnetlink request each.

A neighbor change is the most frequent Linux change a port brings (every router namespace
of the port's networks learns its MAC), and pyroute2 spent ~1 ms of CPU on an idle machine
for each one -- building an ``IPRoute`` and looking the device up by a link dump -- and
several times that on a busy one.  Here the messages are packed by hand on a netlink socket
already opened in the namespace: the device's index by one ``RTM_GETLINK`` by name, then
``RTM_NEWNEIGH`` (create or replace) or ``RTM_DELNEIGH``, each acknowledged by the kernel.
A refusal raises pyroute2's ``NetlinkError`` with the kernel's errno, as pyroute2 would.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from itertools import count

from pyroute2.netlink.exceptions import NetlinkError

from dvr.agent.drivers.rtnl_wire import (
    IFINFO,
    IFLA_IFNAME,
    NLMSG_ERROR,
    RTM_DELNEIGH,
    RTM_GETLINK,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    attribute,
    message,
    messages,
)

NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80

_NDMSG = struct.Struct("=BxxxiHBB")  # ndmsg: family, ifindex, state, flags, type
_sequence = count(1)
_RECEIVE = 1 << 16


def link_request(name: str, sequence: int) -> bytes:
    """RTM_GETLINK for the device ``name``."""
    body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attribute(
        IFLA_IFNAME, name.encode() + b"\0")
    return message(RTM_GETLINK, NLM_F_REQUEST, body, sequence)


def _family_and_address(ip: str) -> tuple[int, bytes]:
    address = ipaddress.ip_address(ip)
    return (socket.AF_INET if address.version == 4 else socket.AF_INET6), address.packed


def neighbor_request(ifindex: int, ip: str, mac: str | None, sequence: int) -> bytes:
    """RTM_NEWNEIGH (create or replace, permanent) when ``mac`` is given, else
    RTM_DELNEIGH, for ``ip`` on the device ``ifindex``; acknowledged either way."""
    family, packed = _family_and_address(ip)
    if mac is None:
        body = _NDMSG.pack(family, ifindex, 0, 0, 0) + attribute(NDA_DST, packed)
        return message(RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, body, sequence)
    body = (_NDMSG.pack(family, ifindex, NUD_PERMANENT, 0, 0) + attribute(NDA_DST, packed)
            + attribute(NDA_LLADDR, bytes.fromhex(mac.replace(":", ""))))
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    return message(RTM_NEWNEIGH, flags, body, sequence)


def _answer(sock: socket.socket, request: bytes, sequence: int) -> tuple[int, bytes]:
    """Send ``request`` and return the kernel's reply to it: (type, payload); an error
    reply raises ``NetlinkError``, an acknowledgement is (NLMSG_ERROR, b"")."""
    sock.send(request)
    while True:
        for kind, seq, payload in messages(sock.recv(_RECEIVE)):
            if seq != sequence:
                continue  # an answer to an earlier request that gave up
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", payload)
                if code:
                    raise NetlinkError(-code)
                return kind, b""
            return kind, payload


def link_index(sock: socket.socket, name: str) -> int | None:
    """The index of the device ``name`` in the socket's namespace (None: no such device)."""
    sequence = next(_sequence)
    try:
        kind, payload = _answer(sock, link_request(name, sequence), sequence)
    except NetlinkError as error:
        if error.code == 19:  # ENODEV
            return None
        raise
    if kind != RTM_NEWLINK:
        return None
    return IFINFO.unpack_from(payload)[2]


def set_neighbor(sock: socket.socket, ifindex: int, ip: str, mac: str | None) -> None:
    """Make ``ip`` on ``ifindex`` a permanent neighbor at ``mac`` (None: remove it)."""
    sequence = next(_sequence)
    _answer(sock, neighbor_request(ifindex, ip, mac, sequence), sequence)
