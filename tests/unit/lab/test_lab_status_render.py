"""`dvr lab status` says where br-tun's tables are and points at the bridge that holds them."""

from __future__ import annotations

import pytest

from dvr.lab.cli import render_status


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
