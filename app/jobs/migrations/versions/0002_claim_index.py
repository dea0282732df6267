"""An index on jobs (state, seq) for the dispatcher's claim of the oldest queued job.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_state_seq", "jobs", ["state", "seq"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_seq", table_name="jobs")
