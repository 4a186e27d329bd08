"""host credentials: table ``host_credentials`` (host, sha256 of its token, created_at)

Revision ID: 0006_auth_server
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_auth_server"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "host_credentials",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("host", name="pk_host_credentials"),
        sa.UniqueConstraint("token_sha256", name="uq_host_credentials_token_sha256"),
    )


def downgrade() -> None:
    op.drop_table("host_credentials")
