"""Alarm occurrences and history carry their enterprise: with many enterprises on one
database, two with the same point ids collided (an occurrence of the second taken for a
replay of the first's, every enterprise's escalation clock firing the others' alarms).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    with op.batch_alter_table("alarm") as b:
        b.add_column(sa.Column("enterprise", sa.String(32), nullable=False,
                               server_default=""))
        b.drop_constraint("uq_alarm_occurrence", type_="unique")
        b.create_unique_constraint("uq_alarm_occurrence",
                                   ["enterprise", "alarm_id", "annunciated_ms"])
    with op.batch_alter_table("alarm_history") as b:
        b.add_column(sa.Column("enterprise", sa.String(32), nullable=False,
                               server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("alarm_history") as b:
        b.drop_column("enterprise")
    with op.batch_alter_table("alarm") as b:
        b.drop_constraint("uq_alarm_occurrence", type_="unique")
        b.create_unique_constraint("uq_alarm_occurrence", ["alarm_id", "annunciated_ms"])
        b.drop_column("enterprise")
