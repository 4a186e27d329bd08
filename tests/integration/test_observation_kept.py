"""The Linux and NAT drivers keep what they read between observations, caught up from
netlink notifications: whatever changes (through the drivers or behind their back), a kept
observation equals a fresh one, and a namespace where nothing but neighbors changed is
not read again.

Everything happens in namespaces the test creates (under its own directory); the calling
thread enters one of them as the drivers' "host" namespace, so the host's own links are
never touched."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dvr.agent.desired.state import Address, NatRule, Neighbor, Route, Rule
from dvr.agent.drivers import linux as linux_module
from dvr.agent.drivers import netns
from dvr.agent.drivers import nft as nft_module
from dvr.agent.drivers.base import LinuxScope
from dvr.agent.drivers.linux import LinuxConfig, LinuxDriver
from dvr.agent.drivers.nft import NftDriver
from dvr.agent.reconcile.commands import (
    AddAddress,
    AddRule,
    CreateNamespace,
    CreateVeth,
    DeleteNamespace,
    DeleteNeighbor,
    ReplaceNatTable,
    ReplaceNeighbor,
    ReplaceRoute,
    SetLink,
)
from dvr.agent.reconcile.observed import ObservedLinux

ROUTER, HOST = "qrouter-keep", "host-keep"
SCOPE = LinuxScope(namespace_prefixes=("qrouter-",), host_links=("qrb-keep",),
                   sysctl_keys=("net.ipv4.ip_forward",))


@pytest.fixture
def netns_dir(workroot: Path, unique_names: Iterator[str]) -> Iterator[Path]:
    directory = workroot / next(unique_names)
    netns.create_named(directory / HOST)
    yield directory
    for path in directory.iterdir():
        netns.delete_named(path)
    shutil.rmtree(directory, ignore_errors=True)


def run_in(path: Path, *argv: str) -> None:
    subprocess.run(["nsenter", f"--net={path}", *argv], check=True, capture_output=True)


class Reads:
    """Counts a driver's full readings of a namespace."""

    def __init__(self, driver: LinuxDriver):
        self.count = 0
        read = driver._read_namespace

        def counted(name: str):
            self.count += 1
            return read(name)

        driver._read_namespace = counted  # type: ignore[method-assign]


