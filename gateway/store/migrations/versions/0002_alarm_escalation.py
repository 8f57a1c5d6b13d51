"""Alarms as the escalation clock sees them, and the escalation steps that fired.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "alarm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.String(length=128), nullable=False),
        sa.Column("annunciated_ms", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("point", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("level_name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("limit", sa.Float(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("handled_ms", sa.BigInteger(), nullable=True),
        sa.Column("handled_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alarm_id", "annunciated_ms", name="uq_alarm_occurrence"),
    )
    op.create_index("ix_alarm_handled_ms", "alarm", ["handled_ms"])
    op.create_table(
        "escalation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alarm_row", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("roles", sa.String(length=128), nullable=False),
        sa.Column("fired_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["alarm_row"], ["alarm.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alarm_row", "step", name="uq_escalation_step"),
    )


def downgrade() -> None:
    op.drop_table("escalation")
    op.drop_index("ix_alarm_handled_ms", "alarm")
    op.drop_table("alarm")
