"""Build the real drivers (OVS over OVSDB + OpenFlow, Linux over netlink) for one host."""

from __future__ import annotations

from pathlib import Path

from dvr.agent.drivers.base import Drivers
from dvr.agent.drivers.linux import LinuxConfig, LinuxDriver
from dvr.agent.drivers.nft import NftDriver
from dvr.agent.drivers.ovs import OvsConfig, OvsDriver


def build_real_drivers(ovs_rundir: str | Path, flow_mirror: bool = True,
                       openflow_connection: bool = True) -> Drivers:
    """``flow_mirror``: keep what was observed between reconciles, caught up from
    notifications (flows from flow monitors, namespaces from rtnetlink, NAT tables from
    nftables); False: every observation reads everything afresh.  ``openflow_connection``:
    apply flow bundles over a long-lived OpenFlow connection per bridge (False: ovs-ofctl
    for each)."""
    linux = LinuxDriver(LinuxConfig(follow_changes=flow_mirror))
    nat = NftDriver(follow_changes=flow_mirror)
    linux.on_namespace_delete(nat.forget)  # its watches must not keep a namespace alive
    ovs = OvsDriver(OvsConfig.for_rundir(ovs_rundir, flow_mirror=flow_mirror,
                                         openflow_connection=openflow_connection))
    return Drivers(ovs=ovs, linux=linux, nat=nat)
