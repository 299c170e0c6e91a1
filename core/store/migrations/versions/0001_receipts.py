"""receipts: one row per inference

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(128), nullable=True),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("baseline_cost_usd", sa.Float, nullable=False),
        sa.Column("egress", sa.Boolean, nullable=False),
        sa.Column("egress_entities", sa.JSON, nullable=False),
        sa.Column("masked_entities", sa.JSON, nullable=False),
    )
    op.create_index("ix_receipts_created_at", "receipts", ["created_at"])
    op.create_index("ix_receipts_task_id", "receipts", ["task_id"])
    op.create_index("ix_receipts_tenant_created", "receipts", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_table("receipts")
