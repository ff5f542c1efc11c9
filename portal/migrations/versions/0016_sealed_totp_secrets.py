"""authenticator secrets are sealed at rest with the payload-encryption keys (key id first), so
the column widens and every secret stored in plain text is sealed now

Revision ID: 0016
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEAL_CONTEXT = b"acceso totp secret"
"""As portal.two_factor.SEAL_CONTEXT; repeated so this revision means the same forever."""

factors = sa.table("second_factors", sa.column("id", sa.Integer), sa.column("secret", sa.String))


def _keys():
    """The keys the caller passed to portal.db.migrate (`acceso dev` passes its dev key), else
    the deployment's ACCESO_CODEC_KEYS; read only if there is work."""
    from alembic import context

    from portal.codec import codec_keys_for
    from portal.settings import load_settings

    given = context.config.attributes.get("codec_keys")
    return given if given else codec_keys_for(load_settings())


def upgrade() -> None:
    with op.batch_alter_table("second_factors", schema=None) as batch_op:
        batch_op.alter_column(
            "secret", existing_type=sa.String(length=64), type_=sa.String(length=255)
        )
    connection = op.get_bind()
    plain = [
        (row.id, row.secret)
        for row in connection.execute(sa.select(factors.c.id, factors.c.secret))
        if ":" not in row.secret
    ]
    if not plain:
        return
    from portal.codec import seal

    keys = _keys()
    for factor_id, secret in plain:
        connection.execute(
            factors.update()
            .where(factors.c.id == factor_id)
            .values(secret=seal(keys, secret.encode(), SEAL_CONTEXT))
        )


def downgrade() -> None:
    from portal.codec import unseal

    connection = op.get_bind()
    rows = list(connection.execute(sa.select(factors.c.id, factors.c.secret)))
    keys = _keys() if rows else []
    for factor_id, sealed in rows:
        if ":" in sealed:
            connection.execute(
                factors.update()
                .where(factors.c.id == factor_id)
                .values(secret=unseal(keys, sealed, SEAL_CONTEXT).decode())
            )
    with op.batch_alter_table("second_factors", schema=None) as batch_op:
        batch_op.alter_column(
            "secret", existing_type=sa.String(length=255), type_=sa.String(length=64)
        )
