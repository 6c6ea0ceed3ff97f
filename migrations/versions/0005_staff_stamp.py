"""a stamp of the staff accounts, raised by the database at every change

Each worker keeps the staff accounts and API tokens it has looked up, and re-reads this one row every two seconds
(as it does the policy): when the stamp has moved, it forgets them. Triggers on `staff_user` and `api_token` raise
it in the transaction of every change, whoever makes it, so a deactivated account, a reset password or a revoked
token stops working on every worker within two seconds, without a query per request.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLES = ('staff_user', 'api_token')
# A missing row is created again at the time in milliseconds, so that its value does not come back to one a worker
# holds.
RAISE = ('INSERT INTO staff_stamp (id, stamp) VALUES (1, {now_ms}) '
         'ON CONFLICT (id) DO UPDATE SET stamp = staff_stamp.stamp + 1')


def upgrade() -> None:
    op.create_table('staff_stamp',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('stamp', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    if op.get_bind().dialect.name == 'postgresql':
        now_ms = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint'
        op.execute('CREATE OR REPLACE FUNCTION staff_stamp_raise() RETURNS trigger AS $$ '
                   f'BEGIN {RAISE.format(now_ms=now_ms)}; RETURN NULL; END; $$ LANGUAGE plpgsql')
        for table in TABLES:
            op.execute(f'CREATE TRIGGER {table}_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} '
                       'FOR EACH STATEMENT EXECUTE FUNCTION staff_stamp_raise()')
        return
    for table in TABLES:
        for event_name in ('insert', 'update', 'delete'):
            now_ms = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
            op.execute(f'CREATE TRIGGER {table}_stamp_{event_name} AFTER {event_name.upper()} ON {table} '
                       f'BEGIN {RAISE.format(now_ms=now_ms)}; END')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_stamp ON {table}')
        op.execute('DROP FUNCTION IF EXISTS staff_stamp_raise()')
    else:
        for table in TABLES:
            for event_name in ('insert', 'update', 'delete'):
                op.execute(f'DROP TRIGGER IF EXISTS {table}_stamp_{event_name}')
    op.drop_table('staff_stamp')
