"""Host credentials under /dvr/v1 (admin only: the middleware refuses everyone else).

POST   /dvr/v1/hosts/{host}/credential    201 a new token (shown once; rotates the old)
GET    /dvr/v1/hosts/{host}/credential    200 when it was created (never the token)
DELETE /dvr/v1/hosts/{host}/credential    204 revoked
"""

from __future__ import annotations

from collections.abc import Callable
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


def routes(context: ServerContext) -> list[Route]:
    async def change_credential(host: str, work: Callable[[WriteTx], T]) -> T:
        """``work`` (a rotation or revocation of ``host``'s credential) written, the other
        server processes told in its transaction; then this process forgets the host's
        credentials, also when the answer is an error (``known_credentials``)."""
        def written(tx: WriteTx) -> T:
            result = work(tx)
            send_credential_notice(tx.conn, host)
            return result

        try:
            return await context.write(written)
        finally:
            context.credentials.forget_host(host)

    async def create(request: Request) -> Response:
        host = host_param(request)
        credential = await change_credential(host, lambda tx: credentials.create(tx, host))
        return json_response({"credential": credential}, status=201)

    async def show(request: Request) -> Response:
        host = host_param(request)
        credential = await context.read(lambda tx: credentials.show(tx, host))
        return json_response({"credential": credential})

    async def revoke(request: Request) -> Response:
        host = host_param(request)
        await change_credential(host, lambda tx: credentials.revoke(tx, host))
        return Response(status_code=204)

    path = f"{PREFIX}/hosts/{{host}}/credential"
    return [
        Route(path, create, methods=["POST"]),
        Route(path, show, methods=["GET"]),
        Route(path, revoke, methods=["DELETE"]),
    ]
