"""The real drivers apply hand-written DVR desired states (DVR.md §5-§7) on two real lab
hosts, and real packets go where DVR says they go."""

from __future__ import annotations

from dataclasses import replace

from dataplane_support import TwoHosts

from dvr.lab.handmade import HmVm
from dvr.lab.procs import poll_until

BLUE_A, BLUE_B, ORANGE_B = "192.0.2.11", "192.0.2.12", "198.51.100.22"


def converge(lab: TwoHosts) -> None:
    lab.plug()
    lab.apply_all()


def test_cross_host_same_subnet_and_routed_pings(two_hosts: TwoHosts):
    lab = two_hosts
    converge(lab)
    assert lab.ping("blue-a", BLUE_B), "same subnet, across hosts"
    assert lab.ping("blue-a", ORANGE_B), "routed blue -> orange on host A, then tunnelled"
    assert lab.ping("orange-b", BLUE_A), "routed orange -> blue on host B (the mirror path)"


def test_router_is_identical_on_both_hosts_with_permanent_static_arp(two_hosts: TwoHosts):
    lab = two_hosts
    converge(lab)
    qrouter = lab.cloud.router_namespace
    devices = {}
    for host in lab.names:
        devices[host] = {
            link["ifname"]: (link["address"], link["mtu"],
                             sorted(f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]
                                    if a["family"] == "inet"))
            for link in lab.ip_json(host, qrouter, "addr", "show") if link["ifname"] != "lo"}
    blue, orange = lab.cloud.network("blue"), lab.cloud.network("orange")
    assert devices[lab.names[0]] == devices[lab.names[1]] == {
        blue.qr_device: (blue.gateway_mac, 1450, ["192.0.2.1/24"]),
        orange.qr_device: (orange.gateway_mac, 1450, ["198.51.100.1/24"]),
    }
    for host in lab.names:
        neighbors = {(n["dst"], n["lladdr"]): n["state"]
                     for n in lab.ip_json(host, qrouter, "neigh", "show")}
        assert neighbors == {
            (BLUE_A, "fa:16:3e:10:00:0a"): ["PERMANENT"],
            (BLUE_B, "fa:16:3e:10:00:0b"): ["PERMANENT"],
            (ORANGE_B, "fa:16:3e:20:00:0b"): ["PERMANENT"],
        }
        forwarding = lab.hosts[host].run(
            ["ip", "netns", "exec", qrouter, "cat", "/proc/sys/net/ipv4/ip_forward"]).stdout
        assert forwarding.strip() == "1"
        offload = lab.hosts[host].run(
            ["ip", "netns", "exec", qrouter, "ethtool", "-k", blue.qr_device]).stdout
        assert "tx-checksumming: off" in offload


def test_host_mac_flows_rewrite_to_own_mac_and_match_the_other(two_hosts: TwoHosts):
    lab = two_hosts
    converge(lab)
    assert lab.ping("blue-a", ORANGE_B)
    host_a, host_b = (lab.cloud.host(n) for n in lab.names)
    for me, other in ((host_a, host_b), (host_b, host_a)):
        tun = [f.text for f in lab.flows(me.name, "br-tun").values()]
        rewrites = [t for t in tun if "priority=1," in t and "dl_src=fa:16:3e:00:0" in t]
        assert rewrites and all(f"set_field:{me.host_mac}->eth_src" in t for t in rewrites)
        assert any(f"dl_src={other.host_mac}" in t for t in tun)  # table 9
        assert not any(f"dl_src={me.host_mac}" in t for t in tun)
        integration = [f.text for f in lab.flows(me.name, "br-int").values()]
        assert any(f"dl_src={other.host_mac}" in t for t in integration)  # table 0
    # the routed ping really went through the DVR flows: on A, the orange gateway MAC
    # rewritten to A's host MAC; on B, A's host MAC matched in br-int table 0
    a_rewrite = [f for f in lab.flows(host_a.name, "br-tun").values()
                 if f.table == 1 and "dl_src=fa:16:3e:00:02:01" in f.text]
    b_learned = [f for f in lab.flows(host_b.name, "br-int").values()
                 if f.table == 0 and f"dl_src={host_a.host_mac}" in f.text]
    assert a_rewrite[0].n_packets > 0 and b_learned[0].n_packets > 0


def test_reapplying_changes_nothing_and_counters_keep_growing(two_hosts: TwoHosts):
    lab = two_hosts
    converge(lab)
    assert lab.ping("blue-a", ORANGE_B)
    before = {host: lab.all_flows(host) for host in lab.names}
    for host in lab.names:
        assert len(lab.plan(host)) == 0
        again = lab.apply(host)
        assert again.counts == {} and len(again.plan) == 0, again.log_line
    assert lab.ping("blue-a", ORANGE_B)
    for host in lab.names:
        after = lab.all_flows(host)
        assert after.keys() == before[host].keys()
        # a reinstalled flow would have started again from zero
        assert all(after[k].n_packets >= before[host][k].n_packets for k in after)
    grown = [k for k, f in lab.all_flows(lab.names[0]).items()
             if f.n_packets > before[lab.names[0]][k].n_packets > 0]
    assert grown, "the second ping went through flows that already had counts"


