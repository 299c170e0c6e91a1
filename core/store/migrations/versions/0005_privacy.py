"""privacy: who a job's data is about (for erasure), what a receipt masked, purge indexes; the
lease of a token refresh

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("subject", sa.String(255), nullable=True))
    op.create_index("ix_jobs_tenant_subject", "jobs", ["tenant", "subject"])
    op.create_index("ix_jobs_updated_at", "jobs", ["updated_at"])
    op.create_index("ix_writebacks_created_at", "writebacks", ["created_at"])
    with op.batch_alter_table("writebacks") as batch:
        batch.add_column(sa.Column("tried_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_action_replies_created_at", "action_replies", ["created_at"])
    with op.batch_alter_table("receipts") as batch:
        batch.add_column(sa.Column("masked", sa.JSON, nullable=True))
    with op.batch_alter_table("platform_tokens") as batch:
        batch.add_column(sa.Column("refresh_lease", sa.String(32), nullable=True))
        batch.add_column(sa.Column("refresh_lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("platform_tokens") as batch:
        batch.drop_column("refresh_lease_until")
        batch.drop_column("refresh_lease")
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("masked")
    op.drop_index("ix_action_replies_created_at", "action_replies")
    with op.batch_alter_table("writebacks") as batch:
        batch.drop_column("tried_at")
    op.drop_index("ix_writebacks_created_at", "writebacks")
    op.drop_index("ix_jobs_updated_at", "jobs")
    op.drop_index("ix_jobs_tenant_subject", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("subject")
