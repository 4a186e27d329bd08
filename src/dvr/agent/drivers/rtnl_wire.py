"""Netlink messages packed and unpacked by hand: the header, attributes, and the messages
of one datagram.  For the few requests and notifications on a hot path, where pyroute2's
general encoder and decoder cost more than the kernel's work (``rtnl_neighbors``,
``netlink_watch.link_notices``)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

NLMSG_ERROR = 2
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
IFLA_IFNAME = 3

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_ATTR = struct.Struct("=HH")  # rtattr: length, type


def _align(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def attribute(kind: int, payload: bytes) -> bytes:
    return _align(_ATTR.pack(_ATTR.size + len(payload), kind) + payload)


def message(kind: int, flags: int, body: bytes, sequence: int) -> bytes:
    return HEADER.pack(HEADER.size + len(body), kind, flags, sequence, 0) + body


def messages(data: bytes) -> list[tuple[int, int, bytes]]:
    """The messages of one datagram: (type, sequence, payload)."""
    found = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _, sequence, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            break
        found.append((kind, sequence, data[offset + HEADER.size:offset + length]))
        offset += (length + 3) & ~3
    return found


def attributes(payload: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    """The attributes of a payload from ``offset`` on: (type, value)."""
    while offset + _ATTR.size <= len(payload):
        length, kind = _ATTR.unpack_from(payload, offset)
        if length < _ATTR.size:
            return
        yield kind & 0x3FFF, payload[offset + _ATTR.size:offset + length]  # no nested bits
        offset += (length + 3) & ~3
