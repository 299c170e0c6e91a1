"""approvals: drafts held for a reviewer, and the approved copy kept as the brand's record

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drafts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(32), nullable=False, unique=True),
        sa.Column("job_kind", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("original", sa.JSON, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("review", sa.JSON, nullable=False),
        sa.Column("decision_job", sa.String(32), nullable=True),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_drafts_state_expires_at", "drafts", ["state", "expires_at"])
    op.create_index("ix_drafts_tenant_subject", "drafts", ["tenant", "subject"])
    op.create_table(
        "approved_copy",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("original", sa.JSON, nullable=False),
        sa.Column("approved", sa.JSON, nullable=False),
        sa.Column("edited", sa.Boolean, nullable=False),
        sa.Column("edit_distance", sa.Integer, nullable=False),
        sa.Column("approved_by", sa.String(32), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("receipt_id", sa.String(32), nullable=False),
    )
    op.create_index("ix_approved_copy_tenant_subject", "approved_copy", ["tenant", "subject"])
    op.create_index("ix_approved_copy_approved_at", "approved_copy", ["approved_at"])
    with op.batch_alter_table("receipts") as batch:
        batch.add_column(sa.Column("approved_by", sa.String(32), nullable=True))
        batch.add_column(sa.Column("edit_distance", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("edit_distance")
        batch.drop_column("approved_by")
    op.drop_index("ix_approved_copy_approved_at", "approved_copy")
    op.drop_index("ix_approved_copy_tenant_subject", "approved_copy")
    op.drop_table("approved_copy")
    op.drop_index("ix_drafts_tenant_subject", "drafts")
    op.drop_index("ix_drafts_state_expires_at", "drafts")
    op.drop_table("drafts")
