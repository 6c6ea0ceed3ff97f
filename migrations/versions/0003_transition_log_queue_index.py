"""index the latest queue change of each stream

A clinic's screen polls its queue every few seconds; the rendered list is kept while no transition into, within
or out of the stream's live states has happened since. This partial index answers "the latest such transition
of a stream" with one probe, and is written only for those transitions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

QUEUE_CHANGE_SQL = ("from_state IN ('waiting', 'called', 'in_consultation') "
                    "OR to_state IN ('waiting', 'called', 'in_consultation')")


def upgrade() -> None:
    op.create_index('ix_transition_log_queue', 'transition_log', ['stream', 'id'], unique=False,
                    sqlite_where=sa.text(QUEUE_CHANGE_SQL), postgresql_where=sa.text(QUEUE_CHANGE_SQL))


def downgrade() -> None:
    op.drop_index('ix_transition_log_queue', table_name='transition_log')
