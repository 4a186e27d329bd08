"""Network-namespace plumbing for the Linux driver, without forking.

A network namespace is per *thread* in Linux: the calling thread switches into a
namespace just long enough to open a socket or touch ``/proc/sys/net`` and switches back
(the socket stays in the namespace it was opened in).  pyroute2's own ``netns=`` support
forks a process per socket instead (~14 ms against ~2 ms here), and forking next to
ovsdbapp's thread is best avoided.

Also: named namespaces (bind mounts under a directory, like ``ip netns``), sysctls, and the
legacy ethtool ioctls for TX checksum offload (``ethtool -K dev tx off``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2
SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17
THREAD_NETNS = "/proc/thread-self/ns/net"

_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceSwitchError(RuntimeError):
    """The thread could not return to its own namespace: it must not go on."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


@contextmanager
def inside(netns_path: str | Path | None) -> Iterator[None]:
    """Run the block with the calling thread inside ``netns_path`` (None: stay put)."""
    if netns_path is None:
        yield
        return
    own = os.open(THREAD_NETNS, os.O_RDONLY)
    try:
        target = os.open(str(netns_path), os.O_RDONLY)
        try:
            _check(_libc.setns(target, CLONE_NEWNET), f"setns {netns_path}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise NamespaceSwitchError(f"cannot return from {netns_path}")
    finally:
        os.close(own)


def socket_in(netns_path: str | Path | None, family: int, type_: int,
              proto: int = 0) -> socket.socket:
    with inside(netns_path):
        return socket.socket(family, type_, proto)


def create_named(path: Path) -> None:
    """A new network namespace bound at ``path`` (what ``ip netns add`` does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    own = os.open(THREAD_NETNS, os.O_RDONLY)
    try:
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        except OSError:
            path.unlink(missing_ok=True)
            raise
        try:
            _check(_libc.mount(THREAD_NETNS.encode(), str(path).encode(), b"none", MS_BIND,
                               None), f"bind {path}")
        except OSError:
            path.unlink(missing_ok=True)
            raise
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise NamespaceSwitchError("cannot return from a new namespace")
    finally:
        os.close(own)


def delete_named(path: Path) -> None:
    """Unbind and remove ``path`` (the namespace dies when nothing else holds it)."""
    if _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):  # not mounted / already gone
            raise OSError(code, f"umount {path}: {os.strerror(code)}")
    path.unlink(missing_ok=True)


def sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctl(netns_path: str | Path | None, key: str) -> str | None:
    with inside(netns_path):
        try:
            return sysctl_path(key).read_text().strip()
        except OSError:
            return None


def write_sysctl(netns_path: str | Path | None, key: str, value: str) -> None:
    with inside(netns_path):
        sysctl_path(key).write_text(value)


def _ethtool(sock: socket.socket, device: str, command: int, data: int = 0) -> int:
    buffer = ctypes.create_string_buffer(struct.pack("II", command, data), 8)
    request = struct.pack("16sP", device.encode(), ctypes.addressof(buffer))
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
    return struct.unpack("II", buffer.raw[:8])[1]


def tx_checksumming(sock: socket.socket, device: str) -> bool | None:
    """Whether TX checksum offload is on (None if the device does not say)."""
    try:
        return bool(_ethtool(sock, device, ETHTOOL_GTXCSUM))
    except OSError:
        return None


def set_tx_checksumming(sock: socket.socket, device: str, enabled: bool) -> None:
    """``ethtool -K <device> tx on|off`` (every TX checksum feature)."""
    _ethtool(sock, device, ETHTOOL_STXCSUM, int(enabled))


ETH_P_ARP = 0x0806


def gratuitous_arp_frames(mac: str, ip: str) -> list[bytes]:
    """A gratuitous ARP request and reply for ``ip`` from ``mac`` (Ethernet broadcast)."""
    sender = bytes.fromhex(mac.replace(":", ""))
    address = socket.inet_aton(ip)
    broadcast = b"\xff" * 6
    frames = []
    for op, target_mac in ((1, b"\x00" * 6), (2, broadcast)):
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4,
                          op, sender, address, target_mac, address)
        frames.append(broadcast + sender + struct.pack("!H", ETH_P_ARP) + arp)
    return frames


def send_gratuitous_arp(netns_path: str | Path | None, device: str, mac: str, ip: str) -> None:
    sock = socket_in(netns_path, socket.AF_PACKET, socket.SOCK_RAW)
    try:
        sock.bind((device, 0))
        for frame in gratuitous_arp_frames(mac, ip):
            sock.send(frame)
    finally:
        sock.close()
