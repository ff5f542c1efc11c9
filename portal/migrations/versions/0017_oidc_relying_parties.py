"""what real relying parties need: a signing algorithm and browser origins per client, and the
sign-in session (`sid`) each code and grant came from, so one session can be logged out alone

Revision ID: 0017
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oidc_clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("signing_alg", sa.String(length=16), server_default="ES256", nullable=False)
        )
        batch_op.add_column(
            sa.Column("allowed_origins", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
    with op.batch_alter_table("oidc_grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sid", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_oidc_grants_sid"), ["sid"], unique=False)
    with op.batch_alter_table("oidc_authorization_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sid", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oidc_authorization_codes", schema=None) as batch_op:
        batch_op.drop_column("sid")
    with op.batch_alter_table("oidc_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oidc_grants_sid"))
        batch_op.drop_column("sid")
    with op.batch_alter_table("oidc_clients", schema=None) as batch_op:
        batch_op.drop_column("allowed_origins")
        batch_op.drop_column("signing_alg")
