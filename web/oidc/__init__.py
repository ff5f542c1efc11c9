"""Each portal as an OpenID Connect issuer: discovery, authorize, token, userinfo, JWKS,
revocation and RP-initiated logout under /<portal>/.

Sign-in is the portal's own login page; the token endpoint answers from the database alone and
never waits on Temporal. Errors follow RFC 6749 and OIDC Core: a client or redirect URI that is
not registered exactly gets a page here, never a redirect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from flask import (
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import bindparam, insert, select, update
from werkzeug.datastructures import MultiDict
from wtforms import HiddenField, RadioField
from wtforms.validators import ValidationError

from portal.access import consent_covers, remember_consent
from portal.models import (
    AccountStatus,
    OidcAccessToken,
    OidcAuthorizationCode,
    OidcClient,
    OidcGrant,
    OidcRefreshToken,
    OidcSubject,
    User,
    UserSession,
    utcnow,
)
from portal.oidc import (
    ACCESS_TOKEN_SECONDS,
    CODE_SECONDS,
    ID_TOKEN_SECONDS,
    REFRESH_TOKEN_DAYS,
    ApiClient,
    SigningAlg,
    api_client,
    claims_for,
    client_origins,
    client_secret_matches,
    client_with_signing_key,
    decode,
    ensure_signing_keys,
    hash_client_secret,
    issuer_for,
    jwks,
    origin_of,
    redirect_uri_registered,
    revoke_grant,
    sealing_keys,
    session_sid,
    sign,
    signing_key,
    subject_for,
    supported_scopes,
)
from portal.server_keys import client_secret_key
from portal.smart import (
    SMART_FLOWS,
    Capability,
    ContextScope,
    approved,
    is_smart_scope,
    patient_id_for,
    resource_scope,
    supported_smart_scopes,
    writes,
)
from portal.tokens import new_token, token_hash
from processes.proxy_grant import service as proxy_service
from web.db import get_db, get_reader
from web.oidc.bearer import (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    Bearer,
    GrantView,
    HolderView,
    grant_live,
    live_token,
)
from web.oidc.smart import CONTEXT_WORDS, resource_choices
from web.portals import portal_blueprint
from web.ratelimit import rate_limited
from web.security import allow_form_redirect_to
from web.sessions import end_session

bp = portal_blueprint("oidc", __name__)

PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
REAUTH_KEY = "oidc_reauth_after"
NONCE_MAX = 255

SCOPE_DESCRIPTIONS = {
    "openid": _l("Un identificador de su cuenta que no revela su usuario"),
    "profile": _l("Su usuario, su nombre y su idioma"),
    "email": _l("Su correo electrónico y si está confirmado"),
    "roles": _l("El portal y su rol en él"),
    "office": _l("Su oficina y si usted es el registrante principal o un empleado"),
    "office_identifiers": _l("El NPI y el Tax ID de su oficina"),
    "member_id": _l("Su número de cliente (Client ID)"),
    "proxy": _l("Por quién actúa usted, si eligió a alguien, y con qué acceso"),
    "offline_access": _l("Mantener el acceso de la aplicación mientras usted no cierre sesión"),
    **CONTEXT_WORDS,
}
OFFLINE_WORDS = _l(
    "Mantener el acceso aunque usted cierre sesión en el portal, hasta que lo quite en "
    "su actividad o deje de usarla por %(days)s días"
)


class DecisionForm(FlaskForm):
    """Only the CSRF token: the request itself is re-read from the query string."""


OWN_RECORD = "self"
"""The picker's value for the person's own record; the others are proxy grant references."""
PICKED_KEY = "smart_patient"
"""The session key holding whose record one authorize request gets, once the person chose."""


class PatientForm(FlaskForm):
    """Whose record a health app gets, for a person who may act for others."""

    choose_patient = HiddenField(default="1")
    record = RadioField(
        _l("¿De quién es el expediente que usará esta aplicación?"), validate_choice=False
    )

    def validate_record(self, field):
        if field.data not in {value for value, _label in field.choices}:
            raise ValidationError(_l("Elija una de las personas de la lista."))


def _issuer() -> str:
    return issuer_for(current_app.config["SETTINGS"].public_base_url, g.portal.slug)


DISCOVERY_MAX_AGE = 3600
"""Discovery changes only with a deployment's settings: an hour of caching is safe."""
JWKS_MAX_AGE = 300
"""A rotated key signs at once, so a relying party's cached set must not outlive a few minutes
(libraries also fetch again on an unknown `kid`)."""


def _cacheable(response, max_age: int):
    """Public caching for `max_age` seconds, with an ETag so a revalidation is a 304."""
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.add_etag()
    return response.make_conditional(request)


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _oauth_error(error: str, description: str, status: int = 400, headers=None):
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return _no_store(response)


def _error_page(message, status: int = 400):
    return render_template("oidc/error.html", message=message), status


