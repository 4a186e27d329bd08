"""Benchmark (issue 14): the server CPU of one agent request through the whole app, without
sockets: what the middleware stack, routing and the handler cost, apart from uvicorn's
HTTP parsing and the kernel's socket work.

The app is ``create_app`` on a temporary SQLite database (no auth, as a lab's unix socket
is; with ``--auth``, each request carries the host's credential, as an agent's on TCP
does); one host registers and reports once, then each request is driven as ASGI calls in
one event loop, ``--requests`` times, ``--burst`` at once (a write that wakes many agents
brings their requests together):
- ``heartbeat``: a report that says nothing new (answered from memory);
- ``watch``: a watch with ``timeout=0`` whose answer the change hub cannot give from
  memory (the process started at the host's revision), so it reads the change rows in a
  read transaction on the thread pool, as a woken watch does.

Printed: process CPU per request (ms).  Nothing needs root.

    .venv/bin/python bench/bench_request_cpu.py [--requests 2000] [--auth] [--burst 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from dvr.server.app import create_app
from dvr.server.config import ServerConfig

REGISTER = (b'{"host": "h1", "agent_mode": "dvr", "tunnel_ip": "192.0.2.1", '
            b'"datapath_type": "netdev"}')
REPORT = b'{"applied_revision": 1, "ports_up": [], "ports_down": [], "vifs": {}, "local_vlans": {}}'


ADMIN_TOKEN = "bench-admin-token"


async def call(app: Any, method: str, path: str, query: bytes = b"", body: bytes = b"",
               token: str | None = None) -> tuple[int, bytes]:
    """One request through ``app`` (as ``token``'s holder, when given): its status and
    body."""
    headers = [(b"host", b"dvr-server"), (b"content-type", b"application/json")]
    if token is not None:
        headers.append((b"x-auth-token", token.encode()))
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "scheme": "http", "http_version": "1.1",
             "headers": headers,
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
    return int(messages[0]["status"]), b"".join(m.get("body", b"") for m in messages[1:])


async def measure(requests: int, workdir: Path, auth: bool, burst: int) -> dict[str, float]:
    config = ServerConfig(db_url=f"sqlite:///{workdir / 'bench.db'}", no_auth=not auth,
                          admin_token=ADMIN_TOKEN if auth else None)
    app = create_app(config)
    async with app.router.lifespan_context(app):
        token = None
        if auth:  # the host's credential, minted by the admin
            status, body = await call(app, "POST", "/dvr/v1/hosts/h1/credential",
                                      token=ADMIN_TOKEN)
            if status != 201:
                raise SystemExit(f"POST credential answered {status}")
            token = json.loads(body)["credential"]["token"]
        for method, path, body, expected in (
                ("POST", "/dvr/v1/agents", REGISTER, (200, 201)),
                ("POST", "/dvr/v1/hosts/h1/host-mac", b"", (200, 201)),
                ("POST", "/dvr/v1/hosts/h1/heartbeat", REPORT, (200,))):
            status, _ = await call(app, method, path, body=body, token=token)
            if status not in expected:
                raise SystemExit(f"{method} {path} answered {status}")
        kinds = {
            "heartbeat": ("POST", "/dvr/v1/hosts/h1/heartbeat", b"", REPORT),
            "watch": ("GET", "/dvr/v1/hosts/h1/watch", b"since=1&timeout=0", b""),
        }
        result = {}
        for name, (method, path, query, body) in kinds.items():
            started = time.process_time()
            for _ in range(0, requests, burst):
                statuses = await asyncio.gather(*(call(app, method, path, query, body, token)
                                                  for _ in range(burst)))
                if any(status != 200 for status, _ in statuses):
                    raise SystemExit(f"{name} answered {sorted({s for s, _ in statuses})}")
            result[name] = (time.process_time() - started) / requests * 1e3
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--auth", action="store_true",
                        help="each request carries the host's credential (else no auth)")
    parser.add_argument("--burst", type=int, default=1, help="requests sent at once")
    args = parser.parse_args()
    if not 1 <= args.burst <= args.requests:
        parser.error("--burst must be between 1 and --requests")
    with tempfile.TemporaryDirectory(prefix="dvr-bench-request-") as workdir:
        result = asyncio.run(measure(args.requests, Path(workdir), args.auth, args.burst))
    mode = "host credential" if args.auth else "no auth"
    for name, ms in result.items():
        print(f"{name}: {ms:.3f} ms of CPU per request ({args.requests} requests, "
              f"{args.burst} at once, {mode})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
