"""Registration: each portal's flow (patient, member, provider), and the e-mailed confirmation
link they all share."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal.models import AccountStatus, Registration
from processes.links import LinkState
from processes.registration import service
from temporal.bridge import ProcessRefused, ProcessUnavailable
from web.auth import ResendForm
from web.db import get_bridge, get_db
from web.forms import CheckedForm
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


@bp.get("/register/check-mail")
def check_mail():
    """The one answer to every well-formed patient registration: the e-mail says the rest."""
    return render_template("registration/done.html", reference=None)


class ConfirmLinkForm(CheckedForm):
    """Only the POST from the link's page acts: mail scanners fetch links, people press buttons."""


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    db = get_db()
    form = ConfirmLinkForm()
    if form.validate_on_submit():
        link = service.redeem_confirmation(db, g.portal, token)
    else:
        link = service.confirmation_link(db, g.portal, token)
    if link.state == LinkState.UNKNOWN:
        return render_template("registration/link_invalid.html"), 404
    if link.state == LinkState.EXPIRED:
        return render_template("registration/link_invalid.html", expired=True), 410
    if link.state == LinkState.USABLE:
        return render_template("registration/confirm.html", form=form)
    if link.state == LinkState.USED:
        flash(_("Su correo electrónico ya estaba confirmado. Puede iniciar sesión."), "info")
    elif "review" in g.portal.steps:
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
        if user is not None and user.status == AccountStatus.UNCONFIRMED:
            workflow_id = get_db().scalar(
                select(Registration.workflow_id).where(Registration.user_id == user.id)
            )
            if workflow_id:
                try:
                    service.resend_confirmation(get_bridge(), workflow_id)
                except ProcessRefused:
                    pass
                except ProcessUnavailable:
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


def username_taken(username: str) -> bool:
    return active_user_by_username(g.portal.slug, username) is not None


from web.registration import (  # noqa: E402  (flow modules register themselves on bp)
    member,  # noqa: E402,F401  (registers its flow view and retry link)
    patient,  # noqa: E402,F401  (registers its flow view)
    provider,  # noqa: E402,F401  (registers its flow view and steps)
)
