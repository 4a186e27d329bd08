"""Benchmark (issue 14): the server CPU of one agent request through the whole app, without
sockets: what the middleware stack, routing and the handler cost, apart from uvicorn's
HTTP parsing and the kernel's socket work.

The app is ``create_app`` on a temporary SQLite database (no auth, as a lab's unix socket
is); one host registers and reports once, then each request is driven as ASGI calls in
one event loop, ``--requests`` times:
- ``heartbeat``: a report that says nothing new (answered from memory);
- ``watch``: a watch with ``timeout=0`` whose answer the change hub cannot give from
  memory (the process started at the host's revision), so it reads the change rows in a
  read transaction on the thread pool, as a woken watch does.

Printed: process CPU per request (ms).  Nothing needs root.

    .venv/bin/python bench/bench_request_cpu.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from dvr.server.app import create_app
from dvr.server.config import ServerConfig

REGISTER = (b'{"host": "h1", "agent_mode": "dvr", "tunnel_ip": "192.0.2.1", '
            b'"datapath_type": "netdev"}')
REPORT = b'{"applied_revision": 1, "ports_up": [], "ports_down": [], "vifs": {}, "local_vlans": {}}'


async def call(app: Any, method: str, path: str, query: bytes = b"", body: bytes = b"") -> int:
    """One request through ``app``; its status."""
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "scheme": "http", "http_version": "1.1",
             "headers": [(b"host", b"dvr-server"), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 9696), "state": {}}
    messages: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return int(messages[0]["status"])


async def measure(requests: int, workdir: Path) -> dict[str, float]:
    app = create_app(ServerConfig(db_url=f"sqlite:///{workdir / 'bench.db'}", no_auth=True))
    async with app.router.lifespan_context(app):
        for method, path, body in (("POST", "/dvr/v1/agents", REGISTER),
                                   ("POST", "/dvr/v1/hosts/h1/host-mac", b""),
                                   ("POST", "/dvr/v1/hosts/h1/heartbeat", REPORT)):
            status = await call(app, method, path, body=body)
            if status != 200:
                raise SystemExit(f"{method} {path} answered {status}")
        kinds = {
            "heartbeat": ("POST", "/dvr/v1/hosts/h1/heartbeat", b"", REPORT),
            "watch": ("GET", "/dvr/v1/hosts/h1/watch", b"since=1&timeout=0", b""),
        }
        result = {}
        for name, request in kinds.items():
            started = time.process_time()
            for _ in range(requests):
                status = await call(app, *request)
                if status != 200:
                    raise SystemExit(f"{name} answered {status}")
            result[name] = (time.process_time() - started) / requests * 1e3
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvr-bench-request-") as workdir:
        result = asyncio.run(measure(args.requests, Path(workdir)))
    for name, ms in result.items():
        print(f"{name}: {ms:.3f} ms of CPU per request ({args.requests} requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
