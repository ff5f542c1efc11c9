"""proxy grants: a person acting for another (a parent, a guardian, a chosen helper), and the
grant an OpenID Connect sign-in was made under

Revision ID: 0020
Revises: 0021
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proxy_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column("portal", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("subject_user_id", sa.Integer(), nullable=True),
        sa.Column("subject_record_id", sa.Integer(), nullable=True),
        sa.Column("proxy_user_id", sa.Integer(), nullable=True),
        sa.Column("invite_email", sa.String(length=254), nullable=False),
        sa.Column("relationship", sa.String(length=24), nullable=False),
        sa.Column("access", sa.String(length=16), nullable=False),
        sa.Column("ends_on", sa.String(length=10), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renew_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=100), nullable=True),
        sa.Column("end_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["subject_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["subject_record_id"], ["clinical_records.id"], ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["proxy_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
        sa.UniqueConstraint("workflow_id"),
    )
    op.create_index("ix_proxy_grants_portal", "proxy_grants", ["portal"])
    op.create_index("ix_proxy_grants_status", "proxy_grants", ["status"])
    op.create_index("ix_proxy_grants_subject_user_id", "proxy_grants", ["subject_user_id"])
    op.create_index("ix_proxy_grants_subject_record_id", "proxy_grants", ["subject_record_id"])
    op.create_index("ix_proxy_grants_proxy_user_id", "proxy_grants", ["proxy_user_id"])
    for table in ("oidc_authorization_codes", "oidc_grants"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("acting_for", sa.String(length=16), nullable=True))


def downgrade() -> None:
    for table in ("oidc_grants", "oidc_authorization_codes"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("acting_for")
    for column in ("proxy_user_id", "subject_record_id", "subject_user_id", "status", "portal"):
        op.drop_index(f"ix_proxy_grants_{column}", table_name="proxy_grants")
    op.drop_table("proxy_grants")
