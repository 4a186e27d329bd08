"""ovs-ofctl text: bundle files out, dump-flows in."""

from __future__ import annotations

from dvr.agent.desired.openflow import Match, Resubmit
from dvr.agent.desired.state import Flow
from dvr.agent.drivers.openflow import bundle_lines, parse_dump_flows, parse_flow_line
from dvr.agent.reconcile.commands import FlowBundle, FlowRef
from dvr.agent.reconcile.observed import ObservedFlow

# real output of ovs-ofctl -O OpenFlow15 --names dump-flows (OVS 3.1)
DUMP = """OFPST_FLOW reply (OF1.5) (xid=0x2):
 cookie=0x1000000000000001, duration=0.048s, table=0, n_packets=12, n_bytes=1176, idle_age=0, priority=1,in_port="patch-tun" actions=output:tapx
 cookie=0x4566ad1899b78e4a, duration=6.216s, table=1, n_packets=0, n_bytes=0, idle_age=6, priority=1,dl_vlan=2,dl_src=fa:16:3e:00:02:01 actions=set_field:fa:16:3f:00:00:0a->eth_src,resubmit(,2)
 cookie=0x0, duration=0.010s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=0 actions=NORMAL
 cookie=0x5, duration=1.5s, table=3, n_packets=4, n_bytes=400, idle_age=1, actions=learn(table=20,priority=1,hard_timeout=300,NXM_OF_VLAN_TCI[0..11]),output:2
"""  # noqa: E501


def test_bundle_deletes_by_table_and_exact_cookie_then_adds():
    flow = Flow(0, 1, Match(in_port="patch-int"), (Resubmit(1),), "bridge:br-tun")
    bundle = FlowBundle("br-tun", (flow,), (FlowRef(3, 0x1234), FlowRef(0, 0)))
    assert bundle_lines(bundle) == [
        "delete table=3,cookie=0x1234/-1",
        "delete table=0,cookie=0x0/-1",
        f'add table=0,priority=1,cookie={flow.cookie:#x},in_port="patch-int",'
        "actions=resubmit(,1)",
    ]


def test_dump_flows_is_parsed_into_cookie_table_priority_and_counters():
    flows = {f.cookie: f for f in parse_dump_flows(DUMP)}
    assert flows[0x1000000000000001] == ObservedFlow(
        0x1000000000000001, 0, 1, 12, 1176,
        'priority=1,in_port="patch-tun" actions=output:tapx', ("patch-tun", "tapx"))
    assert flows[0x0].text == "priority=0 actions=NORMAL"
    assert (flows[0x4566AD1899B78E4A].table, flows[0x4566AD1899B78E4A].priority) == (1, 1)


def test_default_priority_and_fields_inside_actions_do_not_confuse_the_header():
    learn = next(f for f in parse_dump_flows(DUMP) if f.cookie == 5)
    assert (learn.table, learn.priority, learn.n_packets) == (3, 32768, 4)
    assert learn.text.startswith("priority=32768 actions=learn(table=20,priority=1")
    assert learn.ports == ("2",)  # the port number, printed without --names


def test_a_line_without_the_reply_header():
    flow = parse_flow_line("cookie=0x9, table=22, n_packets=1, n_bytes=2, priority=1,dl_vlan=1 "
                           "actions=strip_vlan,output:vxlan-c6120002")
    assert (flow.cookie, flow.table, flow.priority) == (9, 22, 1)
    assert flow.text == "priority=1,dl_vlan=1 actions=strip_vlan,output:vxlan-c6120002"
