"""crash safety: links derivable for a repeated send, signals in the outbox, form outcomes

Revision ID: 0011
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("salt", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_email_tokens_send_key", ["send_key"])
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="start")
        )
    op.create_table(
        "form_submissions",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("portal", sa.String(length=32), nullable=False),
        sa.Column("outcome_url", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    with op.batch_alter_table("form_submissions", schema=None) as batch_op:
        batch_op.create_index("ix_form_submissions_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("form_submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_form_submissions_created_at")
    op.drop_table("form_submissions")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("kind")
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.drop_constraint("uq_email_tokens_send_key", type_="unique")
        batch_op.drop_column("salt")
        batch_op.drop_column("send_key")
