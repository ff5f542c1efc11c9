"""sessions remember their browser (user agent, device cookie hash); browsers known per account
for the new-device notice; consent remembered per client and scope set

Revision ID: 0019
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("user_agent", sa.String(length=400), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("device_hash", sa.String(length=64), nullable=True))
    op.create_table(
        "known_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("device_hash", sa.String(length=64), nullable=False),
        sa.Column("notice_workflow_id", sa.String(length=128), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notice_workflow_id"),
        sa.UniqueConstraint("user_id", "device_hash"),
    )
    op.create_table(
        "oidc_consents",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=500), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_pk"], ["oidc_clients.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "client_pk"),
    )
    with op.batch_alter_table("oidc_consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oidc_consents_client_pk"), ["client_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("oidc_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oidc_consents_client_pk"))
    op.drop_table("oidc_consents")
    op.drop_table("known_devices")
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_column("device_hash")
        batch_op.drop_column("user_agent")
