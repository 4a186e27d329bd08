"""Host credentials: one token per host, stored only as its sha256; a new one replaces
(rotates) the old at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from dvr.db.tables import host_credentials
from dvr.server.auth import new_host_token, token_sha256
from dvr.server.errors import NotFoundError, invalid_input
from dvr.server.services.common import ids_statement
from dvr.server.tx import ReadTx, WriteTx
from dvr.server.validate import is_path_segment, is_plain_text


def _iso(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found(host: str) -> NotFoundError:
    return NotFoundError(
        f"Host {host} has no credential.", type_name="HostCredentialNotFound"
    )


def create(tx: WriteTx, host: str) -> dict[str, Any]:
    """A new token for ``host`` (the previous one, if any, stops working): shown once."""
    if not is_plain_text(host) or not is_path_segment(host):
        raise invalid_input(f"host '{host}' is not a valid host name")
    token = new_host_token()
    tx.conn.execute(delete(host_credentials).where(host_credentials.c.host == host))
    tx.conn.execute(
        insert(host_credentials).values(
            host=host, token_sha256=token_sha256(token), created_at=tx.now
        )
    )
    return {"host": host, "token": token, "created_at": _iso(tx.now)}


def show(tx: ReadTx, host: str) -> dict[str, Any]:
    query = select(host_credentials.c.created_at).where(host_credentials.c.host == host)
    created_at = tx.conn.execute(query).scalar()
    if created_at is None:
        raise _not_found(host)
    return {"host": host, "created_at": _iso(created_at)}


def revoke(tx: WriteTx, host: str) -> None:
    result = tx.conn.execute(delete(host_credentials).where(host_credentials.c.host == host))
    if result.rowcount == 0:
        raise _not_found(host)


def _hosts_of_hashes(ids: Callable[[Any], Any]) -> Any:
    return select(host_credentials.c.token_sha256, host_credentials.c.host).where(
        ids(host_credentials.c.token_sha256))


def hosts_of_tokens(tx: ReadTx, token_hashes: list[str]) -> list[str | None]:
    """The host of each credential, named by its token's sha256 (None: nobody), in one
    query: the lookups of requests that arrive together share it (``authn``)."""
    statement = ids_statement(tx.conn, _hosts_of_hashes)
    rows = tx.conn.execute(statement, {"ids": sorted(set(token_hashes))})
    found = {token_hash: host for token_hash, host in rows}
    return [found.get(token_hash) for token_hash in token_hashes]


def has_credential(conn: Connection, host: str) -> bool:
    query = select(host_credentials.c.host).where(host_credentials.c.host == host)
    return conn.execute(query).first() is not None
