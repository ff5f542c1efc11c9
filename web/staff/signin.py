"""The staff sign-in's second step: an authenticator code or a recovery code, or, on the first
sign-in, enrolment of the authenticator app with ten recovery codes shown once."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _

from portal import lockout, two_factor
from portal.audit import add_event
from portal.models import StaffUser, utcnow
from processes.account_notice.service import notify_staff
from processes.account_notice.vocabulary import NoticeKind
from web import second_factor
from web.db import get_db
from web.sessions import start_session
from web.staff import PUBLIC_ENDPOINTS, bp, claim_attempt, count_failure, staff_passkeys

PUBLIC_ENDPOINTS.update({"staff.second_step", "staff.enrol"})

ISSUER = "Acceso (personal)"


def pending_staff() -> StaffUser | None:
    """The staff member whose password was right a moment ago, if still allowed in."""
    state = second_factor.pending("staff")
    if state is None:
        return None
    staff = get_db().get(StaffUser, state["id"])
    if staff is None or not staff.active:
        return None
    return staff


def _back_to_password():
    second_factor.clear()
    flash(_("Escriba de nuevo su usuario y contraseña."), "info")
    return redirect(url_for("staff.login"))


def finish_sign_in(staff: StaffUser, method: str) -> str:
    """Both factors given: the lockout counter resets and the session starts."""
    db = get_db()
    next_url = (second_factor.pending("staff") or {}).get("next") or ""
    second_factor.clear()
    lockout.reset(db, lockout.STAFF_PORTAL, lockout.username_key(staff.username))
    staff.last_login_at = utcnow()
    add_event(db, actor=f"staff:{staff.username}", action="staff.login", method=method)
    start_session(staff, remember=False)
    return next_url or url_for("staff.home")


def _refuse_locked(form):
    second_factor.clear()
    form.form_errors.append(second_factor.STAFF_LOCKED_MESSAGE)
    return render_template(
        "second_factor/code.html", form=form, locked=True, login_url=url_for("staff.login")
    )


def _wrong_code(attempt: lockout.Attempt, form) -> bool:
    """Counts the wrong code toward the lockout; says whether this one locked the account."""
    locked = count_failure(get_db(), attempt)
    if locked:
        second_factor.clear()
        form.form_errors.append(second_factor.STAFF_LOCKED_MESSAGE)
    else:
        form.code.errors.append(second_factor.WRONG_CODE)
    return locked


@bp.route("/login/code", methods=["GET", "POST"])
def second_step():
    staff = pending_staff()
    if staff is None:
        return _back_to_password()
    db = get_db()
    if two_factor.factor_of(db, staff) is None and not staff_passkeys(db, staff):
        return redirect(url_for("staff.enrol"))
    form = second_factor.CodeForm()
    if form.validate_on_submit():
        attempt = claim_attempt(staff.username)
        if attempt.refused:
            return _refuse_locked(form)
        method = two_factor.check_code(
            db, staff, form.code.data, second_factor.now(), second_factor.keys()
        )
        if method is None:
            locked = _wrong_code(attempt, form)
            return render_template(
                "second_factor/code.html",
                form=form,
                locked=locked,
                login_url=url_for("staff.login"),
            )
        if method == "recovery":
            left = two_factor.recovery_codes_left(db, staff)
            add_event(
                db,
                actor=f"staff:{staff.username}",
                action="staff.recovery_code_used",
                left=left,
            )
            notify_staff(db, staff, NoticeKind.RECOVERY_CODE_USED, left=str(left))
        return redirect(finish_sign_in(staff, method))
    return render_template(
        "second_factor/code.html",
        form=form,
        locked=False,
        login_url=url_for("staff.login"),
        has_passkey=bool(staff_passkeys(db, staff)),
    )


@bp.route("/login/enrol", methods=["GET", "POST"])
def enrol():
    """First sign-in without a factor: scan, confirm with a first code, keep the recovery codes."""
    staff = pending_staff()
    if staff is None:
        return _back_to_password()
    db = get_db()
    if two_factor.factor_of(db, staff) is not None:
        return redirect(url_for("staff.second_step"))
    secret = second_factor.enrol_secret(two_factor.new_secret)
    form = second_factor.EnrolForm()
    if form.validate_on_submit():
        attempt = claim_attempt(staff.username)
        if attempt.refused:
            return _refuse_locked(form)
        step = two_factor.matching_step(secret, form.code.data, second_factor.now(), 0)
        if step is None:
            if _wrong_code(attempt, form):
                return render_template(
                    "second_factor/code.html",
                    form=form,
                    locked=True,
                    login_url=url_for("staff.login"),
                )
        else:
            codes = two_factor.enrol(db, staff, secret, step, second_factor.keys())
            add_event(
                db,
                actor=f"staff:{staff.username}",
                action="staff.second_factor.enrolled",
                kind="totp",
            )
            notify_staff(db, staff, NoticeKind.SECOND_FACTOR_ADDED, factor="totp")
            next_url = finish_sign_in(staff, "totp")
            return render_template(
                "second_factor/recovery_codes.html", codes=codes, next_url=next_url
            )
    uri = two_factor.provisioning_uri(secret, staff.username, ISSUER)
    return render_template(
        "second_factor/enrol.html",
        form=form,
        required=True,
        qr=two_factor.qr_data_uri(uri),
        key=two_factor.grouped(secret),
    )
