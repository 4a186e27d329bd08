"""The hand-packed rtnetlink neighbor requests read back, by pyroute2's own parser, as the
messages meant; the kernel's answers are told apart by sequence number."""

from __future__ import annotations

import socket
import struct

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from dvr.agent.drivers import rtnl_neighbors as rtnl


def parsed(data: bytes):
    (found,) = MarshalRtnl().parse(data)
    return found


@pytest.mark.parametrize("ip, family", [("192.0.2.7", socket.AF_INET),
                                        ("2001:db8::7", socket.AF_INET6)])
def test_a_replace_is_a_permanent_create_or_replace_with_address_and_mac(ip, family):
    data = rtnl.neighbor_request(12, ip, "fa:16:3e:00:00:07", sequence=41)
    message = parsed(data)
    assert len(data) == message["header"]["length"] and len(data) % 4 == 0
    assert message["header"]["type"] == rtnl.RTM_NEWNEIGH
    assert message["header"]["sequence_number"] == 41
    assert message["header"]["flags"] == (rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
                                          | rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE)
    assert (message["family"], message["ifindex"], message["state"]) == (family, 12, 0x80)
    assert message.get_attr("NDA_DST") == ip
    assert message.get_attr("NDA_LLADDR") == "fa:16:3e:00:00:07"


def test_a_delete_names_the_address_only():
    message = parsed(rtnl.neighbor_request(3, "198.51.100.9", None, sequence=5))
    assert message["header"]["type"] == rtnl.RTM_DELNEIGH
    assert message["header"]["flags"] == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
    assert (message["ifindex"], message.get_attr("NDA_DST")) == (3, "198.51.100.9")
    assert message.get_attr("NDA_LLADDR") is None


@pytest.mark.parametrize("name", ["qr-1", "qr-12345678-ab", "x"])
def test_a_link_request_asks_for_the_device_by_name(name):
    data = rtnl.link_request(name, sequence=9)
    message = parsed(data)
    assert len(data) % 4 == 0 and message["header"]["type"] == rtnl.RTM_GETLINK
    assert message["header"]["flags"] == rtnl.NLM_F_REQUEST
    assert message.get_attr("IFLA_IFNAME") == name


def ack(sequence: int, code: int = 0) -> bytes:
    return rtnl.message(rtnl.NLMSG_ERROR, 0, struct.pack("=i", -code) + b"\0" * 16, sequence)


def link_reply(sequence: int, index: int) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0) + rtnl.attribute(rtnl.IFLA_IFNAME, b"qr\0")
    return rtnl.message(rtnl.RTM_NEWLINK, 0, body, sequence)


class Kernel:
    """A socket whose answers are given: one datagram per ``recv``."""

    def __init__(self, *datagrams: bytes) -> None:
        self.datagrams = list(datagrams)
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        return self.datagrams.pop(0)


def test_answers_to_other_requests_are_skipped_and_a_datagram_may_hold_several():
    sequence = next(rtnl._sequence) + 1  # the one the next request takes
    kernel = Kernel(ack(sequence - 1), link_reply(sequence - 1, 4) + link_reply(sequence, 7))
    assert rtnl.link_index(kernel, "qr") == 7
    assert parsed(kernel.sent[0]).get_attr("IFLA_IFNAME") == "qr"
    assert kernel.datagrams == []


def test_the_kernels_refusals_are_netlink_errors_and_a_missing_device_is_none():
    sequence = next(rtnl._sequence) + 1
    assert rtnl.link_index(Kernel(ack(sequence, code=19)), "nosuch") is None  # ENODEV
    with pytest.raises(NetlinkError) as refused:
        rtnl.set_neighbor(Kernel(ack(sequence + 1, code=22)), 7, "192.0.2.7", None)
    assert refused.value.code == 22
    rtnl.set_neighbor(Kernel(ack(sequence + 2)), 7, "192.0.2.7", "fa:16:3e:00:00:07")
