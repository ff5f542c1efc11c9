"""The "this was not me" link of a new-device notice: a page with one button, whose POST ends the
sessions of that browser, forgets it, signs the account out of its applications and starts a
password reset. No sign-in is needed: the e-mailed link is the proof."""

from __future__ import annotations

from flask import current_app, g, render_template
from sqlalchemy import delete, select, update

from portal.audit import add_event
from portal.models import EmailToken, KnownDevice, User, UserSession, utcnow
from portal.tokens import token_hash
from processes.account_notice.vocabulary import NOT_ME_PURPOSE
from processes.logout_delivery.service import sign_out_everywhere
from processes.recovery.service import request_password_reset
from web.account import bp
from web.db import get_db
from web.forms import CheckedForm


class NotMeForm(CheckedForm):
    """Only the CSRF token: the token in the address says whose sign-in it was."""


def _usable_link(raw: str) -> EmailToken | None:
    row = get_db().scalar(select(EmailToken).where(EmailToken.token_hash == token_hash(raw)))
    if row is None or row.portal != g.portal.slug or row.purpose != NOT_ME_PURPOSE:
        return None
    return row if row.usable(utcnow()) else None


@bp.route("/account/not-me/<token>", methods=["GET", "POST"])
def not_me(token: str):
    link = _usable_link(token)
    if link is None:
        return render_template("account/not_me_invalid.html"), 410
    form = NotMeForm()
    if not form.validate_on_submit():
        return render_template("account/not_me.html", form=form)
    db = get_db()
    now = utcnow()
    claimed = db.execute(
        update(EmailToken)
        .where(
            EmailToken.id == link.id,
            EmailToken.used_at.is_(None),
            EmailToken.revoked_at.is_(None),
            EmailToken.expires_at > now,
        )
        .values(used_at=now)
    ).rowcount
    user = db.get(User, link.user_id) if link.user_id else None
    if claimed != 1 or user is None:
        db.rollback()
        return render_template("account/not_me_invalid.html"), 410
    device = db.scalar(
        select(KnownDevice).where(KnownDevice.notice_workflow_id == link.workflow_id)
    )
    if device is not None:
        db.execute(
            delete(UserSession).where(
                UserSession.user_id == user.id, UserSession.device_hash == device.device_hash
            )
        )
        db.delete(device)
    sign_out_everywhere(db, user.id)
    add_event(
        db,
        actor=f"user:{user.id}",
        action="login.not_me",
        portal=user.portal,
        workflow_id=link.workflow_id,
        user_id=user.id,
    )
    request_password_reset(db, current_app.config["SETTINGS"].secret_key, g.portal, user.id)
    return render_template("account/not_me_done.html")
