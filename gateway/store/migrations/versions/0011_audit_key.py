"""Keyed audit records: which key keyed each record (null: an unkeyed SHA-256 chain link).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("key_id", sa.String(8), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "key_id")
