"""Properties of observe -> plan -> execute on the fake drivers, over random desired states:

- from any state the fake can be in (an empty host, or another desired state applied), one
  pass converges: the next plan is empty and nothing failed;
- a plan is ordered: creations, configuration, flows, removals;
- nothing still desired is ever removed (except a broken veth right before it is recreated,
  a flow re-added in the same bundle, and a flow naming a port that is going away);
- flows desired before and after keep their counters (they are never reinstalled).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reconcile_helpers import phases

from dvr.agent.desired.openflow import NORMAL, STRIP_VLAN, Match, Output, Resubmit
from dvr.agent.desired.state import (
    Address,
    BridgeState,
    DesiredState,
    Flow,
    NamespaceState,
    Neighbor,
    OvsPort,
    Route,
    Rule,
    VethLink,
)
from dvr.agent.drivers.fake import fake_drivers
from dvr.agent.reconcile.commands import (
    CreateVeth,
    DeleteAddress,
    DeleteLink,
    DeleteNamespace,
    DeleteNeighbor,
    DeletePort,
    DeleteRoute,
    DeleteRule,
    FlowBundle,
)
from dvr.agent.reconcile.observe import observe
from dvr.agent.reconcile.plan import (
    desired_ports,
    normalize_neighbor,
    normalize_route,
    normalize_rule,
    plan_changes,
)
from dvr.agent.reconcile.reconciler import reconcile

NETS = ("192.0.2.", "198.51.100.", "203.0.113.")
ROUTE_DESTINATIONS = ("203.0.113.128/25", "198.51.100.128/25", "192.0.2.128/25")
NAMESPACES = ("qrouter-a", "qrouter-b", "snat-a")
TAPS = ("tap0", "tap1", "tap2")
HOST_MACS = ("fa:16:3f:00:00:01", "fa:16:3f:00:00:02")


@st.composite
def namespaces(draw, k: int) -> NamespaceState:
    name = NAMESPACES[k]
    links, addresses, routes, neighbors = [], [], [], []
    for j in sorted(draw(st.sets(st.integers(0, 2), max_size=3))):
        device = f"qr-{k}{j}"
        links.append(VethLink(
            device, f"qrb-{k}{j}", "br-int",
            draw(st.sampled_from([f"fa:16:3e:00:{k:02x}:{j:02x}", f"fa:16:3e:01:{k:02x}:{j:02x}"])),
            draw(st.sampled_from([1450, 1400])), tag=draw(st.sampled_from([1, 2, None]))))
        addresses.append(Address(device, f"{NETS[j]}{1 + k}/24"))
        if draw(st.booleans()):
            addresses.append(Address(device, f"{NETS[j]}{100 + k}/24"))
        for table in sorted(draw(st.sets(st.sampled_from([254, 16]), max_size=2))):
            routes.append(Route(ROUTE_DESTINATIONS[j], device,
                                draw(st.sampled_from([f"{NETS[j]}200", f"{NETS[j]}201"])),
                                table=table))
        for h in sorted(draw(st.sets(st.integers(10, 12), max_size=3))):
            mac = draw(st.sampled_from([f"fa:16:3e:aa:{j:02x}:{h:02x}",
                                        f"fa:16:3e:bb:{j:02x}:{h:02x}"]))
            neighbors.append(Neighbor(device, f"{NETS[j]}{h}", mac))
    rule_pool = [Rule(32768, 16, "192.0.2.0/24"), Rule(32769, 17, "198.51.100.0/24"),
                 Rule(32770, 16, iif="qr-00")]
    rules = [r for r in rule_pool if draw(st.booleans())]
    forward = draw(st.sampled_from(["0", "1"]))
    return NamespaceState(name, f"router:{name}", tuple(links), tuple(addresses), tuple(routes),
                          tuple(rules), tuple(neighbors), (("net.ipv4.ip_forward", forward),))


@st.composite
def desired_states(draw) -> DesiredState:
    tunnels = sorted(draw(st.sets(st.integers(0, 2), max_size=3)))
    vxlan = {k: f"vxlan-c612000{k + 2}" for k in tunnels}
    int_ports = [OvsPort("patch-tun", "patch", (("peer", "patch-int"),))]
    int_ports += [OvsPort(tap, tag=draw(st.sampled_from([1, 2, 3])), managed=False)
                  for tap in TAPS if draw(st.booleans())]
    tun_ports = [OvsPort("patch-int", "patch", (("peer", "patch-tun"),))]
    tun_ports += [OvsPort(port, "vxlan", (("key", "flow"), ("remote_ip", f"198.18.0.{k + 2}")))
                  for k, port in vxlan.items()]
    # never two flows with one (table, priority, match): the switch keeps only the last
    int_pool = [Flow(0, 0, Match(), (Resubmit(60),), "bridge:br-int"),
                Flow(60, 3, Match(), (NORMAL,), "bridge:br-int")]
    int_pool += [Flow(0, 2, Match(in_port="patch-tun", dl_src=mac), (Resubmit(1),),
                      f"hostmac:{mac}")
                 for mac in HOST_MACS]
    int_pool += [Flow(1, 4, Match(dl_vlan=v, dl_dst=f"fa:16:3e:10:00:0{i}"),
                      (STRIP_VLAN, Output(tap)), f"port:{tap}")
                 for i, tap in enumerate(TAPS) for v in (1, 2)]
    tun_pool = [Flow(0, 1, Match(in_port="patch-int"), (Resubmit(1),), "bridge:br-tun"),
                Flow(10, 1, Match(), (Output("patch-int"),), "bridge:br-tun")]
    tun_pool += [Flow(0, 1, Match(in_port=f"vxlan-c612000{k + 2}"), (Resubmit(4),),
                      f"tunnel:{k}")
                 for k in range(3)]
    flows_int = frozenset(f for f in int_pool if draw(st.booleans()))
    flows_tun = frozenset(f for f in tun_pool if draw(st.booleans()))
    picked = sorted(draw(st.sets(st.integers(0, 2), max_size=3)))
    return DesiredState(
        host="h", revision=1,
        bridges=(BridgeState("br-int", tuple(int_ports), flows_int),
                 BridgeState("br-tun", tuple(tun_ports), flows_tun)),
        namespaces=tuple(draw(namespaces(k)) for k in picked),
    )


def host_with_vifs():
    drivers = fake_drivers()
    for i, tap in enumerate(TAPS):
        drivers.ovs.plug_vif("br-int", tap, f"vif-{i}")
    return drivers


def assert_converged(desired: DesiredState, drivers) -> None:
    plan = plan_changes(desired, observe(drivers, desired))
    assert plan.commands == (), plan.commands
    present = {b.name: set(drivers.ovs.bridges[b.name].ports) | {b.name}
               for b in desired.bridges}
    expected_deferred = sorted(f for b in desired.bridges for f in b.flows
                               if f.ports - present[b.name])
    assert list(plan.deferred) == expected_deferred


def assert_removes_nothing_desired(plan, desired: DesiredState) -> None:
    namespaces = {ns.name: ns for ns in desired.namespaces}
    recreated = {(c.namespace, c.name) for c in plan if isinstance(c, CreateVeth)}
    recreated |= {(None, c.peer) for c in plan if isinstance(c, CreateVeth)}
    ports = {name for by_bridge in desired_ports(desired).values() for name in by_bridge}
    cookies = {f.cookie for b in desired.bridges for f in b.flows}
    for command in plan:
        if isinstance(command, DeleteNamespace):
            assert command.name not in namespaces
        elif isinstance(command, DeleteLink):
            links = ({link.name for link in namespaces[command.namespace].links}
                     if command.namespace in namespaces else set())
            assert command.name not in links or (command.namespace, command.name) in recreated
            if command.namespace is None:
                assert (None, command.name) in recreated
        elif isinstance(command, DeletePort):
            assert command.name not in ports
        elif isinstance(command, FlowBundle):
            # re-added in the same bundle, or deferred: a port it names is going away
            kept_aside = {f.cookie for f in command.add} | {f.cookie for f in plan.deferred}
            assert all(r.cookie not in cookies or r.cookie in kept_aside for r in command.delete)
        elif isinstance(command, (DeleteAddress, DeleteRoute, DeleteRule, DeleteNeighbor)):
            ns = namespaces[command.namespace]
            if isinstance(command, DeleteAddress):
                assert command.address not in ns.addresses
            elif isinstance(command, DeleteRoute):
                assert command.route not in {normalize_route(r) for r in ns.routes}
            elif isinstance(command, DeleteRule):
                assert command.rule not in {normalize_rule(r) for r in ns.rules}
            else:
                assert (command.device, command.ip_address) not in {
                    (n.device, n.ip_address) for n in map(normalize_neighbor, ns.neighbors)}


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(desired_states())
def test_one_pass_from_an_empty_host_converges(desired):
    drivers = host_with_vifs()
    result = reconcile(desired, drivers)
    assert result.report.ok, result.report.failures
    order = phases(result.plan)
    assert order == sorted(order)
    assert_converged(desired, drivers)


@SETTINGS
@given(desired_states(), desired_states())
def test_one_pass_from_any_other_state_converges_without_removing_what_stays(before, after):
    drivers = host_with_vifs()
    assert reconcile(before, drivers).report.ok
    drivers.ovs.send_packets(5)
    result = reconcile(after, drivers)
    assert result.report.ok, result.report.failures
    order = phases(result.plan)
    assert order == sorted(order)
    assert_removes_nothing_desired(result.plan, after)
    assert_converged(after, drivers)
    # flows wanted before and after were never reinstalled: their counters survived
    kept = ({f.cookie for b in before.bridges for f in b.flows}
            & {f.cookie for b in after.bridges for f in b.flows})
    counters = {f.cookie: f.n_packets for b in drivers.ovs.observe(["br-int", "br-tun"])
                for f in b.flows}
    reinstalled = {f.cookie for c in result.plan if isinstance(c, FlowBundle) for f in c.add}
    assert all(counters[c] == 5 for c in kept - reinstalled if c in counters)
    assert reinstalled & kept <= {f.cookie for c in result.plan if isinstance(c, FlowBundle)
                                  for f in c.add if f.ports}
