"""The encoder against ``ovs-ofctl`` itself: every flow of realistic desired states (and a
flow for each rarer field and action) encodes to exactly the OpenFlow 1.5 flow_mod
``ovs-ofctl -O OpenFlow15`` makes of the flow's text (``parse-flows``, no switch needed),
so a bundle sent over the connection installs what ovs-ofctl would have installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dvr.agent.desired.openflow import port_numbers, render_flow
from dvr.agent.drivers import ofwire
from tests.unit.drivers.flow_scenarios import BridgeFlows, realistic_bridges, vocabulary_flows

pytestmark = pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")

_HEX_LINE = re.compile(r"^[0-9a-f]{8}  ((?:[0-9a-f]{2}[ -]){1,16})")


def ofctl_flow_mods(lines: list[str], tmp_path: Path) -> list[bytes]:
    """The flow_mods ``ovs-ofctl -O OpenFlow15 parse-flows`` encodes, from its hex dump."""
    path = tmp_path / "flows.txt"
    path.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", "-mmmmm", "parse-flows", str(path)],
                         capture_output=True, text=True, check=True).stdout
    found: list[bytearray] = []
    for line in out.splitlines():
        if line.startswith("OFPT_FLOW_MOD"):
            found.append(bytearray())
        elif (hex_line := _HEX_LINE.match(line)) and found:
            found[-1] += bytes.fromhex(hex_line[1].replace("-", " "))
    return [bytes(message) for message in found]


def without_xid(message: bytes) -> bytes:
    return message[:4] + message[8:]


def assert_encoded_as_ofctl_does(bridges: list[BridgeFlows], tmp_path: Path) -> int:
    flows = [(f, b.numbers) for b in bridges for f in b.flows]
    lines = [render_flow(f.table, f.priority, f.cookie, f.match, f.actions, port_numbers(n))
             for f, n in flows]
    expected = ofctl_flow_mods(lines, tmp_path)
    assert len(expected) == len(lines)
    differ = [line for (flow, numbers), line, theirs in zip(flows, lines, expected, strict=True)
              if without_xid(ofwire.flow_add(7, flow, ofwire.port_binder(numbers)))
              != without_xid(theirs)]
    assert differ == []
    return len(lines)


def test_every_flow_of_realistic_views_is_encoded_byte_for_byte_as_ovs_ofctl_does(tmp_path):
    bridges = realistic_bridges()
    assert {b.label.rsplit("/", 1)[1] for b in bridges} == {"br-int", "br-tun", "br-ex"}
    assert assert_encoded_as_ofctl_does(bridges, tmp_path) > 1000


def test_every_rarer_field_and_action_is_encoded_as_ovs_ofctl_does(tmp_path):
    assert assert_encoded_as_ofctl_does([vocabulary_flows()], tmp_path) == len(
        vocabulary_flows().flows)
