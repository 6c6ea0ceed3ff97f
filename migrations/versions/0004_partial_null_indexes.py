"""index ended encounters and staff actions only

Every pre-screen inserts an encounter that has not ended and audit rows written by the patient, not by staff:
as full indexes, `ix_encounter_ended` and `ix_transition_log_actor_id` took an entry (a B-tree descent and a page
written to the WAL) for each of them that no query ever reads. Their readers (what ended between two times, what
a staff member did) compare the column with a value, which PostgreSQL and SQLite both know implies IS NOT NULL,
so partial indexes serve them unchanged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _partial(name: str, table: str, columns: list[str], where: str) -> None:
    op.drop_index(name, table_name=table)
    op.create_index(name, table, columns, unique=False, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    _partial('ix_encounter_ended', 'encounter', ['ended_at', 'state', 'stream'], 'ended_at IS NOT NULL')
    _partial('ix_transition_log_actor_id', 'transition_log', ['actor_id'], 'actor_id IS NOT NULL')


def downgrade() -> None:
    op.drop_index('ix_transition_log_actor_id', table_name='transition_log')
    op.create_index('ix_transition_log_actor_id', 'transition_log', ['actor_id'], unique=False)
    op.drop_index('ix_encounter_ended', table_name='encounter')
    op.create_index('ix_encounter_ended', 'encounter', ['ended_at', 'state', 'stream'], unique=False)
