"""member portal: help-desk cases, identity strikes per client ID, tries and per-address windows

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "support_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workflow_id", "round"),
    )
    op.create_index("ix_support_cases_portal", "support_cases", ["portal"])
    op.create_index("ix_support_cases_workflow_id", "support_cases", ["workflow_id"])
    op.create_index("ix_support_cases_client_id", "support_cases", ["client_id"])
    op.create_index("ix_support_cases_status", "support_cases", ["status"])

    op.create_table(
        "identity_strikes",
        sa.Column("portal", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("portal", "client_id"),
    )

    op.create_table(
        "identity_tries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("try_key", sa.String(length=200), nullable=False),
        sa.Column("portal", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("suffix", sa.String(length=16), nullable=False),
        sa.Column("birth_year", sa.String(length=4), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("try_key"),
    )
    op.create_index("ix_identity_tries_workflow_id", "identity_tries", ["workflow_id"])
    op.create_index("ix_identity_tries_client_id", "identity_tries", ["client_id"])

    op.create_table(
        "identity_try_windows",
        sa.Column("portal", sa.String(length=32), nullable=False),
        sa.Column("address_key", sa.String(length=64), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("portal", "address_key"),
    )


def downgrade() -> None:
    op.drop_table("identity_try_windows")
    op.drop_index("ix_identity_tries_client_id", table_name="identity_tries")
    op.drop_index("ix_identity_tries_workflow_id", table_name="identity_tries")
    op.drop_table("identity_tries")
    op.drop_table("identity_strikes")
    op.drop_index("ix_support_cases_status", table_name="support_cases")
    op.drop_index("ix_support_cases_client_id", table_name="support_cases")
    op.drop_index("ix_support_cases_workflow_id", table_name="support_cases")
    op.drop_index("ix_support_cases_portal", table_name="support_cases")
    op.drop_table("support_cases")
