"""ports: index (network_id, host) for L2 population instead of (network_id)

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.drop_index("ix_ports_network_id")
        batch.create_index("ix_ports_network_id_host", ["network_id", "host"])


def downgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.drop_index("ix_ports_network_id_host")
        batch.create_index("ix_ports_network_id", ["network_id"])
