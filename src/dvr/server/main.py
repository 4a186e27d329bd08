"""``dvr-server``: run the API on one or more listeners (TCP and/or unix sockets)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from dvr.db.migrate import upgrade_to_head
from dvr.db.session import Database, DatabaseDriverMissing
from dvr.gc_tuning import tune_garbage_collector
from dvr.server.app import TransportTag, create_app
from dvr.server.config import (
    DEFAULT_LISTEN,
    DEFAULT_STATE_DIR,
    ApiLimits,
    Listener,
    ServerConfig,
    parse_listener,
    parse_vni_range,
)
from dvr.server.validate import to_mac

log = logging.getLogger("dvr.server")


def parse_args(argv: list[str] | None = None) -> tuple[ServerConfig, str]:
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
    parser.add_argument("--token", help="static token TCP clients must send as X-Auth-Token")
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
    return ServerConfig(
        db_url=args.db or ServerConfig.default_db_url(args.state_dir),
        listeners=listeners,
        state_dir=args.state_dir,
        vni_range=vni_range,
        host_mac_base=host_mac_base,
        agent_down_time=args.agent_down_time,
        token=args.token or os.environ.get("DVR_SERVER_TOKEN") or None,
        limits=limits,
    ), args.log_level


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``serve_all``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn_config(app, listener: Listener, log_level: str, lifespan: str) -> uvicorn.Config:  # type: ignore[no-untyped-def]
    common = dict(
        log_level=log_level,
        lifespan=lifespan,
        timeout_graceful_shutdown=3,
        access_log=log_level == "debug",
        proxy_headers=False,
    )
    if listener.is_unix:
        path = Path(listener.unix_path)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()
        return uvicorn.Config(TransportTag(app, "unix"), uds=str(path), **common)
    return uvicorn.Config(
        TransportTag(app, "tcp"), host=listener.host, port=listener.port, **common
    )


async def serve_all(config: ServerConfig, log_level: str) -> None:
    database = Database.from_url(config.db_url)
    upgrade_to_head(database.engine)
    app = create_app(config, database, migrate=False)
    tune_garbage_collector()
    servers = [
        _Server(_uvicorn_config(app, listener, log_level, "on" if i == 0 else "off"))
        for i, listener in enumerate(config.listeners)
    ]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    log.info("dvr-server listening on %s", ", ".join(str(x) for x in config.listeners))
    try:
        await asyncio.gather(*(server.serve() for server in servers))
    finally:
        await app.state.context.hub.close()
        database.dispose()
        for listener in config.listeners:
            if listener.is_unix and Path(listener.unix_path).is_socket():  # type: ignore[arg-type]
                Path(listener.unix_path).unlink()  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    config, log_level = parse_args(argv)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve_all(config, log_level))
    except KeyboardInterrupt:
        pass
    except DatabaseDriverMissing as exc:
        print(f"dvr-server: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
