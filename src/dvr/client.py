"""HTTP client for the dvr server: the agent protocol (/dvr/v1) and the Neutron API (/v2.0).

Used by the agent, the `dvr` CLI, the lab and the tracer.  The server is reached over TCP
(``http://127.0.0.1:9696``, or ``https://...`` verified against the system's CAs or
``ca_file``) or a unix socket (``unix:/path/server.sock``).  A token, when given, is sent
as ``X-Auth-Token`` (what openstack's ``admin_token`` auth sends): the admin token, or a
host credential.  Tokens come from files or the environment, never from a command line.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from dvr.http_connections import HttpAnswer, KeepAliveClient
from dvr.model.hostview import HostView, host_view_from_dict
from dvr.model.hostview_delta import HostViewDelta, delta_from_dict

log = logging.getLogger("dvr.client")

# what a ServerClient sends through: its own kept-alive connections, or (tests) an httpx
# client with an in-memory transport
HttpClient = KeepAliveClient | httpx.Client
HttpResponse = HttpAnswer | httpx.Response


class ServerError(Exception):
    """The server answered with an error (Neutron-shaped body when it could)."""

    def __init__(self, status: int, error_type: str, message: str,
                 retry_after: float | None = None):
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.message = message
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)


class ServerClosing(Exception):
    """A server ended a watch because it is shutting down: ask again after ``retry_after``
    seconds (another server at once, when there is one)."""

    def __init__(self, retry_after: float):
        super().__init__(f"the server is shutting down; asking again in {retry_after:g}s")
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (None when absent, or an HTTP date we do not read)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86400 else None


@dataclass(frozen=True)
class ViewAnswer:
    """An answer of ``view?since=R``: the full view, or the delta from the view at R."""

    update: HostView | HostViewDelta
    size: int  # bytes of the answer's body


def decode_agent_answer(body: bytes) -> Any:
    """The value of the JSON body of a view or watch answer, which an agent decodes for
    every view it fetches.  orjson first: it decodes a 1,000-host view (~400 kB) in about
    half the time of the standard library, which decodes what orjson refuses (escaped lone
    surrogates, which the server writes for a stored string orjson cannot encode; NaN;
    UTF-16; a BOM): the same value as ``json.loads`` for these answers, and for a body that
    is not JSON the same error, ``json.JSONDecodeError`` (a ``ValueError``).  Not for any
    JSON: orjson reads an integer beyond 64 bits as a float (the integers of a view are
    revisions, VNIs, MTUs, port and protocol numbers, which the server keeps within 64
    bits)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def view_answer_from_dict(data: dict[str, Any], size: int) -> ViewAnswer:
    """A ``view?since=R`` answer from its JSON (a delta when ``"full": false``)."""
    full = data.get("full", True)
    return ViewAnswer(host_view_from_dict(data) if full else delta_from_dict(data), size)


@dataclass(frozen=True)
class WatchResult:
    revision: int
    changes: tuple[tuple[str, str], ...]  # (kind, id)
    resync: bool
    # the view update the answer carried (asked for with ``view_since``; size: the answer's)
    view: ViewAnswer | None = None
    # the server ended the watch because it is shutting down: ask again after this many
    # seconds (its Retry-After), or another server now
    closing: float | None = None


@dataclass(frozen=True)
class HostCredential:
    """A host's credential as the server describes it; ``token`` only in the answer that
    minted it (it is shown once)."""

    host: str
    created_at: str
    token: str | None = field(default=None, repr=False)


TOKEN_ENV = "DVR_TOKEN"  # where the dvr CLI and the agent look for a token without a file


def read_token_file(path: str | Path) -> str:
    """The token held in ``path`` (surrounding whitespace, e.g. a final newline, dropped)."""
    token = Path(path).read_text().strip()
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"token file {path} must hold one token")
    return token


# seconds an idle connection to the server is kept: longer than an agent's heartbeat
# interval (30 s by default), so that its heartbeats and reports reuse the connection instead
# of opening one each (httpx's default, 5 s, made 1,000 agents open 1,000 connections per
# change and per heartbeat round); shorter than the server keeps one
# (``dvr.server.main.KEEP_ALIVE_S``), so that a request never meets a connection the server
# is closing
IDLE_CONNECTION_S = 60.0


def make_http_client(server: str, token: str | None = None, timeout: float = 10.0,
                     ca_file: str | None = None) -> KeepAliveClient:
    """A client for ``server``; ``ca_file`` verifies an https server against that CA
    (default: the system's CAs)."""
    headers = {"X-Auth-Token": token} if token else {}
    context = None
    if server.startswith("https://"):  # (loading the system's CAs costs ~0.1 s per client)
        context = ssl.create_default_context(cafile=ca_file)
    return KeepAliveClient(server.rstrip("/"), headers, timeout, IDLE_CONNECTION_S, context)


