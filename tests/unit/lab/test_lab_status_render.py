"""`dvr lab status` says where br-tun's tables are and points at the bridge that holds them."""

from __future__ import annotations

import argparse
import json

import pytest

from dvr.lab.cli import add_commands, render_status
from dvr.lab.state import HostRecord, LabRecord


def status(layout: str) -> dict:
    return {"lab": "dvr", "api": "http://127.0.0.1:9696", "vm_plumbing": "tap",
            "tunnel_layout": layout, "openstack": 'eval "$(dvr lab env)"; openstack',
            "hosts": [], "vms": [], "routers": [], "floating_ips": [], "outside": None}


@pytest.mark.parametrize(("layout", "header", "hint"), [
    ("bridge", "tunnels: br-tun", "ovs-ofctl dump-flows br-tun"),
    ("folded", "tunnels: br-tun folded into br-int", "ovs-ofctl dump-flows br-int"),
])
def test_the_status_names_the_tunnel_layout_and_its_bridge(layout, header, hint):
    text = render_status(status(layout))
    assert text.splitlines()[0].endswith(header)
    assert hint in text
    assert ("dump-flows br-tun" in text) == (layout == "bridge")


def test_a_host_switched_to_the_other_layout_is_named_and_the_hint_follows_it():
    lab = status("bridge")
    lab["hosts"] = [{"host": "compute-1", "mode": "dvr", "tunnel_ip": "198.18.0.11",
                     "tunnel_layout": "folded", "host_mac": None, "alive": True,
                     "routers": []},
                    {"host": "compute-2", "mode": "dvr", "tunnel_ip": "198.18.0.12",
                     "tunnel_layout": "bridge", "host_mac": None, "alive": True,
                     "routers": []}]
    text = render_status(lab)
    assert text.splitlines()[0].endswith(
        "tunnels: br-tun; br-tun folded into br-int on compute-1")
    assert "compute-1 -- ovs-ofctl dump-flows br-int" in text


def test_a_host_follows_the_labs_layout_unless_its_agent_was_switched():
    hosts = {name: HostRecord(name=name, mode="dvr", tunnel_ip="198.18.0.11", netns="n",
                              workdir="/w") for name in ("compute-1", "compute-2")}
    hosts["compute-1"].tunnel_layout = "folded"
    record = LabRecord(name="x", api_port=9, computes=2, hosts=hosts)
    again = LabRecord.from_json(record.to_json())
    assert [again.layout_of(h) for h in again.hosts.values()] == ["folded", "bridge"]
    older = json.loads(record.to_json())
    del older["hosts"]["compute-1"]["tunnel_layout"]  # a record from before the switch
    assert LabRecord.from_json(json.dumps(older)).layout_of(hosts["compute-2"]) == "bridge"


def test_restart_agent_takes_a_layout_and_refuses_another_word():
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["lab", "restart-agent", "compute-1", "--tunnel-layout", "folded"])
    assert (args.host, args.tunnel_layout) == ("compute-1", "folded")
    assert parser.parse_args(["lab", "restart-agent", "compute-1"]).tunnel_layout is None
    with pytest.raises(SystemExit):
        parser.parse_args(["lab", "restart-agent", "compute-1", "--tunnel-layout", "flat"])
