"""HostEnv and Fabric on the real machine: isolation, OVS per host, underlay, teardown."""

from __future__ import annotations

import subprocess

import pytest
from dataplane_support import processes_mentioning, root_namespaces

from dvr.lab.fabric import Fabric
from dvr.lab.hostenv import HostEnv, cleanup, is_alive, read_manifest
from dvr.lab.plumbing import Plumbing


def appctl(host: HostEnv, *args: str) -> str:
    return subprocess.run(["ovs-appctl", *args], env=host.env(), text=True,
                          capture_output=True, check=True).stdout


def test_each_host_has_its_own_switch_and_private_router_namespaces(unique_names, workroot):
    prefix = next(unique_names)
    a = HostEnv(f"{prefix}-a", workroot / prefix / "a")
    b = HostEnv(f"{prefix}-b", workroot / prefix / "b")
    try:
        a.start()
        b.start()
        a.start()  # idempotent: still the same daemons
        assert a.is_running() and b.is_running()
        a.vsctl("add-br", "br-only-a", "--", "set", "bridge", "br-only-a", "datapath_type=netdev")
        assert "br-only-a" in a.vsctl("list-br") and "br-only-a" not in b.vsctl("list-br")
        assert "ovs-vswitchd (Open vSwitch)" in appctl(a, "version")
        # the same router namespace name on both hosts, invisible outside them
        for host in (a, b):
            host.run(["ip", "netns", "add", "qrouter-same"])
            host.run(["ip", "netns", "exec", "qrouter-same", "ip", "link", "set", "lo", "up"])
        assert a.namespaces() == b.namespaces() == ["qrouter-same"]
        assert "qrouter-same" not in root_namespaces("qrouter")
        # the daemons and anything run through command() live in the host's namespace
        links = a.run(["ip", "-o", "link", "show"]).stdout
        assert "br-only-a" in links and "eth0" not in links
    finally:
        a.stop()
        b.stop()
    assert root_namespaces(prefix) == []
    assert processes_mentioning(str(workroot / prefix)) == []
    assert processes_mentioning(f"dvrhost-{prefix}") == []  # the mount-namespace holders
    a.stop()  # stopping twice is fine


def test_cleanup_after_a_crash_finds_everything_from_the_workdir(unique_names, workroot):
    prefix = next(unique_names)
    workdir = workroot / prefix / "a"
    host = HostEnv(f"{prefix}-a", workdir)
    host.start()
    host.run(["ip", "netns", "add", "qrouter-x"])
    recorded = read_manifest(workdir)
    refs = [host.holder(), host.daemon("ovsdb-server"), host.daemon("ovs-vswitchd")]
    assert recorded["name"] == host.name and all(r is not None and is_alive(r) for r in refs)
    del host  # the "crashed" run lost its objects; only the name and the workdir remain
    cleanup(f"{prefix}-a", workdir)
    assert not any(is_alive(r) for r in refs)
    assert root_namespaces(prefix) == [] and not workdir.exists()
    assert processes_mentioning(f"dvrhost-{prefix}") == []
    cleanup(f"{prefix}-a", workdir)  # and again: nothing to do


def test_a_start_that_fails_half_way_leaves_nothing(unique_names, workroot, tmp_path):
    prefix = next(unique_names)
    workdir = workroot / prefix / "a"
    broken = HostEnv(f"{prefix}-a", workdir, ovs_schema=tmp_path / "no-such-schema")
    try:
        broken.start()
        raise AssertionError("start() should have failed")
    except Exception as error:
        assert "ovsdb-tool" in str(error)
    assert root_namespaces(prefix) == []
    assert processes_mentioning(str(workdir)) == []


@pytest.mark.parametrize("plumbing", list(Plumbing))
def test_fabric_carries_the_underlay_and_enables_tunnel_routing(unique_names, workroot,
                                                                plumbing):
    prefix = next(unique_names)
    a = HostEnv(f"{prefix}-a", workroot / prefix / "a")
    b = HostEnv(f"{prefix}-b", workroot / prefix / "b")
    fabric = Fabric(f"{prefix}-fab", workroot / prefix / "fab", plumbing=plumbing)
    try:
        for host in (a, b):
            host.start()
        fabric.start()
        a.vsctl("add-br", "br-tun", "--", "set", "bridge", "br-tun", "datapath_type=netdev",
                "fail_mode=secure", "--", "add-port", "br-tun", "vx", "--", "set", "interface",
                "vx", "type=vxlan", "options:remote_ip=198.18.0.2",
                "options:local_ip=198.18.0.1", "options:key=flow")
        subprocess.run(["ovs-ofctl", "add-flow", "br-tun",
                        "in_port=LOCAL,actions=set_tunnel:5,output:vx"],
                       env=a.env(), check=True)
        trace = ["ofproto/trace", "br-tun", "in_port=LOCAL,dl_src=fa:16:3e:00:00:01,"
                 "dl_dst=fa:16:3e:00:00:02"]
        assert "native tunnel routing failed" in appctl(a, *trace)  # no underlay IP yet

        fabric.attach(a, "198.18.0.1")
        fabric.attach(b, "198.18.0.2")
        external = fabric.attach_external(a, 0)
        ping = a.run(["ping", "-c", "2", "-W", "1", "-i", "0.2", "198.18.0.2"], check=False)
        assert ping.returncode == 0, ping.stdout
        # the uplinks are made as asked: a tap moved onto the fabric bridge, or a veth
        in_host = {line.split(": ")[1].split("@")[0]
                   for line in a.run(["ip", "-o", "link", "show"]).stdout.splitlines()}
        for bridge, port in (("br-phy", "uplink"), ("br-ex", "ext-uplink")):
            kind = a.vsctl("get", "interface", port, "type").strip().strip('"')
            assert (kind, port in in_host) == (("tap", False) if plumbing is Plumbing.TAP
                                               else ("", True)), (port, kind)
            assert a.vsctl("port-to-br", port).strip() == bridge
        for port, segment in ((fabric.attachments[a.name].fabric_port, "fabric"),
                              (external, "external")):
            link = subprocess.run(fabric.command(["ip", "-o", "link", "show", port]),
                                  text=True, capture_output=True, check=True).stdout
            assert f"master {segment}" in link and "mtu 1500" in link and "UP" in link
        traced = appctl(a, *trace)
        assert "native tunnel routing failed" not in traced
        assert "tunneling to 198.18.0.2 via br-phy" in traced
        assert "mtu 1500" in a.run(["ip", "link", "show", "br-phy"]).stdout
        for attachment in fabric.attachments.values():
            features = subprocess.run(
                fabric.command(["ethtool", "-k", attachment.fabric_port]), text=True,
                capture_output=True, check=True).stdout
            assert "tx-checksumming: off" in features
    finally:
        fabric.stop()
        a.stop()
        b.stop()
    assert root_namespaces(prefix) == []
