"""Outside correspondents by direction, for the contact auto-creation policy.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "correspondents",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("inbound", sa.Integer(), nullable=False),
        sa.Column("outbound", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )


def downgrade() -> None:
    op.drop_table("correspondents")
