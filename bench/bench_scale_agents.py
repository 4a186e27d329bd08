"""One worker process of `make bench-scale`: many simulated hosts, each the real agent loop
(``dvr.agent.loop.AgentLoop``, two threads: client, watch, deltas patching the held view,
heartbeats and reports) talking HTTP to a real dvr-server, with one of two dataplanes
(``AGENT_KINDS``, ``--agents``):

- ``full``: the real ``HostDataplane`` on the fake in-memory drivers
  (``dvr.agent.drivers.fake``): every reconcile computes the host's desired state and
  applies it to the fakes, on this machine's cores;
- ``loop``: the control plane alone (``ViewTakenAsApplied``): every view is taken as applied
  without computing flows; the loop reports what the full one reports on the fakes.

    python bench/bench_scale_agents.py --token-file F --agents loop < hosts.json > events.jsonl

Standard input: one JSON list of ``{"host", "mode", "local_ip", "server"}``, then ``start``
(the agents start only then; anything else ends the worker), then command lines.
Standard output: one JSON event a line (``EVENT_KINDS``), every time from
``time.time()`` so the harness can compare it with its own clock:

- ``ready``: the worker has started and read its hosts, and waits for ``start``;
- ``woken``: the host's watch answered with changes (``revision``);
- ``caught_up``: after a failed watch, the loop's immediate one found nothing missed
  (``revision``): the host is in sync without fetching its view;
- ``applied``: the loop reconciled a view (``revision``; ``received``: when the loop had
  fetched it and began to reconcile; ``changed``: its contents, revision aside, differ from
  the view reconciled before; ``first``: the first since the start);
- ``error``: a request of the agent failed (``kind``: timeout, 5xx, connect, other);
- ``checked``: the answer to ``check HOST...`` (``stale``: the server's view of the host
  differs, revision aside, from the view its agent holds);
- ``usage``: the answer to ``usage`` (this process's CPU seconds and resident memory).

Commands: ``check HOST...``, ``usage``, ``stop``.  Nothing happens at import.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from dvr.agent.config import AgentConfig
from dvr.agent.dataplane import HostDataplane
from dvr.agent.desired import allocate_local_vlans
from dvr.agent.drivers.fake import fake_drivers
from dvr.agent.loop import AgentLoop, ApplyOutcome, Dataplane, subscribe_local_changes
from dvr.client import ServerClient, ServerError, ViewAnswer, WatchResult
from dvr.gc_tuning import tune_garbage_collector
from dvr.model.hostview import HostView

EVENT_KINDS = ("ready", "woken", "caught_up", "applied", "error", "checked", "usage")
AGENT_KINDS = ("full", "loop")
Emit = Callable[[dict[str, Any]], None]


def error_kind(exc: BaseException) -> str:
    """How a failed request is counted: timeout, 5xx, connect (the server is not there, as
    during a restart), other."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, ServerError) and exc.status >= 500:
        return "5xx"
    if isinstance(exc, httpx.ConnectError | httpx.RemoteProtocolError | httpx.ReadError):
        return "connect"
    return "other"


def contents(view: HostView) -> HostView:
    """The view with its revision zeroed: two views with equal contents compare equal."""
    return dataclasses.replace(view, revision=0)


def request_name(method: str, path: str, host: str) -> str:
    """A failed request as the harness counts it: the method and the path's last part, or
    the whole path with the host's name as ``{host}`` (``POST heartbeat``,
    ``POST /dvr/v1/agents``)."""
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    if f"/{host}/" in path:
        return f"{method} {tail}"
    return f"{method} {path}"


class RecordingClient(ServerClient):
    """The agent's client, telling the harness of every wake-up and failed request."""

    def __init__(self, server: str, token: str | None, host: str, emit: Emit,
                 view_patience: float) -> None:
        super().__init__(server, token, view_patience=view_patience)
        self.host, self.emit = host, emit

    def _failed(self, exc: BaseException, request: str) -> None:
        status = exc.status if isinstance(exc, ServerError) else None
        self.emit({"event": "error", "host": self.host, "t": time.time(),
                   "kind": error_kind(exc), "status": status, "request": request,
                   "detail": repr(exc)[:200]})

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return super().request(method, path, **kwargs)
        except Exception as exc:
            self._failed(exc, request_name(method, path, self.host))
            raise

    def fetch_view(self, host: str, since: int) -> ViewAnswer:
        try:
            return super().fetch_view(host, since)
        except Exception as exc:
            self._failed(exc, "GET view")
            raise

    def watch(self, host: str, since: int, timeout: float,
              view_since: int | None = None) -> WatchResult:
        try:
            result = super().watch(host, since, timeout, view_since)
        except Exception as exc:
            self._failed(exc, "GET watch")
            raise
        if result.changes or result.resync:
            self.emit({"event": "woken", "host": host, "t": time.time(),
                       "revision": result.revision, "resync": result.resync})
        elif timeout == 0:  # the loop's catch-up after a failed watch: nothing was missed
            self.emit({"event": "caught_up", "host": host, "t": time.time(),
                       "revision": result.revision})
        return result


class ViewTakenAsApplied:
    """The loop's ``Dataplane`` for the control plane alone: every view is applied at once,
    no flow computed.  Its outcome is what ``HostDataplane`` on the fake drivers reports:
    nothing is plugged into their bridges (so no VIF, no port up), and one local VLAN per
    network of the view, allocated as the desired state allocates them."""

    def __init__(self) -> None:
        self.local_vlans: dict[str, int] = {}

    def plugged_vifs(self) -> frozenset[str]:
        return frozenset()

    def reconcile(self, view: HostView) -> ApplyOutcome:
        self.local_vlans = allocate_local_vlans((n.id for n in view.networks),
                                                self.local_vlans)
        return ApplyOutcome(counts={}, errors=(), ports_up=(), vifs={},
                            local_vlans=dict(self.local_vlans), plugged=frozenset())


