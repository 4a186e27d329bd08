"""Helpers shared by the resource services: timestamps, revisions, row lookup."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import String

from dvr.server.errors import not_found
from dvr.server.validate import is_uuid

NOAUTH_PROJECT = "fake_project_id"
# rendering more rows than this reads a related table whole instead of a long IN list
BULK_RENDER_THRESHOLD = 500


def in_ids(conn: Connection, column: Any, ids: Any) -> ColumnElement[bool]:
    """``column IN ids`` as one bound parameter on PostgreSQL (``= ANY(array)``: constant SQL
    text, so no per-id rendering and the driver's statement cache applies), a plain IN list
    elsewhere."""
    values = list(ids)
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(String)))
    return column.in_(values)


def in_ids_param(dialect: str, column: Any, name: str) -> ColumnElement[bool]:
    """``column IN`` the ids bound to ``name`` when the statement runs, for a statement built
    once per dialect: on PostgreSQL one array parameter, elsewhere an expanding IN list (as
    ``in_ids``)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


# ``build(ids)`` -> a statement, where ``ids(column)`` is ``column IN`` the ids bound to "ids"
IdsStatement = Callable[[Callable[[Any], ColumnElement[bool]]], Any]


def ids_statement(conn: Connection, build: IdsStatement) -> Any:
    """The statement ``build`` makes (a module-level function), built once per dialect:
    ``ids(column)`` in it is ``column IN`` the ids bound to "ids" when it runs
    (``in_ids_param``).  Building a statement per call cost more than running it (SQLAlchemy
    constructs, coerces and keys it again each time)."""
    return _ids_statement(conn.dialect.name, build)


@cache
def _ids_statement(dialect: str, build: IdsStatement) -> Any:
    return build(lambda column: in_ids_param(dialect, column, "ids"))


def new_id() -> str:
    return str(uuid.uuid4())


def format_time(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def standard_fields(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "project_id": row.project_id,
        "tenant_id": row.project_id,
        "description": row.description,
        "tags": list(row.tags or []),
        "created_at": format_time(row.created_at),
        "updated_at": format_time(row.updated_at),
        "revision_number": row.revision_number,
    }


def standard_values(now: datetime, project_id: str | None, description: str | None) -> dict:
    return {
        "project_id": NOAUTH_PROJECT if project_id is None else project_id,
        "description": description or "",
        "tags": [],
        "created_at": now,
        "updated_at": now,
        "revision_number": 1,
    }


def get_row(conn: Connection, table: Table, resource: str, object_id: str) -> Any:
    if not is_uuid(object_id):
        raise not_found(resource, object_id)
    row = conn.execute(select(table).where(table.c.id == object_id)).first()
    if row is None:
        raise not_found(resource, object_id)
    return row


def list_rows(conn: Connection, table: Table, *clauses: Any) -> list[Any]:
    """The rows of ``table`` matching ``clauses``, oldest first (then by id)."""
    query = select(table).where(*clauses).order_by(table.c.created_at, table.c.id)
    return list(conn.execute(query))


def bump(conn: Connection, table: Table, object_id: str, now: datetime, **values: Any) -> None:
    """Update columns (possibly none) and bump updated_at and revision_number."""
    conn.execute(
        update(table)
        .where(table.c.id == object_id)
        .values(updated_at=now, revision_number=table.c.revision_number + 1, **values)
    )
