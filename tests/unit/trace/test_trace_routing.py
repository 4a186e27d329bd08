"""Linux routing, ARP and NAT in a desired namespace (routing.py, nat.py), on small
hand-built namespaces."""

from __future__ import annotations

from dvr.agent.desired.state import Address, NamespaceState, NatRule, Route, Rule
from dvr.trace import nat
from dvr.trace.routing import answers_arp, lookup_route, proxy_arp_devices
from dvr.trace.steps import PacketView

NS = NamespaceState(
    name="qrouter-r", owner="router:r",
    addresses=(Address("qr-a", "10.0.0.1/24"), Address("qr-b", "10.0.1.1/24"),
               Address("rfp", "169.254.64.0/31")),
    rules=(Rule(32768, 16, "10.0.0.5/32"), Rule(167772161, 167772161, "10.0.0.0/24"),
           Rule(100, 50, iif="rfp")),
    routes=(Route("default", "rfp", "169.254.64.1", 16),
            Route("default", "qr-a", "10.0.0.9", 167772161),
            Route("198.18.0.0/15", "qr-b", "10.0.1.7", 50)),
)


def test_connected_routes_of_main_win_over_rules_after_main():
    decision = lookup_route(NS, "10.0.0.5", "10.0.1.20", "qr-a")
    assert decision is not None and decision.rule is None and decision.route.device == "qr-b"


def test_rules_by_priority_and_source():
    fip = lookup_route(NS, "10.0.0.5", "192.0.2.1", "qr-a")
    assert fip is not None and fip.rule is not None and fip.rule.table == 16
    assert fip.nexthop == "169.254.64.1"
    snat = lookup_route(NS, "10.0.0.6", "192.0.2.1", "qr-a")
    assert snat is not None and snat.rule is not None and snat.rule.table == 167772161
    assert snat.nexthop == "10.0.0.9"
    assert lookup_route(NS, "10.0.1.5", "192.0.2.1", "qr-b") is None  # no rule for it


def test_iif_selector_and_fall_through():
    # from rfp: rule 100 (iif rfp) picks table 50 first
    hit = lookup_route(NS, "192.0.2.1", "198.18.1.1", "rfp")
    assert hit is not None and hit.rule is not None and hit.rule.table == 50
    # table 50 has no route for it: on to main (connected)
    fall = lookup_route(NS, "192.0.2.1", "10.0.0.5", "rfp")
    assert fall is not None and fall.rule is None and fall.route.device == "qr-a"
    # not from rfp: rule 100 does not apply
    assert lookup_route(NS, "10.0.1.5", "198.18.1.1", "qr-b") is None


def test_proxy_arp_answers_for_routed_addresses_only():
    fip_ns = NamespaceState(
        name="fip-x", owner="fip:x",
        addresses=(Address("fg", "192.0.2.30/24"), Address("fpr", "169.254.64.1/31")),
        routes=(Route("default", "fg", "192.0.2.1"), Route("192.0.2.20/32", "fpr",
                                                           "169.254.64.0")),
        sysctls=(("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.fg.proxy_arp", "1")),
    )
    assert proxy_arp_devices(fip_ns) == frozenset({"fg"})
    assert answers_arp(fip_ns, "fg", "192.0.2.30", "192.0.2.1") == "fg has 192.0.2.30"
    assert "proxy ARP on fg" in (answers_arp(fip_ns, "fg", "192.0.2.20", "192.0.2.1") or "")
    # routed back out of fg itself: no answer
    assert answers_arp(fip_ns, "fg", "192.0.2.99", "192.0.2.1") is None
    # without the sysctl nobody answers for the floating IP
    plain = NamespaceState(name="fip-x", owner="fip:x", addresses=fip_ns.addresses,
                           routes=fip_ns.routes)
    assert answers_arp(plain, "fg", "192.0.2.20", "192.0.2.1") is None


def test_nat_first_matching_rule_and_conntrack_reversal():
    namespace = NamespaceState(name="qrouter-r", owner="router:r", nat=(
        NatRule("prerouting", "fip:1", iif="rfp", daddr="192.0.2.20", dnat_to="10.0.0.5"),
        NatRule("postrouting", "fip:1", oif="rfp", saddr="10.0.0.5", snat_to="192.0.2.20"),
        NatRule("postrouting", "snat:r", oif="rfp", snat_to="192.0.2.10"),
    ))
    inbound = PacketView("02:00:00:00:00:01", "02:00:00:00:00:02", "192.0.2.1", "192.0.2.20")
    rule, after = nat.prerouting(namespace, inbound, "rfp")
    assert rule is not None and after.nw_dst == "10.0.0.5"
    assert nat.prerouting(namespace, inbound, "qr-a") == (None, inbound)  # iif must match
    outbound = PacketView("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.5", "192.0.2.1")
    rule, after = nat.postrouting(namespace, outbound, "qr-a", "rfp")
    assert rule is not None and rule.owner == "fip:1" and after.nw_src == "192.0.2.20"
    other = PacketView("02:00:00:00:00:01", "02:00:00:00:00:02", "10.0.0.6", "192.0.2.1")
    rule, after = nat.postrouting(namespace, other, "qr-a", "rfp")
    assert rule is not None and rule.owner == "snat:r" and after.nw_src == "192.0.2.10"
    # conntrack: the reply of a source-NATed connection gets its destination back
    connection = nat.Connection("h", "qrouter-r", ("10.0.0.6", "192.0.2.1"),
                                ("192.0.2.10", "192.0.2.1"))
    reply = PacketView("02:00:00:00:00:02", "02:00:00:00:00:01", "192.0.2.1", "192.0.2.10")
    assert connection.is_reply(reply) and not connection.is_reply(other)
    undone, note = connection.undo_source_nat(reply)
    assert undone.nw_dst == "10.0.0.6" and note is not None
    assert connection.undo_destination_nat(reply) == (reply, None)
    assert "snat to 192.0.2.10" in nat.describe_rule(namespace.nat[2])
