"""/v2.0/security-groups; listing them creates the project's ``default`` group on first
use (as Neutron does)."""

from __future__ import annotations

from dvr.db.tables import security_groups
from dvr.server.api.common import Collection, prefilter
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.context import ServerContext
from dvr.server.services import security_groups as service
from dvr.server.services.common import NOAUTH_PROJECT, list_rows
from dvr.server.validate import is_plain_text, to_bool, to_str

SPEC = ResourceSpec(
    singular="security_group",
    plural="security_groups",
    path="security-groups",
    attrs=(
        Attr("name", to_str),
        Attr("description", to_str),
        Attr("stateful", to_bool),
        Attr("project_id", to_str, put=False),
        Attr("tenant_id", to_str, put=False),
    ),
    output_only=frozenset({"security_group_rules", "shared"}),
)

SQL_FILTERS = {"id": "id", "name": "name"}


async def ensure_default_groups(context: ServerContext, filters: dict[str, list[str]]) -> None:
    """The default group of the projects a list is about (the caller's, or the filtered
    ones), created on first use."""
    asked = [p for key in ("project_id", "tenant_id") for p in filters.get(key, [])]
    projects = sorted({p for p in asked if is_plain_text(p)} or {NOAUTH_PROJECT})
    missing = await context.read(
        lambda tx: [p for p in projects if service.default_group_id(tx.conn, p) is None]
    )
    if missing:
        await context.write(
            lambda tx: [service.ensure_default_group(tx, project) for project in missing]
        )


COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: service.render_groups(
        tx.conn,
        list_rows(tx.conn, security_groups, *prefilter(security_groups, filters, SQL_FILTERS)),
    ),
    show=lambda tx, group_id: service.show(tx.conn, group_id),
    create=service.create,
    update=service.update_group,
    delete=service.delete_group,
    before_list=ensure_default_groups,
)