def test_removing_a_router_interface_removes_exactly_its_things(two_hosts: TwoHosts):
    lab = two_hosts
    converge(lab)
    assert lab.ping("blue-a", ORANGE_B)
    orange = lab.cloud.network("orange")
    smaller = lab.cloud.without_interface("orange")
    before = {host: lab.all_flows(host) for host in lab.names}
    ports_before = {host: lab.ports(host, "br-int") for host in lab.names}
    for host in lab.names:
        result = lab.apply(host, smaller)
        gone = {(b.name, f.table, f.cookie) for b in lab.desired(host).bridges for f in b.flows} - {
            (b.name, f.table, f.cookie) for b in lab.desired(host, smaller).bridges
            for f in b.flows}
        after = lab.all_flows(host)
        assert set(before[host]) - set(after) == gone, "exactly the interface's flows went"
        assert set(after) <= set(before[host]), "nothing was added"
        assert all(after[k].n_packets >= before[host][k].n_packets for k in after)
        assert result.counts == {"flows_removed": len(gone), "links_removed": 1,
                                 "ports_removed": 1}
        assert ports_before[host] - lab.ports(host, "br-int") == {orange.qr_bridge_port}
        qrouter = lab.cloud.router_namespace
        links = {link["ifname"] for link in lab.ip_json(host, qrouter, "link", "show")}
        assert links == {"lo", lab.cloud.network("blue").qr_device}
        neighbors = {n["dst"] for n in lab.ip_json(host, qrouter, "neigh", "show")}
        assert neighbors == {BLUE_A, BLUE_B}
        assert len(lab.plan(host, smaller)) == 0
    assert lab.ping("blue-a", BLUE_B), "same-subnet traffic is untouched"
    assert not lab.ping("blue-a", ORANGE_B, count=1), "orange is no longer routed"


def test_a_new_vm_port_is_reachable_and_existing_flows_keep_their_counters(two_hosts):
    lab = two_hosts
    converge(lab)
    assert lab.ping("blue-a", ORANGE_B)
    newcomer = HmVm("orange-a", "orange", lab.names[0], "fa:16:3e:20:00:0a", "198.51.100.33",
                    "dd000000-0033-4000-8000-0000000000d4")
    bigger = replace(lab.cloud, vms=(*lab.cloud.vms, newcomer), revision=2)
    before = {host: lab.all_flows(host) for host in lab.names}
    lab.cloud = bigger
    lab.plug("orange-a")
    for host in lab.names:
        lab.apply(host)
        after = lab.all_flows(host)
        assert set(before[host]) <= set(after), "no flow was removed"
        assert all(after[k].n_packets >= before[host][k].n_packets for k in before[host])
    assert lab.ping("orange-b", "198.51.100.33"), "same subnet, across hosts"
    assert lab.ping("blue-b", "198.51.100.33"), "routed on host B to the new VM on host A"
    assert lab.ping("orange-a", BLUE_A), "routed on host A, same host"


def test_a_router_namespace_lost_behind_the_agents_back_is_rebuilt(two_hosts: TwoHosts):
    lab = two_hosts
    converge(lab)
    host_a = lab.names[0]
    lab.hosts[host_a].run(["ip", "netns", "delete", lab.cloud.router_namespace])
    assert not lab.ping("blue-a", ORANGE_B, count=1)
    result = lab.apply(host_a)
    assert result.counts["namespaces_created"] == 1 and result.counts["links_created"] == 2
    # the veths' bridge ends are new devices: their OVS ports are recreated to reopen them
    assert result.counts["ports_ensured"] == 2
    # the userspace switch starts reading a reopened port (and relearns the gateway MAC on
    # it) within a moment, not at once: routed traffic resumes, bounded in time
    assert poll_until(lambda: lab.ping("blue-a", ORANGE_B, count=1), timeout=10, interval=0.2)
    assert lab.ping("blue-a", ORANGE_B)
    assert lab.ping("blue-a", BLUE_B)
    assert len(lab.plan(host_a)) == 0


def test_a_vm_replugged_behind_the_agents_back_gets_its_flows_reinstalled(two_hosts):
    lab = two_hosts
    converge(lab)
    host_b = lab.names[1]
    vm = lab.cloud.vm("orange-b")
    lab.unplug("orange-b")
    lab.plug("orange-b")  # same port name, a new OpenFlow port number
    plan = lab.plan(host_b)
    bundles = [c for c in plan.commands if type(c).__name__ == "FlowBundle"]
    assert [{f.owner for f in b.add} for b in bundles] == [{f"port:{vm.port_id}"}]
    assert lab.apply(host_b).counts.get("flows_added") == 1
    assert lab.ping("blue-a", ORANGE_B), "routed traffic reaches the VM's new port number"
    assert len(lab.plan(host_b)) == 0
