"""The pure rules of authentication: who may call what, re-registration, the failure limiter,
tokens and certificate names (no server)."""

from __future__ import annotations

import pytest

from dvr.server.auth import (
    ADMIN,
    ANONYMOUS,
    access_refusal,
    host_identity,
    is_admin_token,
    new_admin_token,
    new_host_token,
    path_segments,
    registration_refusal,
    token_sha256,
)
from dvr.server.config import AuthLimits
from dvr.server.ratelimit import FailureLimiter
from dvr.server.tls import certificate_cn

H1 = host_identity("h1")


def status(identity, method: str, path: str) -> int:  # type: ignore[no-untyped-def]
    refusal = access_refusal(identity, method, path_segments(path.encode()))
    return 200 if refusal is None else refusal.status


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/dvr/v1/agents"),
    ("POST", "/dvr/v1/hosts/h1/heartbeat"),
    ("POST", "/dvr/v1/hosts/h1/host-mac"),
    ("POST", "/dvr/v1/hosts/h1/report"),
    ("GET", "/dvr/v1/hosts/h1/view"),
    ("GET", "/dvr/v1/hosts/h1/watch?since=3&timeout=1"),
    ("GET", "/dvr/v1/hosts/h1/agent-state"),
])
def test_a_host_may_call_its_own_agent_protocol(method, path):
    assert status(H1, method, path) == 200
    assert status(ANONYMOUS, method, path) == 401
    assert status(ADMIN, method, path) == 200


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/dvr/v1/hosts/h2/view"),
    ("POST", "/dvr/v1/hosts/h2/heartbeat"),
    ("POST", "/dvr/v1/hosts/h2/host-mac"),
    ("GET", "/dvr/v1/hosts/h1/view/extra"),
    ("GET", "/dvr/v1/hosts/h1/heartbeat"),  # the right path, the wrong method
    ("POST", "/dvr/v1/hosts/h1/view"),
    ("GET", "/dvr/v1/hosts/h1/routers"),
    ("POST", "/dvr/v1/hosts/h1/credential"),
    ("GET", "/dvr/v1/hosts/h1/credential"),
    ("DELETE", "/dvr/v1/hosts/h1/credential"),
    ("GET", "/dvr/v1/agents"),
    ("GET", "/dvr/v1/hosts"),
    ("GET", "/dvr/v1/topology"),
    ("GET", "/dvr/v1/trace?src=a&dst=b"),
    ("GET", "/v2.0/networks"),
    ("POST", "/v2.0/ports"),
    ("DELETE", "/v2.0/agents/x"),
    ("GET", "/openapi.json"),
    ("GET", "/dvr/v1/hosts/h1%2F..%2Fh2/view"),  # an encoded "/" stays in its segment
    ("GET", "/dvr/v1/hosts/h%31/../h2/view"),
])
def test_everything_else_is_forbidden_to_a_host(method, path):
    assert status(H1, method, path) == 403
    assert status(ANONYMOUS, method, path) == 401
    assert status(ADMIN, method, path) == 200


def test_public_pages_are_open_to_everyone():
    for identity in (ANONYMOUS, H1, ADMIN):
        for path in ("/", "/ui", "/ui/", "/ui/assets/index.js"):
            assert status(identity, "GET", path) == 200
    assert status(ANONYMOUS, "POST", "/") == 401
    assert status(ANONYMOUS, "GET", "/v2.0") == 401


def test_path_segments_decode_each_segment_alone():
    assert path_segments(b"/dvr/v1/hosts/a%2Fb/view?x=1") == ("dvr", "v1", "hosts", "a/b", "view")
    assert path_segments(b"/") == ("",)


def test_registration_rules():
    assert registration_refusal(H1, "h1", changes_identity=True, has_credential=True) is None
    forged = registration_refusal(H1, "h2", changes_identity=False, has_credential=False)
    assert forged is not None and forged.status == 403
    conflict = registration_refusal(ADMIN, "h1", changes_identity=True, has_credential=True)
    assert conflict is not None and (conflict.status, conflict.type_name) == (
        409, "HostIdentityConflict")
    assert registration_refusal(ADMIN, "h1", changes_identity=False, has_credential=True) is None
    assert registration_refusal(ADMIN, "h1", changes_identity=True, has_credential=False) is None


def test_tokens():
    token = new_host_token()
    assert token.startswith("dvrh_") and len(token) == 48 and token != new_host_token()
    # an admin token never starts with "-" (``--os-token -abc`` is an option to argparse)
    admin = [new_admin_token() for _ in range(200)]
    assert all(t.startswith("dvra_") and len(t) == 48 for t in admin) and len(set(admin)) == 200
    assert len(token_sha256(token)) == 64 and token not in token_sha256(token)
    assert is_admin_token("s3cret", "s3cret")
    assert not is_admin_token("s3cre", "s3cret")
    assert not is_admin_token("", None) and not is_admin_token("x", "")


def test_certificate_cn():
    cert = {"subject": ((("countryName", "ZZ"),), (("commonName", "compute-1"),))}
    assert certificate_cn(cert) == "compute-1"
    assert certificate_cn({}) is None and certificate_cn(None) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failure_limiter_blocks_after_the_limit_until_the_window_passes():
    clock = Clock()
    limiter = FailureLimiter(AuthLimits(max_failures=3, window_seconds=10), clock)
    for _ in range(3):
        assert limiter.retry_after("192.0.2.1") is None
        limiter.record_failure("192.0.2.1")
        clock.now += 1
    assert limiter.retry_after("192.0.2.1") == 7  # the first failure leaves at 1010
    assert limiter.retry_after("192.0.2.2") is None  # per address
    clock.now = 1010.0
    assert limiter.retry_after("192.0.2.1") is None


def test_failure_limiter_forgets_the_oldest_address_beyond_its_bound():
    clock = Clock()
    limiter = FailureLimiter(AuthLimits(max_failures=1, window_seconds=10,
                                        tracked_addresses=2), clock)
    for address in ("a", "b", "c"):
        limiter.record_failure(address)
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("b") == 10 and limiter.retry_after("c") == 10


def test_websockets_never_pass_authentication(tmp_path):
    """Even a websocket route behind the middleware is never reached (none is served)."""
    import warnings

    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocketDisconnect

    from dvr.server.app import create_app
    from dvr.server.authn import AuthMiddleware
    from dvr.server.config import ServerConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    async def accept(websocket):  # type: ignore[no-untyped-def]
        await websocket.accept()
        await websocket.send_text("in")
        await websocket.close()

    server = create_app(ServerConfig(db_url=f"sqlite:///{tmp_path}/dvr.db", admin_token="t"))
    inner = Starlette(routes=[WebSocketRoute("/ws", accept)])
    with TestClient(AuthMiddleware(inner, server.state.context)) as client:
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/ws", headers={"X-Auth-Token": "t"}) as socket:
                socket.receive_text()
    with TestClient(inner) as client:  # the route itself works
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_text() == "in"
    server.state.context.db.dispose()
