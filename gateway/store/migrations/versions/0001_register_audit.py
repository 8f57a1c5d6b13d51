"""Hazard register, its transitions, and the audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "register_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enterprise", sa.String(length=64), nullable=False),
        sa.Column("hazard_source", sa.String(length=64), nullable=False),
        sa.Column("point", sa.String(length=64), nullable=True),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("measures", sa.Text(), nullable=True),
        sa.Column("funds_cny", sa.Float(), nullable=True),
        sa.Column("responsible_person", sa.String(length=128), nullable=True),
        sa.Column("deadline_ms", sa.BigInteger(), nullable=True),
        sa.Column("contingency_plan", sa.Text(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("closed_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_register_entry_enterprise", "register_entry", ["enterprise"])
    op.create_index("ix_register_entry_hazard_source", "register_entry", ["hazard_source"])
    op.create_index("ix_register_entry_state", "register_entry", ["state"])
    op.create_table(
        "register_transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=False),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["register_entry.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_register_transition_entry_id", "register_transition", ["entry_id"])


def downgrade() -> None:
    op.drop_index("ix_register_transition_entry_id", "register_transition")
    op.drop_table("register_transition")
    for col in ("state", "hazard_source", "enterprise"):
        op.drop_index(f"ix_register_entry_{col}", "register_entry")
    op.drop_table("register_entry")
    op.drop_table("audit_log")