def _with_params(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if not query:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


# --- discovery and keys ---------------------------------------------------------------------


@bp.get("/.well-known/openid-configuration")
def discovery():
    issuer = _issuer()
    response = jsonify(
        issuer=issuer,
        authorization_endpoint=f"{issuer}/authorize",
        token_endpoint=f"{issuer}/token",
        userinfo_endpoint=f"{issuer}/userinfo",
        jwks_uri=f"{issuer}/jwks",
        revocation_endpoint=f"{issuer}/revoke",
        introspection_endpoint=f"{issuer}/introspect",
        introspection_endpoint_auth_methods_supported=[
            "client_secret_basic",
            "client_secret_post",
        ],
        end_session_endpoint=f"{issuer}/end-session",
        response_types_supported=["code"],
        response_modes_supported=["query"],
        grant_types_supported=["authorization_code", "refresh_token"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=list(SigningAlg),
        token_endpoint_auth_methods_supported=[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        revocation_endpoint_auth_methods_supported=[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        code_challenge_methods_supported=["S256"],
        scopes_supported=_scopes_supported(),
        claims_supported=[
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "azp",
            "sid",
            "preferred_username",
            "name",
            "email",
            "email_verified",
            "locale",
            "portal",
            "roles",
            *(["office"] if g.portal.flow == "provider" else []),
            *(["member_client_id"] if g.portal.flow == "member" else []),
            *(["fhirUser"] if _smart_portal() else []),
        ],
        prompt_values_supported=["none", "login", "consent"],
        request_parameter_supported=False,
        request_uri_parameter_supported=False,
        claims_parameter_supported=False,
        backchannel_logout_supported=True,
        backchannel_logout_session_supported=True,
        frontchannel_logout_supported=False,
        authorization_response_iss_parameter_supported=True,
    )
    return _cacheable(response, DISCOVERY_MAX_AGE)


def _smart_portal() -> bool:
    return g.portal.flow in SMART_FLOWS


def _scopes_supported() -> list[str]:
    extra = supported_smart_scopes() if _smart_portal() else []
    return list(supported_scopes(g.portal.flow)) + extra


@bp.get("/.well-known/smart-configuration")
def smart_configuration():
    """SMART App Launch 2.0 discovery, on the portals whose people have a FHIR Patient record.
    Strict clients read it literally, so it lists only what the provider does."""
    if not _smart_portal():
        abort(404)
    issuer = _issuer()
    response = jsonify(
        issuer=issuer,
        jwks_uri=f"{issuer}/jwks",
        authorization_endpoint=f"{issuer}/authorize",
        token_endpoint=f"{issuer}/token",
        userinfo_endpoint=f"{issuer}/userinfo",
        introspection_endpoint=f"{issuer}/introspect",
        revocation_endpoint=f"{issuer}/revoke",
        grant_types_supported=["authorization_code", "refresh_token"],
        token_endpoint_auth_methods_supported=[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        response_types_supported=["code"],
        scopes_supported=_scopes_supported(),
        code_challenge_methods_supported=["S256"],
        capabilities=list(Capability),
        management_endpoint=f"{issuer}/account/activity",
    )
    return _cacheable(response, DISCOVERY_MAX_AGE)


@bp.get("/jwks")
def keys():
    """Every algorithm's current key, made here if `acceso migrate` did not make it: a relying
    party that loads the set before the first sign-in must find the key of its first ID token."""
    db = get_db()
    ensure_signing_keys(db, sealing_keys(current_app.config["SETTINGS"]))
    return _cacheable(jsonify(jwks(db)), JWKS_MAX_AGE)


# --- CORS for browser apps (public clients) ------------------------------------------------

CORS_METHODS = {
    "oidc.discovery": "GET",
    "oidc.smart_configuration": "GET",
    "oidc.keys": "GET",
    "oidc.token": "POST",
    "oidc.userinfo": "GET, POST",
    "oidc.revoke": "POST",
}
CORS_MAX_AGE_SECONDS = 600


def _registered_origins() -> set[str]:
    clients = get_db().scalars(
        select(OidcClient).where(OidcClient.portal == g.portal.slug, OidcClient.public.is_(True))
    )
    return set().union(*(client_origins(client) for client in clients))


@bp.after_request
def allow_registered_origins(response):
    """A browser app of a public client may read these endpoints' answers from its registered
    origins (preflight included); any other origin gets no CORS headers, so its browser refuses."""
    methods = CORS_METHODS.get(request.endpoint or "")
    if methods is None:
        return response
    if "Vary" in response.headers:
        response.vary.add("Origin")
    else:
        response.headers["Vary"] = "Origin"
    origin = request.headers.get("Origin")
    if not origin or origin.lower() not in _registered_origins():
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = methods
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_SECONDS)
    else:
        response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"
    return response


# --- authorize ------------------------------------------------------------------------------


CLIENT_BY_ID = select(OidcClient).where(OidcClient.client_id == bindparam("client_id"))
"""Hot statements are built once per process: building one costs more than running it."""


def _client_by_id(client_id: str | None) -> OidcClient | None:
    """This portal's client named `client_id`, the whole row (the pages need its URIs)."""
    if not client_id:
        return None
    client = get_db().scalar(CLIENT_BY_ID, {"client_id": client_id})
    if client is None or client.portal != g.portal.slug:
        return None
    return client


def _api_client(db, client_id: str | None, with_signing_key: bool = False) -> ApiClient | None:
    """This portal's client named `client_id`, as the API endpoints need it; `with_signing_key`
    also loads, in the same query, its algorithm's current signing key into `g.oidc_key_row`
    for the token endpoint."""
    if not client_id:
        return None
    if with_signing_key:
        found = client_with_signing_key(db, client_id)
        client, g.oidc_key_row = found if found else (None, None)
    else:
        client = api_client(db, client_id)
    if client is None or client.portal != g.portal.slug:
        return None
    return client


def _form_source(url: str) -> str:
    """The CSP source for a redirect target: its origin, or `scheme:` for a native app's URI."""
    return origin_of(url) or f"{urlsplit(url).scheme}:"


def allow_return_to_client(next_url: str | None) -> None:
    """A sign-in page whose `next` is this portal's authorize request may end, after its POST,
    in a redirect to that client's registered redirect URI: the page's form-action must name
    that origin (browsers apply form-action to the redirects that follow a submission)."""
    if not next_url:
        return
    parts = urlsplit(next_url)
    if parts.netloc or parts.path != f"/{g.portal.slug}/authorize":
        return
    query = parse_qs(parts.query)
    client = _client_by_id((query.get("client_id") or [""])[0])
    redirect_uri = (query.get("redirect_uri") or [""])[0]
    if client is not None and redirect_uri_registered(client, redirect_uri):
        allow_form_redirect_to(_form_source(redirect_uri))


def _signed_in_user() -> tuple[User, datetime, str] | None:
    """The account signed in to this portal, when it signed in and the session's `sid`; other
    portals' sessions do not count."""
    if not current_user.is_authenticated or current_user.is_staff:
        return None
    user: User = current_user.account
    if user.portal != g.portal.slug:
        return None
    row = get_db().get(UserSession, token_hash(current_user.session_id))
    if row is None:
        return None
    return user, row.created_at, session_sid(row.id)


def _send_to_login(args, fresh: bool):
    """The portal's own login page, then back to this request.

    `prompt=login` and `max_age=0` can never be satisfied by the request itself, so they come
    back spent and the moment is remembered in the session: only a sign-in made after it counts.
    A larger `max_age` stays in the request, which the new sign-in then satisfies.
    """
    params = list(args.items(multi=True))
    if fresh:
        session[REAUTH_KEY] = time.time()
        params = [(k, v) for k, v in params if k not in ("prompt", "max_age")]
        prompts = [p for p in args.get("prompt", "").split() if p != "login"]
        if prompts:
            params.append(("prompt", " ".join(prompts)))
    next_url = f"{url_for('oidc.authorize')}?{urlencode(params)}"
    login_hint = args.get("login_hint") or None
    return redirect(url_for("auth.login", next=next_url, login_hint=login_hint))


def _requested_scopes(client: OidcClient, raw: str) -> tuple[list[str], str | None]:
    """The scopes of the request this portal offers (others are ignored, as before SMART), or
    why the request is refused: a scope the client was not approved for, a `patient/` scope
    without the `launch/patient` context it needs, or neither `openid` nor a FHIR scope."""
    offered = set(supported_scopes(g.portal.flow))
    scopes = []
    for scope in dict.fromkeys(raw.split()):
        if scope not in offered and not (_smart_portal() and is_smart_scope(scope)):
            continue
        if not approved(client.approved_scopes, scope):
            return [], f"the client is not approved for {scope}"
        scopes.append(scope)
    resources = [s for s in scopes if resource_scope(s)]
    if resources and ContextScope.LAUNCH_PATIENT not in scopes:
        return [], "patient/ scopes need launch/patient"
    if "openid" not in scopes and not resources:
        return [], "openid"
    return scopes, None


def _audience_protected(aud: str | None) -> bool:
    """SMART's `aud` names the FHIR server the token is for; when the portal lists its FHIR
    servers, a token is never issued for another (a token leaked to one cannot be replayed)."""
    listed = g.portal.policy.fhir_base_urls
    if not listed:
        return True
    return aud is not None and aud.rstrip("/") in {url.rstrip("/") for url in listed}


def _launch_key(args: MultiDict) -> str:
    """Names one authorize request, so a choice of record made for it is read by no other; the
    page's language is not part of the request."""
    canonical = urlencode(sorted((k, v) for k, v in args.items(multi=True) if k != "lang"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _choose_patient(db, client: OidcClient, user: User, args: MultiDict, scopes: list[str]):
    """Whose record a `launch/patient` request gets when the person may act for others: a page
    listing them (if they have a record) and each person whose grant lets a health app in; its
    POST is kept in the session for this request only. Returns the chosen person (None: the
    person's own record) and, until they have chosen, the page or redirect to send instead."""
    if ContextScope.LAUNCH_PATIENT not in scopes:
        return None, None
    choices = proxy_service.patient_choices(db, user, writes(scopes))
    if not choices:
        return None, None
    form = PatientForm()
    own = [(OWN_RECORD, _("Yo (%(name)s)", name=user.display_name))]
    form.record.choices = (own if patient_id_for(db, user) else []) + [
        (choice.reference, choice.name) for choice in choices
    ]
    valid = {value for value, _label in form.record.choices}
    key = _launch_key(args)
    if request.method == "POST" and request.form.get("choose_patient"):
        if form.validate_on_submit():
            session[PICKED_KEY] = {"for": key, "record": form.record.data}
            params = urlencode(list(args.items(multi=True)))
            return None, redirect(f"{url_for('oidc.authorize')}?{params}", 303)
        if form.csrf_token.errors:
            abort(400)
        return None, (render_template("oidc/patient.html", client=client, form=form), 400)
    picked = session.get(PICKED_KEY) or {}
    if picked.get("for") == key and picked.get("record") in valid:
        return next((c for c in choices if c.reference == picked["record"]), None), None
    acting = g.get("acting")
    if acting is not None and acting.grant.reference in valid:
        form.record.data = acting.grant.reference
    return None, render_template("oidc/patient.html", client=client, form=form)


def _granted(scopes: list[str], form) -> list[str]:
    """What the person allowed: every scope asked for but the resource types they unticked."""
    kept = set(form.getlist("resource"))
    return [s for s in scopes if resource_scope(s) is None or s in kept]


def _present(params: MultiDict) -> MultiDict:
    """The parameters that have a value: RFC 6749 3.1 treats an empty one as omitted."""
    return MultiDict([(k, v) for k, v in params.items(multi=True) if v != ""])


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    """GET, or POST with the parameters form-encoded (OIDC Core 3.1.2.1), which continues as the
    same request by GET so the browser sends its (SameSite=Lax) session cookie. The only other
    POST here is the consent form's, which carries its own CSRF token."""
    if request.method == "POST" and "client_id" in request.form:
        params = list(_present(request.form).items(multi=True))
        return redirect(f"{url_for('oidc.authorize')}?{urlencode(params)}", 303)
    args = _present(request.args)
    client = _client_by_id(args.get("client_id"))
    if client is None:
        return _error_page(_l("Esta aplicación no está registrada en este portal."))
    redirect_uri = args.get("redirect_uri", "")
    if not redirect_uri_registered(client, redirect_uri):
        return _error_page(
            _l("La dirección de retorno que envió la aplicación no está registrada.")
        )
    state = args.get("state")

    def back(**params):
        return redirect(_with_params(redirect_uri, {**params, "state": state, "iss": _issuer()}))

    if "request_uri" in args:
        return back(error="request_uri_not_supported", error_description="no request_uri")
    if "request" in args:
        return back(error="request_not_supported", error_description="no request objects")
    if args.get("response_type") != "code":
        return back(error="unsupported_response_type", error_description="only response_type=code")
    if args.get("response_mode", "query") != "query":
        return back(error="invalid_request", error_description="only response_mode=query")
    scopes, refusal = _requested_scopes(client, args.get("scope", ""))
    if refusal:
        return back(error="invalid_scope", error_description=refusal)
    smart = any(is_smart_scope(s) for s in scopes)
    if smart and not _audience_protected(args.get("aud")):
        return back(error="invalid_request", error_description="aud is not a FHIR server here")
    challenge = args.get("code_challenge")
    if challenge:
        if args.get("code_challenge_method") != "S256" or not PKCE_VERIFIER.match(challenge):
            return back(error="invalid_request", error_description="PKCE must use S256")
    elif client.public or smart:
        return back(error="invalid_request", error_description="PKCE (S256) is required")
    max_age = args.get("max_age")
    if max_age is not None and not (max_age.isdigit() and len(max_age) <= 9):
        return back(error="invalid_request", error_description="max_age must be seconds")
    if len(args.get("nonce") or "") > NONCE_MAX:
        return back(error="invalid_request", error_description=f"nonce over {NONCE_MAX} chars")
    prompts = set(args.get("prompt", "").split())
    if "none" in prompts and len(prompts) > 1:
        return back(error="invalid_request", error_description="prompt=none stands alone")

    signed_in = _signed_in_user()
    reauth_after = session.get(REAUTH_KEY)
    too_old = max_age is not None and (
        signed_in is None or signed_in[1] < utcnow() - timedelta(seconds=int(max_age))
    )
    if signed_in is None or too_old or "login" in prompts:
        if "none" in prompts:
            return back(error="login_required", error_description="sign-in needed")
        return _send_to_login(
            args, fresh="login" in prompts or (max_age is not None and int(max_age) == 0)
        )
    if reauth_after is not None and signed_in[1].timestamp() < reauth_after:
        return _send_to_login(args, fresh=True)
    session.pop(REAUTH_KEY, None)
    user, auth_time, sid = signed_in

    db = get_db()
    chosen, picker = _choose_patient(db, client, user, args, scopes)
    if picker is not None:
        if "none" in prompts and request.method == "GET":
            return back(error="interaction_required", error_description="whose record")
        return picker
    remembered = "consent" not in prompts and (
        client.first_party or (chosen is None and consent_covers(db, user.id, client.id, scopes))
    )
    if not remembered:
        form = DecisionForm()
        if request.method == "GET" or not form.validate_on_submit():
            if "none" in prompts:
                return back(error="consent_required", error_description="consent needed")
            offline_days = g.portal.policy.offline_access_days
            described = [
                OFFLINE_WORDS % {"days": offline_days}
                if s == "offline_access" and smart
                else SCOPE_DESCRIPTIONS[s]
                for s in scopes
                if s in SCOPE_DESCRIPTIONS
            ]
            allow_form_redirect_to(_form_source(redirect_uri))
            return render_template(
                "oidc/consent.html",
                client=client,
                user=user,
                described=described,
                resources=resource_choices(scopes),
                record_of=chosen.name if chosen else None,
                form=form,
            )
        if request.form.get("decision") != "allow":
            return back(error="access_denied", error_description="the person declined")
        scopes = _granted(scopes, request.form)
    context = ContextScope.LAUNCH_PATIENT in scopes
    if context and chosen is None and patient_id_for(db, user) is None:
        return back(error="access_denied", error_description="no patient record for this account")
    if not remembered:
        remember_consent(db, user, client, scopes)

    raw = new_token()
    acting = g.get("acting")
    if context:
        acting_for = chosen.reference if chosen else None
    else:
        acting_for = acting.grant.reference if "proxy" in scopes and acting else None
    db.add(
        OidcAuthorizationCode(
            code_hash=token_hash(raw),
            client_pk=client.id,
            user_id=user.id,
            portal=g.portal.slug,
            redirect_uri=redirect_uri,
            scope=" ".join(scopes),
            nonce=args.get("nonce"),
            code_challenge=challenge,
            sid=sid,
            auth_time=auth_time,
            expires_at=utcnow() + timedelta(seconds=CODE_SECONDS),
            acting_for=acting_for,
        )
    )
    if chosen is not None:
        proxy_service.record_app_given(db, user, chosen, client.name)
    session.pop(PICKED_KEY, None)
    db.commit()
    return back(code=raw)


# --- token ----------------------------------------------------------------------------------


def _authenticated_client(with_signing_key: bool = False, db=None):
    """The client named by Basic auth or the form, or an RFC 6749 invalid_client answer; read
    through `db` (the request's session unless given)."""
    db = db or get_db()
    header = request.headers.get("Authorization", "")
    basic = header.startswith("Basic ")
    client_id = secret = None
    if basic:
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        except (binascii.Error, UnicodeDecodeError):
            client_id = None
    else:
        client_id = request.form.get("client_id")
        secret = request.form.get("client_secret")
    client = _api_client(db, client_id, with_signing_key)

    def refused():
        return None, _oauth_error(
            "invalid_client",
            "client authentication failed",
            401,
            {"WWW-Authenticate": 'Basic realm="acceso"'} if basic else None,
        )

    key = client_secret_key(current_app.config["SETTINGS"])
    if client is None:
        hash_client_secret(key, secret or "")
        return refused()
    if client.public:
        return (client, None) if not secret else refused()
    if not secret or not client_secret_matches(db, key, client, secret):
        return refused()
    return client, None


def _issue_tokens(db, grant: OidcGrant, client: ApiClient, user: User, nonce: str | None):
    now = int(time.time())
    key = g.oidc_signing_key
    issuer = _issuer()
    sub = subject_for(db, user.id)
    jti = secrets.token_urlsafe(16)
    access_token = sign(
        key,
        {
            "iss": issuer,
            "sub": sub,
            "aud": client.client_id,
            "client_id": client.client_id,
            "scope": grant.scope,
            "iat": now,
            "exp": now + ACCESS_TOKEN_SECONDS,
            "jti": jti,
            **({"patient": grant.patient} if grant.patient else {}),
        },
        typ="at+jwt",
    )
    db.execute(
        ISSUE_ACCESS,
        {
            "jti": jti,
            "grant_id": grant.id,
            "expires_at": datetime.fromtimestamp(now + ACCESS_TOKEN_SECONDS, UTC),
        },
    )
    refresh_token = new_token()
    if grant.offline:
        grant.expires_at = utcnow() + timedelta(days=g.portal.policy.offline_access_days)
    db.execute(
        ISSUE_REFRESH,
        {
            "token_hash": token_hash(refresh_token),
            "grant_id": grant.id,
            "expires_at": grant.expires_at or utcnow() + timedelta(days=REFRESH_TOKEN_DAYS),
        },
    )
    answer = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "refresh_token": refresh_token,
        "scope": grant.scope,
    }
    scopes = set(grant.scope.split())
    if "openid" in scopes:
        id_claims = {
            **_claims(db, user, grant),
            "iss": issuer,
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": now,
            "exp": now + ID_TOKEN_SECONDS,
            "auth_time": int(grant.auth_time.timestamp()),
        }
        if nonce:
            id_claims["nonce"] = nonce
        if grant.sid:
            id_claims["sid"] = grant.sid
        answer["id_token"] = sign(key, id_claims)
    if grant.patient:
        answer["patient"] = grant.patient
    db.commit()
    return _no_store(jsonify(answer))


def _claims(db, user: User | HolderView, grant: OidcGrant | GrantView, subject=None) -> dict:
    """What the granted scopes release about the person, `fhirUser` included; with `proxy`, the
    person the signed-in proxy chose, while the proxy grant is in force (the proxy's own `sub`
    stays the token's subject)."""
    scopes = set(grant.scope.split())
    claims = claims_for(db, user, scopes, subject)
    if grant.fhir_user and ContextScope.FHIR_USER in scopes:
        claims["fhirUser"] = grant.fhir_user
    if "proxy" in scopes and grant.acting_for:
        acting = proxy_service.acting_claim(
            db, user, grant.acting_for, current_app.config["SECRET_KEY"]
        )
        if acting is not None:
            claims["acting_for"] = acting
    return claims


def _pkce_matches(verifier: str | None, challenge: str) -> bool:
    if not verifier or not PKCE_VERIFIER.match(verifier):
        return False
    digest = hashlib.sha256(verifier.encode()).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return secrets.compare_digest(computed, challenge)


def _with_grant(db, column, value):
    """The token row whose `column` is `value` and, in the same query, its grant, the grant's
    account and that account's subject, so the `db.get`s that follow are answered from the
    session instead of one query each."""
    return _preloaded(db, _WITH_GRANT[column], {"value": value})


def _with_grant_statement(column):
    return (
        select(column.class_, OidcGrant, User, OidcSubject)
        .outerjoin(OidcGrant, OidcGrant.id == column.class_.grant_id)
        .outerjoin(User, User.id == OidcGrant.user_id)
        .outerjoin(OidcSubject, OidcSubject.user_id == User.id)
        .where(column == bindparam("value"))
    )


_WITH_GRANT = {
    column: _with_grant_statement(column)
    for column in (OidcAccessToken.jti, OidcRefreshToken.token_hash)
}
CODE_WITH_USER = (
    select(OidcAuthorizationCode, User, OidcSubject)
    .outerjoin(User, User.id == OidcAuthorizationCode.user_id)
    .outerjoin(OidcSubject, OidcSubject.user_id == User.id)
    .where(OidcAuthorizationCode.code_hash == bindparam("value"))
)
_CODES = OidcAuthorizationCode.__table__
_REFRESH_TOKENS = OidcRefreshToken.__table__
CLAIM_CODE = (
    update(_CODES)
    .where(_CODES.c.code_hash == bindparam("b_code_hash"), _CODES.c.used_at.is_(None))
    .values(used_at=bindparam("now"))
)
ROTATE_REFRESH = (
    update(_REFRESH_TOKENS)
    .where(
        _REFRESH_TOKENS.c.token_hash == bindparam("b_token_hash"),
        _REFRESH_TOKENS.c.used_at.is_(None),
    )
    .values(used_at=bindparam("now"))
)
"""The claim and the rotation are conditional updates on the tables (Core): nothing after them
reads the row's `used_at`, so the session is not searched to keep it in step."""
ISSUE_ACCESS = insert(OidcAccessToken.__table__)
ISSUE_REFRESH = insert(OidcRefreshToken.__table__)


def _preloaded(db, statement, params):
    """The first entity of the statement's first row, or None. The row's other entities stay
    referenced for the request (the session's identity map holds them only weakly), so a later
    `db.get` of any of them is answered without a query."""
    found = db.execute(statement, params).first()
    g.oidc_preloaded = found
    return found[0] if found else None


def _exchange_code(db, client: ApiClient):
    form = request.form
    code = form.get("code", "")
    row = _preloaded(db, CODE_WITH_USER, {"value": token_hash(code)}) if code else None
    if row is None or row.client_pk != client.id or row.portal != g.portal.slug:
        return _oauth_error("invalid_grant", "unknown authorization code")
    now = utcnow()
    claimed = db.execute(CLAIM_CODE, {"b_code_hash": row.code_hash, "now": now}).rowcount
    if claimed != 1:
        issued = db.scalar(select(OidcGrant.id).where(OidcGrant.code_hash == row.code_hash))
        if issued:
            revoke_grant(db, issued, now)
        db.commit()
        return _oauth_error("invalid_grant", "authorization code already used")

    def refuse(description: str):
        db.commit()
        return _oauth_error("invalid_grant", description)

    if row.expires_at <= now:
        return refuse("authorization code expired")
    if form.get("redirect_uri") != row.redirect_uri:
        return refuse("redirect_uri does not match the authorization")
    if row.code_challenge:
        if not _pkce_matches(form.get("code_verifier"), row.code_challenge):
            return refuse("PKCE verification failed")
    elif form.get("code_verifier"):
        return refuse("no PKCE challenge was sent for this code")
    user = db.get(User, row.user_id)
    if user is None or user.status != AccountStatus.ACTIVE:
        return refuse("the account can no longer sign in")
    scopes = row.scope.split()
    patient = patient_id_for(db, user) if ContextScope.LAUNCH_PATIENT in scopes else None
    own_patient = patient_id_for(db, user) if ContextScope.FHIR_USER in scopes else None
    fhir_user = f"Patient/{own_patient}" if own_patient else None
    if ContextScope.LAUNCH_PATIENT in scopes and row.acting_for:
        chosen = proxy_service.patient_under(db, user, row.acting_for, writes(scopes))
        if chosen is None:
            return refuse("the proxy access this launch rests on has ended")
        patient = chosen.patient
        fhir_user = chosen.fhir_user if ContextScope.FHIR_USER in scopes else None
    offline = "offline_access" in scopes and not client.first_party
    grant = OidcGrant(
        id=secrets.token_urlsafe(24),
        client_pk=client.id,
        user_id=user.id,
        portal=g.portal.slug,
        scope=row.scope,
        code_hash=row.code_hash,
        sid=row.sid,
        auth_time=row.auth_time,
        acting_for=row.acting_for,
        patient=patient,
        fhir_user=fhir_user,
        offline=offline,
    )
    db.add(grant)
    db.flush()
    return _issue_tokens(db, grant, client, user, row.nonce)


def _refresh(db, client: ApiClient):
    raw = request.form.get("refresh_token", "")
    row = _with_grant(db, OidcRefreshToken.token_hash, token_hash(raw)) if raw else None
    grant = db.get(OidcGrant, row.grant_id) if row else None
    if grant is None or grant.client_pk != client.id or grant.portal != g.portal.slug:
        return _oauth_error("invalid_grant", "unknown refresh token")
    if grant.revoked_at is not None:
        return _oauth_error("invalid_grant", "refresh token revoked")
    if grant.expires_at is not None and grant.expires_at <= utcnow():
        return _oauth_error("invalid_grant", "offline access lapsed unused")
    if not _proxy_context_holds(db, grant):
        revoke_grant(db, grant.id)
        db.commit()
        return _oauth_error("invalid_grant", "the proxy access this grant rests on has ended")
    now = utcnow()
    rotated = db.execute(ROTATE_REFRESH, {"b_token_hash": row.token_hash, "now": now}).rowcount
    if rotated != 1:
        revoke_grant(db, grant.id, now)
        db.commit()
        return _oauth_error("invalid_grant", "refresh token already used; its family is revoked")
    if row.expires_at <= now:
        db.commit()
        return _oauth_error("invalid_grant", "refresh token expired")
    requested = request.form.get("scope")
    if requested is not None and not set(requested.split()) <= set(grant.scope.split()):
        db.rollback()
        return _oauth_error("invalid_scope", "a refresh cannot widen the scope")
    user = db.get(User, grant.user_id)
    if user is None or user.status != AccountStatus.ACTIVE:
        db.commit()
        return _oauth_error("invalid_grant", "the account can no longer sign in")
    return _issue_tokens(db, grant, client, user, None)


@bp.post("/token")
@rate_limited("token")
def token():
    client, refused = _authenticated_client(with_signing_key=True)
    if refused is not None:
        return refused
    db = get_db()
    keys = sealing_keys(current_app.config["SETTINGS"])
    g.oidc_signing_key = signing_key(db, keys, client.signing_alg, g.pop("oidc_key_row", None))
    grant_type = request.form.get("grant_type")
    if grant_type == "authorization_code":
        return _exchange_code(db, client)
    if grant_type == "refresh_token":
        return _refresh(db, client)
    return _oauth_error("unsupported_grant_type", "authorization_code or refresh_token")


# --- userinfo and revocation ----------------------------------------------------------------


def _proxy_context_holds(db, grant: OidcGrant | GrantView, holder=None) -> bool:
    """Whether a health app's patient context given by a proxy still rests on a grant that
    allows it. Ending the proxy grant revokes these at once; this catches a grant that slipped
    past, such as one made from a code exchanged while the end was being committed."""
    if not grant.acting_for or not grant.patient:
        return True
    user = holder or db.get(User, grant.user_id)
    if user is None:
        return False
    chosen = proxy_service.patient_under(db, user, grant.acting_for, writes(grant.scope.split()))
    return chosen is not None and chosen.patient == grant.patient


def _live(db, found: Bearer | None) -> Bearer | None:
    """The token if its grant is live, of this portal, and its proxy context holds."""
    if found is None or not grant_live(found.grant, g.portal.slug):
        return None
    if not _proxy_context_holds(db, found.grant, found.holder):
        return None
    return found


def _live_access_token(db, raw: str) -> tuple[dict, Bearer] | None:
    """Claims and standing of an access token of this issuer that is unexpired and unrevoked."""
    decoded = decode(db, raw) if raw else None
    if decoded is None:
        return None
    header, claims = decoded
    if header.get("typ") != "at+jwt" or claims.get("iss") != _issuer():
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
        return None
    jti = claims.get("jti")
    found = live_token(db, ACCESS_TOKEN, jti) if isinstance(jti, str) else None
    live = _live(db, found)
    return (claims, live) if live is not None else None


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    header = request.headers.get("Authorization", "")
    raw = header[7:].strip() if header.startswith("Bearer ") else request.form.get("access_token")
    db = get_reader()
    live = _live_access_token(db, raw or "")
    if live is None or live[1].holder.status != AccountStatus.ACTIVE:
        return _oauth_error(
            "invalid_token",
            "the access token is not valid here",
            401,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    bearer = live[1]
    return _no_store(jsonify(_claims(db, bearer.holder, bearer.grant, bearer.subject)))


@bp.post("/revoke")
def revoke():
    """RFC 7009: always 200 for a token that is unknown or not this client's, so nothing leaks."""
    client, refused = _authenticated_client()
    if refused is not None:
        return refused
    db = get_db()
    raw = request.form.get("token", "")
    if not raw:
        return _oauth_error("invalid_request", "token is required")
    row = db.get(OidcRefreshToken, token_hash(raw))
    if row is not None:
        grant = db.get(OidcGrant, row.grant_id)
        if grant is not None and grant.client_pk == client.id:
            revoke_grant(db, grant.id)
            db.commit()
        return _no_store(current_app.response_class(status=200))
    live = _live_access_token(db, raw)
    if live is not None and live[1].grant.client_pk == client.id:
        db.execute(
            update(OidcAccessToken)
            .where(OidcAccessToken.jti == live[0]["jti"])
            .values(revoked_at=utcnow())
        )
        db.commit()
    return _no_store(current_app.response_class(status=200))


@bp.post("/introspect")
def introspect():
    """RFC 7662 for resource servers, which authenticate as confidential clients of this portal:
    an access or refresh token's scope, patient context and expiry while it is live; anything
    revoked, rotated out, lapsed, expired, of a disabled account or unknown is only inactive."""
    db = get_reader()
    client, refused = _authenticated_client(db=db)
    if refused is not None:
        return refused
    if client.public:
        return _oauth_error("invalid_client", "introspection needs a client secret", 401)
    raw = request.form.get("token", "")
    if not raw:
        return _oauth_error("invalid_request", "token is required")
    found = _introspected(db, raw)
    if found is None:
        return _no_store(jsonify(active=False))
    bearer, expires, token_type = found
    grant = bearer.grant
    if bearer.holder.status != AccountStatus.ACTIVE:
        return _no_store(jsonify(active=False))
    answer = {
        "active": True,
        "scope": grant.scope,
        "client_id": bearer.owner,
        "sub": bearer.subject or subject_for(db, grant.user_id),
        "exp": expires,
        "iss": _issuer(),
        "token_type": token_type,
    }
    if grant.patient:
        answer["patient"] = grant.patient
    if grant.fhir_user and ContextScope.FHIR_USER in grant.scope.split():
        answer["fhirUser"] = grant.fhir_user
    return _no_store(jsonify(answer))


def _introspected(db, raw: str) -> tuple[Bearer, int, str] | None:
    """The live standing of an access token or an unused refresh token, its expiry (epoch
    seconds) and its kind."""
    live = _live_access_token(db, raw)
    if live is not None:
        return live[1], int(live[0]["exp"]), "Bearer"
    found = _live(db, live_token(db, REFRESH_TOKEN, token_hash(raw)))
    if found is None:
        return None
    return found, int(found.expires_at.timestamp()), "refresh_token"


# --- RP-initiated logout --------------------------------------------------------------------


@bp.route("/end-session", methods=["GET", "POST"])
def end_session_endpoint():
    db = get_db()
    args = request.values
    hint = args.get("id_token_hint")
    hinted = None
    if hint:
        decoded = decode(db, hint)
        if decoded is None or decoded[1].get("iss") != _issuer():
            return _error_page(_l("La solicitud de cierre de sesión no es válida."))
        hinted = decoded[1]
    client_id = args.get("client_id") or (hinted or {}).get("aud")
    if hinted and args.get("client_id") and args.get("client_id") != hinted.get("aud"):
        return _error_page(_l("La solicitud de cierre de sesión no es válida."))
    client = _client_by_id(client_id) if isinstance(client_id, str) else None
    target = args.get("post_logout_redirect_uri")
    if target and (client is None or target not in client.post_logout_redirect_uris):
        return _error_page(
            _l("La dirección de retorno que envió la aplicación no está registrada.")
        )

    def finish():
        if target:
            return redirect(_with_params(target, {"state": args.get("state")}))
        return render_template("oidc/signed_out.html")

    signed_in = _signed_in_user()
    if signed_in is None:
        return finish()
    user = signed_in[0]
    confirmed = request.method == "POST" and DecisionForm().validate_on_submit()
    if confirmed or (hinted is not None and hinted.get("sub") == subject_for(db, user.id)):
        end_session()
        return finish()
    if request.method == "POST":
        abort(400)
    if target:
        allow_form_redirect_to(_form_source(target))
    return render_template("oidc/logout.html", client=client, form=DecisionForm())
