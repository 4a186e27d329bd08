"""Fixtures of the server tests.  Every test that takes ``backend`` runs twice: on SQLite
and on a private PostgreSQL cluster (skipped, with the reason, when PostgreSQL is absent)."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx works fine
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/pg.py

import pg  # noqa: E402
from server_helpers import Api, make_config  # noqa: E402

from dvr.db.migrate import upgrade_to_head  # noqa: E402
from dvr.db.seed import seed_default_security_group_rules  # noqa: E402
from dvr.db.session import Database  # noqa: E402
from dvr.db.tables import metadata  # noqa: E402
from dvr.server.app import create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@dataclass
class SqliteBackend:
    directory: Path
    name: str = "sqlite"
    counter: itertools.count = field(default_factory=itertools.count)
    template: Path | None = None

    def new_database(self) -> str:
        if self.template is None:
            self.template = self.directory / "template.db"
            database = Database.from_url(f"sqlite:///{self.template}")
            upgrade_to_head(database.engine)
            with database.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            database.dispose()
        target = self.directory / f"db{next(self.counter)}.db"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"

    def drop(self, url: str) -> None:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass
class PostgresBackend:
    """One migrated database per session, emptied (TRUNCATE) before each test: much faster
    than CREATE DATABASE per test, and just as isolated for tests that run one at a time."""

    cluster: pg.PgCluster
    name: str = "postgres"
    database: str = "dvr_test"
    created: bool = False

    def new_database(self) -> str:
        url = self.cluster.url(self.database)
        if not self.created:
            admin = sa.create_engine(self.cluster.url(), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {self.database}")
            admin.dispose()
            database = Database.from_url(url)
            upgrade_to_head(database.engine)
            database.dispose()
            self.created = True
            return url
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("SET lock_timeout = '10s'")
            names = [t.name for t in metadata.sorted_tables]
            conn.exec_driver_sql(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
            conn.exec_driver_sql(
                "INSERT INTO server_state (id, revision, pruned_revision) VALUES (1, 0, 0)"
            )
            seed_default_security_group_rules(conn)  # what migration 0006 wrote
        engine.dispose()
        return url

    def drop(self, url: str) -> None:
        """Nothing: the next test empties the tables."""


def running_cluster() -> Iterator[pg.PgCluster]:
    reason = pg.unavailable_reason()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    cluster = pg.start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pg.PgCluster]:
    yield from running_cluster()


@pytest.fixture(scope="session")
def pg_only_backend(pg_cluster) -> PostgresBackend:  # type: ignore[no-untyped-def]
    """PostgreSQL alone, for tests of several server processes on one database."""
    return PostgresBackend(pg_cluster, database="dvr_multi")


@pytest.fixture
def private_pg_cluster() -> Iterator[pg.PgCluster]:
    """A cluster of the test's own, which it may stop and start without disturbing others."""
    yield from running_cluster()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    if request.param == "postgres":
        return PostgresBackend(request.getfixturevalue("pg_cluster"))
    return SqliteBackend(tmp_path_factory.mktemp("sqlite"))


def pytest_collection_modifyitems(items):  # type: ignore[no-untyped-def]
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "postgres":
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def db_url(backend) -> Iterator[str]:  # type: ignore[no-untyped-def]
    url = backend.new_database()
    yield url
    backend.drop(url)


@pytest.fixture
def app(db_url):  # type: ignore[no-untyped-def]
    database = Database.from_url(db_url)
    application = create_app(make_config(db_url), database, migrate=False)
    yield application
    database.dispose()


@pytest.fixture
def api(app) -> Iterator[Api]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=True) as client:
        yield Api(client, app.state.context)


# -- a real dvr-server process ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_live_server(
    db_url: str, state_dir: Path, *extra: str, auth: bool = False, scheme: str = "http",
    probe: dict | None = None, port: int | None = None,
) -> LiveServer:
    """A dvr-server process on a free loopback port (or ``port``: a restart); without
    ``auth`` it runs --no-auth.  ``probe``: httpx keywords for the readiness probe (e.g.
    ``verify`` for https)."""
    port = port or free_port()
    log_path = state_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dvr.server.main",
                "--db",
                db_url,
                "--listen",
                f"127.0.0.1:{port}",
                "--state-dir",
                str(state_dir),
                "--log-level",
                "warning",
                *(() if auth else ("--no-auth",)),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"{scheme}://127.0.0.1:{port}"
    server = LiveServer(url, process, log_path)
    sockets = [Path(arg.removeprefix("unix:")) for arg in extra if arg.startswith("unix:")]
    for _ in range(300):  # up to ~30 s
        if process.poll() is not None:
            raise RuntimeError(f"dvr-server exited: {log_path.read_text()}")
        try:
            tcp_ready = httpx.get(url + "/", timeout=1, **(probe or {})).status_code == 200
            if tcp_ready and all(path.exists() for path in sockets):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"dvr-server did not start: {log_path.read_text()}")


@pytest.fixture
def live_server(db_url, tmp_path) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    server = start_live_server(db_url, tmp_path)
    yield server
    server.stop()


@pytest.fixture
def conn(live_server):  # type: ignore[no-untyped-def]
    """openstacksdk, unchanged, against the live server (no authentication)."""
    import openstack

    connection = openstack.connect(auth_type="none", auth={"endpoint": live_server.url})
    yield connection
    connection.close()
