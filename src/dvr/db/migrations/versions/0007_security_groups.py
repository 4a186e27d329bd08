"""security groups: ``security_groups`` (+ ``default_security_groups``, one per project),
``security_group_rules``, ``default_security_group_rules`` (seeded with Neutron's template),
``address_groups``, and a port's groups as ``port_security_groups`` (replacing the
unqueried ``ports.security_groups`` list)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from dvr.db.seed import seed_default_security_group_rules

revision = "0007"
down_revision = "0006_auth_server"
branch_labels = None
depends_on = None


def _standard_columns() -> list[sa.Column]:
    return [
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
    ]


def _rule_columns() -> list[sa.Column]:
    return [
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("ethertype", sa.String(16), nullable=False),
        sa.Column("protocol", sa.String(40), nullable=True),
        sa.Column("port_range_min", sa.Integer(), nullable=True),
        sa.Column("port_range_max", sa.Integer(), nullable=True),
        sa.Column("remote_ip_prefix", sa.String(64), nullable=True),
        sa.Column("remote_address_group_id", sa.String(36), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "security_groups",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("stateful", sa.Boolean(), nullable=False),
        *_standard_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_security_groups"),
    )
    op.create_index("ix_security_groups_project_id", "security_groups", ["project_id"])
    op.create_table(
        "default_security_groups",
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("security_group_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["security_group_id"], ["security_groups.id"], ondelete="CASCADE",
            name="fk_default_security_groups_security_group_id_security_groups",
        ),
        sa.PrimaryKeyConstraint("project_id", name="pk_default_security_groups"),
        sa.UniqueConstraint(
            "security_group_id", name="uq_default_security_groups_security_group_id"
        ),
    )
    op.create_table(
        "address_groups",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("addresses", sa.JSON(), nullable=False),
        *_standard_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_address_groups"),
    )
    op.create_table(
        "security_group_rules",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("security_group_id", sa.String(36), nullable=False),
        *_rule_columns(),
        sa.Column("remote_group_id", sa.String(36), nullable=True),
        *_standard_columns(),
        sa.ForeignKeyConstraint(
            ["security_group_id"], ["security_groups.id"], ondelete="CASCADE",
            name="fk_security_group_rules_security_group_id_security_groups",
        ),
        sa.ForeignKeyConstraint(
            ["remote_group_id"], ["security_groups.id"], ondelete="CASCADE",
            name="fk_security_group_rules_remote_group_id_security_groups",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_security_group_rules"),
    )
    op.create_index(
        "ix_security_group_rules_security_group_id", "security_group_rules", ["security_group_id"]
    )
    op.create_index(
        "ix_security_group_rules_remote_group_id", "security_group_rules", ["remote_group_id"]
    )
    op.create_index(
        "ix_security_group_rules_remote_address_group_id",
        "security_group_rules",
        ["remote_address_group_id"],
    )
    op.create_table(
        "default_security_group_rules",
        sa.Column("id", sa.String(36), nullable=False),
        *_rule_columns(),
        sa.Column("remote_group_id", sa.String(36), nullable=True),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("used_in_default_sg", sa.Boolean(), nullable=False),
        sa.Column("used_in_non_default_sg", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_default_security_group_rules"),
    )
    seed_default_security_group_rules(op.get_bind())
    op.create_table(
        "port_security_groups",
        sa.Column("port_id", sa.String(36), nullable=False),
        sa.Column("security_group_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["port_id"], ["ports.id"], ondelete="CASCADE",
            name="fk_port_security_groups_port_id_ports",
        ),
        sa.ForeignKeyConstraint(
            ["security_group_id"], ["security_groups.id"],
            name="fk_port_security_groups_security_group_id_security_groups",
        ),
        sa.PrimaryKeyConstraint(
            "port_id", "security_group_id", name="pk_port_security_groups"
        ),
    )
    op.create_index(
        "ix_port_security_groups_security_group_id",
        "port_security_groups",
        ["security_group_id"],
    )
    with op.batch_alter_table("ports") as batch:
        batch.drop_column("security_groups")


def downgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.add_column(
            sa.Column("security_groups", sa.JSON(), nullable=False, server_default="[]")
        )
    for table in (
        "port_security_groups",
        "default_security_group_rules",
        "security_group_rules",
        "address_groups",
        "default_security_groups",
        "security_groups",
    ):
        op.drop_table(table)
