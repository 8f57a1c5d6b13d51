"""The alarm settings last seen per point, so that a changed threshold is audit-logged.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "threshold_snapshot",
        sa.Column("enterprise", sa.String(length=64), nullable=False),
        sa.Column("point", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("enterprise", "point"),
    )


def downgrade() -> None:
    op.drop_table("threshold_snapshot")
