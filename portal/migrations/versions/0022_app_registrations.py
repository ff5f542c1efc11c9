"""app registrations: third-party health apps asking to become SMART clients, with their
automatic checks and staff review

Revision ID: 0022
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column("portal", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("app_name", sa.String(length=80), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("client_type", sa.String(length=16), nullable=False),
        sa.Column("privacy_url", sa.String(length=500), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=False),
        sa.Column("contact_email", sa.String(length=254), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("review_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_final_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_pk", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_pk"], ["oidc_clients.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
        sa.UniqueConstraint("workflow_id"),
    )
    op.create_index("ix_app_registrations_portal", "app_registrations", ["portal"])
    op.create_index("ix_app_registrations_status", "app_registrations", ["status"])


def downgrade() -> None:
    op.drop_index("ix_app_registrations_status", table_name="app_registrations")
    op.drop_index("ix_app_registrations_portal", table_name="app_registrations")
    op.drop_table("app_registrations")
