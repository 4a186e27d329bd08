"""/v2.0/default-security-group-rules (``security-groups-default-rules``): the template of
a new group's rules; ``remote_group_id`` may be ``PARENT`` (the new group itself)."""

from __future__ import annotations

from typing import Any

from dvr.db.seed import PARENT
from dvr.server.api.common import Collection
from dvr.server.api.security_group_rules import MATCH_ATTRS
from dvr.server.attributes import Attr, ResourceSpec
from dvr.server.services import default_security_group_rules as service
from dvr.server.validate import UUID_SCHEMA, accepts, nullable, to_bool, to_uuid


@accepts(nullable({"anyOf": [UUID_SCHEMA, {"enum": [PARENT]}]}))
def _remote_group(value: Any) -> str | None:
    if value is None or value == PARENT:
        return value
    return to_uuid(value)


SPEC = ResourceSpec(
    singular="default_security_group_rule",
    plural="default_security_group_rules",
    path="default-security-group-rules",
    attrs=(
        *MATCH_ATTRS,
        Attr("remote_group_id", _remote_group, put=False),
        Attr("used_in_default_sg", to_bool, put=False),
        Attr("used_in_non_default_sg", to_bool, put=False),
    ),
)

COLLECTION = Collection(
    spec=SPEC,
    list_items=lambda tx, filters: service.list_rules(tx.conn),
    show=lambda tx, rule_id: service.show(tx.conn, rule_id),
    create=service.create,
    delete=service.delete_rule,
)
