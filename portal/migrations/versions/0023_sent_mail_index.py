"""sent_mail by when it was sent, so the hourly sweep can take its oldest rows in short batches

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sent_mail_sent_at", "sent_mail", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_sent_mail_sent_at", table_name="sent_mail")
