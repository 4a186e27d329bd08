"""Benchmark (issue 14): what an agent spends turning the bytes of a big HostView answer into
its view: the JSON decode and ``host_view_from_dict`` / ``delta_from_dict``.

The views are the ones `make bench-scale` serves: ``bench_server.populate`` builds its
scenario (``--hosts`` hosts, one network ``span`` with a VM on every host) in a temporary
SQLite database, ``build_host_view`` builds a compute host's view (~390 kB at 1,000 hosts:
two networks with a remote host per other host) and the biggest SNAT host's (~50 routers
with their ARP entries, ~150 ports), and they are encoded as the server encodes its answers
(orjson, ``"full": true``).  A delta answer is the compute host's view patched from before
it joined ``span`` (999 remote hosts added).  No server runs; nothing needs root.

Timed (median and minimum of ``--runs``, ms): the client's whole path, bytes to HostView or delta
(``ServerClient.fetch_view`` over an in-memory transport that answers those bytes, and
``watch`` with the view in its answer), and its parts: stdlib ``json.loads``,
``orjson.loads``, ``host_view_from_dict`` / ``delta_from_dict`` on the decoded dict.  The
agent's garbage-collector tuning applies, as in ``dvr-agent``.  Compare two commits by
running the same script with each one's ``src`` first on ``PYTHONPATH``.

    .venv/bin/python bench/bench_view_parse.py [--hosts 1000] [--runs 30] [--save DIR]

Wall-clock times on a busy machine vary by 2x from one run to the next; instruction counts
do not: save the answers once (``--save DIR``), then per commit

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python bench/bench_view_parse.py --decode DIR/compute.json --calls 5

and again with ``--calls 0``: the difference / 5 is the instructions of one view.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_server import populate  # noqa: E402
from sqlalchemy import text  # noqa: E402

from dvr.client import ServerClient  # noqa: E402
from dvr.db.session import Database  # noqa: E402
from dvr.gc_tuning import tune_garbage_collector  # noqa: E402
from dvr.model.hostview import HostView, host_view_from_dict  # noqa: E402
from dvr.model.hostview_delta import compact_delta_dict, delta_from_dict, diff  # noqa: E402
from dvr.server.hostview import build_host_view  # noqa: E402

SPAN = "span"  # bench_server.populate's network on every host


def scenario_views(hosts: int) -> tuple[HostView, HostView]:
    """A compute host's view and the biggest SNAT host's, in `make bench-scale`'s cloud."""
    routers = min(500, 5 * hosts)  # bench_scale.scenario_size
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite:///{workdir}/views.db"
        populate(url, hosts=hosts, snat_hosts=max(1, min(10, hosts // 10)), routers=routers,
                 ports=10 * routers, fips=2 * routers, span_network=True)
        database = Database.from_url(url)
        try:
            with database.read() as conn:
                names = [row[0] for row in conn.execute(text(
                    "SELECT host FROM dvr_hosts ORDER BY host"))]
                compute = build_host_view(conn, next(h for h in names if h.startswith("compute")))
                snats = [build_host_view(conn, h) for h in names if h.startswith("snat")]
        finally:
            database.dispose()
    return compute, max(snats, key=lambda v: len(orjson.dumps(v)))


def full_answer(view: HostView) -> bytes:
    """``view?since=0`` as the server renders it (``dvr_protocol.view_answer``)."""
    fields = {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}
    return orjson.dumps({**fields, "full": True})


def delta_answer(view: HostView) -> bytes:
    """``view?since=R`` from the view before the host joined ``span``."""
    before = dataclasses.replace(
        view, revision=view.revision - 1,
        networks=tuple(n for n in view.networks if n.name != SPAN))
    delta = diff(before, view)
    return orjson.dumps({**compact_delta_dict(dataclasses.asdict(delta)), "full": False})


def watch_answer(view_body: bytes) -> bytes:
    """A watch answer that brings the view (``view_since``)."""
    return b'{"revision":1,"changes":[{"kind":"port","id":"p"}],"resync":false,"view":' + \
        view_body + b"}"


def timed_ms(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Median and minimum of ``runs`` calls, ms (the minimum: on a busy machine, the
    closest to the cost itself)."""
    fn()  # warm up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000, min(samples) * 1000


def rows(name: str, body: bytes, whole: Callable[[ServerClient], Any],
         from_dict: Callable[[dict[str, Any]], Any], runs: int,
         part: str | None = None) -> list[tuple[str, str, tuple[float, float]]]:
    """The client's whole path for ``body``, and its steps (``from_dict`` on ``part`` of
    the decoded body, or all of it)."""
    client = ServerClient.answering(body)
    data = orjson.loads(body)
    if part is not None:
        data = data[part]
    try:
        return [
            (name, "client: bytes -> object", timed_ms(lambda: whole(client), runs)),
            (name, "json.loads (stdlib)", timed_ms(lambda: json.loads(body), runs)),
            (name, "orjson.loads", timed_ms(lambda: orjson.loads(body), runs)),
            (name, from_dict.__name__, timed_ms(lambda: from_dict(data), runs)),
        ]
    finally:
        client.close()


def decode_only(body: bytes, calls: int) -> int:
    """``calls`` fetches of ``body`` through the client, after one that is not counted (the
    client's first request); nothing printed."""
    with ServerClient.answering(body) as client:
        client.fetch_view("h", 0)
        tune_garbage_collector()
        for _ in range(calls):
            client.fetch_view("h", 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--save", type=Path, metavar="DIR",
                        help="also write the full view answers there (compute.json, snat.json)")
    parser.add_argument("--decode", type=Path, metavar="FILE",
                        help="only fetch the full view answer FILE (saved by --save) --calls "
                             "times through the client, untimed: run under valgrind "
                             "--tool=callgrind with --calls N and 0 for instructions per view")
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args(argv)
    if args.decode is not None:
        return decode_only(args.decode.read_bytes(), args.calls)
    compute, snat = scenario_views(args.hosts)
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        (args.save / "compute.json").write_bytes(full_answer(compute))
        (args.save / "snat.json").write_bytes(full_answer(snat))
    tune_garbage_collector()  # as dvr-agent runs
    cases = []
    for label, view in ((f"full view, {compute.host}", compute), (f"full view, {snat.host}", snat)):
        body = full_answer(view)
        cases.append((label, body, lambda c, h=view.host: c.fetch_view(h, 0).update,
                      host_view_from_dict, None))
    cases.append((f"watch with the view, {compute.host}", watch_answer(full_answer(compute)),
                  lambda c, h=compute.host: c.watch(h, 0, 1.0, view_since=0).view,
                  host_view_from_dict, "view"))
    cases.append((f"delta (+{SPAN}), {compute.host}", delta_answer(compute),
                  lambda c, h=compute.host: c.fetch_view(h, 1).update, delta_from_dict, None))
    sizes = {label: len(body) for label, body, *_ in cases}
    print(f"{args.hosts} hosts, {args.runs} runs; python {sys.version.split()[0]}")
    print(f"{'answer':<34} {'kB':>5}  {'step':<26} {'median ms':>9} {'min ms':>7}")
    for label, body, whole, from_dict, part in cases:
        for name, step, (median, least) in rows(label, body, whole, from_dict, args.runs, part):
            print(f"{name:<34} {sizes[name] / 1000:>5.0f}  {step:<26} {median:>9.2f} "
                  f"{least:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
