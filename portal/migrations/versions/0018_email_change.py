"""one patient account per clinical record (several per address), the record's date of birth,
and e-mail changes with their confirmation and undo window

Revision ID: 0018
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clinical_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("date_of_birth", sa.String(length=10), nullable=False, server_default="")
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("clinical_record_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_users_clinical_record_id", ["clinical_record_id"])
        batch_op.create_foreign_key(
            "fk_users_clinical_record_id",
            "clinical_records",
            ["clinical_record_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # Accounts made before the link: each takes the one record with its address, if only one.
    op.execute(
        """
        UPDATE users SET clinical_record_id = (
            SELECT MIN(r.id) FROM clinical_records r
            WHERE r.portal = users.portal AND lower(r.email) = lower(users.email)
        )
        WHERE role = 'patient' AND clinical_record_id IS NULL
          AND (
            SELECT COUNT(*) FROM clinical_records r
            WHERE r.portal = users.portal AND lower(r.email) = lower(users.email)
          ) = 1
          AND users.id = (
            SELECT MIN(u.id) FROM users u
            WHERE u.portal = users.portal AND lower(u.email) = lower(users.email)
              AND u.role = 'patient'
          )
        """
    )
    op.create_table(
        "email_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column("portal", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("old_email", sa.String(length=254), nullable=False),
        sa.Column("new_email", sa.String(length=254), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("keep_session", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undo_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
        sa.UniqueConstraint("workflow_id"),
    )
    op.create_index("ix_email_changes_user_id", "email_changes", ["user_id"])
    op.create_index("ix_email_changes_status", "email_changes", ["status"])


def downgrade() -> None:
    op.drop_index("ix_email_changes_status", table_name="email_changes")
    op.drop_index("ix_email_changes_user_id", table_name="email_changes")
    op.drop_table("email_changes")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("fk_users_clinical_record_id", type_="foreignkey")
        batch_op.drop_constraint("uq_users_clinical_record_id", type_="unique")
        batch_op.drop_column("clinical_record_id")
    with op.batch_alter_table("clinical_records", schema=None) as batch_op:
        batch_op.drop_column("date_of_birth")
