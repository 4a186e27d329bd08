"""dvr-server as a process: listeners (TCP + unix socket), token, arguments, migrations."""

import sys
from pathlib import Path

import httpx
import pytest
from conftest import start_live_server

from dvr.server.config import Listener, TlsFiles, parse_listener, parse_vni_range
from dvr.server.main import ServerOptions, parse_args


def test_tcp_and_unix_listeners_with_token(db_url, tmp_path):
    socket_path = tmp_path / "dvr.sock"
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    server = start_live_server(
        db_url, tmp_path, "--listen", f"unix:{socket_path}", "--admin-token-file",
        str(token_file), auth=True,
    )
    try:
        # the version document stays open (clients probe it before authenticating)
        assert httpx.get(server.url + "/").status_code == 200
        denied = httpx.get(server.url + "/v2.0/networks")
        assert denied.status_code == 401
        assert denied.json()["NeutronError"]["type"] == "HTTPUnauthorized"
        allowed = httpx.get(server.url + "/v2.0/networks", headers={"X-Auth-Token": "s3cret"})
        assert allowed.status_code == 200
        assert allowed.headers["x-openstack-request-id"].startswith("req-")
        transport = httpx.HTTPTransport(uds=str(socket_path))
        with httpx.Client(transport=transport, base_url="http://dvr") as local:
            created = local.post("/v2.0/networks", json={"network": {"name": "via-unix"}})
            assert created.status_code == 201  # unix socket: no token needed
        listed = httpx.get(server.url + "/v2.0/networks", headers={"X-Auth-Token": "s3cret"})
        assert [n["name"] for n in listed.json()["networks"]] == ["via-unix"]
    finally:
        server.stop()
    assert not socket_path.exists()


def test_parse_args_defaults(tmp_path):
    config, level = parse_args(["--state-dir", str(tmp_path)])
    assert config.db_url == f"sqlite:///{tmp_path / 'dvr.db'}"
    assert config.listeners == (Listener(host="127.0.0.1", port=9696),)
    assert config.vni_range == (1000, 1999) and config.host_mac_base == "fa:16:3f:00:00:00"
    assert config.agent_down_time == 75 and level == ServerOptions("info", None)
    assert (config.no_auth, config.admin_token, config.tls) == (False, None, None)


def test_parse_args_everything(tmp_path):
    config, options = parse_args(
        [
            "--db",
            "postgresql://u@127.0.0.1/dvr",
            "--listen",
            "0.0.0.0:9797",
            "--listen",
            "unix:/run/dvr.sock",
            "--vni-range",
            "5000:5999",
            "--host-mac-base",
            "FA:16:3F:AA:00:00",
            "--agent-down-time",
            "30",
            "--admin-token-file",
            "/etc/dvr/admin-token",
            "--tls-cert",
            "/etc/dvr/cert.pem",
            "--tls-key",
            "/etc/dvr/key.pem",
            "--tls-client-ca",
            "/etc/dvr/ca.pem",
        ]
    )
    assert config.listeners == (
        Listener(host="0.0.0.0", port=9797),
        Listener(unix_path="/run/dvr.sock"),
    )
    assert (config.vni_range, config.host_mac_base) == ((5000, 5999), "fa:16:3f:aa:00:00")
    assert config.agent_down_time == 30
    assert options.admin_token_file == Path("/etc/dvr/admin-token") and not config.no_auth
    assert config.tls == TlsFiles(
        Path("/etc/dvr/cert.pem"), Path("/etc/dvr/key.pem"), Path("/etc/dvr/ca.pem")
    )


@pytest.mark.parametrize(
    "bad",
    [
        ["--listen", "nonsense"],
        ["--vni-range", "9:1"],
        ["--host-mac-base", "zz"],
        ["--agent-down-time", "0"],
        ["--token", "t"],  # tokens are never accepted on a command line
        ["--tls-cert", "cert.pem"],
        ["--tls-client-ca", "ca.pem"],
    ],
)
def test_parse_args_rejects(bad):
    with pytest.raises(SystemExit):
        parse_args(bad)


def test_listener_and_range_parsing():
    assert parse_listener("[::1]:9696") == Listener(host="::1", port=9696)
    assert parse_listener(":9696") == Listener(host="0.0.0.0", port=9696)
    with pytest.raises(ValueError):
        parse_listener("unix:")
    with pytest.raises(ValueError):
        parse_vni_range("0:10")


def test_a_postgresql_url_without_the_driver_is_refused_clearly(tmp_path, monkeypatch, capsys):
    """psycopg is the optional extra dvr[postgresql]: without it, a PostgreSQL URL gets a
    message that says what to install, not a traceback from deep inside SQLAlchemy."""
    from dvr.server.main import main

    monkeypatch.setitem(sys.modules, "psycopg", None)  # "import psycopg" fails
    status = main(["--state-dir", str(tmp_path), "--listen", f"unix:{tmp_path}/dvr.sock",
                   "--db", "postgresql://dvr@127.0.0.1:1/dvr"])
    assert status == 2
    assert capsys.readouterr().err == (
        "dvr-server: the database URL needs the Python module 'psycopg', which is not "
        "installed (pip install 'dvr[postgresql]')\n")


def test_stopping_server_answers_watches_before_closing(db_url, tmp_path):
    """SIGTERM while agents long-poll: every watch is answered at once, marked ``closing``
    with a Retry-After (the server is going away: ask again), neither a 500 when the
    graceful shutdown runs out nor a 503 (nothing failed), and the process is gone within
    seconds."""
    import threading
    import time

    server = start_live_server(db_url, tmp_path)
    host = "watcher-1"
    now = httpx.get(f"{server.url}/dvr/v1/hosts/{host}/watch",
                    params={"since": 0, "timeout": 0}).json()
    assert not now["resync"]
    answers: list[object] = []

    def watch() -> None:
        try:
            reply = httpx.get(f"{server.url}/dvr/v1/hosts/{host}/watch",
                              params={"since": now["revision"], "timeout": 25}, timeout=30)
            body = reply.json()
            answers.append((reply.status_code, reply.headers.get("retry-after"),
                            body.get("closing"), body["changes"]))
        except httpx.HTTPError as error:
            answers.append(type(error).__name__)

    watchers = [threading.Thread(target=watch) for _ in range(4)]
    for thread in watchers:
        thread.start()
    time.sleep(1.0)  # the watches are waiting in the server
    stopped_at = time.monotonic()
    try:
        server.process.terminate()
        for thread in watchers:
            thread.join(timeout=20)
        answered_in = time.monotonic() - stopped_at
        server.process.wait(timeout=15)
    finally:
        server.stop()
    assert answers == [(200, "2", True, [])] * 4
    assert answered_in < 2.5  # well before uvicorn's 3 s graceful-shutdown limit
