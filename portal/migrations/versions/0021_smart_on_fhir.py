"""SMART on FHIR: each clinical and member record names its FHIR Patient; a client is approved
for a set of scopes; a grant carries its patient context and, for offline access, its own
sliding expiry so it outlives the portal session

Revision ID: 0021
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("clinical_records", "member_records"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("fhir_patient_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("oidc_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approved_scopes", sa.JSON(), nullable=True))
    with op.batch_alter_table("oidc_grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patient", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("fhir_user", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("offline", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oidc_grants", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("offline")
        batch_op.drop_column("fhir_user")
        batch_op.drop_column("patient")
    with op.batch_alter_table("oidc_clients", schema=None) as batch_op:
        batch_op.drop_column("approved_scopes")
    for table in ("member_records", "clinical_records"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("fhir_patient_id")