def test_a_kept_linux_observation_equals_a_fresh_one(netns_dir: Path):
    keeping = LinuxDriver(LinuxConfig(netns_dir))
    fresh = LinuxDriver(LinuxConfig(netns_dir, follow_changes=False))
    reads = Reads(keeping)
    router = netns_dir / ROUTER

    def same() -> None:
        assert keeping.observe(SCOPE) == fresh.observe(SCOPE)

    with netns.inside(netns_dir / HOST):
        try:
            same()
            keeping.apply(CreateNamespace(ROUTER))
            keeping.apply(CreateVeth(ROUTER, "qr-keep", "qrb-keep", "fa:16:3e:00:00:01", 1450))
            keeping.apply(AddAddress(ROUTER, Address("qr-keep", "192.0.2.1/24")))
            same()
            assert reads.count == 1
            keeping.apply(ReplaceRoute(ROUTER, Route("198.51.100.0/24", "qr-keep",
                                                     "192.0.2.254")))
            keeping.apply(AddRule(ROUTER, Rule(32768, 16, "192.0.2.0/24")))
            same()
            assert reads.count == 2  # a route and a rule: read again
            reads.count = 0
            for ip in ("192.0.2.11", "192.0.2.12"):
                keeping.apply(ReplaceNeighbor(ROUTER, Neighbor("qr-keep", ip,
                                                               "fa:16:3e:00:00:11")))
            same()
            keeping.apply(ReplaceNeighbor(ROUTER, Neighbor("qr-keep", "192.0.2.11",
                                                           "fa:16:3e:00:00:99")))
            keeping.apply(DeleteNeighbor(ROUTER, "qr-keep", "192.0.2.12"))
            run_in(router, "ip", "neigh", "replace", "192.0.2.13", "lladdr",
                   "fa:16:3e:00:00:13", "dev", "qr-keep", "nud", "reachable")
            run_in(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            same()
            assert reads.count == 0  # neighbors (and a sysctl, read every time) only
            neighbors = {n.ip_address: n for n in keeping.observe(SCOPE).namespaces[0].neighbors}
            assert neighbors["192.0.2.11"].mac_address == "fa:16:3e:00:00:99"
            assert "192.0.2.12" not in neighbors
            assert neighbors["192.0.2.13"].state == "reachable"
            # behind the driver's back: a link setting, an address, the bridge end's MTU
            run_in(router, "ethtool", "-K", "qr-keep", "tx", "on")
            same()
            run_in(router, "ip", "address", "add", "192.0.2.2/24", "dev", "qr-keep")
            same()
            keeping.apply(SetLink(None, "qrb-keep", None, 1400))
            same()
            assert [link.mtu for link in keeping.observe(SCOPE).host_links] == [1400]
            # the namespace deleted (its devices with it) and made again under the same
            # name: another namespace
            keeping.apply(DeleteNamespace(ROUTER))
            deadline = time.monotonic() + 10  # the kernel removes a namespace's devices
            while fresh.observe(SCOPE).host_links and time.monotonic() < deadline:
                time.sleep(0.05)
            same()
            assert keeping.observe(SCOPE) == ObservedLinux((), ())
            keeping.apply(CreateNamespace(ROUTER))
            same()
            assert keeping.observe(SCOPE).namespaces[0].links == ()
        finally:
            keeping.close()


def test_the_hosts_links_are_read_again_only_for_a_change_to_a_wanted_one(netns_dir: Path):
    """A VIF plugged in the host's namespace (a device the agent does not manage) leaves
    the kept host links alone; a change to a wanted link, a rename of one, or another set
    of wanted names reads them again; kept always equals fresh."""
    keeping = LinuxDriver(LinuxConfig(netns_dir))
    fresh = LinuxDriver(LinuxConfig(netns_dir, follow_changes=False))
    reads = {"count": 0}
    read = keeping._read_host_links

    def counted(wanted):
        reads["count"] += 1
        return read(wanted)

    keeping._read_host_links = counted  # type: ignore[method-assign]
    other_scope = LinuxScope(namespace_prefixes=("qrouter-",),
                             host_links=("qrb-keep", "qrb-other"))

    def same(scope: LinuxScope = SCOPE) -> None:
        assert keeping.observe(scope) == fresh.observe(scope)

    with netns.inside(netns_dir / HOST):
        try:
            keeping.apply(CreateNamespace(ROUTER))
            keeping.apply(CreateVeth(ROUTER, "qr-keep", "qrb-keep", "fa:16:3e:00:00:01", 1450))
            same()
            assert reads["count"] == 1
            subprocess.run(["ip", "link", "add", "tapvif-keep", "type", "veth", "peer",
                            "name", "vmvif-keep"], check=True, capture_output=True)
            subprocess.run(["ip", "link", "set", "tapvif-keep", "up"], check=True,
                           capture_output=True)
            same()
            assert reads["count"] == 1  # VIF devices only: kept
            keeping.apply(SetLink(None, "qrb-keep", None, 1400))
            same()
            assert reads["count"] == 2
            subprocess.run(["ip", "link", "set", "qrb-keep", "name", "qrb-renamed"],
                           check=True, capture_output=True)
            same()
            assert keeping.observe(SCOPE).host_links == ()
            assert reads["count"] == 3
            same(other_scope)
            assert reads["count"] == 4  # other names asked for: read again
            subprocess.run(["ip", "link", "del", "tapvif-keep"], check=True,
                           capture_output=True)
            same(other_scope)
            assert reads["count"] == 4
        finally:
            keeping.close()


def test_a_kept_nat_table_equals_a_fresh_one_and_nft_runs_only_after_a_change(
        netns_dir: Path, monkeypatch: pytest.MonkeyPatch):
    if shutil.which("nft") is None or shutil.which("nsenter") is None:
        pytest.skip("nft or nsenter is not installed")
    netns.create_named(netns_dir / ROUTER)
    listings = []
    list_table = nft_module.list_table

    def counted(*args, **kwargs):
        listings.append(args[0])
        return list_table(*args, **kwargs)

    monkeypatch.setattr(nft_module, "list_table", counted)
    keeping = NftDriver(netns_dir)
    fresh = NftDriver(netns_dir, follow_changes=False)
    rules = (NatRule("postrouting", "snat:r1", oif="qg-keep", saddr="192.0.2.0/24",
                     snat_to="203.0.113.5"),)
    try:
        assert keeping.observe([ROUTER]) == fresh.observe([ROUTER]) == {ROUTER: ()}
        listings.clear()
        assert keeping.observe([ROUTER]) == {ROUTER: ()}
        assert listings == []  # nothing changed: no nft run
        keeping.apply(ReplaceNatTable(ROUTER, rules))
        assert keeping.observe([ROUTER]) == fresh.observe([ROUTER])
        assert keeping.observe([ROUTER])[ROUTER] != ()
        run_in(netns_dir / ROUTER, "nft", "flush", "table", "ip", "dvr")
        assert keeping.observe([ROUTER]) == fresh.observe([ROUTER])
        listings.clear()
        assert keeping.observe([ROUTER]) == fresh.observe([ROUTER])
        assert len(listings) == 1  # the fresh driver's
    finally:
        keeping.close()


def test_a_namespace_that_cannot_be_watched_is_read_every_time(
        netns_dir: Path, monkeypatch: pytest.MonkeyPatch):
    def no_socket_left(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(linux_module, "ChangeWatch", no_socket_left)
    keeping = LinuxDriver(LinuxConfig(netns_dir))
    fresh = LinuxDriver(LinuxConfig(netns_dir, follow_changes=False))
    reads = Reads(keeping)
    with netns.inside(netns_dir / HOST):
        keeping.apply(CreateNamespace(ROUTER))
        keeping.apply(CreateVeth(ROUTER, "qr-keep", "qrb-keep", "fa:16:3e:00:00:01", 1450))
        for _ in range(2):
            observed = keeping.observe(SCOPE)
            assert observed == fresh.observe(SCOPE)
            assert [n.name for n in observed.namespaces] == [ROUTER]
            assert [link.name for link in observed.host_links] == ["qrb-keep"]
        assert reads.count == 2
