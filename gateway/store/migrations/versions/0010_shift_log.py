"""The shift log (交接班记录): handover notes with the alarms standing at handover.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "shift_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("enterprise", sa.String(32), nullable=False, index=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False, index=True),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("on_duty", sa.String(500), nullable=False),
        sa.Column("taking_over", sa.String(500), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("standing", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shift_log")
