"""A register transition's verifier beside its actor (the verifier had replaced the actor:
whoever sent the request could name anyone as having done it).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.add_column("register_transition",
                  sa.Column("verifier", sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column("register_transition", "verifier")
