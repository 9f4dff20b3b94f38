"""One-time facts of the store in their own table (they hid in the outputs table).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_flags",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.execute("INSERT INTO store_flags (name, set_at) SELECT 'correspondents-counted', written_at FROM outputs "
               "WHERE path = 'state:correspondents-counted'")
    op.execute("DELETE FROM outputs WHERE path = 'state:correspondents-counted'")


def downgrade() -> None:
    op.execute("INSERT INTO outputs (path, content_hash, written_at) SELECT 'state:correspondents-counted', "
               "'done', set_at FROM store_flags WHERE name = 'correspondents-counted'")
    op.drop_table("store_flags")
