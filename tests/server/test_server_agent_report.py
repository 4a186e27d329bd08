"""The agent's report (plugged VIFs, local VLANs, bridge mappings): stored with the
heartbeat, read back."""

import pytest

from dvr.model.hostview import LAYOUT_CHOICES


def register(api, host="compute-1"):
    api.call(
        "POST",
        "/dvr/v1/agents",
        {"host": host, "agent_mode": "dvr", "tunnel_ip": "198.18.0.11", "datapath_type": "netdev"},
        expect=200,
    )


def test_heartbeat_report_is_returned_by_agent_state(api):
    register(api)
    api.call(
        "POST",
        "/dvr/v1/hosts/compute-1/heartbeat",
        {
            "applied_revision": 3,
            "ports_up": [],
            "ports_down": [],
            "vifs": {"p1": "tapp1"},
            "local_vlans": {"n1": 1, "n2": 2},
            "bridge_mappings": {"public": "br-ex"},
        },
        expect=200,
    )
    state = api.call("GET", "/dvr/v1/hosts/compute-1/agent-state", expect=200)
    assert state == {
        "host": "compute-1",
        "reported": True,
        "applied_revision": 3,
        "vifs": {"p1": "tapp1"},
        "local_vlans": {"n1": 1, "n2": 2},
        "bridge_mappings": {"public": "br-ex"},
        "east_west": "openflow",  # not reported: the default
        "tunnel_layout": "bridge",  # the same
    }


@pytest.mark.parametrize("name", sorted(LAYOUT_CHOICES))
def test_an_agent_away_from_a_layout_default_says_so_and_keeps_the_others(api, name):
    """``east_west = namespace`` (every routed packet through qrouter-), ``tunnel_layout =
    folded`` (br-tun in br-int): each reported alone, the others stay at their default."""
    register(api)
    choices, default = LAYOUT_CHOICES[name]
    other = next(c for c in choices if c != default)
    api.call("POST", "/dvr/v1/hosts/compute-1/heartbeat",
             {"applied_revision": 1, "vifs": {}, "local_vlans": {}, name: other}, expect=200)
    state = api.call("GET", "/dvr/v1/hosts/compute-1/agent-state", expect=200)
    assert {key: state[key] for key in LAYOUT_CHOICES} == {
        key: other if key == name else default_ for key, (_, default_) in LAYOUT_CHOICES.items()}


def test_heartbeat_without_report_keeps_the_last_one(api):
    register(api)
    api.call(
        "POST",
        "/dvr/v1/hosts/compute-1/heartbeat",
        {"applied_revision": 1, "vifs": {"p1": "tapp1"}, "local_vlans": {}},
        expect=200,
    )
    api.call("POST", "/dvr/v1/hosts/compute-1/heartbeat", {"applied_revision": 2}, expect=200)
    state = api.call("GET", "/dvr/v1/hosts/compute-1/agent-state", expect=200)
    assert state["vifs"] == {"p1": "tapp1"}
    assert state["applied_revision"] == 2
    assert state["bridge_mappings"] == {}  # an agent that reports none maps nothing


def test_agent_state_says_whether_the_agent_ever_reported(api):
    register(api)
    silent = api.call("GET", "/dvr/v1/hosts/compute-1/agent-state", expect=200)
    assert silent["reported"] is False and silent["vifs"] == {}
    api.call("POST", "/dvr/v1/hosts/compute-1/heartbeat",
             {"applied_revision": 1, "vifs": {}, "local_vlans": {}}, expect=200)
    empty = api.call("GET", "/dvr/v1/hosts/compute-1/agent-state", expect=200)
    assert empty["reported"] is True and empty["vifs"] == {}


def test_bad_reports_are_rejected_and_unknown_hosts_are_404(api):
    register(api)
    for body in (
        {"vifs": ["p1"]},
        {"local_vlans": {"n1": 5000}},
        {"local_vlans": {"n1": "1"}},
        {"vifs": {"p1": 3}},
        {"vifs": {}, "bridge_mappings": ["public:br-ex"]},
        {"vifs": {}, "bridge_mappings": {"public": ""}},
        {"vifs": {}, "east_west": "kernel"},
        {"vifs": {}, "tunnel_layout": "br-int"},
        {"vifs": {}, "tunnel_layout": ["folded"]},
    ):
        status, error = api.error("POST", "/dvr/v1/hosts/compute-1/heartbeat", body)
        assert status == 400 and error["type"] == "InvalidInput", body
    status, _ = api.error("GET", "/dvr/v1/hosts/nowhere/agent-state")
    assert status == 404
