"""Which token the dvr CLI sends (--token-file, $DVR_TOKEN, the running lab's admin token)
and `dvr host credential create|show|revoke`, against a stand-in server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from dvr.cli import connect, credentials
from dvr.cli.connect import resolve_token
from dvr.cli.main import build_parser, main
from dvr.client import ServerClient
from dvr.lab.procs import process_ref
from dvr.lab.state import LabPaths, LabRecord

SERVER = "http://127.0.0.1:9696"


def no_lab(server: str) -> None:
    return None


def test_token_file_beats_environment_beats_the_running_lab(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    lab = {SERVER: "from-lab"}.get
    env = {"DVR_TOKEN": "from-env"}
    assert resolve_token(str(token_file), SERVER, env, lab) == "from-file"
    assert resolve_token(None, SERVER, env, lab) == "from-env"
    assert resolve_token(None, SERVER, {}, lab) == "from-lab"
    assert resolve_token(None, "http://127.0.0.1:9797", {}, lab) is None


def test_the_token_is_never_a_command_line_value():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--token", "secret", "hosts"])
    args = build_parser().parse_args(["--token-file", "/run/t", "--ca-file", "/ca.pem", "hosts"])
    assert (args.token_file, args.ca_file) == ("/run/t", "/ca.pem")


def test_the_running_lab_on_this_machine_gives_its_admin_token(tmp_path, monkeypatch):
    monkeypatch.setenv("DVR_LAB_ROOT", str(tmp_path))
    ref = process_ref(os.getpid())  # alive for the whole test: stands in for the lab's server
    paths = LabPaths.for_lab("lab1", tmp_path)
    paths.save(LabRecord(name="lab1", api_port=9797, computes=2, server=ref.as_dict(),
                         complete=True))
    assert connect.running_lab_token("http://127.0.0.1:9797") is None  # it has none yet
    paths.admin_token.write_text("the-admin-token\n")
    assert connect.running_lab_token("http://127.0.0.1:9797") == "the-admin-token"
    assert connect.running_lab_token("http://localhost:9797/") == "the-admin-token"
    assert connect.running_lab_token(SERVER) is None  # another port: not the lab


class StandIn:
    """A stand-in server: records the requests, answers the credential calls."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.raw_path.decode()
        if path == "/dvr/v1/hosts/compute%2F1/credential" and request.method == "POST":
            return httpx.Response(201, json={"credential": {
                "host": "compute/1", "token": "dvrh_" + "x" * 43,
                "created_at": "2026-12-02T13:00:00Z"}})
        if path == "/dvr/v1/hosts/compute%2F1/credential" and request.method == "GET":
            return httpx.Response(200, json={"credential": {
                "host": "compute/1", "created_at": "2026-12-02T13:00:00Z"}})
        if path == "/dvr/v1/hosts/compute%2F1/credential" and request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(404, json={"NeutronError": {
            "type": "HostCredentialNotFound", "message": "no credential", "detail": ""}})


@pytest.fixture
def stand_in(monkeypatch) -> StandIn:
    server = StandIn()

    def client(args) -> ServerClient:
        made = ServerClient(args.server, resolve_token(args.token_file, args.server, {},
                                                       no_lab))
        made._http = httpx.Client(base_url=args.server, headers=made._http.headers,
                                  transport=httpx.MockTransport(server.handle))
        return made

    monkeypatch.setattr(credentials, "server_client", client)
    return server


def test_credential_create_prints_the_token_alone_or_the_agent_toml(stand_in, tmp_path,
                                                                      capsys):
    token_file = tmp_path / "admin"
    token_file.write_text("admin-secret")
    assert main(["--token-file", str(token_file), "host", "credential", "create",
                 "compute/1"]) == 0
    assert capsys.readouterr().out == "dvrh_" + "x" * 43 + "\n"
    assert stand_in.requests[0].headers["X-Auth-Token"] == "admin-secret"
    assert main(["--token-file", str(token_file), "host", "credential", "create", "compute/1",
                 "--toml"]) == 0
    toml = tmp_path / "agent.toml"
    toml.write_text(capsys.readouterr().out)
    from dvr.agent.config import build_parser as agent_parser
    from dvr.agent.config import config_from_args

    agent = config_from_args(agent_parser().parse_args(
        ["--config", str(toml), "--server", "unix:/run/dvr.sock"]), {})
    assert (agent.host, agent.token) == ("compute/1", "dvrh_" + "x" * 43)


def test_credential_show_and_revoke(stand_in, capsys):
    assert main(["host", "credential", "show", "compute/1"]) == 0
    out = capsys.readouterr().out
    assert "compute/1" in out and "2026-12-02T13:00:00Z" in out and "dvrh_" not in out
    assert main(["host", "credential", "revoke", "compute/1"]) == 0
    assert [r.method for r in stand_in.requests] == ["GET", "DELETE"]
    assert main(["host", "credential", "revoke", "compute-9"]) == 2
    assert "HostCredentialNotFound" in capsys.readouterr().err


def test_the_dvr_command_sends_the_environment_token(tmp_path):
    """A real listener on loopback: the X-Auth-Token header the command sent."""
    code = (
        "import http.server, json, sys, threading\n"
        "seen = []\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        seen.append(self.headers.get('X-Auth-Token'))\n"
        "        body = json.dumps({'hosts': []}).encode()\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "srv = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
        "threading.Thread(target=srv.serve_forever, daemon=True).start()\n"
        "import dvr.cli.main as m\n"
        "rc = m.main(['--server', f'http://127.0.0.1:{srv.server_port}', 'hosts', '--json'])\n"
        "print(json.dumps(seen), file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "DVR_TOKEN": "env-secret",
                                             "DVR_LAB_ROOT": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == ["env-secret"]
