"""Partitioned gateway instances: the instances alive and each partition's owner and epoch
(gateway.cluster.lease).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.create_table("cluster_instance",
                    sa.Column("name", sa.String(64), primary_key=True),
                    sa.Column("lock_key", sa.Integer(), nullable=False),
                    sa.Column("started_ms", sa.BigInteger(), nullable=False))
    op.create_table("partition_lease",
                    sa.Column("partition", sa.Integer(), primary_key=True,
                              autoincrement=False),
                    sa.Column("owner", sa.String(64), nullable=False),
                    sa.Column("epoch", sa.BigInteger(), nullable=False),
                    sa.Column("since_ms", sa.BigInteger(), nullable=False))


def downgrade() -> None:
    op.drop_table("partition_lease")
    op.drop_table("cluster_instance")
