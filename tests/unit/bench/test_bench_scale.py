"""bench/bench_scale.py (`make bench-scale`): its pure parts, and a whole run with 5
simulated hosts on SQLite (real dvr-server, real agent loops on the fake dataplane; about
20 s, no root)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
MODULES = ("bench_scale", "bench_scale_changes", "bench_scale_fleet", "bench_scale_report",
           "bench_server", "benchlib", "pg")


@pytest.fixture
def scale(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_scale

    yield bench_scale
    for name in MODULES:
        sys.modules.pop(name, None)


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


def test_failed_requests_are_counted_by_kind_over_every_phase():
    sys.path.insert(0, str(BENCH))
    try:
        from bench_scale_report import failed
    finally:
        sys.path.remove(str(BENCH))
        sys.modules.pop("bench_scale_report", None)
    errors = {"sync_all": {"timeout": 2, "5xx 503": 1}, "restart": {"5xx 500": 4, "connect": 9}}
    assert failed(errors, "timeout") == 2
    assert failed(errors, "5xx") == 5
    assert failed(errors, "connect") == 9


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
    text = scale.section(report, keys, {"5": report, "2": report}, scale.TARGETS)
    assert "`sync_all_s_5`" in text and "| 2 hosts | 5 hosts |" in text
