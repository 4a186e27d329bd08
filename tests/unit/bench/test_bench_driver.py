"""`make bench`'s driver and the dvr-vs-OVN east/west suite: merging, ratios, placement."""

from __future__ import annotations

import ipaddress
import json

from tests.unit.bench.conftest import BENCH


def test_merging_a_suite_keeps_every_other_suites_keys(tmp_path):
    from run_all import merge_json

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"north_south": {"x": 1}, "east_west": {"old": True}}))
    merge_json(path, "east_west", {"ew_dvr_over_ovn": 1.2})
    assert json.loads(path.read_text()) == {"north_south": {"x": 1},
                                            "east_west": {"ew_dvr_over_ovn": 1.2}}
    merge_json(tmp_path / "new.json", "sg", {"a": 1})
    assert json.loads((tmp_path / "new.json").read_text()) == {"sg": {"a": 1}}


def test_stored_results_drop_the_per_probe_samples_only():
    from run_all import without_samples

    raw = {"dvr": {"p": [{"rtts_ms": [0.1, 0.2], "sent_gbps": 1.0}]}, "n": 3}
    assert without_samples(raw) == {"dvr": {"p": [{"sent_gbps": 1.0}]}, "n": 3}


def test_every_suite_key_is_unique_and_the_driver_knows_its_modules():
    from run_all import SUITES

    assert len({s.key for s in SUITES}) == len(SUITES)
    assert (BENCH / "bench_dataplane.py").exists()


def test_the_driver_hands_its_choices_to_the_east_west_suite():
    from bench_dataplane import parse
    from run_all import SUITES
    from run_all import parse as parse_driver

    suite = next(s for s in SUITES if s.module == "bench_dataplane")
    default = parse(suite.argv(parse_driver([])))
    assert (default.vm_plumbing.value, default.ovn_firewall, default.runs) == ("tap", True, 3)
    chosen = parse(suite.argv(parse_driver(["--vm-plumbing", "veth", "--no-ovn-firewall",
                                            "--runs", "5"])))
    assert (chosen.vm_plumbing.value, chosen.ovn_firewall, chosen.runs) == ("veth", False, 5)


def stats(gbps: float, lost: int = 0) -> dict:
    return {"gbps": {"n": 3, "median": gbps, "min": gbps, "max": gbps},
            "lost_pings_under_tcp": lost, "pings_under_tcp": 150}


def test_the_target_keys_are_ratios_of_tcp_medians_and_lost_pings_per_system():
    from bench_dataplane import headline

    dvr = {"cross_host_same_subnet": stats(1.0), "cross_host_routed": stats(0.9, lost=2),
           "same_host_routed": stats(1.2), "same_host_same_subnet": stats(1.3),
           "centralized": stats(0.5)}
    ovn = {"cross_host_same_subnet": stats(1.0), "cross_host_routed": stats(1.0),
           "same_host_routed": stats(1.0), "same_host_same_subnet": stats(1.0)}
    out = headline({"dvr": dvr, "ovn": ovn})
    assert out["ew_routed_over_same_subnet"] == 0.9
    assert out["ew_dvr_over_ovn"] == 0.9
    assert out["ew_dvr_over_centralized"] == 1.8
    assert out["ew_lost_pings_under_tcp"] == {"dvr": 2, "ovn": 0}
    assert {k: t["met"] for k, t in out["targets"].items()} == {
        "ew_routed_over_same_subnet": False, "ew_dvr_over_ovn": False,
        "ew_dvr_over_centralized": True, "ew_lost_pings_under_tcp": False}
    assert out["medians_gbps"]["ovn"]["cross_host_routed"] == 1.0


def test_without_ovn_the_comparison_is_absent_not_invented():
    from bench_dataplane import headline

    dvr = {k: stats(1.0) for k in ("cross_host_same_subnet", "cross_host_routed",
                                   "same_host_routed", "centralized")}
    out = headline({"dvr": dvr})
    assert out["ew_dvr_over_ovn"] is None and not out["targets"]["ew_dvr_over_ovn"]["met"]


def test_the_ovn_lab_places_the_vms_where_the_dvr_bench_does():
    from bench_dataplane import PATHS
    from ovnlab import NETWORKS, VMS, vm_ip

    from dvr.lab.topology import default_topology

    dvr = {vm.name: (vm.network, vm.host) for vm in default_topology("x", 2).vms}
    dvr["blue-3"] = ("blue", "compute-2")  # the bench adds it
    assert {vm.name: (vm.network, vm.host) for vm in VMS} == dvr
    cidrs = {n.name: n.cidr for n in default_topology("x", 2).networks}
    for net in NETWORKS:
        assert net.cidr == cidrs[net.name]
    for vm in VMS:
        assert ipaddress.ip_address(vm_ip(vm)) in ipaddress.ip_network(cidrs[vm.network])
    assert len({vm_ip(vm) for vm in VMS}) == len(VMS)
    hosts = {vm.name: vm.host for vm in VMS}
    for path in PATHS:
        assert hosts[path.source] == path.source_host


def test_the_ovn_vm_mtu_leaves_room_for_geneve_on_the_1500_byte_underlay():
    from ovnlab import GENEVE_MTU

    # the outer IPv4 packet: IPv4 + UDP + Geneve + OVN's option + the inner frame
    assert 20 + 8 + 8 + 8 + 14 + GENEVE_MTU == 1500
