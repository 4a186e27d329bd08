"""TLS on the TCP listener (a self-signed CA made here) and mutual TLS: a client certificate
signed by the client CA is the host its CN names; a real dvr-server process."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer, start_live_server

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certificate(directory: Path, cn: str, issuer: Pem | None = None,
                     server: bool = False) -> Pem:
    """A certificate for ``cn``: a CA when ``issuer`` is None, else signed by ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        signing_key, issuer_name = key, _name(cn)
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False), critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        signing_key = serialization.load_pem_private_key(issuer.key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(issuer.cert.read_bytes())
        issuer_name = ca_cert.subject
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]),
                critical=False)
    cert = builder.issuer_name(issuer_name).sign(signing_key, hashes.SHA256())  # type: ignore[arg-type]
    pem = Pem(directory / f"{cn}.crt", directory / f"{cn}.key")
    pem.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    pem.key.chmod(0o600)
    return pem


@dataclass
class TlsServer:
    server: LiveServer
    server_ca: Pem
    client_ca: Pem
    directory: Path
    admin_token: str

    def context(self, client: Pem | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.server_ca.cert))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        return context

    def client(self, client: Pem | None = None, token: str | None = None) -> httpx.Client:
        headers = {"X-Auth-Token": token} if token else {}
        return httpx.Client(base_url=self.server.url, verify=self.context(client),
                            headers=headers, timeout=30)


@pytest.fixture
def tls_server(db_url, tmp_path) -> Iterator[TlsServer]:  # type: ignore[no-untyped-def]
    pki = tmp_path / "pki"
    pki.mkdir()
    server_ca = make_certificate(pki, "server-ca")
    client_ca = make_certificate(pki, "client-ca")
    server_pem = make_certificate(pki, "127.0.0.1", server_ca, server=True)
    probe = {"verify": ssl.create_default_context(cafile=str(server_ca.cert))}
    server = start_live_server(
        db_url, tmp_path, "--tls-cert", str(server_pem.cert), "--tls-key", str(server_pem.key),
        "--tls-client-ca", str(client_ca.cert), auth=True, scheme="https", probe=probe,
    )
    try:
        token = (tmp_path / "admin-token").read_text().strip()
        yield TlsServer(server, server_ca, client_ca, pki, token)
    finally:
        server.stop()


def test_https_with_a_token_and_no_plain_http(tls_server):
    assert tls_server.server.url.startswith("https://")
    with tls_server.client(token=tls_server.admin_token) as admin:
        created = admin.post("/v2.0/networks", json={"network": {"name": "over-tls"}})
        assert created.status_code == 201, created.text
    with tls_server.client() as anonymous:
        assert anonymous.get("/v2.0/networks").status_code == 401
    plain = tls_server.server.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):  # the TLS listener does not speak plain HTTP
        httpx.get(plain + "/v2.0/networks", headers={"X-Auth-Token": tls_server.admin_token})
    with pytest.raises(httpx.ConnectError):  # and the client verifies the server
        httpx.get(tls_server.server.url + "/", verify=True)


def test_a_client_certificate_is_its_cn_hosts_identity(tls_server):
    with tls_server.client(token=tls_server.admin_token) as admin:
        for host, tunnel_ip in (("compute-1", "192.0.2.11"), ("compute-2", "192.0.2.12")):
            body = {"host": host, "tunnel_ip": tunnel_ip}
            assert admin.post("/dvr/v1/agents", json=body).status_code == 200
    compute_1 = make_certificate(tls_server.directory, "compute-1", tls_server.client_ca)
    with tls_server.client(compute_1) as agent:
        view = agent.get("/dvr/v1/hosts/compute-1/view")
        assert view.status_code == 200 and view.json()["host"] == "compute-1"
        assert agent.post("/dvr/v1/hosts/compute-1/host-mac").status_code == 200
        assert agent.post("/dvr/v1/hosts/compute-1/heartbeat", json={}).status_code == 200
        assert agent.get("/dvr/v1/hosts/compute-2/view").status_code == 403
        forged = {"host": "compute-2", "tunnel_ip": "203.0.113.66"}
        assert agent.post("/dvr/v1/agents", json=forged).status_code == 403
        assert agent.get("/v2.0/networks").status_code == 403
    # a certificate from another CA is refused in the handshake, whatever its CN
    stranger_ca = make_certificate(tls_server.directory, "stranger-ca")
    impostor = make_certificate(tls_server.directory, "compute-2", stranger_ca)
    with pytest.raises(httpx.HTTPError), tls_server.client(impostor) as client:
        client.get("/dvr/v1/hosts/compute-2/view")
    with tls_server.client(token=tls_server.admin_token) as admin:
        hosts = {h["host"]: h["tunnel_ip"] for h in admin.get("/dvr/v1/hosts").json()}
    assert hosts == {"compute-1": "192.0.2.11", "compute-2": "192.0.2.12"}
