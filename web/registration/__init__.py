"""Registration: each portal's flow (patient, member, provider), and the e-mailed confirmation
link they all share."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.audit import add_event
from portal.models import EmailToken, Registration, User, utcnow
from portal.tokens import token_hash
from web import processes
from web.auth import ResendForm
from web.db import get_db
from web.portals import portal_blueprint
from web.sessions import active_user_by_username

bp = portal_blueprint("registration", __name__)

FLOW_VIEWS = {}


def flow_view(flow: str):
    """Marks the view that serves /<portal>/register for portals of `flow`."""

    def decorator(view):
        FLOW_VIEWS[flow] = view
        return view

    return decorator


@bp.route("/register", methods=["GET", "POST"])
def register():
    view = FLOW_VIEWS.get(g.portal.flow)
    if view is None:
        abort(404)
    return view()


@bp.get("/register/done/<reference>")
def done(reference: str):
    return render_template("registration/done.html", reference=reference)


@bp.get("/confirm/<token>")
def confirm(token: str):
    """The link in the confirmation e-mail: the workflow decides, the page reports."""
    db = get_db()
    row = db.scalar(select(EmailToken).where(EmailToken.token_hash == token_hash(token)))
    if row is None or row.portal != g.portal.slug or row.purpose != "confirm_email":
        return render_template("registration/link_invalid.html"), 404
    if row.used_at is not None:
        flash(_("Su correo electrónico ya estaba confirmado. Puede iniciar sesión."), "info")
        return redirect(url_for("auth.login"))
    if not row.usable(utcnow()):
        return render_template("registration/link_invalid.html", expired=True), 410
    try:
        result = processes.confirm_email(row.workflow_id, row.id)
    except processes.ProcessRefused as refused:
        if refused.kind == "AlreadyConfirmed":
            flash(_("Su correo electrónico ya estaba confirmado. Puede iniciar sesión."), "info")
            return redirect(url_for("auth.login"))
        return render_template("registration/link_invalid.html", expired=True), 410
    except processes.ProcessUnavailable:
        return render_template("registration/try_later.html"), 503
    if result.status == "pending_review":
        flash(
            _(
                "Gracias: confirmamos su correo electrónico. Su solicitud está en revisión y "
                "recibirá la respuesta por correo dentro de 24 horas."
            ),
            "success",
        )
    else:
        flash(_("Su usuario está confirmado. Ya puede iniciar sesión."), "success")
    return redirect(url_for("auth.login"))


@bp.post("/confirm/resend")
def resend_confirmation():
    """Same answer whatever the username, so it cannot be used to find accounts."""
    form = ResendForm()
    if form.validate_on_submit():
        user = active_user_by_username(g.portal.slug, form.username.data)
        if user is not None and user.status == "unconfirmed":
            workflow_id = get_db().scalar(
                select(Registration.workflow_id).where(Registration.user_id == user.id)
            )
            if workflow_id:
                try:
                    processes.resend_confirmation(workflow_id)
                except processes.ProcessRefused:
                    pass
                except processes.ProcessUnavailable:
                    flash(_("No pudimos procesar su pedido ahora. Intente de nuevo."), "error")
                    return redirect(url_for("auth.login"))
    flash(
        _(
            "Si su usuario espera confirmación, le enviamos un nuevo enlace a su correo "
            "electrónico. El enlace anterior ya no sirve."
        ),
        "info",
    )
    return redirect(url_for("auth.login"))


UNAVAILABLE = _l(
    "No pudimos completar su registro en este momento. Intente de nuevo en unos minutos."
)


def store_and_start(
    user: User, registration: Registration, extra: tuple = (), **audit_detail
) -> str:
    """Stores the account (password already hashed) and its read model, then starts the
    workflow in one round trip.

    Returns "started", "username_taken" (the database's case-insensitive unique index said so
    after a race the form's check missed) or "unavailable" (Temporal could not be reached; the
    rows, and `extra` ones, are removed so the applicant can simply submit again).
    """
    db = get_db()
    db.add_all([user, registration])
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        return "username_taken"
    add_event(
        db,
        actor="applicant",
        action="registration.submitted",
        portal=g.portal.slug,
        workflow_id=registration.workflow_id,
        user_id=user.id,
        **audit_detail,
    )
    db.commit()
    try:
        processes.start_registration(g.portal, registration.reference, user_id=user.id)
    except processes.ProcessUnavailable:
        for row in (registration, user, *extra):
            db.delete(row)
        db.commit()
        return "unavailable"
    return "started"


def username_taken(username: str) -> bool:
    return active_user_by_username(g.portal.slug, username) is not None


from web.registration import (  # noqa: E402  (flow modules register themselves on bp)
    member,  # noqa: E402,F401  (registers its flow view and retry link)
    patient,  # noqa: E402,F401  (registers its flow view)
    provider,  # noqa: E402,F401  (registers its flow view and steps)
)
