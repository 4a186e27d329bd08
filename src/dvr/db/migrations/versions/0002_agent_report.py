"""agent report: what each host's agent last applied (plugged VIFs, local VLANs)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dvr_hosts") as batch:
        batch.add_column(sa.Column("agent_report", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dvr_hosts") as batch:
        batch.drop_column("agent_report")
