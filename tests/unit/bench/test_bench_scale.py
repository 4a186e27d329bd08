"""bench/bench_scale.py (`make bench-scale`): its pure parts, and a whole run with 5
simulated hosts on SQLite (real dvr-server, real agent loops on the fake dataplane; about
20 s, no root)."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def scale():
    import bench_scale

    yield bench_scale
    sys.modules.pop("pg", None)  # bench_server imports tests/pg.py as a top-level module


def test_percentile_is_nearest_rank(scale):
    values = [float(v) for v in range(1, 101)]
    assert scale.percentile(values, 50) == 50.0
    assert scale.percentile(values, 99) == 99.0
    assert scale.percentile([3.0, 1.0, 2.0], 99) == 3.0
    assert scale.percentile([], 99) is None


def test_the_scenario_is_the_issues_cloud_from_100_hosts_on(scale):
    assert scale.scenario_size(100) == {"hosts": 100, "snat_hosts": 10, "routers": 500,
                                        "ports": 5000, "fips": 1000}
    assert scale.scenario_size(1000)["routers"] == 500
    small = scale.scenario_size(5)
    assert small["snat_hosts"] == 1 and small["routers"] == 25


def test_two_servers_need_postgresql(scale, capsys):
    with pytest.raises(SystemExit):
        scale.parse(["--servers", "2"])
    assert "postgresql" in capsys.readouterr().err
    assert scale.parse(["--servers", "2", "--backend", "postgresql"]).servers == 2


def test_each_server_needs_two_sockets_per_agent_it_serves(scale):
    assert scale.files_needed(1000, 1) == 2256
    assert scale.files_needed(1000, 2) == 1256
    assert scale.files_needed(5, 2) == 262


def test_full_agents_up_to_300_hosts_loop_agents_above_unless_asked(scale):
    assert scale.agent_kind("auto", 300) == "full"
    assert scale.agent_kind("auto", 301) == "loop"
    assert scale.agent_kind("full", 1000) == "full"
    assert scale.agent_kind("loop", 5) == "loop"
    assert scale.parse(["--hosts", "1000"]).agents == "auto"


def test_the_loop_agents_dataplane_reports_what_the_full_one_reports_on_the_fakes(scale):
    from bench_scale_agents import ViewTakenAsApplied, dataplane_of

    from dvr.agent.config import AgentConfig
    from tests.unit.desired.desired_scenarios import BLUE, HOST_1, east_west_cloud

    config = AgentConfig(host=HOST_1, server="http://127.0.0.1:1")
    full, loop = dataplane_of("full", config), dataplane_of("loop", config)
    assert isinstance(loop, ViewTakenAsApplied)
    cloud = east_west_cloud()
    for view in (cloud.view(HOST_1), cloud.view(HOST_1)):  # first, then again
        want, got = full.reconcile(view), loop.reconcile(view)
        assert got.errors == want.errors == ()
        assert (got.ports_up, got.vifs, got.local_vlans) == (
            want.ports_up, want.vifs, want.local_vlans)
        assert got.plugged == full.plugged_vifs() == loop.plugged_vifs()
    # a network's local VLAN is kept while the network stays, as the desired state keeps it
    vlan = loop.local_vlans[BLUE]
    assert loop.reconcile(cloud.view(HOST_1)).local_vlans[BLUE] == vlan


def test_the_sampled_hosts_include_one_of_each_agent_mode(scale):
    import random

    from bench_scale_compute import sample_hosts

    hosts = [(f"c{i}", "dvr", "") for i in range(100)] + [("s0", "dvr_snat", "")]
    for seed in range(5):
        chosen = sample_hosts(hosts, 5, random.Random(seed))
        assert len(chosen) == len(set(chosen)) == 5
        assert ("s0", "dvr_snat", "") in chosen
    assert len(sample_hosts(hosts, 1, random.Random(0))) == 1
    assert sorted(sample_hosts(hosts[:3], 5, random.Random(0))) == hosts[:3]


def test_a_real_hosts_reconcile_is_added_once_to_each_latency_figure(scale):
    from bench_scale_compute import summary, with_host_compute

    measured = [{"first_sync": 900.0, "resync": 40.0, "change": 60.0},
                {"first_sync": 1500.0, "resync": 50.0, "change": 20.0},
                {"first_sync": 1200.0, "resync": 45.0, "change": 30.0}]
    compute = summary(measured)
    assert compute["sampled"] == 3
    assert compute["first_sync_ms_p50"] == 1200.0 and compute["first_sync_ms_max"] == 1500.0
    assert compute["change_ms_p50"] == 30.0 and compute["change_ms_max"] == 60.0
    keys = {"sync_all_s": 10.0, "restart_resync_s": 4.0, "fanout_small_p99_s": 0.2,
            "fanout_big_p99_s": None, "timeouts": 0}
    assert with_host_compute(keys, compute) == pytest.approx(
        {"sync_all_s": 11.5, "restart_resync_s": 4.05, "fanout_small_p99_s": 0.26,
         "fanout_big_p99_s": None})
    assert with_host_compute(keys, summary([]))["sync_all_s"] is None


def test_reconcile_timings_read_both_agent_kinds_log_lines(scale, tmp_path):
    log = tmp_path / "agents-0.log"
    log.write_text(
        "07:13:39 INFO agent-a reconcile host=a revision=1 trigger=watch view=full "
        "view_bytes=482628  errors=0 wait_ms=0.0 fetch_ms=672.2 ms=672.4\n"
        "07:13:40 INFO agent-b reconcile host=b revision=2 trigger=watch view=delta "
        "view_bytes=300 flows_added=3 errors=0 wait_ms=0.1 fetch_ms=5.0 inputs_ms=0.2 "
        "compute_ms=40.0 ms=50.0\n"
        "07:13:41 WARNING agent-b heartbeat failed: boom\n")
    timings = scale.reconcile_timings([log])
    assert timings["full"]["n"] == 1 and timings["full"]["ms_p50"] == 672.4
    assert timings["full"]["fetch_ms_p50"] == 672.2
    assert timings["delta"]["ms_p99"] == 50.0 and timings["delta"]["fetch_ms_p99"] == 5.0


def test_after_a_restart_a_watch_that_caught_up_counts_as_in_sync(scale):
    from bench_scale_fleet import Events

    events = Events()
    events.add({"event": "applied", "host": "a", "t": 5.0, "received": 4.5, "revision": 3,
                "changed": False, "first": False})
    events.add({"event": "caught_up", "host": "b", "t": 6.0, "revision": 3})
    events.add({"event": "caught_up", "host": "c", "t": 1.0, "revision": 3})  # before
    hosts = ["a", "b", "c"]
    assert set(scale.first_applied_after(events, hosts, 2.0)) == {"a"}
    again = scale.first_applied_after(events, hosts, 2.0, caught_up=True)
    assert set(again) == {"a", "b"} and again["b"].t == 6.0
    assert not scale.all_applied_after(events, hosts, 2.0, 0.01, caught_up=True)
    events.add({"event": "caught_up", "host": "c", "t": 7.0, "revision": 3})
    assert scale.all_applied_after(events, hosts, 2.0, 0.01, caught_up=True)
    assert not scale.all_applied_after(events, hosts, 2.0, 0.01)


def test_failed_requests_are_counted_by_kind_over_every_phase():
    from bench_scale_report import failed

    errors = {"sync_all": {"timeout": 2, "5xx 503": 1}, "restart": {"5xx 500": 4, "connect": 9}}
    assert failed(errors, "timeout") == 2
    assert failed(errors, "5xx") == 5
    assert failed(errors, "connect") == 9
    named = {"sync_all": {"timeout (GET view)": 2, "timeout (POST heartbeat)": 3,
                          "5xx 503 (GET watch)": 1}}
    assert failed(named, "timeout") == 5
    assert failed(named, "5xx") == 1


def test_a_failed_request_is_counted_under_its_phase_kind_and_request(scale):
    from bench_scale_agents import request_name

    assert request_name("POST", "/dvr/v1/hosts/compute-7/heartbeat", "compute-7") == \
        "POST heartbeat"
    assert request_name("POST", "/dvr/v1/agents", "compute-7") == "POST /dvr/v1/agents"

    class Recorded:
        cond = __import__("threading").Lock()
        errors = [{"t": 5.0, "kind": "timeout", "status": None, "request": "GET view"},
                  {"t": 6.0, "kind": "timeout", "status": None, "request": "GET view"},
                  {"t": 12.0, "kind": "5xx", "status": 503, "request": "POST heartbeat"},
                  {"t": 13.0, "kind": "connect", "status": None}]

    counts = scale.errors_by_phase(Recorded(), [("sync_all", 1.0), ("restart", 10.0)])
    assert counts == {"sync_all": {"timeout (GET view)": 2},
                      "restart": {"5xx 503 (POST heartbeat)": 1, "connect": 1}}


def test_five_hosts_on_sqlite_sync_hear_exactly_their_changes_and_resync(scale):
    argv = ["--hosts", "5", "--idle-seconds", "0.5", "--small-changes", "1",
            "--big-changes", "1", "--quiet", "0.3", "--phase-timeout", "60"]
    report = scale.run(scale.parse(argv), "bench_scale.py " + " ".join(argv))
    assert report["sync_all"]["synced"] == 5 and report["sync_all"]["seconds"] > 0
    # every write woke exactly the hosts whose view changed, and every one of them applied
    assert report["notify"]["precision"] == 1.0 and report["notify"]["recall"] == 1.0
    assert report["notify"]["missed"] == 0 and report["notify"]["check_unknown"] == 0
    big = [c for c in report["changes"] if c["kind"] == "create"][-1]
    assert big["woken"] == big["changed"] == 5  # the network of every host
    assert all(c["not_applied"] == 0 for c in report["changes"])
    assert report["fanout_small"]["p99_s"] > 0 and report["fanout_big"]["p99_s"] > 0
    assert report["restart"]["resynced"] == 5
    assert report["final_check"] == {"checked": 5, "stale": [], "unknown": 0,
                                     "why_unknown": []}
    keys = scale.flat_keys(report)
    assert set(keys) == {f"{k}_5" for k in scale.TARGETS}
    assert keys["timeouts_5"] == 0
    assert report["agents_kind"] == "full"


def test_five_loop_agents_sync_hear_their_changes_and_a_real_reconcile_is_measured(scale):
    from bench_scale_report import section

    argv = ["--hosts", "5", "--agents", "loop", "--idle-seconds", "0.5", "--small-changes",
            "1", "--big-changes", "1", "--quiet", "0.3", "--phase-timeout", "60",
            "--compute-sample", "2"]
    report = scale.run(scale.parse(argv), "bench_scale.py " + " ".join(argv))
    assert report["agents_kind"] == "loop"
    assert report["sync_all"]["synced"] == 5 and report["restart"]["resynced"] == 5
    assert report["notify"]["precision"] == 1.0 and report["notify"]["recall"] == 1.0
    assert report["final_check"]["stale"] == [] and report["final_check"]["unknown"] == 0
    compute = report["host_compute"]
    assert compute["sampled"] == 2
    assert all(h["first_sync"] > 0 and h["change"] > 0 and h["ports"] > 0
               for h in compute["hosts"])
    with_it = report["with_host_compute"]
    assert with_it["sync_all_s"] > report["sync_all"]["seconds"]
    keys = scale.flat_keys(report)
    text = section(report, keys, {"5": report}, scale.TARGETS)
    assert "dataplane `loop`" in text and "+ the slowest sampled reconcile" in text
    text = scale.section(report, keys, {"5": report, "2": report}, scale.TARGETS)
    assert "`sync_all_s_5`" in text and "| 2 hosts | 5 hosts |" in text
