"""Random tokens for e-mail links and sessions: the raw value goes out, only its hash stays."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from portal.models import EmailToken, utcnow


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_reference() -> str:
    """A short opaque reference an applicant can read over the phone; carries no PII."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def new_temporary_password() -> str:
    """Meets every portal's rules: upper, lower, digit, 14 characters."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(14))
        if (
            any(c.isupper() for c in candidate)
            and any(c.islower() for c in candidate)
            and any(c.isdigit() for c in candidate)
        ):
            return candidate


def issue_link(
    session: Session,
    *,
    purpose: str,
    portal: str,
    workflow_id: str,
    lifetime_hours: int,
    user_id: int | None = None,
    secret: str = "",
    send_key: str | None = None,
) -> tuple[EmailToken, str]:
    """A new e-mail link for a process step, revoking the step's earlier unused ones.

    Returns the stored row (hash only) and the raw token, which goes into the e-mail and nowhere
    else. The caller commits before sending, so the link works the moment the e-mail arrives.
    Given a `send_key`, the raw token is derived from `secret` and a stored salt instead of
    drawn at random (see `link_for_send`), in the same INSERT.
    """
    now = utcnow()
    revoke_links(session, workflow_id, purpose, now)
    salt = secrets.token_hex(16) if send_key is not None else None
    raw = derived_token(secret, salt) if salt is not None else new_token()
    token = EmailToken(
        token_hash=token_hash(raw),
        purpose=purpose,
        portal=portal,
        workflow_id=workflow_id,
        user_id=user_id,
        expires_at=now + timedelta(hours=lifetime_hours),
        send_key=send_key,
        salt=salt,
    )
    session.add(token)
    session.flush()
    return token, raw


def derived_token(secret: str, salt: str) -> str:
    """The raw link value for a stored salt: the secret key and the row together re-make it, so
    a retried send repeats the link without the raw value ever being stored."""
    digest = hmac.new(secret.encode(), f"link/{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def derived_temporary_password(secret: str, salt: str) -> str:
    """The same temporary password for every retry of one logical send."""
    alphabet = string.ascii_letters + string.digits
    counter = 0
    while True:
        digest = hmac.new(
            secret.encode(), f"temporary/{salt}/{counter}".encode(), hashlib.sha256
        ).digest()
        candidate = "".join(alphabet[b % len(alphabet)] for b in digest[:14])
        if (
            any(c.isupper() for c in candidate)
            and any(c.islower() for c in candidate)
            and any(c.isdigit() for c in candidate)
        ):
            return candidate
        counter += 1


TOKEN_BY_SEND_KEY = select(EmailToken).where(EmailToken.send_key == bindparam("send_key"))
"""Built once per process: every link e-mail's first look."""


def link_for_send(
    session: Session,
    *,
    secret: str,
    send_key: str,
    purpose: str,
    portal: str,
    workflow_id: str,
    lifetime_hours: int,
    user_id: int | None = None,
) -> tuple[EmailToken, str]:
    """The link of one logical e-mail, minted at its first attempt and found again at every retry.

    Minting revokes the step's earlier links (a resend replaces them); a retry of the same send
    revokes nothing and returns the same raw value, so an e-mail repeated after a crash between
    the SMTP answer and its record still carries a working link.
    """
    token = session.scalar(TOKEN_BY_SEND_KEY, {"send_key": send_key})
    if token is None:
        return issue_link(
            session,
            purpose=purpose,
            portal=portal,
            workflow_id=workflow_id,
            lifetime_hours=lifetime_hours,
            user_id=user_id,
            secret=secret,
            send_key=send_key,
        )
    return token, derived_token(secret, token.salt)


def latest_link_id(session: Session, workflow_id: str, purpose: str) -> int:
    """The newest link of a step: what a retried, already-sent activity reports again."""
    return (
        session.scalar(
            select(EmailToken.id)
            .where(EmailToken.workflow_id == workflow_id)
            .where(EmailToken.purpose == purpose)
            .order_by(EmailToken.id.desc())
        )
        or 0
    )


def revoke_links(
    session: Session, workflow_id: str, purpose: str | None = None, now: datetime | None = None
) -> None:
    """Every link of a process (of one purpose, if given) not yet used stops working: a resend
    replaces them, and a process that ends takes its links with it."""
    statement = (
        update(EmailToken)
        .where(EmailToken.workflow_id == workflow_id)
        .where(EmailToken.used_at.is_(None))
        .where(EmailToken.revoked_at.is_(None))
    )
    if purpose is not None:
        statement = statement.where(EmailToken.purpose == purpose)
    session.execute(statement.values(revoked_at=now or utcnow()))


CLAIM_LINK = (
    update(EmailToken)
    .where(EmailToken.id == bindparam("token_id"))
    .where(EmailToken.used_at.is_(None))
    .where(EmailToken.revoked_at.is_(None))
    .where(EmailToken.expires_at > bindparam("now"))
    .values(used_at=bindparam("now"))
)
"""`claim_link` without extra values (most clicks), built once per process."""


def claim_link(session: Session, token_id: int, **values) -> bool:
    """Uses a link once: a conditional update that only an unused, unrevoked, unexpired link
    passes, so of two concurrent clicks exactly one wins; `values` are set on the row with it."""
    now = utcnow()
    if not values:
        return bool(session.execute(CLAIM_LINK, {"token_id": token_id, "now": now}).rowcount)
    return bool(
        session.execute(
            update(EmailToken)
            .where(EmailToken.id == token_id)
            .where(EmailToken.used_at.is_(None))
            .where(EmailToken.revoked_at.is_(None))
            .where(EmailToken.expires_at > now)
            .values(used_at=now, **values)
        ).rowcount
    )
