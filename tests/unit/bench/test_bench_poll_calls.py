"""bench/bench_poll_calls.py's pure parts: strace's lines tallied per descriptor, and the
calls per main-loop iteration by kind."""

from __future__ import annotations

FDS = {12: ("listening socket", "br-int.mgmt"), 31: ("tap", "br-int"),
       59: ("AF_PACKET", "qrb-0a1b2c3d-4e"), 14: ("connection", "")}
TRACE = [
    'poll([{fd=12, events=POLLIN}], 1, 0)    = 0 (Timeout)',
    'accept(12, 0x7ffd, [110])              = -1 EAGAIN (Resource temporarily unavailable)',
    'recvfrom(14, 0x55e, 4096, 0, NULL, NULL) = -1 EAGAIN (Resource temporarily unavailable)',
    'readv(31, [{iov_base=0x7f, iov_len=1500}], 2) = -1 EAGAIN (Resource temporarily unavailable)',
    'recvmmsg(59, 0x7ffd, 32, MSG_TRUNC|MSG_DONTWAIT, NULL) = -1 EAGAIN (Resource temporarily)',
    'poll([{fd=12, events=POLLIN}], 1, 500) = 1 ([{fd=12, revents=POLLIN}])',
    'accept(12, 0x7ffd, [110])              = -1 EAGAIN (Resource temporarily unavailable)',
    'readv(31, [{iov_base=0x7f, iov_len=1500}], 2) = 98',
    'recvmsg(77, {msg_name=NULL}, MSG_DONTWAIT) = -1 EAGAIN (Resource temporarily unavailable)',
    '--- SIGCHLD {si_signo=SIGCHLD} ---',
    '+++ exited with 0 +++',
]


def test_each_poll_is_an_iteration_and_each_call_counts_for_its_descriptor():
    from bench_poll_calls import tally

    polls, calls = tally(TRACE, FDS)
    assert polls == 2
    assert calls == {("listening socket", "br-int.mgmt"): 2, ("connection", ""): 1,
                     ("tap", "br-int"): 2, ("AF_PACKET", "qrb-0a1b2c3d-4e"): 1,
                     ("other", ""): 1}


def test_calls_per_iteration_by_kind_and_no_iteration_is_no_division_by_zero():
    from bench_poll_calls import KINDS, per_iteration, tally

    polls, calls = tally(TRACE, FDS)
    per = per_iteration(polls, calls)
    assert set(per) == set(KINDS)
    assert per["tap"] == per["listening socket"] == 1.0
    assert per["AF_PACKET"] == per["connection"] == per["other"] == 0.5
    assert per["netlink"] == 0.0
    assert per_iteration(0, calls)["tap"] == 2.0
