"""The lean client the agent and the CLI talk to the server with: what it sends, which
connections it keeps, and which httpx errors it raises (the agent's retries read them)."""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.http_connections import KeepAliveClient, json_body, query_string


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with what it saw; ``/drop`` answers, then closes the
    connection without saying so (as a server whose keep-alive ran out); ``/slow`` never
    answers."""

    protocol_version = "HTTP/1.1"
    connections: list[int] = []
    paths: list[str] = []
    stall = threading.Event()

    def setup(self) -> None:
        super().setup()
        self.number = len(Recorder.connections)  # connections in the order they came
        Recorder.connections.append(self.number)

    def _answer(self) -> None:
        Recorder.paths.append(self.path)
        if self.path.startswith("/slow"):
            Recorder.stall.wait(5)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = {"method": self.command, "path": self.path, "body": body.decode(),
                "token": self.headers.get("X-Auth-Token"),
                "type": self.headers.get("Content-Type"),
                "connection": self.number}
        data = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Retry-After", "3")
        self.end_headers()
        self.wfile.write(data)
        if self.path.startswith("/drop"):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


class TcpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # BaseHTTPRequestHandler wants an address pair
        request, _ = super().get_request()
        return request, ("unix", 0)


@pytest.fixture(params=["tcp", "unix"])
def server(request, tmp_path: Path) -> Iterator[str]:
    Recorder.connections = []
    Recorder.paths = []
    Recorder.stall.clear()
    if request.param == "tcp":
        made = TcpServer(("127.0.0.1", 0), Recorder)
        address = f"http://127.0.0.1:{made.server_address[1]}"
    else:
        made = UnixServer(str(tmp_path / "server.sock"), Recorder)
        address = f"unix:{tmp_path / 'server.sock'}"
    thread = threading.Thread(target=made.serve_forever, daemon=True)
    thread.start()
    yield address
    Recorder.stall.set()
    made.shutdown()
    made.server_close()
    thread.join(5)


def client_of(server: str, timeout: float = 5.0, **kwargs) -> KeepAliveClient:
    return KeepAliveClient(server, {"X-Auth-Token": "dvrh_secret"}, timeout, 60.0, **kwargs)


def test_a_request_carries_its_path_query_token_and_json_body(server):
    with client_of(server) as client:
        answer = client.request("POST", "/dvr/v1/hosts/compute%2F1/heartbeat",
                                params={"since": 7, "wait": 2.5},
                                json={"applied_revision": 7, "vifs": {"tap1": "p1"}})
    seen = answer.json()
    assert answer.status_code == 200
    assert answer.headers.get("retry-after") == "3"  # case-insensitive, as httpx
    assert seen["method"] == "POST"
    assert seen["path"] == "/dvr/v1/hosts/compute%2F1/heartbeat?since=7&wait=2.5"
    assert json.loads(seen["body"]) == {"applied_revision": 7, "vifs": {"tap1": "p1"}}
    assert seen["token"] == "dvrh_secret"
    assert seen["type"] == "application/json"


def test_requests_one_after_the_other_share_one_connection(server):
    with client_of(server) as client:
        seen = [client.request("GET", f"/r{i}").json()["connection"] for i in range(5)]
        assert seen == [0] * 5
        assert client.idle_connections() == 1


def test_a_connection_the_server_closed_is_not_reused(server):
    """Whether the client sees the close before it sends (the connection reads as ended)
    or after (a GET goes once more on a new connection), the answer comes."""
    with client_of(server) as client:
        first = client.request("GET", "/drop").json()
        second = client.request("GET", "/after").json()
        assert (first["connection"], second["connection"]) == (0, 1)
        client.request("GET", "/drop")
        time.sleep(0.2)  # the close has arrived: the kept connection is seen to be ended
        assert client.request("GET", "/again").json()["connection"] == 2


def test_a_post_on_a_connection_closed_under_it_is_not_sent_twice(server):
    with client_of(server) as client:
        client.request("GET", "/drop")
        kept, _ = client._take(1.0)
        kept.sock.shutdown(socket.SHUT_RDWR)  # as if the close came while the POST went out
        client._give_back(kept)
        with mock.patch("dvr.http_connections._still_open", return_value=True), \
                pytest.raises((httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError)):
            client.request("POST", "/create", json={"network": {}})
    assert "/create" not in [seen for seen in Recorder.paths]


def test_an_idle_connection_past_its_expiry_is_dropped(server):
    now = [100.0]
    with client_of(server, clock=lambda: now[0]) as client:
        client.request("GET", "/a")
        now[0] += 59.0
        assert client.request("GET", "/b").json()["connection"] == 0
        now[0] += 61.0
        assert client.request("GET", "/c").json()["connection"] == 1


def test_threads_at_once_each_get_their_answer(server):
    with client_of(server) as client:
        answers: dict[int, str] = {}

        def ask(i: int) -> None:
            answers[i] = client.request("GET", f"/t{i}").json()["path"]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert answers == {i: f"/t{i}" for i in range(8)}


def test_an_answer_that_does_not_come_is_a_read_timeout(server):
    with client_of(server) as client, pytest.raises(httpx.ReadTimeout):
        client.request("GET", "/slow", timeout=0.2)


def test_no_server_is_a_connect_error(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address in (f"http://127.0.0.1:{port}", f"unix:{tmp_path / 'none.sock'}"):
        with client_of(address) as client, pytest.raises(httpx.ConnectError):
            client.request("GET", "/")


def test_an_address_that_is_not_a_server_is_refused():
    with pytest.raises(ValueError):
        KeepAliveClient("ftp://example.org", {}, 1.0, 60.0)


@pytest.mark.parametrize("server", ["tcp"], indirect=True)  # a unix address has no path
def test_a_base_path_prefixes_every_request(server):
    with client_of(server + "/prefix") as client:
        assert client.request("GET", "/v2.0/ports").json()["path"] == "/prefix/v2.0/ports"


query_values = st.one_of(st.integers(), st.booleans(), st.none(), st.text(max_size=8),
                         st.floats(allow_nan=False),
                         st.lists(st.text(max_size=5), max_size=3))


@settings(deadline=None)  # no timing here: a slow first example under load is not a failure
@given(st.dictionaries(st.text(min_size=1, max_size=8), query_values, max_size=5))
def test_the_query_decodes_to_what_httpx_sends(params):
    """The server reads the same pairs, in the same order, as from httpx's encoding."""
    ours = parse_qsl(query_string(params), keep_blank_values=True)
    theirs = parse_qsl(urlsplit(str(httpx.Request("GET", "http://h/", params=params).url)).query,
                       keep_blank_values=True)
    assert ours == theirs


def test_json_bodies_and_those_beyond_orjson():
    assert json.loads(json_body({"a": [1, "x"], "b": None})) == {"a": [1, "x"], "b": None}
    assert json.loads(json_body({"big": 2 ** 70})) == {"big": 2 ** 70}
    assert json.loads(json_body({1: "non-string key"})) == {"1": "non-string key"}
