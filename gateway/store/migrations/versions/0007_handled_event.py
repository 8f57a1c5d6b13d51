"""The event that handled an alarm occurrence (ack, clear, shelve, remove, ...), for the
report's figures: an acknowledgement by a person is told apart from a self-clear.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

# before this revision ``handled_by`` held the user, or the event when nobody acted
_EVENTS_WITHOUT_A_PERSON = ("clear", "chatter_end", "shelve_expired", "unsuppress",
                            "suppress", "chattering")


def upgrade() -> None:
    op.add_column("alarm", sa.Column("handled_event", sa.String(length=32), nullable=True))
    alarm = sa.table("alarm", sa.column("handled_by", sa.String),
                     sa.column("handled_event", sa.String))
    op.execute(alarm.update().where(alarm.c.handled_by.in_(_EVENTS_WITHOUT_A_PERSON))
               .values(handled_event=alarm.c.handled_by))


def downgrade() -> None:
    op.drop_column("alarm", "handled_event")
