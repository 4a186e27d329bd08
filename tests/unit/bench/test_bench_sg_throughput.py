"""bench/bench_sg_throughput.py's pure parts: the datapath counters, percentiles, ratios and
its table; importing it needs no root and starts nothing."""

from __future__ import annotations

import pytest

# two threads, as OVS 3.1 prints them for the userspace datapath
PMD_STATS = """\
pmd thread numa_id 0 core_id 1:
  packets received: 1000
  packet recirculations: 2000
  avg. datapath passes per packet: 3.00
  megaflow hits: 2900
  miss with success upcall: 100
  processing cycles: 3000000 (60.00%)
  avg cycles per packet: 3000.00 (5000000/1000)
main thread:
  packets received: 1000
  packet recirculations: 0
  avg. datapath passes per packet: 1.00
  megaflow hits: 1000
  miss with success upcall: 0
"""


@pytest.fixture
def sg():
    import bench_sg_throughput

    return bench_sg_throughput


def test_datapath_counters_are_summed_over_threads_and_taken_per_packet(sg) -> None:
    counters = sg.pmd_counters(PMD_STATS)
    assert counters["packets received"] == 2000
    assert counters["packet recirculations"] == 2000
    assert counters["processing cycles"] == 3_000_000
    found = sg.per_packet(counters)
    assert found["passes_per_packet"] == 2.0  # half the packets went around three times
    assert found["cycles_per_packet"] == 1500.0
    assert found["upcalls"] == 100
    assert sg.per_packet(sg.pmd_counters(""))["passes_per_packet"] is None


def test_percentiles_and_ratios_of_the_two_cases(sg) -> None:
    rtts = [float(i) for i in range(1, 101)]
    assert sg.percentile(rtts, 50) == pytest.approx(50.5)
    assert sg.percentile(rtts, 99) == pytest.approx(99.99)
    assert sg.percentile([], 50) is None

    def run(gbps: float, rtt: float) -> dict:
        datapath = {"passes_per_packet": 1.0, "cycles_per_packet": None}
        return {"sent_gbps": gbps, "received_gbps": gbps, "retransmits": 0.0,
                "rtts_ms": [rtt] * 10, "pings_lost": 0,
                "datapath": {host: datapath for host in sg.HOSTS}}

    stats = {"default": sg.case_stats([run(0.8, 0.30), run(0.9, 0.30), run(1.0, 0.30)]),
             "off": sg.case_stats([run(1.0, 0.25), run(1.0, 0.25)])}
    found = sg.ratios(stats)
    assert found["sg_tcp_default_over_off"] == pytest.approx(0.9)
    assert found["sg_rtt_p50_default_over_off"] == pytest.approx(1.2)
    lines = sg.table(stats, found)
    assert any(line.startswith("| default group: sg-1 → sg-2 | 0.900") for line in lines)
    assert any("`sg_tcp_default_over_off`" in line and "0.900" in line for line in lines)


def test_arguments_are_bounded(sg) -> None:
    assert sg.parse([]).rounds == 5
    for bad in (["--rounds", "50"], ["--seconds", "600"], ["--pings", "5"]):
        with pytest.raises(SystemExit):
            sg.parse(bad)
