"""Server configuration: one explicit, immutable object (no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/dvr")
DEFAULT_LISTEN = "127.0.0.1:9696"


@dataclass(frozen=True)
class Listener:
    """Where to listen: TCP ``host:port`` or a unix socket path."""

    host: str | None = None
    port: int | None = None
    unix_path: str | None = None

    @property
    def is_unix(self) -> bool:
        return self.unix_path is not None

    def __str__(self) -> str:
        return f"unix:{self.unix_path}" if self.is_unix else f"{self.host}:{self.port}"


def parse_listener(text: str) -> Listener:
    """``unix:/path``, ``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (all interfaces)."""
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise ValueError("unix listener needs a path: unix:/path/to/socket")
        return Listener(unix_path=path)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address must be HOST:PORT or unix:PATH, not {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return Listener(host=host, port=int(port))


def parse_vni_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    if not sep or not low.isdigit() or not high.isdigit():
        raise ValueError(f"VNI range must be LOW:HIGH, not {text!r}")
    first, last = int(low), int(high)
    if not 1 <= first <= last < 2**24:
        raise ValueError(f"VNI range must satisfy 1 <= LOW <= HIGH < 2^24, not {text!r}")
    return first, last


@dataclass(frozen=True)
class ApiLimits:
    """Neutron's configurable maxima (its option names and defaults), plus the body cap."""

    max_request_body_bytes: int = 1024 * 1024  # 413 above this (Neutron/oslo: 114,688)
    max_dns_nameservers: int = 5
    max_subnet_host_routes: int = 20
    max_allowed_address_pair: int = 10
    max_routes: int = 30
    max_tags: int = 50  # per resource


@dataclass(frozen=True)
class TlsFiles:
    """TLS for the TCP listeners: the server's certificate and key, and optionally the CA
    that signs agents' client certificates (mutual TLS: the certificate's CN is the host)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class AuthLimits:
    """Failed authentications allowed per client address in a sliding window (then 429)."""

    max_failures: int = 10
    window_seconds: float = 10.0
    tracked_addresses: int = 10_000  # memory bound: the oldest address is forgotten first


@dataclass(frozen=True)
class LoadLimits:
    """Load shedding: what the server refuses (503 + Retry-After) rather than queue."""

    max_concurrent_views: int = 4  # view builds running at once (they hold the GIL)
    # view requests that may always wait for a turn; more while the backlog would drain
    # within view_queue_timeout / 2 at the recent pace; beyond: 503 at once
    max_queued_views: int = 64
    view_queue_timeout: float = 8.0  # a wait longer than this answers 503 (agents give up at 10)
    # a view request may say it waits longer for its turn (``wait=S``: an agent that would
    # rather queue than be refused and come back), up to this many seconds
    max_view_patience: float = 60.0
    # view requests waiting at once, however patient (a bound on the sockets held)
    max_waiting_views: int = 4096
    max_pending_requests: int = 1024  # any other requests in progress (long polls excepted)
    retry_after: int = 2  # seconds, the Retry-After of an overload 503
    database_retry_after: int = 5  # seconds, the Retry-After while the database is unreachable


@dataclass(frozen=True)
class ServerConfig:
    db_url: str
    listeners: tuple[Listener, ...] = (parse_listener(DEFAULT_LISTEN),)
    state_dir: Path = DEFAULT_STATE_DIR
    vni_range: tuple[int, int] = (1000, 1999)
    host_mac_base: str = "fa:16:3f:00:00:00"
    port_mac_base: str = "fa:16:3e:00:00:00"
    agent_down_time: int = 75  # seconds without heartbeat before an agent is "dead"
    no_auth: bool = False  # True: every request is admin (labs and tests only)
    admin_token: str | None = None  # the admin's X-Auth-Token (None: only the unix socket)
    auth_limits: AuthLimits = AuthLimits()
    tls: TlsFiles | None = None
    underlay_mtu: int = 1500
    retained_changes: int = 10_000  # change rows kept for resumable watches
    watch_default_timeout: float = 25.0
    watch_max_timeout: float = 60.0
    # SQLite: re-check the database for other processes' writes (PostgreSQL: LISTEN/NOTIFY)
    watch_poll_interval: float = 1.0
    # heartbeats that change nothing but "alive" reach the database at most this often
    heartbeat_flush_interval: float = 15.0
    load: LoadLimits = LoadLimits()
    limits: ApiLimits = ApiLimits()

    @property
    def tenant_mtu(self) -> int:
        return self.underlay_mtu - 50  # VXLAN overhead

    @staticmethod
    def default_db_url(state_dir: Path) -> str:
        return f"sqlite:///{state_dir / 'dvr.db'}"
