"""TLS for the TCP listeners, and the mutual-TLS identity: a verified client certificate's
CN names the calling host.  uvicorn does not put the peer certificate in the ASGI scope, so
a small protocol subclass tags each connection's requests with it."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from dvr.server.config import TlsFiles
from dvr.server.scope_tag import CLIENT_CN_KEY, ScopeTag


def certificate_cn(peercert: dict[str, Any] | None) -> str | None:
    """The subject's commonName of ``ssl.SSLSocket.getpeercert()`` (None: no certificate)."""
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and value:
                return str(value)
    return None


class ClientCertProtocol(H11Protocol):
    """uvicorn's h11 protocol; a connection with a verified client certificate has its CN
    in every request's scope.  (The handshake has already verified it against the CA.)"""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cn = certificate_cn(transport.get_extra_info("peercert"))
        if cn is not None:
            self.app = ScopeTag(self.app, CLIENT_CN_KEY, cn)


def uvicorn_tls_options(tls: TlsFiles) -> dict[str, Any]:
    """uvicorn.Config keywords: https, and with a client CA, optional client certificates
    (a client without one still authenticates with a token)."""
    options: dict[str, Any] = {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
    if tls.client_ca is not None:
        options.update(
            ssl_ca_certs=str(tls.client_ca),
            ssl_cert_reqs=ssl.CERT_OPTIONAL,
            http=ClientCertProtocol,
        )
    return options
