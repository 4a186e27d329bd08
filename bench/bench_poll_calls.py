"""What ovs-vswitchd's main loop looks at on every iteration, dvr's hosts against OVN's
(issue 12's last gap, counted rather than timed).

The lab's ports are AF_PACKET and tap devices, which the userspace datapath does not hand
to PMD threads: the main thread reads every one of them on every iteration of its loop,
between its other work, which includes an ``accept`` on each listening socket (a bridge's
``.mgmt`` and ``.snoop``, the unixctl socket) and a read on each open connection (the
agent's or ovn-controller's OpenFlow and OVSDB sessions).  Calls that find nothing are the
loop's fixed cost per iteration, paid again for every batch of packets it forwards.

This builds `make bench`'s two labs (``bench_dataplane``), waits until both are idle, and
traces each compute host's ovs-vswitchd main loop with ``strace`` for ``--seconds``: per
iteration (one ``poll``), the calls on each kind of descriptor (from ``/proc/PID/fd``,
``fdinfo`` and the host's ``/proc/PID/net/{unix,packet,netlink}``), and the devices and
sockets it reads on every iteration by name.

    sudo .venv/bin/python bench/bench_poll_calls.py --seconds 5
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from bench_dataplane import dvr_bench_lab, ovn_bench_lab
from benchlib import machine

HOSTS = ("compute-1", "compute-2")
CALLS = ("poll", "accept", "accept4", "recvfrom", "recvmsg", "recvmmsg", "read", "readv")
KINDS = ("listening socket", "connection", "tap", "AF_PACKET", "netlink", "other")
_CALL = re.compile(r"^(?:\[pid\s+(\d+)\]\s+)?(\w+)\((\d+)?")
_SOCKET = re.compile(r"socket:\[(\d+)\]")
UNIX_LISTENING = 0x10000  # __SO_ACCEPTCON in /proc/net/unix's Flags


def link_names(pid: int) -> dict[int, str]:
    """Interface index -> name in ``pid``'s network namespace."""
    out = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-o", "link"],
                         capture_output=True, text=True, check=True).stdout
    return {int(index): name.split("@")[0]
            for index, name in re.findall(r"^(\d+): ([^:]+):", out, re.MULTILINE)}


def socket_kinds(pid: int) -> dict[int, tuple[str, str]]:
    """Socket inode -> (kind, name), from the tables of ``pid``'s network namespace."""
    kinds: dict[int, tuple[str, str]] = {}
    net = Path(f"/proc/{pid}/net")
    for line in (net / "unix").read_text().splitlines()[1:]:
        fields = line.split()
        listening = int(fields[3], 16) & UNIX_LISTENING
        name = Path(fields[7]).name if len(fields) > 7 else ""
        kinds[int(fields[6])] = ("listening socket" if listening else "connection", name)
    links = link_names(pid)
    for line in (net / "packet").read_text().splitlines()[1:]:
        fields = line.split()
        kinds[int(fields[-1])] = ("AF_PACKET", links.get(int(fields[4]), fields[4]))
    for line in (net / "netlink").read_text().splitlines()[1:]:
        kinds[int(line.split()[9])] = ("netlink", "")
    return kinds


def tap_name(pid: int, fd: int) -> str:
    info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
    found = re.search(r"^iff:\s*(\S+)", info, re.MULTILINE)
    return found.group(1) if found else ""


def descriptors(pid: int) -> dict[int, tuple[str, str]]:
    """fd -> (kind, name: the device, or the socket's file)."""
    sockets = socket_kinds(pid)
    found_fds = {}
    for fd in map(int, os.listdir(f"/proc/{pid}/fd")):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target == "/dev/net/tun":
                found_fds[fd] = ("tap", tap_name(pid, fd))
                continue
        except OSError:
            continue
        inode = _SOCKET.fullmatch(target)
        found_fds[fd] = sockets.get(int(inode.group(1)), ("other", "")) if inode else \
            ("other", "")
    return found_fds


def tally(lines: list[str], fds: dict[int, tuple[str, str]]
          ) -> tuple[int, Counter[tuple[str, str]]]:
    """strace's lines -> the iterations (``poll`` calls) and the calls on each descriptor
    (kind, name); a descriptor it does not know is ("other", "")."""
    calls: Counter[tuple[str, str]] = Counter()
    polls = 0
    for line in lines:
        found = _CALL.match(line)
        if not found:
            continue
        call, fd = found.group(2), found.group(3)
        if call == "poll":
            polls += 1
        elif fd is not None:
            calls[fds.get(int(fd), ("other", ""))] += 1
    return polls, calls


def count_calls(pid: int, seconds: float, fds: dict[int, tuple[str, str]]
                ) -> tuple[int, Counter[tuple[str, str]]]:
    """The main thread's iterations and calls by descriptor over ``seconds`` (``tally``)."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        tracer = subprocess.Popen(["strace", "-qq", "-e", f"trace={','.join(CALLS)}", "-o",
                                   out.name, "-p", str(pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(seconds)
        finally:
            tracer.terminate()
            tracer.wait(timeout=10)
        return tally(out.read().splitlines(), fds)


def vswitchd_pid(system, host: str) -> int:  # type: ignore[no-untyped-def]
    return int((system.host_env(host).rundir / "ovs-vswitchd.pid").read_text().split()[0])


def per_iteration(polls: int, calls: Counter[tuple[str, str]]) -> dict[str, float]:
    by_kind: Counter[str] = Counter()
    for (kind, _name), count in calls.items():
        by_kind[kind] += count
    return {kind: by_kind[kind] / max(polls, 1) for kind in KINDS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--settle", type=float, default=10.0,
                   help="seconds to wait after both labs are up")
    p.add_argument("--name", default="benchpoll", help="the dvr lab's name (its own lab)")
    p.add_argument("--api-port", type=int, default=19893)
    args = p.parse_args(argv)
    if not 1 <= args.seconds <= 60 or not 0 <= args.settle <= 120:
        p.error("--seconds 1..60, --settle 0..120")
    rows = []
    with ExitStack() as labs:
        systems = {"dvr": dvr_bench_lab(labs, args.name, args.api_port),
                   "ovn": ovn_bench_lab(labs, "ovnpoll", Path("/var/lib/dvr-lab-ovn/ovnpoll"))}
        time.sleep(args.settle)
        for label, system in systems.items():
            for host in HOSTS:
                pid = vswitchd_pid(system, host)
                polls, calls = count_calls(pid, args.seconds, descriptors(pid))
                rows.append((label, host, polls, per_iteration(polls, calls)))
                print(f"  {label} {host}: {polls} iterations, {sum(calls.values())} calls; "
                      "read on every iteration: " + ", ".join(sorted(
                          f"{kind} {name}".strip() for (kind, name), count in calls.items()
                          if count >= polls and kind in ("listening socket", "tap",
                                                         "AF_PACKET"))), flush=True)
    print(f"\nmachine: {machine()}\n")
    print("| system | host | iterations | " + " | ".join(KINDS) + " | all |")
    print("|---|---|---|" + "---|" * (len(KINDS) + 1))
    for label, host, polls, kinds in rows:
        cells = " | ".join(f"{kinds[k]:.1f}" for k in KINDS)
        print(f"| {label} | {host} | {polls} | {cells} | {sum(kinds.values()):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
