"""The client verifies an https server: against ``ca_file`` when given (the agent's and the
dvr CLI's --ca-file), else against the system's CAs, which do not know a private CA."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dvr.client import ServerClient


def openssl(*argv: str, cwd: Path) -> None:
    subprocess.run(["openssl", *argv], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A private CA and a certificate it signed for 127.0.0.1."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "1", "-subj", "/CN=dvr test CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext", cwd=d)
    return d


class Answer(http.server.BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:
        Answer.seen.append(self.headers.get("X-Auth-Token"))
        body = json.dumps({"hosts": [{"host": "compute-1"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_server(pki: Path) -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_ca_file_verifies_the_server_and_the_token_goes_along(https_server, pki):
    Answer.seen.clear()
    with ServerClient(https_server, "dvrh_tok", ca_file=str(pki / "ca.pem")) as client:
        assert client.hosts() == [{"host": "compute-1"}]
    assert Answer.seen == ["dvrh_tok"]


def test_without_the_ca_file_a_private_ca_is_not_trusted(https_server):
    Answer.seen.clear()
    with ServerClient(https_server, "dvrh_tok") as client, pytest.raises(httpx.ConnectError):
        client.hosts()
    assert Answer.seen == []  # the token never left
