"""Look-ups against the organisation's records (clinical records, member records)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from portal.audit import add_event
from portal.models import MemberRecord


@dataclass
class IdentityAttempt:
    portal: str
    workflow_id: str
    first_name: str
    last_name: str
    suffix: str
    date_of_birth: str
    client_id: str
    strike_limit: int


@dataclass
class IdentityStrike:
    """The outcome of one try; strikes count per client ID across registrations."""

    portal: str
    workflow_id: str
    matched: bool
    strikes: int
    record_id: int | None = None


def _clean(value: str) -> str:
    return " ".join(value.split()).casefold()


class RecordActivities:
    def __init__(self, session_factory: sessionmaker[Session]):
        self.session_factory = session_factory

    @activity.defn
    def match_member(self, attempt: IdentityAttempt) -> IdentityStrike:
        with self.session_factory() as session:
            record = session.scalar(
                select(MemberRecord)
                .where(MemberRecord.portal == attempt.portal)
                .where(MemberRecord.client_id == attempt.client_id.strip())
            )
            matched = record is not None and (
                _clean(record.first_name) == _clean(attempt.first_name)
                and _clean(record.last_name) == _clean(attempt.last_name)
                and _clean(record.suffix) == _clean(attempt.suffix)
                and record.date_of_birth == attempt.date_of_birth.strip()
            )
            add_event(
                session,
                actor="applicant",
                action="identity.matched" if matched else "identity.failed",
                portal=attempt.portal,
                workflow_id=attempt.workflow_id,
            )
            session.commit()
            return IdentityStrike(
                portal=attempt.portal,
                workflow_id=attempt.workflow_id,
                matched=matched,
                strikes=0,
                record_id=record.id if matched else None,
            )

    @activity.defn
    def open_support_case(self, strike: IdentityStrike) -> None:
        with self.session_factory() as session:
            add_event(
                session,
                actor="system",
                action="identity.escalated",
                portal=strike.portal,
                workflow_id=strike.workflow_id,
            )
            session.commit()
