"""What a presented token stands for, read in one Core statement.

Userinfo, introspection and revocation are the front door's most frequent calls from apps and
resource servers. Each needs the token's row, its grant, the account, the account's subject and
the app the token was issued to; loading those as ORM objects cost more than everything else the
endpoint does, so they are read as one row of plain columns, and the views below carry the
attribute names the claims code reads from `OidcGrant` and `User`. Validity is never cached: every call reads the rows again.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Select, bindparam, select

from portal.models import (
    OidcAccessToken,
    OidcClient,
    OidcGrant,
    OidcRefreshToken,
    OidcSubject,
    User,
    utcnow,
)


class GrantView(NamedTuple):
    """The columns of a grant that the token checks and the released claims read."""

    id: str
    client_pk: int
    user_id: int
    portal: str
    scope: str
    patient: str | None
    fhir_user: str | None
    acting_for: str | None
    revoked_at: datetime | None
    expires_at: datetime | None


class HolderView(NamedTuple):
    """The columns of the account that `claims_for` and the proxy checks read."""

    id: int
    portal: str
    username: str
    email: str
    full_name: str
    first_name: str
    last_name: str
    locale: str
    status: str
    role: str
    client_id: str | None
    office_id: int | None
    activated_at: datetime | None

    @property
    def display_name(self) -> str:
        return self.full_name or f"{self.first_name} {self.last_name}".strip() or self.username


class Bearer(NamedTuple):
    """A token row that is unrevoked (or, for a refresh token, unused) and unexpired, with its
    grant as stored (the caller checks the grant's own life and portal) and its holder."""

    expires_at: datetime
    grant: GrantView
    holder: HolderView
    subject: str | None
    owner: str
    """The client_id of the app the token was issued to, for introspection by another client."""


_GRANTS = OidcGrant.__table__
_USERS = User.__table__
_SUBJECTS = OidcSubject.__table__
_CLIENTS = OidcClient.__table__


def _statement(table, key: str, ended: str) -> Select:
    return (
        select(
            table.c[ended],
            table.c.expires_at,
            *(_GRANTS.c[name] for name in GrantView._fields),
            *(_USERS.c[name] for name in HolderView._fields),
            _SUBJECTS.c.subject,
            _CLIENTS.c.client_id,
        )
        .join(_GRANTS, _GRANTS.c.id == table.c.grant_id)
        .join(_CLIENTS, _CLIENTS.c.id == _GRANTS.c.client_pk)
        .join(_USERS, _USERS.c.id == _GRANTS.c.user_id)
        .outerjoin(_SUBJECTS, _SUBJECTS.c.user_id == _USERS.c.id)
        .where(table.c[key] == bindparam("value"))
    )


ACCESS_TOKEN = _statement(OidcAccessToken.__table__, "jti", "revoked_at")
REFRESH_TOKEN = _statement(OidcRefreshToken.__table__, "token_hash", "used_at")
_GRANT_END = 2 + len(GrantView._fields)
_HOLDER_END = _GRANT_END + len(HolderView._fields)


def live_token(db, statement: Select, value: str) -> Bearer | None:
    """The token found by `statement` if it has not ended or expired, else None."""
    row = db.connection().execute(statement, {"value": value}).first()
    if row is None or row[0] is not None or row[1] <= utcnow():
        return None
    return Bearer(
        row[1],
        GrantView(*row[2:_GRANT_END]),
        HolderView(*row[_GRANT_END:_HOLDER_END]),
        row[_HOLDER_END],
        row[_HOLDER_END + 1],
    )


def grant_live(grant: GrantView, portal: str) -> bool:
    """Whether the grant is of this portal, unrevoked and, for offline access, not lapsed."""
    if grant.portal != portal or grant.revoked_at is not None:
        return False
    return grant.expires_at is None or grant.expires_at > utcnow()
