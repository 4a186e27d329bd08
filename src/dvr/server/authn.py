"""The authentication middleware: resolves the caller's identity, refuses what it may not
call (``dvr.server.auth`` decides), rate-limits failed authentications per client address,
and leaves the identity in the scope for the handlers (``request_identity``)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from dvr.server.auth import (
    ADMIN,
    ANONYMOUS,
    IDENTITY_KEY,
    Identity,
    access_refusal,
    host_identity,
    is_admin_token,
    is_public,
    path_segments,
    token_sha256,
    unauthorized,
)
from dvr.server.context import ServerContext
from dvr.server.errors import NeutronError, ServiceUnavailable
from dvr.server.group_commit import GroupCommit
from dvr.server.jsonbody import error_response
from dvr.server.ratelimit import FailureLimiter
from dvr.server.scope_tag import CLIENT_CN_KEY, TRANSPORT_KEY
from dvr.server.services.credentials import hosts_of_tokens

log = logging.getLogger("dvr.server.auth")
LOOKUPS_TOGETHER_MAX = 256  # credential lookups sharing one read (``hosts_of_tokens``)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    if scope.get(TRANSPORT_KEY) == "unix" or not client:
        return "unix"
    return str(client[0])


def request_identity(request: Request) -> Identity:
    """The caller (admin when the app runs without the middleware, as with --no-auth)."""
    identity = request.scope.get(IDENTITY_KEY, ADMIN)
    assert isinstance(identity, Identity)
    return identity


def describe_caller(request: Request) -> str:
    return f"{request_identity(request)} from {client_address(request.scope)}"


def _raw_path(scope: Scope) -> bytes:
    raw = scope.get("raw_path")
    return raw if isinstance(raw, bytes) else scope["path"].encode()


def _too_many(retry_after: int) -> NeutronError:
    return NeutronError(
        f"Too many failed authentications from this address: retry in {retry_after} s.",
        type_name="HTTPTooManyRequests",
        status=429,
    )


class AuthMiddleware:
    def __init__(self, app: ASGIApp, context: ServerContext) -> None:
        self.app = app
        self.context = context
        self.limiter = FailureLimiter(context.config.auth_limits)
        # the lookups of the requests that arrive while one is read go in the next read
        self.lookups: GroupCommit[str, str | None] = GroupCommit(
            context.read, hosts_of_tokens, LOOKUPS_TOGETHER_MAX)

    async def _identity(self, scope: Scope, token: str | None) -> Identity | None:
        """The caller, or None for a token that names nobody."""
        if token is None:
            if scope.get(TRANSPORT_KEY) == "unix":
                return ADMIN  # the socket is mode 0600: whoever reaches it is trusted
            cn = scope.get(CLIENT_CN_KEY)
            return host_identity(cn) if cn else ANONYMOUS
        if is_admin_token(token, self.context.config.admin_token):
            return ADMIN
        host = await self._host_of(token)
        return host_identity(host) if host is not None else None

    async def _host_of(self, token: str) -> str | None:
        """The host of a credential: from memory when this process sees every credential
        write (``known_credentials``), else read (with the lookups of the requests that
        arrived meanwhile: a write that wakes 1,000 agents brings their requests
        together).  While the database is unreachable, the host this process last found
        for it (so that agents' heartbeats and watches are still answered from memory; no
        credential can be revoked meanwhile)."""
        key = token_sha256(token)
        known = self.context.credentials
        host = known.trusted(key)
        if host is not None:
            return host
        generation = known.generation
        try:
            host = await self.lookups.submit(key)
        except ServiceUnavailable:
            host = known.last_read(key)
            if host is None:
                raise
            return host
        known.remember(key, host, generation)
        return host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # none are served: never past authentication
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        address = client_address(scope)
        refusal, headers = await self._refusal(scope, address)
        if refusal is not None:
            response = error_response(refusal)
            response.headers.update(headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _refusal(self, scope: Scope, address: str) -> tuple[NeutronError | None, Any]:
        segments = path_segments(_raw_path(scope))
        if is_public(scope["method"], segments):
            return None, {}
        limited = scope.get(TRANSPORT_KEY) != "unix"  # the local, trusted socket is not
        retry_after = self.limiter.retry_after(address) if limited else None
        if retry_after is not None:
            return _too_many(retry_after), {"Retry-After": str(retry_after)}
        token = Headers(scope=scope).get("x-auth-token")
        identity = await self._identity(scope, token)
        if identity is None:
            if limited:
                self.limiter.record_failure(address)
            log.warning("refused an unknown token from %s on %s", address, scope["path"])
            return unauthorized("The token sent as X-Auth-Token is not valid."), {}
        scope[IDENTITY_KEY] = identity
        refusal = access_refusal(identity, scope["method"], segments)
        if refusal is not None and refusal.status == 403:
            log.warning(
                "refused %s %s to %s from %s", scope["method"], scope["path"], identity, address
            )
        return refusal, {}
