"""Port -> first ping, dvr against OVN (bench/bench_port_pair.py and its parts): the
guest and probe both sides share, the OVN side's run order, the figures and the driver."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.unit.bench.conftest import BENCH


def guest(mtu: int = 1442):
    from portprobe import Guest

    return Guest(3, "fa:16:3e:b0:01:02", "198.51.100.203", 24, "198.51.100.1", mtu)


def test_the_guest_is_a_veth_made_before_the_plug_and_plugged_by_iface_id():
    g = guest(mtu=1442)
    script = g.prepare_argv()[2]
    assert "ovs-vsctl" not in script  # nothing is plugged before t0
    assert "ip link add bptap3 mtu 1442 type veth peer name bpv3 mtu 1442" in script
    assert "ip -n vm-bp3 addr add 198.51.100.203/24 dev eth0" in script
    assert "ip -n vm-bp3 route add default via 198.51.100.1" in script
    assert "ethtool -K eth0 tx off" in script
    plug = g.plug_argv("unix:/x/db.sock", "port-uuid")
    assert plug[:5] == ["ovs-vsctl", "--db=unix:/x/db.sock", "add-port", "br-int", "bptap3"]
    assert "external_ids:iface-id=port-uuid" in plug
    assert "external_ids:attached-mac=fa:16:3e:b0:01:02" in plug
    removed = g.remove_argvs("unix:/x/db.sock")
    assert removed[0][-2:] == ["br-int", "bptap3"] and removed[-1] == ["ip", "netns", "del",
                                                                      "vm-bp3"]


def test_guest_addresses_sit_above_the_lab_vms_and_inside_the_subnet():
    from portprobe import guest_ip

    assert guest_ip("198.51.100.0/24", 0) == "198.51.100.200"
    assert guest_ip("198.51.100.0/24", 39) == "198.51.100.239"
    with pytest.raises(ValueError):
        guest_ip("198.51.100.0/24", 55)  # .255: the broadcast address


def test_the_first_reply_is_timed_by_pings_own_stamp():
    from portprobe import first_reply

    t0 = 1_700_000_000.0
    line = "[1700000000.045000] 64 bytes from 198.51.100.203: icmp_seq=3 ttl=63 time=0.61 ms"
    got = first_reply(t0, t0 + 0.02, (t0 + 0.5, line))  # its arrival is not the stamp
    assert got["c_first_reply_from_t0_ms"] == pytest.approx(45.0, abs=0.01)
    assert got["c_first_reply_from_plug_ms"] == pytest.approx(25.0, abs=0.01)
    assert got["first_reply_seq"] == "3"
    assert first_reply(t0, t0, None)["c_first_reply_from_t0_ms"] is None


def test_percentiles_are_nearest_rank_and_lost_replies_are_counted_apart():
    from portprobe import port_to_ping

    runs = [{"c_first_reply_from_t0_ms": float(ms)} for ms in (40, 10, 30, 20)]
    runs.append({"c_first_reply_from_t0_ms": None})
    got = port_to_ping(runs)
    assert got == {"port_to_ping_p50_s": 0.02, "port_to_ping_p95_s": 0.04, "n": 4, "lost": 1}


def runs_of(*ms: float | None) -> list[dict]:
    return [{"c_first_reply_from_t0_ms": m, "c_first_reply_from_plug_ms": m, "plug_ms": 5.0,
             "api_create_ms": 12.0, "nb_write_ms": 8.0} for m in ms]


def test_the_headline_is_dvr_p95_over_ovn_p95_with_the_issues_targets():
    from bench_port_pair import headline

    out = headline({"dvr": runs_of(30.0, 50.0, 40.0), "ovn": runs_of(33.0, 41.0, 35.0)})
    assert out["port_to_ping_p50_s"] == 0.04 and out["port_to_ping_p95_s"] == 0.05
    assert out["port_to_ping_ovn_p50_s"] == 0.035 and out["port_to_ping_ovn_p95_s"] == 0.041
    assert out["port_to_ping_dvr_over_ovn"] == round(50 / 41, 3)
    assert {k: t["met"] for k, t in out["targets"].items()} == {
        "port_to_ping_p95_s": True, "port_to_ping_dvr_over_ovn": False,
        "port_to_ping_lost": True}


def test_a_lost_reply_misses_its_target_and_no_ovn_figure_means_no_ratio():
    from bench_port_pair import headline

    out = headline({"dvr": runs_of(30.0, None), "ovn": []})
    assert out["port_to_ping_lost"] == {"dvr": 1, "ovn": 0}
    assert out["port_to_ping_dvr_over_ovn"] is None
    assert not out["targets"]["port_to_ping_lost"]["met"]
    assert not out["targets"]["port_to_ping_dvr_over_ovn"]["met"]
    assert out["targets"]["port_to_ping_p95_s"]["met"]  # 30 ms, over the runs with a reply


def test_the_table_has_a_row_per_system_and_says_what_the_ratio_is():
    from bench_port_pair import headline, table

    runs = {"dvr": runs_of(30.0, 50.0), "ovn": runs_of(20.0, 25.0)}
    lines = table(runs, headline(runs))
    dvr = next(line for line in lines if line.startswith("| dvr "))
    ovn = next(line for line in lines if line.startswith("| ovn "))
    assert "| 2 (2) | 30 ms | 50 ms | 30–50 ms | 12 ms (POST /v2.0/ports) |" in dvr
    assert "8 ms (ovn-nbctl lsp-add + lsp-set-addresses)" in ovn
    assert any("dvr p95 ÷ OVN p95 = 2.000" in line for line in lines)


def test_a_run_without_reply_is_said_so_in_the_progress_line():
    from bench_port_pair import progress

    assert "no reply" in progress("ovn", 2, 8, runs_of(None)[0])
    line = progress("dvr", 1, 8, {**runs_of(45.0)[0], "first_reply_seq": "3"})
    assert line.startswith("run 1/8 dvr: port -> first reply 45 ms (write 12 ms")


def test_a_new_ovn_port_joins_the_port_group_only_in_a_lab_with_firewall():
    from ovnlab import PORT_GROUP, VMS, OvnLab

    plain = OvnLab("t", Path("/nonexistent"), firewall=False)
    args = plain.new_port_args("orange", "bp0", "fa:16:3e:b0:00:01", "198.51.100.200")
    assert args == ["lsp-add", "orange", "bp0", "--", "lsp-set-addresses", "bp0",
                    "fa:16:3e:b0:00:01 198.51.100.200"]
    guarded = OvnLab("t", Path("/nonexistent"), firewall=True)
    args = guarded.new_port_args("orange", "bp0", "fa:16:3e:b0:00:01", "198.51.100.200")
    tail = args[args.index("pg-set-ports"):]
    assert tail == ["pg-set-ports", PORT_GROUP, *(vm.name for vm in VMS), "bp0"]


class FakeHost:
    ovsdb = "unix:/fake/db.sock"

    def __init__(self, log: list):
        self.log = log

    def run(self, argv, check=True, timeout=30.0):
        self.log.append(("host", argv[0], argv[2] if argv[0] == "ovs-vsctl" else argv[-1]))


def fake_lab(firewall: bool, fail_write: bool = False):
    from ovnlab import OvnLab

    class FakeOvnLab(OvnLab):
        """The OVN lab's calls recorded; the probe prints one reply 0.2 s after it starts."""

        def __init__(self):
            super().__init__("t", Path("/nonexistent"), firewall=firewall)
            self.log: list = []

        def host_env(self, host):
            return FakeHost(self.log)

        def nbctl(self, *args):
            self.log.append(("nb", *args))
            if fail_write and "lsp-add" in args:
                raise RuntimeError("the NB database is gone")
            return ""

        def vm_command(self, vm, argv):
            ip = argv[-1]
            script = (f"sleep 0.2; echo \"[$(date +%s.%N)] 64 bytes from {ip}: icmp_seq=14 "
                      "ttl=63 time=0.5 ms\"")
            return ["sh", "-c", script], {"PATH": "/usr/bin:/bin"}

    return FakeOvnLab()


