"""Link notifications read by hand say what pyroute2's full decoding says of the link."""

from __future__ import annotations

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg

from dvr.agent.drivers.netlink_watch import LinkNotice, link_notices, route_messages
from dvr.agent.drivers.rtnl_wire import RTM_DELLINK, RTM_NEWLINK, RTM_NEWNEIGH, messages


def link_message(kind: int, index: int, attrs: list[tuple[str, object]]) -> bytes:
    message = ifinfmsg()
    message["header"]["type"] = kind
    message["index"] = index
    message["attrs"] = attrs
    message.encode()
    return bytes(message.data)


def neighbor_message() -> bytes:
    message = ndmsg()
    message["header"]["type"] = RTM_NEWNEIGH
    message["family"], message["ifindex"] = 2, 4
    message["attrs"] = [("NDA_DST", "192.0.2.7"), ("NDA_LLADDR", "fa:16:3e:00:00:07")]
    message.encode()
    return bytes(message.data)


@pytest.mark.parametrize("name", ["tap1", "qrb-1234567890a", "x"])
def test_a_link_notice_names_the_link_as_pyroute2_reads_it(name):
    chunk = (link_message(RTM_NEWLINK, 7, [("IFLA_MTU", 1450), ("IFLA_IFNAME", name),
                                            ("IFLA_ADDRESS", "fa:16:3e:00:00:01")])
             + link_message(RTM_DELLINK, 9, [("IFLA_MTU", 1500)]) + neighbor_message())
    assert link_notices([chunk]) == [LinkNotice(RTM_NEWLINK, 7, name),
                                     LinkNotice(RTM_DELLINK, 9, None),
                                     LinkNotice(RTM_NEWNEIGH)]
    decoded = route_messages([chunk])
    assert [(m["index"], m.get_attr("IFLA_IFNAME")) for m in decoded[:2]] == [
        (7, name), (9, None)]
    assert [kind for kind, _, _ in messages(chunk)] == [RTM_NEWLINK, RTM_DELLINK, RTM_NEWNEIGH]


def test_a_cut_message_is_a_notice_that_cannot_tell_which_link():
    chunk = link_message(RTM_NEWLINK, 3, [("IFLA_IFNAME", "tap3")])
    assert link_notices([chunk + chunk[:10]]) == [LinkNotice(RTM_NEWLINK, 3, "tap3")]
    # the header says more than there is: no number, no name (the kept links are read again)
    assert link_notices([chunk[:20]]) == [LinkNotice(RTM_NEWLINK)]
