"""The agent protocol, JSON under /dvr/v1 (docs/design.md §2).

POST /dvr/v1/agents                        register/update a host's agents
POST /dvr/v1/hosts/{host}/heartbeat        liveness, applied revision, port status
POST /dvr/v1/hosts/{host}/host-mac         the host's DVR MAC (allocate-or-return)
GET  /dvr/v1/hosts/{host}/view             HostView.to_dict()
GET  /dvr/v1/hosts/{host}/view?since=R     a HostViewDelta from R ("full": false) or the
                                           view ("full": true); R=0: the caller has none
GET  /dvr/v1/hosts/{host}/watch?since=N&timeout=S   long poll for changes
GET  /dvr/v1/hosts/{host}/watch?...&view_since=R     the same; an answer with changes also
                                           carries "view": what view?since=R answers
GET  /dvr/v1/hosts                         host summaries
GET  /dvr/v1/hosts/{host}/routers          routers hosted on a host
GET  /dvr/v1/hosts/{host}/agent-state      what the agent last applied (VIFs, local VLANs)
GET  /dvr/v1/routers/{id}/hosts            hosts of a router
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.db.tables import dvr_host_macs, dvr_hosts
from dvr.model.hostview import HostView
from dvr.model.hostview_delta import HOLDS_NO_VIEW, HostViewDelta, compact_delta_dict
from dvr.server.api.common import json_response
from dvr.server.attributes import decode_json
from dvr.server.auth import Identity
from dvr.server.authn import describe_caller, request_identity
from dvr.server.context import ServerContext
from dvr.server.errors import NeutronError, ServiceUnavailable, http_bad_request
from dvr.server.hostview import build_host_view
from dvr.server.hostview_served import view_update
from dvr.server.jsonbody import FastJSONResponse
from dvr.server.memory_only import MEMORY_ONLY, MEMORY_ONLY_NOW, NeedsDatabase, PartsBusy
from dvr.server.query_params import number_param, revision_param
from dvr.server.services import agents as agent_service
from dvr.server.services import host_macs
from dvr.server.services.heartbeats import parse_heartbeat
from dvr.server.services.notify import (
    changes_for_host,
    revision_bounds,
    unchanged_since,
)
from dvr.server.services.queries import get_router
from dvr.server.services.scheduler import (
    all_router_hosts,
    central_host,
    router_hosts,
    routers_hosted_on,
)
from dvr.server.shutdown_guard import RETRY_AFTER_SHUTDOWN
from dvr.server.tx import ReadTx, WriteTx, utcnow
from dvr.server.validate import is_plain_text

PREFIX = "/dvr/v1"
log = logging.getLogger("dvr.server.auth")


async def _json_object(request: Request, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if allow_empty and not raw.strip():
        return {}
    body = decode_json(raw)
    if not isinstance(body, dict):
        raise http_bad_request("Body contains invalid data")
    return body


def no_changes(revision: int, resync: bool = False) -> dict[str, Any]:
    """A watch answer without changes: up to date at ``revision`` (or, ``resync``, the
    changes since the caller's revision are no longer known)."""
    return {"revision": revision, "changes": [], "resync": resync}


def closing_answer(result: dict[str, Any]) -> Response:
    """A watch's answer ``result`` at the server's shutdown: marked ``closing``, with the
    Retry-After a shutdown asks for."""
    return FastJSONResponse({**result, "closing": True},
                            headers={"Retry-After": str(RETRY_AFTER_SHUTDOWN)})


def watch_result(tx: ReadTx, host: str, since: int,
                 view: Callable[[ReadTx], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The changes for ``host`` after ``since``; with ``view``, an answer with changes also
    carries ``view(tx)`` under "view" (read in the same transaction as the changes)."""
    pruned, revision = revision_bounds(tx.conn)
    if since < pruned or since > revision:
        return no_changes(revision, resync=True)
    seen: dict[tuple[str, str], None] = {}
    for _, kind, object_id in changes_for_host(tx.conn, host, since):
        seen.setdefault((kind, object_id), None)
    result = changes_answer(revision, list(seen))
    if view is not None and seen:
        result["view"] = view(tx)
    return result


def host_summaries(tx: ReadTx) -> list[dict[str, Any]]:
    macs = dict(tx.conn.execute(select(dvr_host_macs.c.host, dvr_host_macs.c.mac_address)).all())
    hosted = all_router_hosts(tx.conn)
    rows = tx.conn.execute(select(dvr_hosts).order_by(dvr_hosts.c.host))
    return [
        {
            "host": row.host,
            "agent_mode": row.agent_mode,
            "host_mac": macs.get(row.host),
            "tunnel_ip": row.tunnel_ip,
            "datapath_type": row.datapath_type,
            "alive": agent_service.is_alive(tx, row.host, row.heartbeat_at),
            "heartbeat_timestamp": agent_service.format_agent_time(
                agent_service.last_seen(tx, row.host, row.heartbeat_at)
            ),
            "applied_revision": tx.liveness.newest_applied(
                row.host, row.applied_revision, row.heartbeat_at
            ),
            "routers": sorted(hosted.get(row.host, ())),
        }
        for row in rows
    ]


def changes_answer(revision: int, changes: list[tuple[str, str]]) -> dict[str, Any]:
    """A watch answer: up to date at ``revision``, with these (kind, id) changed."""
    return {"revision": revision, "changes": [{"kind": k, "id": i} for k, i in changes],
            "resync": False}


def watch_result_from_memory(context: ServerContext, host: str, view_since: int | None,
                             known: tuple[int, list[tuple[str, str]]],
                             memory: Any = MEMORY_ONLY) -> dict[str, Any]:
    """``watch_result`` without the database: the changes the hub remembers (``known``:
    ``ChangeHub.changes_known``) and, with ``view_since``, the view update built from what
    memory holds at that revision; ``NeedsDatabase`` when the view needs a read
    (``memory``: ``MEMORY_ONLY_NOW`` on the event loop, ``PartsBusy`` rather than wait for a
    lock a thread holds)."""
    revision, changes = known
    result = changes_answer(revision, changes)
    if view_since is not None and changes:
        tx = ReadTx(conn=memory, config=context.config, liveness=context.liveness)
        result["view"] = view_answer(context, tx, host, view_since, revision)
    return result


def watch_result_in_thread(context: ServerContext, host: str, view_since: int | None,
                           known: tuple[int, list[tuple[str, str]]]) -> dict[str, Any] | None:
    """``watch_result_from_memory`` in a thread (it may wait for the parts' lock); None
    when the view needs a read."""
    try:
        return watch_result_from_memory(context, host, view_since, known)
    except NeedsDatabase:
        return None


def view_answer(context: ServerContext, tx: ReadTx, host: str, since: int | None,
                revision: int | None = None) -> dict[str, Any]:
    """The answer to ``view?since=R`` (``since`` None: to ``view``), as JSON-ready data
    (``revision``: the revision ``tx`` reads, when the caller knows it).

    A caller holding a view at R that this process did not serve (another process did, or
    this one before a restart) gets an empty delta to the current revision when no change
    concerning its host came after R: its view is the current one, and nothing is built.
    This process remembers no view for it, so its next change brings the full view."""
    if since is not None and since != HOLDS_NO_VIEW and (
        context.served_views.served(host, since) is None
    ):
        revision = unchanged_since(tx.conn, host, since)
        if revision is not None:
            nothing = HostViewDelta(host=host, from_revision=since, to_revision=revision)
            return {**compact_delta_dict(context.view_forms.to_jsonable(nothing)),
                    "full": False}
    view = build_host_view(tx.conn, host, context.view_parts, revision)
    if since is None:  # the first protocol: the full view, not remembered
        return fields_of(view)
    update = view_update(context.served_views, view, since)
    if update is view:
        return {**fields_of(view), "full": True}
    return {**compact_delta_dict(context.view_forms.to_jsonable(update)), "full": False}


def adopt_view(context: ServerContext, tx: ReadTx, host: str, held: int) -> bool:
    """Remember ``host``'s view now as the view it was served at ``held`` when nothing
    concerning it changed since (``view_adoption``); whether it did."""
    if context.served_views.served(host, held) is not None:
        return False
    if unchanged_since(tx.conn, host, held) is None:
        return False
    view = build_host_view(tx.conn, host, context.view_parts)
    context.served_views.remember(dataclasses.replace(view, revision=held))
    return True


ADOPTION_PATIENCE = 30.0  # seconds an adoption waits for a view turn before giving up


def offer_adoption(context: ServerContext, host: str, held: int) -> None:
    """After a watch found nothing new for a host holding a view at ``held`` that this
    process did not serve: adopt it in the background (``dvr.server.view_adoption``)."""
    if held == HOLDS_NO_VIEW or context.served_views.served(host, held) is not None:
        return

    async def adopt() -> None:
        gate = context.view_gate
        if not await gate.wait_turn(ADOPTION_PATIENCE):
            return
        try:
            await context.read(lambda tx: adopt_view(context, tx, host, held))
        except ServiceUnavailable:  # the database is away, or the server stopping
            return
        finally:
            gate.leave()

    context.view_adoption.offer(host, adopt)


def fields_of(view: HostView) -> dict[str, Any]:
    """A view's fields, as they are (``FastJSONResponse`` renders the dataclasses in them)."""
    return {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}


def host_param(request: Request) -> str:
    host = request.path_params["host"]
    if not host or not is_plain_text(host):
        raise http_bad_request("Invalid input for host. Reason: not a valid host name.")
    return host


def _register(tx: WriteTx, body: dict[str, Any], caller: Identity
              ) -> tuple[list[dict[str, Any]], str | None]:
    """The host's agents as registered, and its DVR MAC when it has one already: an agent
    that starts again needs no second request for it (None: ask ``host-mac``)."""
    agents = agent_service.register(tx, body, caller)
    return agents, host_macs.host_mac(tx, agents[0]["host"])


def routes(context: ServerContext) -> list[Route]:
    config = context.config

    async def register(request: Request) -> Response:
        body = await _json_object(request)
        caller = request_identity(request)
        try:
            agents, mac = await context.write(lambda tx: _register(tx, body, caller))
        except NeutronError as exc:
            if exc.status in (403, 409):
                log.warning(
                    "refused to register host %r for %s: %s",
                    body.get("host"), describe_caller(request), exc.message,
                )
            raise
        return json_response({"agents": agents, "host_mac": mac})

    async def heartbeat(request: Request) -> Response:
        """Liveness from memory (a database write only when the report says something new);
        the answer carries ``revision``, the newest revision concerning the host, which the
        agent compares with what it holds (a gap: a change its watch missed)."""
        host = host_param(request)
        body = await _json_object(request, allow_empty=True)
        answer = await context.keeper.receive(parse_heartbeat(host, body, utcnow()))
        with contextlib.suppress(ServiceUnavailable):  # the database is down: no revision
            answer = {**answer, "revision": await context.host_revision(host)}
        return json_response(answer)

    async def host_mac(request: Request) -> Response:
        host = host_param(request)
        mac = await context.read(lambda tx: host_macs.registered_host_mac(tx, host))
        if mac is None:  # not allocated yet, or the host is not registered (a 404)
            mac = await context.write(lambda tx: host_macs.allocate_or_return(tx, host))
        return json_response({"host": host, "mac_address": mac})

    async def view(request: Request) -> Response:
        host = host_param(request)
        since = revision_param(request, "since")
        body = await context.read(lambda tx: view_answer(context, tx, host, since))
        return FastJSONResponse(body)

    async def watch(request: Request) -> Response:
        host = host_param(request)
        since = revision_param(request, "since") or 0
        view_since = revision_param(request, "view_since")
        timeout = min(
            number_param(request, "timeout", config.watch_default_timeout),
            config.watch_max_timeout,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def view(tx: ReadTx) -> dict[str, Any]:
            return view_answer(context, tx, host, view_since)

        async def read_result(woken: bool, none_upto: int) -> dict[str, Any]:
            """The changes after ``since`` (none up to ``none_upto``, as this watch read
            already), with the view update from ``view_since`` when a
            view build gets a turn: at once when one is free; after a wake-up (a change for
            this host was published) by waiting for one — the agent would ask for that view
            next — until half the gate's queue timeout past the watch's own deadline (the
            agent waits 10 s past it: the view's build fits in the rest).  A server still
            busy then leaves it out, and the agent asks for it as before.  While the
            database is unreachable, no changes: the watch goes on waiting in memory (a
            write cannot commit meanwhile).  When the hub remembers every write since
            ``since`` (this process's), the changes come from memory, and so does the view
            when memory holds all it is made of (a woken host of a big change: no
            transaction); else both are read in one transaction, which the watches needing
            one meanwhile share (``read_together``: the first reads the revision's shared
            parts, the others find them in memory)."""
            gate = context.view_gate
            patience = deadline + config.load.view_queue_timeout / 2 - loop.time()
            with_view = view_since is not None and (
                await gate.wait_turn(patience) if woken else gate.try_enter()
            )
            try:
                known = context.hub.changes_known(host, none_upto, config.retained_changes)
                if known is not None and not (with_view and known[1]):
                    return changes_answer(*known)
                if known is not None:
                    # on the loop: a thread's turn costs more than most such views
                    try:
                        return watch_result_from_memory(context, host, view_since, known,
                                                        MEMORY_ONLY_NOW)
                    except PartsBusy:
                        result = await run_in_threadpool(
                            watch_result_in_thread, context, host, view_since, known)
                    except NeedsDatabase:
                        result = None
                    if result is not None:
                        return result
                return await context.read_together(
                    lambda tx: watch_result(tx, host, since, view if with_view else None))
            except ServiceUnavailable:
                return no_changes(since)
            finally:
                if with_view:
                    context.view_gate.leave()

        woken = False
        none_upto = since  # no change concerns the host up to this revision (read so far)
        while True:
            event = context.hub.snapshot(host)
            # a watch that was not woken asks the database only when the hub cannot tell
            # that nothing after ``since`` concerns the host (an agent's next watch after
            # an answer: one read per host and change saved)
            quiet = None if woken else context.hub.nothing_new(host, since)
            if quiet is not None:
                result = no_changes(quiet)
            else:
                result = await read_result(woken, none_upto)
            if not (result["changes"] or result["resync"]):
                none_upto = max(none_upto, result["revision"])
            if view_since is not None and not (result["changes"] or result["resync"]):
                offer_adoption(context, host, view_since)
            remaining = deadline - loop.time()
            if result["changes"] or result["resync"] or remaining <= 0:
                return FastJSONResponse(result)
            woken = await context.hub.wait(event, remaining)
            if not woken and loop.time() >= deadline:
                # Nothing was published for this host since before the read: its answer
                # stands (no second read per idle watch; a change another process made
                # and the hub has not heard of yet is found by the next watch's read).
                return FastJSONResponse(result)
            if context.hub.closed:
                # The server is going away: the watch ends as a long poll ends, with what
                # it found, and says so ("closing" + Retry-After): the agent asks again
                # (another server, or this one once it is back) from the view it holds.
                # Not a 503: nothing failed, and 1,000 agents would each log an error.
                return closing_answer(result)

    async def hosts(request: Request) -> Response:
        return json_response(await context.read(host_summaries))

    async def agent_state(request: Request) -> Response:
        host = host_param(request)
        return json_response(await context.read(lambda tx: agent_service.agent_report(tx, host)))

    async def host_routers(request: Request) -> Response:
        host = host_param(request)
        ids = await context.read(lambda tx: sorted(routers_hosted_on(tx.conn, host)))
        return json_response({"host": host, "routers": ids})

    async def router_host_list(request: Request) -> Response:
        router_id = request.path_params["id"]

        def work(tx: ReadTx) -> dict[str, Any]:
            get_router(tx.conn, router_id)
            return {
                "router_id": router_id,
                "hosts": sorted(router_hosts(tx.conn, [router_id])[router_id]),
                "snat_host": central_host(tx.conn, router_id),
            }

        return json_response(await context.read(work))

    return [
        Route(f"{PREFIX}/agents", register, methods=["POST"]),
        Route(f"{PREFIX}/hosts", hosts, methods=["GET"]),
        Route(f"{PREFIX}/hosts/{{host}}/heartbeat", heartbeat, methods=["POST"]),
        Route(f"{PREFIX}/hosts/{{host}}/host-mac", host_mac, methods=["POST"]),
        Route(f"{PREFIX}/hosts/{{host}}/view", view, methods=["GET"]),
        Route(f"{PREFIX}/hosts/{{host}}/watch", watch, methods=["GET"]),
        Route(f"{PREFIX}/hosts/{{host}}/routers", host_routers, methods=["GET"]),
        Route(f"{PREFIX}/hosts/{{host}}/agent-state", agent_state, methods=["GET"]),
        Route(f"{PREFIX}/routers/{{id}}/hosts", router_host_list, methods=["GET"]),
    ]
