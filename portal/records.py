"""Finding the clinical record a patient registration is for: one account per record, while
several records (a family) may share one address."""

from __future__ import annotations

import unicodedata

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from portal.models import LIVE_ACCOUNT, ClinicalRecord, User

RECORDS_BY_EMAIL = (
    select(ClinicalRecord)
    .where(ClinicalRecord.portal == bindparam("portal"))
    .where(func.lower(ClinicalRecord.email) == bindparam("email"))
    .order_by(ClinicalRecord.id)
)
LIVE_ACCOUNT_OF_RECORD = (
    select(User)
    .where(User.clinical_record_id == bindparam("record_id"))
    .where(User.status.in_(LIVE_ACCOUNT))
    .limit(1)
)
"""Built once per process: each patient registration runs both."""


def comparable_name(name: str) -> str:
    """A name as people mean it: accents, case and spacing do not make another person."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def matching_record(
    session: Session, portal: str, email: str, full_name: str
) -> ClinicalRecord | None:
    """The record with this address whose name is the one typed, or the address's only record;
    None when no record has the address, or several do and none has that name."""
    wanted_email = {"portal": portal, "email": email.strip().lower()}
    records = list(session.scalars(RECORDS_BY_EMAIL, wanted_email))
    wanted = comparable_name(full_name)
    named = [record for record in records if comparable_name(record.full_name) == wanted]
    if named:
        return named[0]
    return records[0] if len(records) == 1 else None


def account_of_record(session: Session, record: ClinicalRecord) -> User | None:
    """The live account already registered against the record, if any."""
    return session.scalar(LIVE_ACCOUNT_OF_RECORD, {"record_id": record.id})
