"""How a lab VM's NIC is made: an OVS tap port moved into the VM, or a veth pair."""

from __future__ import annotations

import argparse
import json

import pytest

from dvr.lab.cli import add_commands
from dvr.lab.state import HostRecord, LabRecord
from dvr.lab.vm import VmPlug, VmPlumbing, plug_commands, tap_name, unplug_commands

PORT = "0123456789abcdef"
TAP = tap_name(PORT)
NS = "vm-blue-1"


def plug(plumbing: VmPlumbing, gateway: str | None = "192.0.2.1") -> VmPlug:
    return VmPlug(name="blue-1", port_id=PORT, mac_address="fa:16:3e:00:00:01",
                  ip_address="192.0.2.10", cidr="192.0.2.0/24", gateway_ip=gateway, mtu=1450,
                  ovsdb="unix:/tmp/db.sock", plumbing=plumbing)


def index_of(commands: list[list[str]], *words: str) -> int:
    found = [i for i, argv in enumerate(commands) if all(w in argv for w in words)]
    assert len(found) == 1, (words, commands)
    return found[0]


def test_a_tap_vm_gets_an_ovs_tap_port_moved_into_its_namespace_after_ovs_made_it():
    commands = plug_commands(plug(VmPlumbing.TAP))
    add_port = index_of(commands, "add-port", "type=tap")
    assert f"external_ids:iface-id={PORT}" in commands[add_port]
    move = commands.index(["ip", "link", "set", TAP, "netns", NS])
    rename = commands.index(["ip", "netns", "exec", NS, "ip", "link", "set", TAP, "name",
                             "eth0"])
    assert commands.index(["ip", "netns", "add", NS]) < add_port < move < rename
    assert not any("veth" in argv for argv in commands)


def test_a_veth_vm_gets_a_system_port_and_the_peer_in_its_namespace():
    commands = plug_commands(plug(VmPlumbing.VETH))
    add_port = index_of(commands, "add-port")
    assert f"external_ids:iface-id={PORT}" in commands[add_port]
    assert not any("type=tap" in argv for argv in commands)
    create = index_of(commands, "type", "veth")
    assert commands[create][:4] == ["ip", "link", "add", TAP]
    peer = commands[create][commands[create].index("name") + 1]
    assert commands.index(["ip", "link", "set", peer, "netns", NS]) > create


@pytest.mark.parametrize("plumbing", list(VmPlumbing))
def test_either_way_the_vm_sees_eth0_with_its_mac_mtu_address_and_route(plumbing):
    commands = plug_commands(plug(plumbing))
    in_vm = ["ip", "netns", "exec", NS]
    assert [*in_vm, "ip", "link", "set", "eth0", "address", "fa:16:3e:00:00:01", "mtu",
            "1450", "txqueuelen", "10000", "up"] in commands  # a queue for a TCP window
    assert [*in_vm, "ip", "addr", "add", "192.0.2.10/24", "dev", "eth0"] in commands
    assert commands[-1] == [*in_vm, "ip", "route", "add", "default", "via", "192.0.2.1"]
    assert not any("route" in argv for argv in plug_commands(plug(plumbing, gateway=None)))


def test_unplugging_removes_the_port_before_the_namespace():
    commands = unplug_commands("blue-1", PORT, "unix:/tmp/db.sock")
    assert commands[0][-3:] == ["del-port", "br-int", TAP]
    assert commands[-1] == ["ip", "netns", "del", NS]


def test_the_lab_record_keeps_the_plumbing_and_an_older_record_was_veth():
    record = LabRecord(name="x", api_port=9, computes=2, vm_plumbing=VmPlumbing.TAP)
    assert LabRecord.from_json(record.to_json()).vm_plumbing is VmPlumbing.TAP
    older = json.loads(record.to_json())
    del older["vm_plumbing"]
    assert LabRecord.from_json(json.dumps(older)).vm_plumbing is VmPlumbing.VETH


def test_the_lab_record_keeps_each_hosts_fabric_port_and_an_older_record_has_none():
    host = HostRecord(name="compute-1", mode="dvr", tunnel_ip="198.18.0.11", netns="n",
                      workdir="/w", fabric_port="f0-000b")
    record = LabRecord(name="x", api_port=9, computes=1, hosts={"compute-1": host})
    assert LabRecord.from_json(record.to_json()).hosts["compute-1"].fabric_port == "f0-000b"
    older = json.loads(record.to_json())
    del older["hosts"]["compute-1"]["fabric_port"]
    assert LabRecord.from_json(json.dumps(older)).hosts["compute-1"].fabric_port == ""


def parse_up(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    return parser.parse_args(["lab", "up", *args])


def test_lab_up_takes_the_plumbing_and_defaults_to_tap():
    assert parse_up().vm_plumbing is VmPlumbing.TAP
    assert parse_up("--vm-plumbing", "veth").vm_plumbing is VmPlumbing.VETH
    with pytest.raises(SystemExit):
        parse_up("--vm-plumbing", "macvtap")
