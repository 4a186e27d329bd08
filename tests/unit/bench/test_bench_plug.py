"""bench/bench_plug.py's pure parts: the scheduler counters it reads for the port host's
daemons around each plug, and how it reports them."""

from __future__ import annotations


def test_schedstat_is_on_cpu_then_run_queue_and_differences_are_per_field():
    from bench_plug import SchedStat, parse_schedstat

    before = parse_schedstat("2500000 1000000 40\n")
    after = parse_schedstat("4700000 3500000 55")
    assert before == SchedStat(on_cpu=2_500_000, run_queue=1_000_000)
    assert after - before == SchedStat(on_cpu=2_200_000, run_queue=2_500_000)


def test_the_report_is_the_median_of_each_counter_in_ms():
    from bench_plug import SchedStat, median_ms

    counters = [{"ovs-vswitchd": SchedStat(1_000_000, 4_000_000)},
                {"ovs-vswitchd": SchedStat(3_000_000, 0)},
                {"ovs-vswitchd": SchedStat(2_000_000, 500_000)}]
    assert median_ms(counters, "ovs-vswitchd") == "2.00 / 0.50"
