"""The person's profile: phone and preferred language (the language of every e-mail they get).
Names stay as verified where the portal checked them against a record (member, provider)."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from portal.audit import add_event
from web.account import bp
from web.db import get_db
from web.forms import CheckedForm, e164_phone, required, strip
from web.i18n import LANGUAGES
from web.sessions import portal_login_required

VERIFIED_NAME_FLOWS = ("member", "provider")
"""Flows whose registration checked the name against a record or a reviewer: read-only here."""
PHONE_REGIONS = ("US", "PR", "AR", "ES", "MX")
LANGUAGE_NAMES = {"es": "Español", "en": "English"}


def normalised_phone(raw: str) -> str | None:
    """E.164 for a valid number, read in the regions the demo serves unless it has +country."""
    return e164_phone(raw, PHONE_REGIONS)


class Phone:
    def __call__(self, form, field):
        if field.data:
            number = normalised_phone(field.data)
            if number is None:
                raise ValidationError(
                    _l("Escriba un teléfono válido, con el código de país si no es local.")
                )
            field.data = number


class ProfileForm(CheckedForm):
    full_name = StringField(
        _l("Nombre completo"),
        filters=[strip],
        validators=[
            required(),
            Length(max=200, message=_l("Como máximo %(n)s caracteres.", n=200)),
        ],
    )
    phone = StringField(
        _l("Teléfono"),
        filters=[strip],
        render_kw={"type": "tel"},
        validators=[
            Optional(),
            Length(max=32, message=_l("Como máximo %(n)s caracteres.", n=32)),
            Phone(),
        ],
    )
    locale = SelectField(
        _l("Idioma preferido"),
        choices=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        description=_l("Los correos que le enviamos llegarán en este idioma."),
    )


@bp.route("/account/profile", methods=["GET", "POST"])
@portal_login_required
def profile():
    user = current_user.account
    names_verified = g.portal.flow in VERIFIED_NAME_FLOWS
    form = ProfileForm(obj=user)
    if names_verified:
        del form.full_name
    if form.validate_on_submit():
        db = get_db()
        changed = []
        if not names_verified and form.full_name.data != user.full_name:
            user.full_name = form.full_name.data
            changed.append("full_name")
        if (form.phone.data or "") != user.phone:
            user.phone = form.phone.data or ""
            changed.append("phone")
        if form.locale.data != user.locale:
            user.locale = form.locale.data
            changed.append("locale")
        if changed:
            add_event(
                db,
                actor=f"user:{user.id}",
                action="profile.updated",
                portal=user.portal,
                user_id=user.id,
                fields=",".join(changed),
            )
        db.commit()
        flash(_("Guardamos su perfil."), "success")
        return redirect(url_for("account.profile", lang=user.locale))
    return render_template(
        "account/profile.html", form=form, user=user, names_verified=names_verified
    )
