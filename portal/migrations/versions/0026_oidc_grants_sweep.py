"""oidc_grants by when they were revoked, lapsed and made, so the hourly sweep finds the ended
ones without reading the whole table

Revision ID: 0026
Revises: 0023
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | Sequence[str] | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_oidc_grants_revoked_at", "oidc_grants", ["revoked_at"])
    op.create_index("ix_oidc_grants_expires_at", "oidc_grants", ["expires_at"])
    op.create_index("ix_oidc_grants_created_at", "oidc_grants", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_oidc_grants_created_at", table_name="oidc_grants")
    op.drop_index("ix_oidc_grants_expires_at", table_name="oidc_grants")
    op.drop_index("ix_oidc_grants_revoked_at", table_name="oidc_grants")
