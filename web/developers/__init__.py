"""Developers of third-party health apps: the application form, its answer, the single-use page
that shows an approved app's credentials, and the form that mails a new credentials link when a
secret is lost. Anyone may apply; nothing here signs anyone in."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from portal.server_keys import client_secret_key
from processes.app_registration import service
from processes.app_registration.vocabulary import ClientType
from processes.links import LinkState
from web import once
from web.db import get_db
from web.forms import CheckedForm, email_field, required, strip
from web.oidc.smart import describe_resource_scope
from web.ratelimit import limit_endpoint

bp = Blueprint("developers", __name__, url_prefix="/developers")

MAX_REDIRECT_URIS = 10


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _lines(value):
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


class RedirectUris:
    """One URI per line, each https (or http on the loopback interface for a native app)."""

    def __call__(self, form, field):
        uris = _lines(field.data)
        if not uris:
            raise ValidationError(_l("Escriba al menos una dirección de retorno."))
        if len(uris) > MAX_REDIRECT_URIS:
            raise ValidationError(
                _l("Como máximo %(n)s direcciones de retorno.", n=MAX_REDIRECT_URIS)
            )
        for uri in uris:
            if service.redirect_uri_problem(uri):
                raise ValidationError(
                    _l(
                        "«%(uri)s» no sirve: cada dirección debe empezar con https:// (http:// "
                        "solo en 127.0.0.1 o localhost, para aplicaciones nativas o de prueba) "
                        "y no llevar # ni *.",
                        uri=uri[:80],
                    )
                )


class WebAddress:
    def __call__(self, form, field):
        value = field.data or ""
        if not value.startswith(("https://", "http://")) or len(value.split("//", 1)[1]) < 3:
            raise ValidationError(_l("Escriba una dirección web completa, con https://."))


class AppForm(once.SubmitOnceForm):
    app_name = StringField(
        _l("Nombre de la aplicación"),
        filters=[strip],
        validators=[required(), Length(max=80, message=_l("Como máximo %(n)s caracteres.", n=80))],
    )
    portal = SelectField(_l("Portal al que se conecta"), validators=[required()])
    redirect_uris = TextAreaField(
        _l("Direcciones de retorno (redirect URIs)"),
        filters=[strip],
        validators=[required(), RedirectUris()],
        description=_l("Una por línea. https://, o http:// en 127.0.0.1 o localhost."),
    )
    scopes = MultiCheckboxField(
        _l("Permisos que pide (scopes SMART)"),
        choices=[],
        description=_l("Marque solo lo que la aplicación necesita."),
    )
    client_type = SelectField(
        _l("Tipo de cliente"),
        choices=[
            SelectChoice("", _l("Elija el tipo")),
            SelectChoice(
                ClientType.PUBLIC, _l("Público: aplicación nativa o de navegador, sin secreto")
            ),
            SelectChoice(
                ClientType.CONFIDENTIAL, _l("Confidencial: un servidor que guarda un secreto")
            ),
        ],
        validators=[required()],
    )
    privacy_url = StringField(
        _l("Dirección de su política de privacidad"),
        filters=[strip],
        validators=[
            required(),
            Length(max=500, message=_l("Como máximo %(n)s caracteres.", n=500)),
            WebAddress(),
        ],
    )
    contact_name = StringField(_l("Nombre de contacto"), filters=[strip], validators=[required()])
    contact_email = email_field(_l("Correo electrónico de contacto"))

    def validate_scopes(self, field):
        if not field.data:
            raise ValidationError(_l("Marque al menos un permiso."))


def _app_form() -> AppForm:
    form = AppForm()
    portals = service.app_portals(current_app.extensions["acceso.portals"])
    form.portal.choices = [SelectChoice("", _l("Elija el portal"))] + [
        SelectChoice(portal.slug, portal.name) for portal in portals
    ]
    form.scopes.choices = [
        (scope, f"{scope}: {words}" if (words := describe_resource_scope(scope)) else scope)
        for scope in service.requestable_scopes()
    ]
    return form


@bp.route("/apps/new", methods=["GET", "POST"])
def new_app():
    form = _app_form()
    if earlier := once.earlier():
        return redirect(earlier)
    if form.validate_on_submit():
        portal = current_app.extensions["acceso.portals"][form.portal.data]
        reference = service.submit(
            get_db(),
            portal,
            service.Application(
                app_name=form.app_name.data,
                redirect_uris=_lines(form.redirect_uris.data),
                scopes=list(form.scopes.data),
                client_type=ClientType(form.client_type.data),
                privacy_url=form.privacy_url.data,
                contact_name=form.contact_name.data,
                contact_email=form.contact_email.data,
                locale=str(get_locale() or "es"),
            ),
            accepted_with=lambda db, reference: once.remember(
                db, url_for("developers.submitted", reference=reference)
            ),
        )
        return redirect(url_for("developers.submitted", reference=reference))
    return render_template("developers/new.html", form=form), 422 if form.errors else 200


@bp.get("/apps/submitted/<reference>")
def submitted(reference: str):
    """The answer: the reference, and nothing of what was typed (the URL may be shared)."""
    return render_template("developers/submitted.html", reference=reference[:16])


limit_endpoint("developers.new_app", "registration")


class NewCredentialsForm(CheckedForm):
    client_id = StringField(
        _l("client_id de la aplicación"),
        filters=[strip],
        validators=[required(), Length(max=64, message=_l("Como máximo %(n)s caracteres.", n=64))],
    )
    contact_email = email_field(_l("Correo electrónico de contacto de la solicitud"))


@bp.route("/apps/credentials/new", methods=["GET", "POST"])
def new_credentials():
    """The same answer whether or not the pair matched a registered confidential app."""
    form = NewCredentialsForm()
    if form.validate_on_submit():
        service.request_new_credentials(
            get_db(),
            current_app.extensions["acceso.portals"],
            form.client_id.data,
            form.contact_email.data,
        )
        flash(
            _(
                "Si el client_id y el correo coinciden con una aplicación registrada, el "
                "contacto recibirá en unos minutos un enlace para ver un secreto nuevo."
            ),
            "info",
        )
        return redirect(url_for("developers.new_credentials"))
    return render_template("developers/new_credentials.html", form=form), (
        422 if form.errors else 200
    )


limit_endpoint("developers.new_credentials", "recovery")


class RevealForm(CheckedForm):
    """The credentials page's one button: opening the link (as mail scanners do) shows nothing."""


@bp.route("/apps/credentials/<token>", methods=["GET", "POST"])
def credentials(token: str):
    form = RevealForm()
    if form.validate_on_submit():
        key = client_secret_key(current_app.config["SETTINGS"])
        link = service.reveal_credentials(get_db(), token, key)
    else:
        link = service.read_credentials_link(get_db(), token)
    status = 200 if link.state in (LinkState.USABLE, LinkState.DONE_NOW) else 410
    if link.state == LinkState.UNKNOWN:
        status = 404
    answer = current_app.make_response(
        (render_template("developers/credentials.html", link=link, form=form), status)
    )
    answer.headers["Cache-Control"] = "no-store"
    return answer