def test_an_ovn_run_writes_then_plugs_then_times_the_reply_then_cleans_up():
    from bench_port_ovn import OvnPortBench

    lab = fake_lab(firewall=True)
    started = time.time()
    result = OvnPortBench(lab, "compute-2", "orange", "blue-1", seed=1).one_run(0)
    steps = [(entry[0], entry[1]) for entry in lab.log]
    assert steps == [("host", "sh"), ("nb", "lsp-add"), ("host", "ovs-vsctl"),
                     ("host", "ovs-vsctl"), ("host", "ip"), ("host", "ip"),
                     ("nb", "--if-exists"), ("nb", "--wait=hv")]
    assert lab.log[2][2] == "add-port" and lab.log[3][2] == "--if-exists"
    assert "pg-set-ports" in lab.log[1]
    assert result["ip"] == "198.51.100.200" and result["first_reply_seq"] == "14"
    assert 50 < result["c_first_reply_from_t0_ms"] < (time.time() - started) * 1000
    assert result["nb_write_ms"] >= 0 and result["cleanup_synced_ms"] >= 0


def test_a_failed_ovn_write_still_removes_the_guest_and_the_port():
    from bench_port_ovn import OvnPortBench

    lab = fake_lab(firewall=False, fail_write=True)
    with pytest.raises(RuntimeError):
        OvnPortBench(lab, "compute-2", "orange", "blue-1", seed=1).one_run(0)
    assert ("nb", "--if-exists", "lsp-del", "bp0") in lab.log
    assert ("host", "ip", "vm-bp0") in lab.log  # the guest namespace is deleted
    assert ("host", "ovs-vsctl", "add-port") not in lab.log


def test_the_ovn_source_must_ping_from_the_other_host():
    from bench_port_ovn import OvnPortBench

    with pytest.raises(ValueError):
        OvnPortBench(fake_lab(firewall=False), "compute-2", "orange", "orange-1", seed=1)


def test_make_bench_runs_the_port_suite_with_the_drivers_choices():
    from bench_port_pair import parse
    from run_all import SUITES
    from run_all import parse as parse_driver

    suite = next(s for s in SUITES if s.key == "port_to_ping")
    assert suite.module == "bench_port_pair" and (BENCH / "bench_port_pair.py").exists()
    chosen = parse(suite.argv(parse_driver(["--runs", "8", "--vm-plumbing", "veth",
                                            "--no-ovn-firewall"])))
    assert (chosen.runs, chosen.vm_plumbing.value, chosen.ovn_firewall) == (8, "veth", False)
    assert chosen.plug_delay == 0.0  # dvr's port is plugged right after the write, as OVN's


def test_a_mode_sets_its_agent_setting_in_place_of_any_earlier_value():
    from bench_port import MODES, with_setting

    settings = 'host = "compute-2"\nflow-mirror = false\nfast_phase = true\n'
    observe = with_setting(settings, *MODES["observe"])
    assert observe.splitlines() == ['host = "compute-2"', "flow-mirror = false",
                                    "fast_phase = false"]
    assert with_setting(observe, *MODES["mirror"]).splitlines()[1:] == [
        "fast_phase = false", "flow_mirror = true"]
