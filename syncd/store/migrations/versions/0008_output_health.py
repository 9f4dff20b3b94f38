"""Output health: the last failure of an output (a full disk, a folder gone), shown by `syncd status`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outputs") as batch:
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("failing_since", sa.DateTime(), nullable=True))
        # An output that failed before it was ever written has no hash and no write time yet.
        batch.alter_column("content_hash", existing_type=sa.String(length=64), nullable=True)
        batch.alter_column("written_at", existing_type=sa.DateTime(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM outputs WHERE written_at IS NULL")
    with op.batch_alter_table("outputs") as batch:
        batch.alter_column("written_at", existing_type=sa.DateTime(), nullable=False)
        batch.alter_column("content_hash", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("failing_since")
        batch.drop_column("last_error")
