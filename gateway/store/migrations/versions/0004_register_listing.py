"""Supervised listing (挂牌督办) set by a regulator on a register entry.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("register_entry") as t:
        t.add_column(sa.Column("listed_ms", sa.BigInteger(), nullable=True))
        t.add_column(sa.Column("listed_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("register_entry") as t:
        t.drop_column("listed_by")
        t.drop_column("listed_ms")
