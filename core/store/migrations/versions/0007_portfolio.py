"""the model portfolio: a receipt names its model (up to 64 characters), the replica that
answered and the model's privacy class

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.alter_column("role", type_=sa.String(64), existing_type=sa.String(8))
        batch.alter_column("action", type_=sa.String(80), existing_type=sa.String(16))
        batch.add_column(sa.Column("replica", sa.String(255), nullable=True))
        batch.add_column(sa.Column("privacy_class", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("privacy_class")
        batch.drop_column("replica")
        batch.alter_column("action", type_=sa.String(16), existing_type=sa.String(80))
        batch.alter_column("role", type_=sa.String(8), existing_type=sa.String(64))