def _raise_for_error(response: HttpResponse) -> None:
    if response.status_code < 400:
        return
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    try:
        err = response.json()["NeutronError"]
        raise ServerError(response.status_code, err.get("type", ""), err.get("message", ""),
                          retry_after)
    except (ValueError, KeyError, TypeError):
        raise ServerError(response.status_code, "HTTPError", response.text[:500],
                          retry_after) from None


def host_path(host: str, tail: str) -> str:
    """``/dvr/v1/hosts/{host}/{tail}`` with the host name percent-encoded (it may hold "?",
    "#", "%", spaces: anything but what registration refuses)."""
    return f"/dvr/v1/hosts/{quote(host, safe='')}/{tail}"


class ServerClient:
    """Typed calls of the dvr server. Create one per process; close it when done.

    ``server`` may list several processes of one server (replicas on one database, in order
    of preference): the client sticks to one and moves to the next when a request to it
    fails with a connection error, a timeout or a 503.  The failed request still raises:
    the caller retries as it always does (with its backoff), and reaches the next server.
    A failed server rests (for its Retry-After, else ``FAILED_SERVER_REST`` seconds): the
    client moves to the next server that is not resting; after a 503 with every other
    server resting too it stays (all are busy: moving would only bounce between them),
    after a connection failure it moves to the one whose rest ends first.  A failover is
    logged once, as one line.
    """

    FAILED_SERVER_REST = 5.0
    # seconds a request that asked the server to wait (a watch, a patient view) gives it
    # beyond that wait to answer
    REPLY_MARGIN = 10.0

    def __init__(self, server: str | Sequence[str], token: str | None = None,
                 timeout: float = 10.0, ca_file: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 view_patience: float | None = None):
        # a view request waits up to this long in a busy server's queue (None: the
        # server's default wait, and this client's ``timeout``)
        self.view_patience = view_patience
        self.servers = (server,) if isinstance(server, str) else tuple(server)
        if not self.servers:
            raise ValueError("no server to talk to")
        self._clients: list[HttpClient] = [make_http_client(s, token, timeout, ca_file)
                                           for s in self.servers]
        self._current = 0
        self._resting_until = [0.0] * len(self.servers)
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def server(self) -> str:
        """The server requests go to now."""
        return self.servers[self._current]

    @property
    def _http(self) -> HttpClient:
        return self._clients[self._current]

    @_http.setter
    def _http(self, client: HttpClient) -> None:  # tests put in-memory transports here
        self._clients[self._current] = client

    @classmethod
    def answering(cls, body: bytes) -> ServerClient:
        """A client that no server answers but ``body``, to every request (200): for
        measuring and testing how answers are decoded."""
        client = cls("http://dvr-server")
        client._http = httpx.Client(
            transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body)),
            base_url="http://dvr-server")
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------
    def send(self, method: str, path: str, **kwargs: Any) -> HttpResponse:
        """One request to the current server; after a failure that says the server is not
        serving (connection, timeout, 503), the next request goes to the next server."""
        index = self._current
        try:
            response = self._clients[index].request(method, path, **kwargs)
        except httpx.TransportError as exc:
            self._fail_over(index, f"{type(exc).__name__}: {exc}")
            raise
        if response.status_code == 503:
            self._fail_over(index, "503 Service Unavailable", busy=True,
                            rest=retry_after_seconds(response.headers.get("retry-after")))
        return response

    def _fail_over(self, failed: int, reason: str, busy: bool = False,
                   rest: float | None = None) -> None:
        """``failed`` did not serve a request; ``busy``: it answered 503 (it is up)."""
        with self._lock:
            if len(self.servers) == 1 or self._current != failed:  # another thread moved on
                return
            now = self._clock()
            self._resting_until[failed] = now + (rest if rest is not None
                                                 else self.FAILED_SERVER_REST)
            count = len(self.servers)
            others = [(failed + step) % count for step in range(1, count)]
            ready = [i for i in others if self._resting_until[i] <= now]
            if ready:
                self._current = ready[0]
            elif busy:
                return  # every other server is resting too: stay, the caller backs off
            else:
                self._current = min(others, key=lambda i: self._resting_until[i])
            log.warning("server %s failed (%s): moving to %s", self.servers[failed], reason,
                        self.servers[self._current])

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.send(method, path, **kwargs)
        _raise_for_error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    # -- agent protocol -----------------------------------------------------------------
    def register_agent(self, host: str, agent_mode: str, tunnel_ip: str | None,
                       datapath_type: str, availability_zone: str = "nova") -> Any:
        body = {"host": host, "agent_mode": agent_mode, "tunnel_ip": tunnel_ip,
                "datapath_type": datapath_type, "availability_zone": availability_zone}
        return self.request("POST", "/dvr/v1/agents", json=body)

    def host_mac(self, host: str) -> str:
        return self.request("POST", host_path(host, "host-mac"))["mac_address"]

    def host_view(self, host: str) -> HostView:
        return host_view_from_dict(self.get(host_path(host, "view")))

    def fetch_view(self, host: str, since: int) -> ViewAnswer:
        """What changed in ``host``'s view since the view at revision ``since`` that this
        caller was served (``HOLDS_NO_VIEW``: the full view).  A server that does not know
        ``since`` answers with the full view, which is what it answered before deltas."""
        params: dict[str, Any] = {"since": since}
        extra: dict[str, Any] = {}
        if self.view_patience is not None:
            params["wait"] = self.view_patience
            extra["timeout"] = self.view_patience + self.REPLY_MARGIN
        response = self.send("GET", host_path(host, "view"), params=params, **extra)
        _raise_for_error(response)
        return view_answer_from_dict(decode_agent_answer(response.content), len(response.content))

    def watch(self, host: str, since: int, timeout: float,
              view_since: int | None = None) -> WatchResult:
        """The changes for ``host`` after ``since`` (waiting up to ``timeout`` for some);
        ``view_since``: the revision of the view the caller holds, so that an answer with
        changes also brings the view update from it (a server may leave it out)."""
        params: dict[str, Any] = {"since": since, "timeout": timeout}
        if view_since is not None:
            params["view_since"] = view_since
        index = self._current
        response = self.send("GET", host_path(host, "watch"), params=params,
                             timeout=timeout + self.REPLY_MARGIN)
        _raise_for_error(response)
        data = decode_agent_answer(response.content)
        view = data.get("view")
        closing = None
        if data.get("closing"):
            closing = retry_after_seconds(response.headers.get("retry-after"))
            closing = self.FAILED_SERVER_REST if closing is None else closing
            self._fail_over(index, "it is shutting down", rest=closing)
        return WatchResult(
            revision=data["revision"],
            changes=tuple((c["kind"], c["id"]) for c in data["changes"]),
            resync=bool(data.get("resync")),
            view=view_answer_from_dict(view, len(response.content))
            if isinstance(view, dict) else None,
            closing=closing,
        )

    def heartbeat(self, host: str, applied_revision: int, ports_up: list[str],
                  ports_down: list[str], vifs: dict[str, str],
                  local_vlans: dict[str, int], **layout: Any) -> Any:
        """``layout``: the agent's local settings that shape its dataplane (its
        ``layout_report``: ``bridge_mappings``, physical network -> bridge, and those of
        ``LAYOUT_CHOICES`` it does not leave at their default), sent so that the server's
        rebuild of the host's desired state (``dvr flows``, ``dvr trace``, the web view)
        has the mapped bridges, the fast path (or not) and the tunnel layout too."""
        body: dict[str, Any] = {"applied_revision": applied_revision, "ports_up": ports_up,
                                "ports_down": ports_down, "vifs": vifs,
                                "local_vlans": local_vlans, **layout}
        return self.request("POST", host_path(host, "heartbeat"), json=body)

    def hosts(self) -> list[dict[str, Any]]:
        data = self.get("/dvr/v1/hosts")
        return data["hosts"] if isinstance(data, dict) else data

    def agent_state(self, host: str) -> dict[str, Any]:
        """What the host's agent last reported: its plugged VIFs, local VLANs and bridge
        mappings."""
        return self.get(host_path(host, "agent-state"))

    # -- host credentials (admin only) ---------------------------------------------------------
    def create_host_credential(self, host: str) -> HostCredential:
        """Mint (or rotate) ``host``'s credential; the answer holds the token, shown once."""
        return _credential(self.request("POST", host_path(host, "credential")))

    def host_credential(self, host: str) -> HostCredential:
        return _credential(self.get(host_path(host, "credential")))

    def revoke_host_credential(self, host: str) -> None:
        self.request("DELETE", host_path(host, "credential"))

    # -- Neutron API ----------------------------------------------------------------------
    def list(self, collection: str, **filters: Any) -> list[dict[str, Any]]:
        """``collection`` as in the URL; the body's key has '_' for '-' (security-groups)."""
        return self.get(f"/v2.0/{collection}", **filters)[collection.replace("-", "_")]

    def show(self, collection: str, singular: str, obj_id: str) -> dict[str, Any]:
        return self.get(f"/v2.0/{collection}/{obj_id}")[singular]

    def create(self, collection: str, singular: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/v2.0/{collection}", json={singular: body})[singular]

    def update(self, collection: str, singular: str, obj_id: str,
               body: dict[str, Any]) -> dict[str, Any]:
        return self.request(
            "PUT", f"/v2.0/{collection}/{obj_id}", json={singular: body}
        )[singular]

    def delete(self, collection: str, obj_id: str) -> None:
        self.request("DELETE", f"/v2.0/{collection}/{obj_id}")

    def add_router_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self.request(
            "PUT", f"/v2.0/routers/{router_id}/add_router_interface",
            json={"subnet_id": subnet_id},
        )

    def remove_router_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self.request(
            "PUT", f"/v2.0/routers/{router_id}/remove_router_interface",
            json={"subnet_id": subnet_id},
        )


def _credential(data: dict[str, Any]) -> HostCredential:
    body = data["credential"]
    return HostCredential(host=body["host"], created_at=body["created_at"],
                          token=body.get("token"))
