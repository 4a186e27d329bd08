"""Change notifications of one network namespace, read without blocking.

A ``ChangeWatch`` is a netlink socket opened inside a namespace and subscribed to a
family's multicast groups: rtnetlink's links, addresses, routes, neighbors and rules, or
nftables' ruleset changes.  The kernel queues a notification on every subscribed socket
while it makes the change (before the call that made it returns), so a ``drain()`` after
a change always holds that change's notification: a drain that finds nothing proves
nothing changed since the previous one.  That is what lets the Linux and NAT drivers keep
an observation between reconciles instead of reading every namespace every time.

If the socket's buffer overflowed, notifications were lost: ``drain()`` says so (None) and
the owner reads everything again.  A namespace file bound anew under the same name is
another namespace: ``is_for`` tells (the socket keeps the old one alive, so its identity,
the nsfs inode, cannot be reused meanwhile).
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV4_RULE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_IPV6_RULE,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
)
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from dvr.agent.drivers import netns
from dvr.agent.drivers.rtnl_wire import (
    IFINFO,
    IFLA_IFNAME,
    RTM_DELLINK,
    RTM_NEWLINK,
    attributes,
    messages,
)

NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7

# everything ``LinuxDriver.observe_namespace`` reads, bar sysctls (read every time)
ROUTE_GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
                | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE | RTMGRP_IPV4_RULE | RTMGRP_IPV6_RULE)
LINK_GROUPS = RTMGRP_LINK
NFTABLES_GROUPS = 1 << (NFNLGRP_NFTABLES - 1)


_RECEIVE_BUFFER = 1 << 20
_CHUNK = 1 << 16


def namespace_identity(netns_path: str | Path | None) -> tuple[int, int]:
    """What tells two network namespaces apart (None: the calling thread's own)."""
    found = os.stat(netns.THREAD_NETNS if netns_path is None else netns_path)
    return found.st_dev, found.st_ino


class ChangeWatch:
    """Subscribed to ``groups`` of netlink ``protocol`` inside ``netns_path`` (None: the
    calling thread's namespace).  ``close()`` when done."""

    def __init__(self, netns_path: str | Path | None, protocol: int, groups: int):
        self.identity = namespace_identity(netns_path)
        self._socket = netns.socket_in(netns_path, socket.AF_NETLINK, socket.SOCK_RAW,
                                       protocol)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            self._socket.bind((0, groups))
            self._socket.setblocking(False)
        except OSError:
            self._socket.close()
            raise

    def is_for(self, netns_path: str | Path | None) -> bool:
        try:
            return namespace_identity(netns_path) == self.identity
        except OSError:
            return False

    def drain(self) -> list[bytes] | None:
        """Every notification queued since the last drain, as received; None if some were
        lost (the buffer overflowed)."""
        chunks: list[bytes] = []
        lost = False
        while True:
            try:
                chunks.append(self._socket.recv(_CHUNK))
            except BlockingIOError:
                return None if lost else chunks
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                lost = True

    def close(self) -> None:
        self._socket.close()


def route_messages(chunks: list[bytes]) -> list:
    """rtnetlink notifications, parsed like pyroute2's own replies."""
    marshal = MarshalRtnl()
    return [message for chunk in chunks for message in marshal.parse(chunk)]


@dataclass(frozen=True)
class LinkNotice:
    """What one rtnetlink notification says of a link: its type, and for a link message
    the link's number and name (None when it has none)."""

    kind: int
    index: int | None = None
    name: str | None = None


def link_notices(chunks: list[bytes]) -> list[LinkNotice]:
    """The notifications of ``chunks`` as ``LinkNotice`` values, read by hand: only the
    link's number and name (pyroute2 decodes every attribute of every message, which made
    a plug on a host with many devices cost milliseconds)."""
    found = []
    for chunk in chunks:
        for kind, _, payload in messages(chunk):
            if kind not in (RTM_NEWLINK, RTM_DELLINK) or len(payload) < IFINFO.size:
                found.append(LinkNotice(kind))
                continue
            index = IFINFO.unpack_from(payload)[2]
            name = next((value.rstrip(b"\0").decode(errors="replace")
                         for attr, value in attributes(payload, IFINFO.size)
                         if attr == IFLA_IFNAME), None)
            found.append(LinkNotice(kind, index, name))
    return found

