"""subnet pools and address scopes: tables ``address_scopes`` and ``subnetpools``, and the
pool a subnet was allocated from (``subnets.subnetpool_id``)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
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


def upgrade() -> None:
    op.create_table(
        "address_scopes",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_address_scopes"),
    )
    op.create_table(
        "subnetpools",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("prefixes", sa.JSON(), nullable=False),
        sa.Column("default_prefixlen", sa.Integer(), nullable=False),
        sa.Column("min_prefixlen", sa.Integer(), nullable=False),
        sa.Column("max_prefixlen", sa.Integer(), nullable=False),
        sa.Column("default_quota", sa.Integer(), nullable=True),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("address_scope_id", sa.String(36), nullable=True),
        *_standard_columns(),
        sa.ForeignKeyConstraint(
            ["address_scope_id"],
            ["address_scopes.id"],
            name="fk_subnetpools_address_scope_id_address_scopes",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_subnetpools"),
    )
    op.create_index("ix_subnetpools_address_scope_id", "subnetpools", ["address_scope_id"])
    with op.batch_alter_table("subnets") as batch:
        batch.add_column(sa.Column("subnetpool_id", sa.String(36), nullable=True))
        batch.create_foreign_key(
            "fk_subnets_subnetpool_id_subnetpools", "subnetpools", ["subnetpool_id"], ["id"]
        )
        batch.create_index("ix_subnets_subnetpool_id", ["subnetpool_id"])


def downgrade() -> None:
    with op.batch_alter_table("subnets") as batch:
        batch.drop_index("ix_subnets_subnetpool_id")
        batch.drop_constraint("fk_subnets_subnetpool_id_subnetpools", type_="foreignkey")
        batch.drop_column("subnetpool_id")
    op.drop_index("ix_subnetpools_address_scope_id", table_name="subnetpools")
    op.drop_table("subnetpools")
    op.drop_table("address_scopes")
