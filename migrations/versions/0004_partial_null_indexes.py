"""index ended encounters and staff actions only

Every pre-screen inserts an encounter that has not ended and audit rows written by the patient, not by staff:
as full indexes, `ix_encounter_ended` and `ix_transition_log_actor_id` took an entry (a B-tree descent and a page
written to the WAL) for each of them that no query ever reads. Their readers (what ended between two times, what
a staff member did) compare the column with a value, which PostgreSQL and SQLite both know implies IS NOT NULL,
so partial indexes serve them unchanged.

On PostgreSQL the new index is built CONCURRENTLY beside the old one, then takes its name: a hospital's busiest
tables are not locked while a year of rows is indexed, so the upgrade can run while the entrance works.

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

INDEXES = (  # name, table, columns, the rows kept
    ('ix_encounter_ended', 'encounter', ['ended_at', 'state', 'stream'], 'ended_at IS NOT NULL'),
    ('ix_transition_log_actor_id', 'transition_log', ['actor_id'], 'actor_id IS NOT NULL'),
)


def _rebuild(name: str, table: str, columns: list[str], where: str | None) -> None:
    """Replace index `name` with one over `columns` of the rows matching `where` (all rows when None)."""
    if op.get_bind().dialect.name != 'postgresql':
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns, unique=False, sqlite_where=sa.text(where) if where else None)
        return
    with op.get_context().autocommit_block():
        op.execute(f'DROP INDEX IF EXISTS {name}_new')  # left by an upgrade interrupted before
        op.create_index(f'{name}_new', table, columns, unique=False, postgresql_concurrently=True,
                        postgresql_where=sa.text(where) if where else None)
        op.drop_index(name, table_name=table, postgresql_concurrently=True)
        op.execute(f'ALTER INDEX {name}_new RENAME TO {name}')


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        _rebuild(name, table, columns, where)


def downgrade() -> None:
    for name, table, columns, _where in reversed(INDEXES):
        _rebuild(name, table, columns, None)
