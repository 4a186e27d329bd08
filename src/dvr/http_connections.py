"""A lean HTTP/1.1 client for the dvr server: kept-alive connections from ``http.client``.

Why not httpx (which the tests and the benchmarks still use as a client of their own): an
agent's requests are small and many, and httpx's layers (URL merging and quoting, request
and response models, httpcore's pool and h11) cost ~0.3 ms of CPU per request on top of
what ``http.client`` costs (~0.1 ms): at 1,000 simulated agents on two cores that was half
of the agents' CPU for a change every host sees (bench/RESULTS.md).

``KeepAliveClient`` has the part of ``httpx.Client``'s interface that ``ServerClient``
uses (``request(method, path, params=, json=, timeout=)``, ``headers``, ``close``) and
raises httpx's exception types (``httpx.ConnectError``, ``httpx.ReadTimeout``, ...), so
that the agent's retries and the CLI's error messages treat both alike.  It is safe to use
from several threads: each request takes an idle connection or opens one, and gives it back
once the answer is read whole.  An idle connection is dropped after ``keepalive_expiry``
seconds, or when the server has closed it (it reads as ready: EOF), before it is reused.
"""

from __future__ import annotations

import http.client
import json as json_module
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

# a request that failed on a kept connection before any answer came is sent again on a new
# one only when sending it twice cannot do anything twice
RETRIED_ON_A_NEW_CONNECTION = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class HttpAnswer:
    """An answer read whole: what ``ServerClient`` reads of ``httpx.Response``."""

    status_code: int
    headers: Message  # case-insensitive ``get``
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json_module.loads(self.content)


def query_string(params: Mapping[str, Any] | None) -> str:
    """``params`` as httpx encodes them: a list or tuple as the key repeated, True/False as
    ``true``/``false``, None as an empty value, anything else by ``str``."""
    if not params:
        return ""
    pairs = []
    for key, value in params.items():
        for item in value if isinstance(value, list | tuple) else (value,):
            pairs.append(f"{quote(str(key), safe='')}={quote(_query_value(item), safe='')}")
    return "&".join(pairs)


def _query_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def json_body(value: Any) -> bytes:
    """A JSON request body: orjson where it can, the standard library where orjson cannot
    (an integer beyond 64 bits, a key that is not a string)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json_module.dumps(value).encode()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("dvr-server", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class _Idle:
    connection: http.client.HTTPConnection
    since: float


class KeepAliveClient:
    """Requests to one server (``http://host:port``, ``https://...`` verified by
    ``context``, or ``unix:/path``) over connections kept alive between them."""

    def __init__(self, server: str, headers: Mapping[str, str], timeout: float,
                 keepalive_expiry: float, context: ssl.SSLContext | None = None,
                 clock: Any = time.monotonic):
        self.server = server
        self.headers = dict(headers)
        self.timeout = timeout
        self.keepalive_expiry = keepalive_expiry
        self._context = context
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[_Idle] = []
        self._closed = False
        if server.startswith("unix:"):
            self._unix_path: str | None = server.removeprefix("unix:")
            self._host, self._port, self._prefix = "dvr-server", None, ""
            self._https = False
        else:
            parts = urlsplit(server)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not a server address: {server!r}")
            self._unix_path = None
            self._host, self._port = parts.hostname, parts.port
            self._prefix = parts.path.rstrip("/")
            self._https = parts.scheme == "https"

    # -- the httpx.Client part -----------------------------------------------------------
    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, timeout: float | None = None) -> HttpAnswer:
        target = self._prefix + path
        query = query_string(params)
        if query:
            target += ("&" if "?" in target else "?") + query
        headers = dict(self.headers)
        body = None
        if json is not None:
            body = json_body(json)
            headers["Content-Type"] = "application/json"
        seconds = self.timeout if timeout is None else timeout
        connection, reused = self._take(seconds)
        while True:
            try:
                answer, reusable = _exchange(connection, method, target, body, headers,
                                             seconds)
                break
            except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
                connection.close()
                if not (reused and method in RETRIED_ON_A_NEW_CONNECTION):
                    raise
                # the server closed the kept connection as the request went out (its
                # keep-alive ran out, or it restarted): once more on a new one
                connection, reused = self._open(seconds), False
            except BaseException:
                connection.close()
                raise
        if reusable:
            self._give_back(connection)
        else:
            connection.close()
        return answer

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for kept in idle:
            kept.connection.close()

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections -------------------------------------------------------------------
    def idle_connections(self) -> int:
        with self._lock:
            return len(self._idle)

    def _take(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """A connection for one request, and whether it was kept from an earlier one."""
        now = self._clock()
        with self._lock:
            while self._idle:
                kept = self._idle.pop()
                if now - kept.since < self.keepalive_expiry and _still_open(kept.connection):
                    kept.connection.timeout = timeout
                    if kept.connection.sock is not None:
                        kept.connection.sock.settimeout(timeout)
                    return kept.connection, True
                kept.connection.close()
        return self._open(timeout), False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(_Idle(connection, self._clock()))
                return
        connection.close()

    def _open(self, timeout: float) -> http.client.HTTPConnection:
        if self._unix_path is not None:
            connection: http.client.HTTPConnection = _UnixConnection(self._unix_path, timeout)
        elif self._https:
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                                     context=self._context)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise httpx.ConnectTimeout(f"connecting to {self.server}: {exc}") from exc
        except OSError as exc:  # refused, no such socket, TLS verification (ssl.SSLError)
            connection.close()
            raise httpx.ConnectError(f"connecting to {self.server}: {exc}") from exc
        if connection.sock is not None and self._unix_path is None:
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle connection the server has not closed: nothing to read on it (a kept-alive
    connection has no answer pending, so readable means EOF or garbage)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _exchange(connection: http.client.HTTPConnection, method: str, target: str,
              body: bytes | None, headers: dict[str, str], timeout: float
              ) -> tuple[HttpAnswer, bool]:
    """Send one request and read its whole answer; whether the connection can be reused."""
    try:
        connection.request(method, target, body=body, headers=headers)
    except TimeoutError as exc:
        raise httpx.WriteTimeout(f"sending {method} {target}: timed out") from exc
    except OSError as exc:
        raise httpx.WriteError(f"sending {method} {target}: {exc}") from exc
    try:
        response = connection.getresponse()
        content = response.read()
    except TimeoutError as exc:
        raise httpx.ReadTimeout(f"{method} {target}: no answer within {timeout:g}s") from exc
    except (http.client.RemoteDisconnected, http.client.IncompleteRead,
            http.client.BadStatusLine) as exc:
        raise httpx.RemoteProtocolError(f"{method} {target}: {exc!r}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise httpx.ReadError(f"{method} {target}: {exc!r}") from exc
    return HttpAnswer(response.status, response.msg, content), not response.will_close
