"""identity tries name which fields did not match the member record

Revision ID: 0013
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_tries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mismatch", sa.String(length=100), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_tries", schema=None) as batch_op:
        batch_op.drop_column("mismatch")
