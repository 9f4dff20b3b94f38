"""Customer details: street, postcode, city, country, birth date, tax id and website, compared to find duplicates.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TEXT_COLUMNS = ("street", "postcode", "city", "country", "tax_id", "website")


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        for name in TEXT_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(500), nullable=True))
        batch.add_column(sa.Column("birth_date", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        for name in (*TEXT_COLUMNS, "birth_date"):
            batch.drop_column(name)
