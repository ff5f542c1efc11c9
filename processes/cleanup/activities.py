"""Deleting one batch of one table's expired rows: one short statement, one commit."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from portal.models import (
    EmailToken,
    FormSubmission,
    OidcAccessToken,
    OidcAuthorizationCode,
    OidcGrant,
    OidcRefreshToken,
    OutboxMessage,
    RateLimitCounter,
    SentMail,
    UserSession,
    utcnow,
)
from processes.cleanup.vocabulary import BatchSwept, SweepBatch, SweptTable

# Each table's key and the moment its row is over.
ENDS = {
    SweptTable.AUTHORIZATION_CODES: (
        OidcAuthorizationCode.code_hash,
        OidcAuthorizationCode.expires_at,
    ),
    SweptTable.ACCESS_TOKENS: (OidcAccessToken.jti, OidcAccessToken.expires_at),
    SweptTable.REFRESH_TOKENS: (OidcRefreshToken.token_hash, OidcRefreshToken.expires_at),
    SweptTable.SESSIONS: (UserSession.id, UserSession.expires_at),
    SweptTable.EMAIL_TOKENS: (EmailToken.id, EmailToken.expires_at),
    SweptTable.FORM_SUBMISSIONS: (FormSubmission.key_hash, FormSubmission.created_at),
    SweptTable.RELAYED_OUTBOX: (OutboxMessage.id, OutboxMessage.relayed_at),
    SweptTable.RATE_LIMITS: (RateLimitCounter.key, RateLimitCounter.expires_at),
    SweptTable.SENT_MAIL: (SentMail.key, SentMail.sent_at),
    SweptTable.OIDC_GRANTS: (OidcGrant.id, OidcGrant.revoked_at),
}
# Tables whose ending is seconds since the epoch (what the `limits` package keeps), not a date.
EPOCH_SECONDS = {SweptTable.RATE_LIMITS}


def _grant_over(cutoff) -> ColumnElement[bool]:
    """Revoked, or offline access lapsed, before the cutoff; or a sign-in's grant from before
    the cutoff with no token left (no refresh can come without one)."""
    return or_(
        OidcGrant.revoked_at < cutoff,
        and_(OidcGrant.offline.is_(True), OidcGrant.expires_at < cutoff),
        and_(
            OidcGrant.revoked_at.is_(None),
            OidcGrant.offline.is_(False),
            OidcGrant.created_at < cutoff,
            ~exists().where(OidcRefreshToken.grant_id == OidcGrant.id),
            ~exists().where(OidcAccessToken.grant_id == OidcGrant.id),
        ),
    )


def _over(table: SweptTable, cutoff) -> ColumnElement[bool]:
    if table == SweptTable.OIDC_GRANTS:
        return _grant_over(cutoff)
    _, ends = ENDS[table]
    return and_(ends.is_not(None), ends < cutoff)


class CleanupActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    @activity.defn
    def delete_expired_batch(self, sweep: SweepBatch) -> BatchSwept:
        """Picks at most `batch` keys by the ending's index and deletes those rows, so a sweep of
        a million rows is many short transactions that never lock a table for long; a retried
        batch finds the rows already gone and deletes the next ones."""
        table = SweptTable(sweep.table)
        key, _ = ENDS[table]
        grace = timedelta(days=sweep.grace_days)
        cutoff = time.time() - grace.total_seconds() if table in EPOCH_SECONDS else utcnow() - grace
        over = select(key).where(_over(table, cutoff)).limit(sweep.batch)
        with self.session_factory() as session:
            keys = list(session.scalars(over))
            if keys:
                session.execute(delete(key.class_).where(key.in_(keys)))
                session.commit()
        return BatchSwept(deleted=len(keys))
