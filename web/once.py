"""A rendered form answers once: a double click or a retry after a dropped connection gets the
first submission's outcome, never an error about the applicant's own data.

Each form that starts or changes a process carries a random `form_key` (a hidden field filled
when the form is first rendered). The view records where the accepted submission led in the same
transaction as its rows (`remember`); a later POST of the same key is sent there (`earlier`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import g, request
from sqlalchemy import delete
from sqlalchemy.orm import Session
from wtforms import HiddenField

from portal.models import FormSubmission, utcnow
from web.db import get_db
from web.forms import CheckedForm

KEEP = timedelta(days=2)


def new_form_key() -> str:
    return secrets.token_urlsafe(18)


class SubmitOnceForm(CheckedForm):
    form_key = HiddenField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.form_key.data:
            self.form_key.data = new_form_key()


def _key_hash() -> str | None:
    key = request.form.get("form_key", "").strip() if request.method == "POST" else ""
    if not key or len(key) > 64:
        return None
    portal = getattr(g, "portal", None)
    scope = f"{portal.slug if portal else 'staff'}/{request.endpoint}/{key}"
    return hashlib.sha256(scope.encode()).hexdigest()


def earlier_submission() -> FormSubmission | None:
    """The first accepted submission of the posted form, if there was one."""
    key_hash = _key_hash()
    if key_hash is None:
        return None
    return get_db().get(FormSubmission, key_hash)


def earlier() -> str | None:
    """Where the first submission of the posted form led, if it was accepted."""
    row = earlier_submission()
    return row.outcome_url if row is not None else None


def remember(session: Session, outcome_url: str, *, started_reference: str | None = None) -> None:
    """Adds the outcome to the caller's transaction; old outcomes are dropped now and then."""
    key_hash = _key_hash()
    if key_hash is None:
        return
    portal = getattr(g, "portal", None)
    session.add(
        FormSubmission(
            key_hash=key_hash,
            portal=portal.slug if portal else "",
            outcome_url=outcome_url,
            started_reference=started_reference,
        )
    )
    if secrets.randbelow(100) == 0:
        session.execute(delete(FormSubmission).where(FormSubmission.created_at < utcnow() - KEEP))
