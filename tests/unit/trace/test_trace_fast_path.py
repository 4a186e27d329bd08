"""Traced east/west paths with the fast path on (the default): routed in br-int on the
source host, exactly where the namespace would have sent the frame."""

from __future__ import annotations

import pytest

from dvr.trace.hosts import HostData
from dvr.trace.steps import DeliveryStep, NamespaceStep, Trace, TraceRequest
from dvr.trace.tracer import trace_packet
from tests.unit.desired.desired_scenarios import (
    BLUE_1,
    BLUE_2,
    HOST_1,
    HOST_2,
    IF_BLUE_MAC,
    IF_ORANGE_MAC,
    ORANGE_1,
    ROUTER,
    east_west_cloud,
)
from tests.unit.trace.trace_scenarios import east_west_hosts

CLOUD = east_west_cloud()
FAST = f"fastpath:{ROUTER}"


@pytest.fixture(scope="module")
def hosts() -> dict[str, HostData]:
    return east_west_hosts()


def routed_by(trace: Trace) -> list[tuple[str, int]]:
    """(host, table) of the fast-path steps that rewrote the packet."""
    return [(s.host, s.table) for s in trace.openflow_steps()
            if s.owner == FAST and s.packet != s.packet_in]


def test_cross_host_is_routed_in_br_int_of_the_source_host(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    assert trace.path() == (
        (HOST_1, "br-int", 0), (HOST_1, "br-int", 60), (HOST_1, "br-int", 65),
        (HOST_1, "br-tun", 0), (HOST_1, "br-tun", 1), (HOST_1, "br-tun", 2),
        (HOST_1, "br-tun", 20),
        (HOST_2, "br-tun", 0), (HOST_2, "br-tun", 4), (HOST_2, "br-tun", 9),
        (HOST_2, "br-int", 0), (HOST_2, "br-int", 1))
    assert not [s for s in trace.steps if isinstance(s, NamespaceStep)]
    assert routed_by(trace) == [(HOST_1, 65)]
    routing = next(s for s in trace.openflow_steps() if (s.host, s.table) == (HOST_1, 65))
    assert (routing.packet.dl_src, routing.packet.dl_dst) == (IF_ORANGE_MAC,
                                                              CLOUD.vm(ORANGE_1).mac)
    assert routing.packet.nw_ttl == routing.packet_in.nw_ttl - 1
    delivered = next(s for s in trace.steps if isinstance(s, DeliveryStep))
    assert delivered.packet.dl_src == IF_ORANGE_MAC and delivered.packet.nw_ttl == 63
    assert trace.reply is not None and routed_by(trace.reply) == [(HOST_2, 65)]


def test_same_host_is_one_pass_through_br_int(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_2, ORANGE_1, "tcp", 80))
    assert trace.path() == ((HOST_2, "br-int", 0), (HOST_2, "br-int", 60),
                            (HOST_2, "br-int", 65), (HOST_2, "br-int", 1))
    assert trace.delivered and routed_by(trace) == [(HOST_2, 65)]
    assert trace.reply is not None and trace.reply.delivered
    delivered = next(s for s in trace.reply.steps if isinstance(s, DeliveryStep))
    assert delivered.packet.dl_src == IF_BLUE_MAC
