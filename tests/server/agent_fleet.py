"""Many agents in one test process: the real agent loop (``dvr.agent.loop``) with the fake
dataplane driver, each with its own client, attached to live server processes; and the
check that they converged (what each holds is what a fresh full fetch of its host says)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa

from dvr.agent.config import AgentConfig
from dvr.agent.dataplane import HostDataplane
from dvr.agent.drivers.fake import fake_drivers
from dvr.agent.loop import AgentLoop
from dvr.client import ServerClient
from dvr.server.services.notify import newest_change_for_host


@dataclass
class FleetAgent:
    host: str
    loop: AgentLoop
    client: ServerClient
    thread: threading.Thread


@dataclass
class Fleet:
    agents: list[FleetAgent]
    stop: threading.Event

    def close(self) -> None:
        self.stop.set()
        for agent in self.agents:
            agent.loop.wake.poke()  # ends its wait at once
        for agent in self.agents:
            agent.thread.join(timeout=30)
        for agent in self.agents:
            agent.client.close()
        assert not [a.host for a in self.agents if a.thread.is_alive()], "agents still running"


def start_fleet(hosts: Sequence[str], servers_of: Callable[[int], Sequence[str]],
                **settings: object) -> Fleet:
    """One agent per host, the i-th talking to ``servers_of(i)``; each runs ``AgentLoop.run``
    in a thread (which starts its watch thread) until the fleet is closed."""
    stop = threading.Event()
    agents = []
    for i, host in enumerate(hosts):
        config = AgentConfig(
            host=host, servers=tuple(servers_of(i)), local_ip=f"198.19.{i // 250}.{i % 250 + 1}",
            mode="dvr_snat" if i == 0 else "dvr", **settings,  # type: ignore[arg-type]
        ).validate()
        client = ServerClient(config.servers, timeout=30.0)
        loop = AgentLoop(config, client, HostDataplane(config, fake_drivers()))
        thread = threading.Thread(target=loop.run, args=(stop,), name=f"agent-{host}",
                                  daemon=True)
        agents.append(FleetAgent(host, loop, client, thread))
    for agent in agents:
        agent.thread.start()
    return Fleet(agents, stop)


def lagging(fleet: Fleet, reference: ServerClient, engine: sa.Engine) -> list[str]:
    """The hosts whose agent has not converged: it applied an older revision than the newest
    change concerning its host, its last reconcile failed, or the view it holds is not what
    a fresh full fetch of its host's view says (the revision aside: a view is stamped with
    the revision of its fetch)."""
    with engine.connect() as conn:
        newest = {a.host: newest_change_for_host(conn, a.host) for a in fleet.agents}
    behind = []
    for agent in fleet.agents:
        loop = agent.loop
        held, outcome = loop.view, loop.last_outcome
        if held is None or outcome is None or outcome.errors:
            behind.append(agent.host)
        elif loop.applied_revision < newest[agent.host] or held.revision < newest[agent.host]:
            behind.append(agent.host)
    if behind:
        return behind
    for agent in fleet.agents:  # all caught up by revision: compare whole views
        held = agent.loop.view
        assert held is not None
        fresh = reference.host_view(agent.host)
        if replace(fresh, revision=0) != replace(held, revision=0):
            behind.append(agent.host)
    return behind


def wait_converged(fleet: Fleet, reference: ServerClient, engine: sa.Engine,
                   timeout: float) -> float:
    """Seconds until every agent converged; fails the test with the laggards after
    ``timeout``."""
    started = time.monotonic()
    behind: list[str] = []
    while time.monotonic() - started < timeout:
        behind = lagging(fleet, reference, engine)
        if not behind:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{len(behind)} agents did not converge within {timeout} s: "
                         f"{behind[:10]}")
