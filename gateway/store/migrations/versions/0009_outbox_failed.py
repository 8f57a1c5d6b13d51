"""Notifications that can never be sent end in a failed state instead of being retried
forever (an e-mail with CR/LF in a header from register text was).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("failed_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "failed_ms")
