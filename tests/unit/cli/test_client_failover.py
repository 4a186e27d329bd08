"""A client given several servers sticks to one and moves to the next when a request fails
with a connection error, a timeout or a 503 (the failed request still raises: the caller's
retry reaches the next server); other errors are answers, not failures of the server."""

from __future__ import annotations

import logging

import httpx
import pytest

from dvr.client import ServerClient, ServerError


class FakeServer:
    """An in-memory server: answers ``status`` (JSON), or fails the way ``failure`` says."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = 200
        self.failure: type[httpx.TransportError] | None = None
        self.requests = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.failure is not None:
            raise self.failure("down", request=request)
        if self.status == 503:
            return httpx.Response(503, headers={"retry-after": "2"}, json={"NeutronError": {
                "type": "ServiceUnavailable", "message": "busy", "detail": ""}})
        if self.status >= 400:
            return httpx.Response(self.status, json={"NeutronError": {
                "type": "HTTPNotFound", "message": "no", "detail": ""}})
        return httpx.Response(200, json={"server": self.name})


def client_for(*servers: FakeServer, clock=None) -> ServerClient:
    client = ServerClient([f"http://{s.name}" for s in servers],
                          **({"clock": clock} if clock else {}))
    client._clients = [httpx.Client(transport=httpx.MockTransport(s.handle),
                                    base_url=f"http://{s.name}") for s in servers]
    return client


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ReadTimeout,
                                     httpx.RemoteProtocolError])
def test_a_connection_failure_moves_the_next_request_to_the_next_server(failure, caplog):
    a, b = FakeServer("a"), FakeServer("b")
    client = client_for(a, b)
    assert client.server == "http://a" and client.get("/") == {"server": "a"}
    a.failure = failure
    with caplog.at_level(logging.WARNING, "dvr.client"), pytest.raises(failure):
        client.get("/")
    assert client.server == "http://b"
    assert [client.get("/") for _ in range(3)] == [{"server": "b"}] * 3  # it sticks to b
    a.failure = None  # a is back: the client stays where it works
    assert client.get("/") == {"server": "b"}
    failovers = [r.getMessage() for r in caplog.records]
    assert len(failovers) == 1
    assert "http://a" in failovers[0] and "moving to http://b" in failovers[0]


def test_a_503_raises_and_moves_on_and_the_last_server_wraps_to_the_first():
    a, b = FakeServer("a"), FakeServer("b")
    client = client_for(a, b)
    a.status = 503
    with pytest.raises(ServerError) as error:
        client.get("/")
    assert (error.value.status, error.value.retry_after) == (503, 2.0)
    assert client.get("/") == {"server": "b"}
    a.status, b.failure = 200, httpx.ConnectError
    with pytest.raises(httpx.ConnectError):
        client.get("/")
    assert client.get("/") == {"server": "a"}


def test_answers_that_are_not_server_failures_stay_on_the_server():
    a, b = FakeServer("a"), FakeServer("b")
    client = client_for(a, b)
    a.status = 404
    with pytest.raises(ServerError):
        client.get("/")
    assert client.server == "http://a" and b.requests == 0


def test_failures_seen_by_two_threads_on_one_server_move_once():
    a, b, c = FakeServer("a"), FakeServer("b"), FakeServer("c")
    client = client_for(a, b, c)
    a.failure = httpx.ConnectError
    with pytest.raises(httpx.ConnectError):
        client.get("/")
    assert client.server == "http://b"
    # the watch thread's request, sent to a before the move, fails after it: no second move
    client._fail_over(0, "ConnectError: down")
    assert client.server == "http://b" and client.get("/") == {"server": "b"}


def test_one_server_never_fails_over():
    a = FakeServer("a")
    client = client_for(a)
    a.failure = httpx.ConnectError
    with pytest.raises(httpx.ConnectError):
        client.get("/")
    assert client.server == "http://a" and client.servers == ("http://a",)


def test_busy_servers_do_not_bounce_the_client_between_them(caplog):
    """Both answer 503: the client moves once, then stays until the first one's
    Retry-After (2 s) has passed."""
    now = [100.0]
    a, b = FakeServer("a"), FakeServer("b")
    client = client_for(a, b, clock=lambda: now[0])
    a.status = b.status = 503
    with caplog.at_level(logging.WARNING, "dvr.client"):
        for _ in range(5):
            with pytest.raises(ServerError):
                client.get("/")
            now[0] += 0.1
        assert client.server == "http://b" and (a.requests, b.requests) == (1, 4)
        now[0] += 2.0  # a's Retry-After has passed
        with pytest.raises(ServerError):
            client.get("/")
    assert client.server == "http://a"
    assert len(caplog.records) == 2


def test_a_dead_server_is_left_even_for_a_resting_one():
    now = [100.0]
    a, b = FakeServer("a"), FakeServer("b")
    client = client_for(a, b, clock=lambda: now[0])
    a.status = 503
    with pytest.raises(ServerError):
        client.get("/")
    b.failure = httpx.ConnectError
    with pytest.raises(httpx.ConnectError):
        client.get("/")
    assert client.server == "http://a"  # resting for 2 s, but b does not answer at all


def test_a_watch_a_closing_server_ended_moves_the_client_on_without_an_error():
    """A server shutting down ends its watches with a 200 marked ``closing`` and a
    Retry-After: the answer is no error, and the next request goes to the other server."""
    closing = FakeServer("a")
    closing.handle = lambda request: httpx.Response(  # type: ignore[method-assign]
        200, headers={"retry-after": "2"},
        json={"revision": 7, "changes": [], "resync": False, "closing": True})
    b = FakeServer("b")
    client = client_for(closing, b)
    result = client.watch("h1", 7, 25)
    assert (result.revision, result.changes, result.closing) == (7, (), 2.0)
    assert client.server == "http://b"
    assert client.get("/x") == {"server": "b"}
