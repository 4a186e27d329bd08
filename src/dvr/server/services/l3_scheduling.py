"""Manual L3 scheduling (``POST/DELETE /v2.0/agents/{id}/l3-routers``), with Neutron's rules.

What an L3 agent hosts by hand is a router's *central* part: a centralized router whole, a
distributed router's SNAT part.  The distributed part follows the VM ports and cannot be
assigned (Neutron refuses agents in ``dvr`` mode for the same reason).

- not an L3 agent, or admin down: 404 ``InvalidL3Agent``;
- an agent in ``dvr`` mode: 400 ``DVRL3CannotAssignToDvrAgent``;
- a distributed router on a ``legacy`` agent: 409 ``RouterL3AgentMismatch``;
- a router whose central part is on another agent already: 409 ``RouterHostedByL3Agent``
  (on the same agent the call changes nothing);
- removing a router the agent does not host centrally: 409 ``RouterNotHostedByL3Agent``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dvr.db.tables import agents
from dvr.server.errors import BadRequestError, ConflictError, NotFoundError
from dvr.server.services.agents import L3_AGENT, get_agent
from dvr.server.services.queries import get_router
from dvr.server.services.routers import bind_central_host, unbind_central_host
from dvr.server.services.scheduler import central_host
from dvr.server.tx import WriteTx


def _l3_agent(tx: WriteTx, agent_id: str) -> Any:
    agent = get_agent(tx.conn, agent_id)
    if agent.agent_type != L3_AGENT or not agent.admin_state_up:
        raise NotFoundError(
            f"Agent {agent_id} is not a L3 Agent or has been disabled", type_name="InvalidL3Agent"
        )
    return agent


def _agent_on(tx: WriteTx, host: str) -> str:
    query = select(agents.c.id).where(agents.c.host == host, agents.c.agent_type == L3_AGENT)
    return tx.conn.execute(query).scalar() or host


def add_router_to_agent(tx: WriteTx, agent_id: str, router_id: Any) -> None:
    if not isinstance(router_id, str):
        raise BadRequestError("Invalid input: router_id is required", type_name="InvalidInput")
    agent = _l3_agent(tx, agent_id)
    router = get_router(tx.conn, router_id)
    mode = (agent.configurations or {}).get("agent_mode", "legacy")
    if mode == "dvr":
        raise BadRequestError(
            "Not allowed to manually assign a router to an agent in 'dvr' mode.",
            type_name="DVRL3CannotAssignToDvrAgent",
        )
    if mode == "legacy" and router.distributed:
        raise ConflictError(
            f"Cannot host distributed router {router_id} on legacy L3 agent {agent_id}.",
            type_name="RouterL3AgentMismatch",
        )
    current = central_host(tx.conn, router_id)
    if current == agent.host:
        return
    if current is not None:
        raise ConflictError(
            f"The router {router_id} has been already hosted by the L3 Agent "
            f"{_agent_on(tx, current)}.",
            type_name="RouterHostedByL3Agent",
        )
    bind_central_host(tx, router_id, agent.host)


def remove_router_from_agent(tx: WriteTx, agent_id: str, router_id: str) -> None:
    agent = get_agent(tx.conn, agent_id)
    get_router(tx.conn, router_id)
    if agent.agent_type != L3_AGENT or central_host(tx.conn, router_id) != agent.host:
        raise ConflictError(
            f"The router {router_id} is not hosted by L3 agent {agent_id}.",
            type_name="RouterNotHostedByL3Agent",
        )
    unbind_central_host(tx, router_id)
