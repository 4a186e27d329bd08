"""Facts about a request's connection that the listener knows and the app needs, carried in
the ASGI scope: which kind of listener it came through, and a verified client certificate."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

TRANSPORT_KEY = "dvr.transport"  # "tcp" or "unix"
CLIENT_CN_KEY = "dvr.tls_client_cn"  # the verified client certificate's CN (mutual TLS)


class ScopeTag:
    """Sets ``scope[key] = value`` on every request, then calls the app."""

    def __init__(self, app: ASGIApp, key: str, value: str) -> None:
        self.app = app
        self.key = key
        self.value = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[self.key] = self.value
        await self.app(scope, receive, send)
