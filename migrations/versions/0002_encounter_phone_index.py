"""index the patient's phone number

A pre-screen counts the phone number's open bookings: without this index that was a scan of every
encounter (seconds per submission at a million encounters).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_encounter_phone', 'encounter', ['patient_phone'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_encounter_phone', table_name='encounter')
