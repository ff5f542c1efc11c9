"""Account security: an applicant turns the authenticator-app second factor on or off."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal import lockout, two_factor
from portal.audit import add_event
from processes.account_notice.service import notify_account_owner
from processes.account_notice.vocabulary import NoticeKind
from web import second_factor
from web.account import bp
from web.auth import claim_attempt, locked_out
from web.auth.signin import confirm_enrolment, enrolment_page
from web.db import get_db
from web.sessions import portal_login_required

SECRET_KEY = "account_security_secret"


@bp.route("/account/security", methods=["GET", "POST"])
@portal_login_required
def security():
    user = current_user.account
    db = get_db()
    factor = two_factor.factor_of(db, user)
    required = user.role in g.portal.policy.require_second_factor
    form = second_factor.EnrolForm()
    if factor is not None:
        if form.validate_on_submit():
            if required:
                form.code.errors.append(
                    _("Su portal exige la verificación en dos pasos para su usuario.")
                )
            elif (attempt := claim_attempt(user.username)).refused:
                return locked_out(user, attempt)
            elif (
                two_factor.check_code(
                    db, user, form.code.data, second_factor.now(), second_factor.keys()
                )
                is None
            ):
                if attempt.locks_if_wrong:
                    return locked_out(user, attempt)
                form.code.errors.append(second_factor.WRONG_CODE)
            else:
                lockout.release(db, attempt)
                two_factor.remove(db, user)
                add_event(
                    db,
                    actor=f"user:{user.id}",
                    action="second_factor.removed",
                    portal=user.portal,
                    user_id=user.id,
                )
                notify_account_owner(db, user, NoticeKind.SECOND_FACTOR_REMOVED)
                db.commit()
                flash(_("Quitamos la verificación en dos pasos."), "success")
                return redirect(url_for("account.security"))
        return render_template(
            "account/security.html",
            form=form,
            required=required,
            left=two_factor.recovery_codes_left(db, user),
        )
    secret = second_factor.enrol_secret(two_factor.new_secret)
    if form.validate_on_submit():
        step = two_factor.matching_step(secret, form.code.data, second_factor.now(), 0)
        if step is None:
            form.code.errors.append(second_factor.WRONG_CODE)
        else:
            codes = confirm_enrolment(db, user, secret, step)
            db.commit()
            second_factor.clear()
            return render_template(
                "second_factor/recovery_codes.html", codes=codes, next_url=url_for("main.home")
            )
    return enrolment_page(form, secret, user, required=required)
