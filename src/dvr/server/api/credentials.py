"""Host credentials under /dvr/v1 (admin only: the middleware refuses everyone else).

POST   /dvr/v1/hosts/{host}/credential    201 a new token (shown once; rotates the old)
GET    /dvr/v1/hosts/{host}/credential    200 when it was created (never the token)
DELETE /dvr/v1/hosts/{host}/credential    204 revoked
"""

from __future__ import annotations

from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dvr.server.api.common import json_response
from dvr.server.api.dvr_protocol import PREFIX, host_param
from dvr.server.context import ServerContext
from dvr.server.pg_notify import send_credential_notice
from dvr.server.services import credentials
from dvr.server.tx import WriteTx

T = TypeVar("T")


def told(tx: WriteTx, host: str, result: T) -> T:
    """``result`` of a write that rotated or revoked ``host``'s credential, the other server
    processes told in the same transaction (``known_credentials``)."""
    send_credential_notice(tx.conn, host)
    return result


def routes(context: ServerContext) -> list[Route]:
    async def create(request: Request) -> Response:
        host = host_param(request)
        try:
            credential = await context.write(
                lambda tx: told(tx, host, credentials.create(tx, host)))
        finally:  # the old token is refused from now on (also if the answer is an error)
            context.credentials.forget_host(host)
        return json_response({"credential": credential}, status=201)

    async def show(request: Request) -> Response:
        host = host_param(request)
        credential = await context.read(lambda tx: credentials.show(tx, host))
        return json_response({"credential": credential})

    async def revoke(request: Request) -> Response:
        host = host_param(request)
        try:
            await context.write(lambda tx: told(tx, host, credentials.revoke(tx, host)))
        finally:
            context.credentials.forget_host(host)
        return Response(status_code=204)

    path = f"{PREFIX}/hosts/{{host}}/credential"
    return [
        Route(path, create, methods=["POST"]),
        Route(path, show, methods=["GET"]),
        Route(path, revoke, methods=["DELETE"]),
    ]
