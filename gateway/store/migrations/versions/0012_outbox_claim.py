"""Outbox rows are claimed before they are sent: with several gateway instances on one
database each due message must go to one of them (before this, every instance sent every
message).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("claimed_by", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "claimed_by")
