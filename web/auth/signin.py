"""An applicant's second sign-in step: the authenticator code (or a recovery code) after the
password, or enrolment when the portal's policy requires a factor the account does not have."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, url_for
from flask_babel import gettext as _

from portal import lockout, two_factor
from portal.audit import add_event
from portal.models import AccountStatus, User
from processes.account_notice.service import notify_account_owner
from processes.account_notice.vocabulary import NoticeKind
from web import second_factor
from web.auth import bp, claim_attempt, finish_login, lock_account
from web.db import get_db


def _pending_user() -> tuple[User, dict] | tuple[None, None]:
    state = second_factor.pending("user")
    if state is None or state.get("portal") != g.portal.slug:
        return None, None
    user = get_db().get(User, state["id"])
    if user is None or user.status != AccountStatus.ACTIVE:
        return None, None
    return user, state


def _back_to_password():
    second_factor.clear()
    flash(_("Escriba de nuevo su usuario y contraseña."), "info")
    return redirect(url_for("auth.login"))


def refuse_locked(form) -> None:
    second_factor.clear()
    form.form_errors.append(second_factor.LOCKED_MESSAGE)


def wrong_code(db, user: User, attempt: lockout.Attempt, form) -> bool:
    """A wrong code counted like a wrong password (the attempt was claimed before the check);
    says whether this one locked the account."""
    add_event(
        db,
        actor="anonymous",
        action="login.failed",
        portal=g.portal.slug,
        user_id=user.id,
        step="code",
    )
    if attempt.locks_if_wrong:
        lock_account(attempt, user)
        refuse_locked(form)
    else:
        form.code.errors.append(second_factor.WRONG_CODE)
    db.commit()
    return attempt.locks_if_wrong


def _finish(user: User, state: dict) -> str:
    db = get_db()
    second_factor.clear()
    lockout.reset(db, g.portal.slug, lockout.username_key(user.username))
    return finish_login(user, remember=bool(state.get("remember")), next_url=state.get("next", ""))


def _code_page(form, locked: bool):
    return render_template(
        "second_factor/code.html", form=form, locked=locked, login_url=url_for("auth.login")
    )


@bp.route("/login/code", methods=["GET", "POST"])
def second_step():
    user, state = _pending_user()
    if user is None:
        return _back_to_password()
    db = get_db()
    if two_factor.factor_of(db, user) is None:
        return redirect(url_for("auth.enrol"))
    form = second_factor.CodeForm()
    if form.validate_on_submit():
        attempt = claim_attempt(user.username)
        if attempt.refused:
            refuse_locked(form)
            return _code_page(form, locked=True)
        method = two_factor.check_code(
            db, user, form.code.data, second_factor.now(), second_factor.keys()
        )
        if method is None:
            return _code_page(form, locked=wrong_code(db, user, attempt, form))
        if method == "recovery":
            left = two_factor.recovery_codes_left(db, user)
            add_event(
                db,
                actor=f"user:{user.id}",
                action="recovery_code.used",
                portal=user.portal,
                user_id=user.id,
                left=left,
            )
            notify_account_owner(db, user, NoticeKind.RECOVERY_CODE_USED, left=str(left))
        return redirect(_finish(user, state))
    return _code_page(form, locked=False)


def enrolment_page(form, secret: str, user: User, required: bool, action: str = ""):
    uri = two_factor.provisioning_uri(secret, user.username, g.portal.name)
    return render_template(
        "second_factor/enrol.html",
        form=form,
        qr=two_factor.qr_data_uri(uri),
        key=two_factor.grouped(secret),
        required=required,
        action=action,
    )


def confirm_enrolment(db, user: User, secret: str, step: int) -> list[str]:
    """Saves the factor, audits it and e-mails the owner; the caller commits."""
    codes = two_factor.enrol(db, user, secret, step, second_factor.keys())
    add_event(
        db,
        actor=f"user:{user.id}",
        action="second_factor.enrolled",
        portal=user.portal,
        user_id=user.id,
    )
    notify_account_owner(db, user, NoticeKind.SECOND_FACTOR_ADDED)
    return codes


@bp.route("/login/enrol", methods=["GET", "POST"])
def enrol():
    """The portal requires a factor this account lacks: enrol before the first page opens."""
    user, state = _pending_user()
    if user is None:
        return _back_to_password()
    db = get_db()
    if two_factor.factor_of(db, user) is not None:
        return redirect(url_for("auth.second_step"))
    secret = second_factor.enrol_secret(two_factor.new_secret)
    form = second_factor.EnrolForm()
    if form.validate_on_submit():
        attempt = claim_attempt(user.username)
        if attempt.refused:
            refuse_locked(form)
            return _code_page(form, locked=True)
        step = two_factor.matching_step(secret, form.code.data, second_factor.now(), 0)
        if step is None:
            if wrong_code(db, user, attempt, form):
                return _code_page(form, locked=True)
        else:
            codes = confirm_enrolment(db, user, secret, step)
            next_url = _finish(user, state)
            return render_template(
                "second_factor/recovery_codes.html", codes=codes, next_url=next_url
            )
    return enrolment_page(form, secret, user, required=True)
