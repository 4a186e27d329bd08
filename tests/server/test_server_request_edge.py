"""The request edge (``RequestMiddleware``) on a tiny app: an exception that escapes a
handler becomes Neutron's 500 shape with the request id, logged, and is not re-raised to
the server (so the client's keep-alive connection survives)."""

from __future__ import annotations

import logging
import warnings

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dvr.server.app import RequestMiddleware

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _app(max_body_bytes: int = 1024) -> Starlette:
    async def boom(request):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    async def echo(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse(str(len(await request.body())))

    app = Starlette(routes=[Route("/boom", boom), Route("/echo", echo, methods=["POST"])])
    app.add_middleware(RequestMiddleware, max_body_bytes=max_body_bytes)
    return app


def test_unexpected_exception_is_a_neutron_500_with_request_id(caplog):
    # raise_server_exceptions=True: the test fails if the exception reaches the server
    with TestClient(_app(), raise_server_exceptions=True) as client:
        with caplog.at_level(logging.ERROR, logger="dvr.server"):
            response = client.get("/boom")
        assert response.status_code == 500
        assert response.json()["NeutronError"]["type"] == "HTTPInternalServerError"
        request_id = response.headers["x-openstack-request-id"]
        assert request_id.startswith("req-")
        assert any(request_id in r.getMessage() for r in caplog.records)
        assert client.post("/echo", content=b"abc").text == "3"


def test_body_cap_is_exact():
    with TestClient(_app(max_body_bytes=10), raise_server_exceptions=True) as client:
        assert client.post("/echo", content=b"x" * 10).text == "10"
        response = client.post("/echo", content=b"x" * 11)
        assert response.status_code == 413
        assert response.json()["NeutronError"]["type"] == "HTTPRequestEntityTooLarge"
        response = client.post("/echo", headers={"content-length": "nope"}, content=b"x")
        assert response.status_code == 413
