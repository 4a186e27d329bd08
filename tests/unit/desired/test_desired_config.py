"""DesiredConfig / HostInputs: explicit, validated inputs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from desired_scenarios import HOST_1, east_west_cloud

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state


def test_defaults_match_neutron_layout():
    config = DesiredConfig()
    assert (config.integration_bridge, config.tunnel_bridge, config.datapath_type,
            config.agent_mode) == ("br-int", "br-tun", "netdev", "dvr")
    assert (config.int_peer_patch_port, config.tun_peer_patch_port) == ("patch-tun", "patch-int")


def test_unknown_agent_mode_is_rejected():
    with pytest.raises(ValueError, match="agent_mode"):
        DesiredConfig(agent_mode="dvr_no_external")


def test_bridges_must_differ():
    with pytest.raises(ValueError):
        DesiredConfig(integration_bridge="br0", tunnel_bridge="br0")


def test_inputs_default_to_nothing_plugged_and_no_previous_vlans():
    inputs = HostInputs()
    assert dict(inputs.plugged) == {} and dict(inputs.previous_local_vlans) == {}
    assert HostInputs() == HostInputs(plugged={}, previous_local_vlans={})


def test_agent_mode_comes_from_local_config_not_from_the_view():
    cloud = east_west_cloud()
    view = cloud.view(HOST_1)
    as_dvr = compute_desired_state(replace(view, agent_mode="legacy"),
                                   HostInputs(plugged=cloud.plugged(HOST_1)))
    assert as_dvr == compute_desired_state(view, HostInputs(plugged=cloud.plugged(HOST_1)))


def test_revision_is_carried_through():
    cloud = east_west_cloud()
    view = replace(cloud.view(HOST_1), revision=42)
    assert compute_desired_state(view).revision == 42
