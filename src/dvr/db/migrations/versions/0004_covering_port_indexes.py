"""covering indexes for the HostView: ports (network_id, host, mac_address, id) instead of
(network_id, host); ip_allocations (port_id, ip_address) instead of (port_id)

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.drop_index("ix_ports_network_id_host")
        batch.create_index(
            "ix_ports_network_id_host_mac_address_id", ["network_id", "host", "mac_address", "id"]
        )
    with op.batch_alter_table("ip_allocations") as batch:
        batch.drop_index("ix_ip_allocations_port_id")
        batch.create_index("ix_ip_allocations_port_id_ip_address", ["port_id", "ip_address"])


def downgrade() -> None:
    with op.batch_alter_table("ip_allocations") as batch:
        batch.drop_index("ix_ip_allocations_port_id_ip_address")
        batch.create_index("ix_ip_allocations_port_id", ["port_id"])
    with op.batch_alter_table("ports") as batch:
        batch.drop_index("ix_ports_network_id_host_mac_address_id")
        batch.create_index("ix_ports_network_id_host", ["network_id", "host"])
