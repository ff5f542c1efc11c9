"""Authenticator-app codes (TOTP, RFC 6238) and recovery codes, for staff and applicants alike.

Built on pyotp for the codes and segno for the QR image; the web tier passes the clock in, so
tests control time without sleeping.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Sequence

import pyotp
import segno
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from portal.codec import seal, sealed_with, unseal
from portal.models import Passkey, RecoveryCode, SecondFactor, StaffUser, User, utcnow
from portal.passwords import hash_password, verify_password

STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CODE_RE = re.compile(r"^\d{6}$")

Account = StaffUser | User
Keys = Sequence[tuple[str, bytes]]
"""The payload-encryption keys (portal.codec.at_rest_keys): secrets are sealed with them."""
SEAL_CONTEXT = b"acceso totp secret"


def seal_secret(keys: Keys, secret: str) -> str:
    """What the database keeps of an authenticator secret: sealed, with its key id, so a
    database dump alone cannot mint codes and a new key can take over."""
    return seal(keys, secret.encode(), SEAL_CONTEXT)


def open_secret(keys: Keys, factor: SecondFactor) -> str:
    return unseal(keys, factor.secret, SEAL_CONTEXT).decode()


def reseal_all(session: Session, keys: Keys) -> int:
    """Seals again with the current key every secret an older key sealed, so the older key can
    leave ACCESO_CODEC_KEYS; says how many. The caller commits."""
    current = keys[0][0]
    moved = 0
    for factor in session.scalars(select(SecondFactor)):
        if sealed_with(factor.secret) != current:
            factor.secret = seal_secret(keys, open_secret(keys, factor))
            moved += 1
    return moved


def new_secret() -> str:
    return pyotp.random_base32()


def grouped(secret: str) -> str:
    """The base32 key in groups of four, as people type it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, account_name: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """An inline SVG image of the otpauth:// URI: nothing leaves the page to draw it."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def totp_at(secret: str, now: float) -> str:
    return pyotp.TOTP(secret).at(int(now))


def matching_step(secret: str, code: str, now: float, last_step: int) -> int | None:
    """The time step a 6-digit code belongs to (now ±1 step), if it is newer than `last_step`."""
    code = re.sub(r"\s", "", code or "")
    if not CODE_RE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if step > last_step and hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _owner(model, account: Account):
    if isinstance(account, StaffUser):
        return model.staff_id == account.id
    return model.user_id == account.id


def _owner_fields(account: Account) -> dict[str, int]:
    if isinstance(account, StaffUser):
        return {"staff_id": account.id}
    return {"user_id": account.id}


def factor_of(session: Session, account: Account) -> SecondFactor | None:
    return session.scalar(select(SecondFactor).where(_owner(SecondFactor, account)))


def new_recovery_codes() -> list[str]:
    def one() -> str:
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
        return f"{raw[:5]}-{raw[5:]}"

    return [one() for _ in range(RECOVERY_CODE_COUNT)]


def normalise_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]", "", (code or "").lower())


def enrol(session: Session, account: Account, secret: str, step: int, keys: Keys) -> list[str]:
    """Saves a confirmed secret, sealed, and ten fresh recovery codes; returns the codes to show
    once."""
    remove(session, account)
    session.add(
        SecondFactor(secret=seal_secret(keys, secret), last_step=step, **_owner_fields(account))
    )
    codes = new_recovery_codes()
    session.add_all(
        RecoveryCode(
            code_hash=hash_password(normalise_recovery_code(code)), **_owner_fields(account)
        )
        for code in codes
    )
    return codes


def remove(session: Session, account: Account) -> bool:
    """Forgets the secret, the recovery codes and any passkeys; says whether this call removed
    any (counted from the DELETEs, so of two concurrent removals only one says yes)."""
    removed = session.execute(delete(SecondFactor).where(_owner(SecondFactor, account))).rowcount
    session.execute(delete(RecoveryCode).where(_owner(RecoveryCode, account)))
    if isinstance(account, StaffUser):
        removed += session.execute(delete(Passkey).where(Passkey.staff_id == account.id)).rowcount
    return bool(removed)


def check_code(session: Session, account: Account, code: str, now: float, keys: Keys) -> str | None:
    """Accepts a current authenticator code once, or an unused recovery code once.

    Returns "totp" or "recovery" (the caller commits the consumed step or code), None otherwise.
    Each is consumed by a conditional update, so two requests racing with one code cannot both
    pass. A secret sealed with a retired key is sealed again with the current one on use.
    """
    factor = factor_of(session, account)
    if factor is None:
        return None
    secret = open_secret(keys, factor)
    step = matching_step(secret, code, now, factor.last_step)
    if step is not None:
        values: dict = {"last_step": step}
        if sealed_with(factor.secret) != keys[0][0]:
            values["secret"] = seal_secret(keys, secret)
        taken = session.execute(
            update(SecondFactor)
            .where(SecondFactor.id == factor.id, SecondFactor.last_step < step)
            .values(**values)
        ).rowcount
        return "totp" if taken else None
    typed = normalise_recovery_code(code)
    if len(typed) != 10:
        return None
    unused = session.scalars(
        select(RecoveryCode).where(_owner(RecoveryCode, account), RecoveryCode.used_at.is_(None))
    ).all()
    for row in unused:
        if verify_password(row.code_hash, typed):
            taken = session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
            ).rowcount
            return "recovery" if taken else None
    return None


def recovery_codes_left(session: Session, account: Account) -> int:
    return len(
        session.scalars(
            select(RecoveryCode.id).where(
                _owner(RecoveryCode, account), RecoveryCode.used_at.is_(None)
            )
        ).all()
    )
