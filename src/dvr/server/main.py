"""``dvr-server``: run the API on one or more listeners (TCP and/or unix sockets)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from dvr.db.migrate import upgrade_to_head
from dvr.db.session import Database, DatabaseDriverMissing, is_postgres_url
from dvr.gc_tuning import tune_garbage_collector
from dvr.server.admin_token import admin_token_path, read_or_create_admin_token
from dvr.server.app import create_app
from dvr.server.config import (
    DEFAULT_LISTEN,
    DEFAULT_STATE_DIR,
    ApiLimits,
    Listener,
    LoadLimits,
    ServerConfig,
    TlsFiles,
    parse_listener,
    parse_vni_range,
)
from dvr.server.scope_tag import TRANSPORT_KEY, ScopeTag
from dvr.server.shutdown_guard import ShutdownGuard
from dvr.server.tls import uvicorn_tls_options
from dvr.server.validate import to_mac
from dvr.server.workers import Supervisor, bind_tcp_socket, remove_unix_sockets

log = logging.getLogger("dvr.server")


@dataclass(frozen=True)
class ServerOptions:
    """What the command line says beyond the ServerConfig."""

    log_level: str = "info"
    admin_token_file: Path | None = None  # None: <state-dir>/admin-token
    workers: int = 1  # server processes sharing the listeners (more than one: PostgreSQL)


def with_admin_token(config: ServerConfig, options: ServerOptions) -> ServerConfig:
    """The config with its admin token read (or created), unless authentication is off."""
    if config.no_auth:
        return config
    path = options.admin_token_file or admin_token_path(config.state_dir)
    token = read_or_create_admin_token(path, create=options.admin_token_file is None)
    return dataclasses.replace(config, admin_token=token)


def parse_args(argv: list[str] | None = None) -> tuple[ServerConfig, ServerOptions]:
    parser = argparse.ArgumentParser(
        prog="dvr-server", description="dvr control-plane server (Neutron API v2.0 + /dvr/v1)"
    )
    parser.add_argument("--db", help="database URL (default sqlite:///<state-dir>/dvr.db)")
    parser.add_argument(
        "--listen",
        action="append",
        help=f"HOST:PORT or unix:/path (repeatable; default {DEFAULT_LISTEN})",
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--vni-range", default="1000:1999", help="VXLAN VNIs LOW:HIGH")
    parser.add_argument("--host-mac-base", default="fa:16:3f:00:00:00")
    parser.add_argument(
        "--agent-down-time", type=int, default=75, help="seconds without heartbeat = dead"
    )
    parser.add_argument(
        "--admin-token-file", type=Path,
        help="file holding the admin token (default <state-dir>/admin-token, created on first "
        "start, mode 0600)",
    )
    parser.add_argument(
        "--no-auth", action="store_true",
        help="no authentication: every caller is admin (labs and tests only)",
    )
    parser.add_argument("--tls-cert", type=Path, help="serve https on TCP listeners")
    parser.add_argument("--tls-key", type=Path, help="the --tls-cert's private key")
    parser.add_argument(
        "--tls-client-ca", type=Path,
        help="mutual TLS: a client certificate signed by this CA is the host named by its CN",
    )
    parser.add_argument(
        "--heartbeat-flush-interval", type=float, default=15.0, metavar="S",
        help="heartbeats that change nothing but liveness reach the database at most this "
        "often (default 15; below --agent-down-time)",
    )
    load = LoadLimits()
    parser.add_argument(
        "--max-concurrent-views", type=int, default=load.max_concurrent_views, metavar="N",
        help=f"host views built at once (default {load.max_concurrent_views})",
    )
    parser.add_argument(
        "--max-queued-views", type=int, default=load.max_queued_views, metavar="N",
        help="view requests that may always wait for a turn; more while the backlog would "
             "drain within half the queue timeout; beyond: 503 (default "
             f"{load.max_queued_views})",
    )
    parser.add_argument(
        "--max-pending-requests", type=int, default=load.max_pending_requests, metavar="N",
        help=f"other requests in progress; beyond: 503 (default {load.max_pending_requests})",
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="server processes sharing the listening sockets (default 1; more than one needs "
        "a PostgreSQL --db)",
    )
    parser.add_argument("--log-level", default="info")
    defaults = ApiLimits()
    for field in dataclasses.fields(ApiLimits):
        parser.add_argument(
            "--" + field.name.replace("_", "-"), type=int, default=getattr(defaults, field.name),
            metavar="N", help=f"API limit (default {getattr(defaults, field.name)})",
        )
    args = parser.parse_args(argv)
    limits = ApiLimits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ApiLimits)})
    if any(getattr(limits, f.name) < 0 for f in dataclasses.fields(ApiLimits)):
        parser.error("API limits must not be negative")
    try:
        listeners = tuple(parse_listener(x) for x in (args.listen or [DEFAULT_LISTEN]))
        vni_range = parse_vni_range(args.vni_range)
        host_mac_base = to_mac(args.host_mac_base)
    except ValueError as exc:
        parser.error(str(exc))
    if args.agent_down_time <= 0:
        parser.error("--agent-down-time must be positive")
    if not 0 < args.heartbeat_flush_interval < args.agent_down_time:
        parser.error("--heartbeat-flush-interval must be positive and below --agent-down-time")
    if min(args.max_concurrent_views, args.max_pending_requests) < 1 or args.max_queued_views < 0:
        parser.error("--max-concurrent-views and --max-pending-requests must be at least 1")
    load = dataclasses.replace(
        load,
        max_concurrent_views=args.max_concurrent_views,
        max_queued_views=args.max_queued_views,
        max_pending_requests=args.max_pending_requests,
    )
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    db_url = args.db or ServerConfig.default_db_url(args.state_dir)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers > 1 and not is_postgres_url(db_url):
        parser.error(
            "--workers above 1 needs PostgreSQL (--db postgresql://...): SQLite cannot share "
            "its writes between processes; run one process on SQLite"
        )
    tls = None
    if args.tls_cert is not None:
        tls = TlsFiles(cert=args.tls_cert, key=args.tls_key, client_ca=args.tls_client_ca)
    return ServerConfig(
        db_url=db_url,
        listeners=listeners,
        state_dir=args.state_dir,
        vni_range=vni_range,
        host_mac_base=host_mac_base,
        agent_down_time=args.agent_down_time,
        no_auth=args.no_auth,
        tls=tls,
        limits=limits,
        heartbeat_flush_interval=args.heartbeat_flush_interval,
        load=load,
    ), ServerOptions(args.log_level, args.admin_token_file, args.workers)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``serve_all``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_unix_socket(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, mode 0600 from the moment it exists (whoever can
    connect to it is admin)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    sock.listen(2048)
    return sock


KEEP_ALIVE_S = 75  # seconds an idle client connection stays open


def _uvicorn_config(  # type: ignore[no-untyped-def]
    app, listener: Listener, config: ServerConfig, log_level: str, lifespan: str
) -> uvicorn.Config:
    common = dict(
        log_level=log_level,
        lifespan=lifespan,
        timeout_graceful_shutdown=3,
        # longer than clients keep an idle connection (dvr's: ``dvr.client.IDLE_CONNECTION_S``,
        # httpx's default: 5 s), so that a client never
        # sends a request on a connection the server is closing at the same moment (with
        # both at 5 s, a request now and then meets "Server disconnected without sending
        # a response")
        timeout_keep_alive=KEEP_ALIVE_S,
        access_log=log_level == "debug",
        proxy_headers=False,
    )
    app = ShutdownGuard(app)
    if listener.is_unix:
        return uvicorn.Config(ScopeTag(app, TRANSPORT_KEY, "unix"), **common)
    tls = uvicorn_tls_options(config.tls) if config.tls is not None else {}
    return uvicorn.Config(
        ScopeTag(app, TRANSPORT_KEY, "tcp"), host=listener.host, port=listener.port, **common, **tls
    )


def bind_listeners(listeners: Sequence[Listener]) -> list[socket.socket]:
    """One listening socket per listener (before forking workers that share them)."""
    return [
        bind_unix_socket(Path(x.unix_path)) if x.unix_path else bind_tcp_socket(x)
        for x in listeners
    ]


async def serve_all(
    config: ServerConfig, log_level: str, bound: Sequence[socket.socket] | None = None
) -> None:
    """Serve every listener until SIGTERM/SIGINT.  ``bound``: one socket per listener, bound
    (and later removed) by the parent of several workers, which also migrated the database;
    None: this process does all of it."""
    database = Database.from_url(config.db_url)
    if bound is None:
        upgrade_to_head(database.engine)
    app = create_app(config, database, migrate=False)
    tune_garbage_collector()
    servers = [
        _Server(_uvicorn_config(app, listener, config, log_level, "on" if i == 0 else "off"))
        for i, listener in enumerate(config.listeners)
    ]
    if bound is not None:
        sockets: list[list[socket.socket] | None] = [[sock] for sock in bound]
    else:
        sockets = [
            [bind_unix_socket(Path(listener.unix_path))] if listener.unix_path else None
            for listener in config.listeners
        ]
    loop = asyncio.get_running_loop()
    closing: list[asyncio.Task] = []

    def stop() -> None:
        # Long polls and queued views are answered first (503, shutting down): uvicorn's
        # graceful shutdown would otherwise wait for them and then cut them off.
        if not closing:
            app.state.context.view_gate.close()
            closing.append(loop.create_task(app.state.context.hub.close()))
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    log.info("dvr-server listening on %s", ", ".join(str(x) for x in config.listeners))
    try:
        await asyncio.gather(
            *(server.serve(sockets=own) for server, own in zip(servers, sockets, strict=True))
        )
    finally:
        await app.state.context.keeper.close()
        await app.state.context.hub.close()
        database.dispose()
        if bound is None:
            remove_unix_sockets(config.listeners)


def serve_workers(config: ServerConfig, options: ServerOptions) -> int:
    """``--workers N``: migrate once, bind once, fork N workers (``dvr.server.workers``)."""
    database = Database.from_url(config.db_url)
    upgrade_to_head(database.engine)
    database.dispose()  # no connection crosses the fork
    bound = bind_listeners(config.listeners)
    log.info("dvr-server listening on %s", ", ".join(str(x) for x in config.listeners))

    def serve(sockets: Sequence[socket.socket]) -> int:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_all(config, options.log_level, sockets))
        return 0

    try:
        return Supervisor(options.workers, serve, bound).run()
    finally:
        for sock in bound:
            sock.close()
        remove_unix_sockets(config.listeners)


def exit_at_once(status: int) -> None:
    """End the process after a clean stop (heartbeats flushed, the database closed, the
    unix sockets removed) without tearing down its heap: freeing the views of 1,000 hosts
    object by object took ~8 s of a restart (as the workers do, ``workers.py``)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main(argv: list[str] | None = None) -> int:
    config, options = parse_args(argv)
    process = "[%(process)d] " if options.workers > 1 else ""
    logging.basicConfig(
        level=options.log_level.upper(),
        format=f"%(asctime)s {process}%(levelname)s %(name)s: %(message)s",
    )
    if config.no_auth:
        log.warning(
            "authentication is OFF (--no-auth): every caller is admin; for labs and tests only"
        )
    try:
        config = with_admin_token(config, options)
    except (OSError, ValueError) as exc:
        print(f"dvr-server: cannot read the admin token: {exc}", file=sys.stderr)
        return 2
    try:
        if options.workers > 1:
            return serve_workers(config, options)
        asyncio.run(serve_all(config, options.log_level))
        exit_at_once(0)
    except KeyboardInterrupt:
        pass
    except DatabaseDriverMissing as exc:
        print(f"dvr-server: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
