"""Port names <-> OpenFlow port numbers (what lets the OVS driver run ovs-ofctl with
--no-names): typed flows are rendered with numbers, dumps get their names back."""

from __future__ import annotations

import pytest

from dvr.agent.desired.openflow import (
    DROP,
    NORMAL,
    STRIP_VLAN,
    Match,
    ModDlSrc,
    Output,
    Resubmit,
    SetTunnel,
    port_text,
)
from dvr.agent.desired.state import Flow
from dvr.agent.drivers import openflow
from dvr.agent.drivers.openflow import (
    MonitoredFlow,
    bundle_lines,
    numbered_bundle,
    parse_dump_flows,
)
from dvr.agent.reconcile.commands import FlowBundle, FlowRef

# real output of ovs-ofctl -O OpenFlow15 --no-names dump-flows (OVS 3.1)
DUMP = """OFPST_FLOW reply (OF1.5) (xid=0x2):
 cookie=0x5325d5b8af671241, duration=97.087s, table=1, n_packets=3, n_bytes=294, priority=4,dl_vlan=2,dl_dst=fa:16:3e:fc:8e:e6 actions=strip_vlan,mod_dl_src:fa:16:3e:06:fd:3d,output:2
 cookie=0x2fae203ee4f5d96b, duration=99.509s, table=0, n_packets=11, n_bytes=910, priority=2,in_port=1,dl_src=fa:16:3f:89:fd:fa actions=resubmit(,1)
 cookie=0x14bc215edffbe963, duration=99.510s, table=0, n_packets=43, n_bytes=3406, priority=0 actions=resubmit(,60)
 cookie=0x77, duration=1.0s, table=5, n_packets=0, n_bytes=0, priority=5,in_port=9 actions=output:LOCAL
"""  # noqa: E501

# the same flows as ovs-ofctl --names prints them
NAMED = """OFPST_FLOW reply (OF1.5) (xid=0x2):
 cookie=0x5325d5b8af671241, duration=97.087s, table=1, n_packets=3, n_bytes=294, priority=4,dl_vlan=2,dl_dst=fa:16:3e:fc:8e:e6 actions=strip_vlan,mod_dl_src:fa:16:3e:06:fd:3d,output:"tapd2684d5b-75"
 cookie=0x2fae203ee4f5d96b, duration=99.509s, table=0, n_packets=11, n_bytes=910, priority=2,in_port="patch-tun",dl_src=fa:16:3f:89:fd:fa actions=resubmit(,1)
 cookie=0x14bc215edffbe963, duration=99.510s, table=0, n_packets=43, n_bytes=3406, priority=0 actions=resubmit(,60)
 cookie=0x77, duration=1.0s, table=5, n_packets=0, n_bytes=0, priority=5,in_port=9 actions=output:LOCAL
"""  # noqa: E501

NAMES = {1: "patch-tun", 2: "tapd2684d5b-75"}  # port 9 is gone


@pytest.mark.parametrize(("name", "printed"), [
    # as OVS 3.1 prints them (checked by hand with ovs-ofctl --names dump-flows)
    ("abc", "abc"), ("a1", "a1"), ("ABC", "ABC"), ("Abc", "Abc"), ("x9z", "x9z"),
    ("a_b", '"a_b"'), ("a.b", '"a.b"'), ("a-b", '"a-b"'), ("Ab_C9", '"Ab_C9"'),
    ("9ab", '"9ab"'), ("patch-tun", '"patch-tun"'), ("LOCAL", '"LOCAL"'),
])
def test_port_names_are_quoted_like_ovs_ofctl_prints_them(name, printed):
    assert port_text(name) == printed


def test_numbers_in_a_dump_become_the_names_ovs_ofctl_names_would_print():
    named = parse_dump_flows(DUMP, NAMES)
    assert [f.text for f in named] == [f.text for f in parse_dump_flows(NAMED)]
    assert {f.cookie: f.ports for f in named} == {
        0x5325D5B8AF671241: ("tapd2684d5b-75",), 0x2FAE203EE4F5D96B: ("patch-tun",),
        0x14BC215EDFFBE963: (), 0x77: ("9",)}
    assert {f.cookie: f.ports for f in parse_dump_flows(NAMED)} == {
        f.cookie: f.ports for f in named}