def dataplane_of(kind: str, config: AgentConfig) -> Dataplane:
    """The simulated host's dataplane of ``kind`` (``AGENT_KINDS``)."""
    if kind == "full":
        return HostDataplane(config, fake_drivers())
    if kind == "loop":
        return ViewTakenAsApplied()
    raise ValueError(f"agent kind {kind!r} is not one of {AGENT_KINDS}")


class RecordingDataplane:
    """A simulated host's dataplane, telling the harness when a view is applied (the loop's
    hook: the reconcile returned without errors)."""

    def __init__(self, config: AgentConfig, inner: Dataplane, emit: Emit) -> None:
        self.inner = inner
        self.host, self.emit = config.host, emit
        self.applied: HostView | None = None  # contents of the last view applied

    def plugged_vifs(self) -> frozenset[str]:
        return self.inner.plugged_vifs()

    def on_local_change(self, callback: Callable[[], None]) -> None:
        subscribe_local_changes(self.inner, callback)

    def reconcile(self, view: HostView) -> ApplyOutcome:
        received = time.time()
        outcome = self.inner.reconcile(view)
        if not outcome.errors:
            now = contents(view)
            self.emit({"event": "applied", "host": self.host, "t": time.time(),
                       "received": received, "revision": view.revision,
                       "first": self.applied is None,
                       "changed": self.applied is not None and now != self.applied})
            self.applied = now
        return outcome


@dataclasses.dataclass
class SimulatedHost:
    loop: AgentLoop
    client: RecordingClient
    thread: threading.Thread


def start_host(spec: dict[str, str], token: str | None, stop: threading.Event,
               emit: Emit, settings: dict[str, float], kind: str) -> SimulatedHost:
    config = AgentConfig(host=spec["host"], server=spec["server"], mode=spec["mode"],
                         local_ip=spec["local_ip"], datapath="system", token=token,
                         **settings).validate()
    client = RecordingClient(config.server, token, config.host, emit, config.view_patience)
    loop = AgentLoop(config, client, RecordingDataplane(config, dataplane_of(kind, config), emit))
    thread = threading.Thread(target=loop.run, args=(stop,), name=f"agent-{config.host}",
                              daemon=True)
    thread.start()
    return SimulatedHost(loop, client, thread)


def check(host: SimulatedHost) -> bool:
    """Whether the server's view of the host differs (revision aside) from the view its
    agent holds.  Asked without ``since``: the server does not remember a view served so,
    and the agent's next delta is from the view it holds, as without the check."""
    held = host.loop.view
    current = host.client.host_view(host.loop.config.host)
    return held is None or contents(current) != contents(held)


def usage() -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": me.ru_utime + me.ru_stime, "max_rss_mb": me.ru_maxrss / 1024}


def serve_commands(hosts: dict[str, SimulatedHost], emit: Emit) -> None:
    """Answer the harness's commands until ``stop`` (or the end of standard input)."""
    for line in sys.stdin:
        command, *names = line.split()
        if command == "stop":
            return
        if command == "usage":
            emit({"event": "usage", "t": time.time(), **usage()})
        elif command == "check":
            for name in names:
                detail = None
                try:
                    stale: bool | None = check(hosts[name])
                except Exception as exc:  # noqa: BLE001 - reported as unknown, with why
                    stale, detail = None, repr(exc)[:200]
                emit({"event": "checked", "host": name, "t": time.time(), "stale": stale,
                      "detail": detail})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--agents", choices=AGENT_KINDS, default="full",
                        help="the simulated hosts' dataplane (default full)")
    parser.add_argument("--heartbeat-interval", type=float,
                        default=AgentConfig.heartbeat_interval)
    parser.add_argument("--local-poll-interval", type=float, default=1.0)
    parser.add_argument("--log", default="/dev/null",
                        help="the agents' log (a line per reconcile, with its timings)")
    args = parser.parse_args(argv)
    logging.basicConfig(filename=args.log, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    logging.getLogger("dvr.agent").setLevel(logging.INFO)
    token = open(args.token_file).read().strip()  # noqa: SIM115
    specs = json.loads(sys.stdin.readline())
    tune_garbage_collector()  # as dvr-agent does at start (its views are large and acyclic)
    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        line = json.dumps(event) + "\n"
        with lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    stop = threading.Event()
    settings = {"heartbeat_interval": args.heartbeat_interval,
                "local_poll_interval": args.local_poll_interval}
    # imported and ready: the harness starts every worker's agents at once (``start``), so
    # that the sync it times is the agents' and not the interpreters' start
    emit({"event": "ready", "t": time.time()})
    if sys.stdin.readline().split() != ["start"]:
        return 0
    # each host with its own credential when the harness minted one, else the admin token
    hosts = {spec["host"]: start_host(spec, spec.get("token", token), stop, emit, settings,
                                      args.agents)
             for spec in specs}
    try:
        serve_commands(hosts, emit)
    finally:
        stop.set()
        deadline = time.monotonic() + 10  # a loop busy in a long reconcile is not waited for
        for host in hosts.values():
            host.thread.join(timeout=max(0.0, deadline - time.monotonic()))
            host.client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
