"""Port names <-> OpenFlow port numbers in ovs-ofctl text (what lets the OVS driver run
ovs-ofctl with --no-names)."""

from __future__ import annotations

import pytest

from dvr.agent.drivers.openflow import (
    parse_dump_flows,
    ports_to_names,
    ports_to_numbers,
    printed_port_name,
)

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
def test_printed_port_names_are_quoted_like_ovs_ofctl_does(name, printed):
    assert printed_port_name(name) == printed


def test_numbers_in_a_dump_become_the_names_ovs_ofctl_names_would_print():
    assert ports_to_names(DUMP, NAMES) == NAMED
    assert parse_dump_flows(ports_to_names(DUMP, NAMES)) == parse_dump_flows(NAMED)


def test_a_number_no_port_has_stays_a_number_and_keywords_stay():
    flows = {f.cookie: f.text for f in parse_dump_flows(ports_to_names(DUMP, NAMES))}
    assert flows[0x77] == "priority=5,in_port=9 actions=output:LOCAL"


def test_names_become_numbers_bare_or_quoted_in_match_and_actions():
    text = ('add table=1,priority=4,cookie=0x1,dl_vlan=2,dl_dst=fa:16:3e:fc:8e:e6,'
            'actions=strip_vlan,mod_dl_src:fa:16:3e:06:fd:3d,output:tapd2684d5b-75\n'
            'add table=0,priority=2,cookie=0x2,in_port="patch-tun",actions=resubmit(,1)\n'
            'add table=22,priority=1,cookie=0x3,dl_vlan=1,'
            'actions=strip_vlan,set_tunnel:0x64,output:"vxlan-c6120001",output:patch-tun\n'
            'add table=0,priority=1,cookie=0x4,in_port=3,actions=output:LOCAL,NORMAL\n'
            "delete table=5,cookie=0x77/-1\n")
    numbers = {"patch-tun": 1, "tapd2684d5b-75": 2, "vxlan-c6120001": 7}
    assert ports_to_numbers(text, numbers) == (
        'add table=1,priority=4,cookie=0x1,dl_vlan=2,dl_dst=fa:16:3e:fc:8e:e6,'
        'actions=strip_vlan,mod_dl_src:fa:16:3e:06:fd:3d,output:2\n'
        'add table=0,priority=2,cookie=0x2,in_port=1,actions=resubmit(,1)\n'
        'add table=22,priority=1,cookie=0x3,dl_vlan=1,'
        'actions=strip_vlan,set_tunnel:0x64,output:7,output:1\n'
        'add table=0,priority=1,cookie=0x4,in_port=3,actions=output:LOCAL,NORMAL\n'
        "delete table=5,cookie=0x77/-1\n")


def test_an_unknown_name_is_left_to_ovs_ofctl():
    assert ports_to_numbers("add table=0,in_port=nosuch,actions=drop", {"tapx": 1}) is None


def test_names_to_numbers_and_back_round_trip():
    numbers = {"patch-tun": 1, "tapd2684d5b-75": 2}
    line = 'priority=4,in_port="patch-tun" actions=output:"tapd2684d5b-75"'
    numbered = ports_to_numbers(line, numbers)
    assert numbered == "priority=4,in_port=1 actions=output:2"
    assert ports_to_names(numbered, {n: name for name, n in numbers.items()}) == line