def test_a_number_no_port_has_stays_a_number_and_keywords_stay():
    flows = {f.cookie: f.text for f in parse_dump_flows(DUMP, NAMES)}
    assert flows[0x77] == "priority=5,in_port=9 actions=output:LOCAL"


def _flows() -> tuple[Flow, ...]:
    return (
        Flow(1, 4, Match(dl_vlan=2, dl_dst="fa:16:3e:fc:8e:e6"),
             (STRIP_VLAN, ModDlSrc("fa:16:3e:06:fd:3d"), Output("tapd2684d5b-75")), "port:a"),
        Flow(0, 2, Match(in_port="patch-tun"), (Resubmit(1),), "bridge:br-int"),
        Flow(22, 1, Match(dl_vlan=1),
             (STRIP_VLAN, SetTunnel(0x64), Output("vxlan-c6120001"), Output("patch-tun")),
             "network:n"),
        Flow(60, 1, Match(), (NORMAL,), "bridge:br-int"),
    )


def test_names_become_numbers_in_match_and_actions():
    flows = _flows()
    numbers = {"patch-tun": 1, "tapd2684d5b-75": 2, "vxlan-c6120001": 7}
    bundle = FlowBundle("br-int", flows, (FlowRef(5, 0x77),))
    c = [f"{f.cookie:#x}" for f in flows]
    assert numbered_bundle(bundle, numbers) == [
        "delete table=5,cookie=0x77/-1",
        f"add table=1,priority=4,cookie={c[0]},dl_vlan=2,dl_dst=fa:16:3e:fc:8e:e6,"
        "actions=strip_vlan,mod_dl_src:fa:16:3e:06:fd:3d,output:2",
        f"add table=0,priority=2,cookie={c[1]},in_port=1,actions=resubmit(,1)",
        f"add table=22,priority=1,cookie={c[2]},dl_vlan=1,"
        "actions=strip_vlan,set_tunnel:0x64,output:7,output:1",
        f"add table=60,priority=1,cookie={c[3]},actions=NORMAL",
    ]
    assert bundle_lines(bundle)[2] == (
        f"add table=0,priority=2,cookie={c[1]},in_port=\"patch-tun\",actions=resubmit(,1)")


def test_an_unknown_name_is_left_to_ovs_ofctl():
    flow = Flow(0, 1, Match(in_port="nosuch"), (DROP,), "bridge:br-int")
    assert numbered_bundle(FlowBundle("br-int", (flow,)), {"tapx": 1}) is None


def test_names_to_numbers_and_back_round_trip():
    flow = Flow(1, 4, Match(in_port="patch-tun"), (Output("tapd2684d5b-75"),), "port:a")
    numbers = {"patch-tun": 1, "tapd2684d5b-75": 2}
    line = numbered_bundle(FlowBundle("br-int", (flow,)), numbers)[0]
    assert line.endswith(",in_port=1,actions=output:2")
    dumped = (f" cookie={flow.cookie:#x}, duration=1s, table=1, n_packets=0, n_bytes=0, "
              "priority=4,in_port=1 actions=output:2")
    (observed,) = parse_dump_flows(dumped, {n: name for name, n in numbers.items()})
    assert observed.text == 'priority=4,in_port="patch-tun" actions=output:"tapd2684d5b-75"'
    assert frozenset(observed.ports) == flow.ports



def test_a_monitored_flow_is_parsed_once_and_named_again_as_a_fresh_parse_would(
        monkeypatch: pytest.MonkeyPatch):
    fields = (0, 0x11, "in_port=3,dl_vlan=1", "strip_vlan,output:5,output:9")
    first, second = {3: "tap-a", 5: "qr-x"}, {3: "tap-b", 9: "qg-1"}
    expected = MonitoredFlow(*fields).observed(second)
    parses = []
    real = openflow.OFPFlow
    monkeypatch.setattr(openflow, "OFPFlow", lambda text: parses.append(text) or real(text))
    flow = MonitoredFlow(*fields)
    assert flow.observed(first).ports == ("9", "qr-x", "tap-a")
    renamed = flow.observed(second)  # a port renumbered, another came, one went
    assert len(parses) == 1
    assert renamed == expected
    assert renamed.ports == ("5", "qg-1", "tap-b")
    assert renamed.text == ('in_port="tap-b",dl_vlan=1 '
                            'actions=strip_vlan,output:5,output:"qg-1"')
