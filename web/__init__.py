"""The Flask front end: a thin layer of forms and pages over the database and the workflows."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, g, request
from flask_babel import Babel, get_locale
from flask_wtf.csrf import CSRFProtect

from portal.config import load_portals, load_site
from portal.db import make_engine, make_session_factory
from portal.server_keys import server_secret_key
from portal.settings import Settings, load_settings
from portal.translations import TRANSLATIONS_DIR, compile_catalogs
from temporal.bridge import TemporalBridge
from temporal.outbox.prompt import relay_after_commit
from web import db as web_db
from web import errors, formatting, ratelimit, security
from web import metrics as web_metrics
from web.i18n import LANG_COOKIE, select_locale
from web.sessions import CookieSessions, login_manager, sessionless

csrf = CSRFProtect()
babel = Babel()


class AccesoFlask(Flask):
    """Flask, remembering which views and hooks are plain functions: Flask asks
    `inspect.iscoroutinefunction` of each of them (a dozen hooks) on every request."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._plain: set = set()

    def ensure_sync(self, func):
        if func in self._plain:
            return func
        made = super().ensure_sync(func)
        if made is func:
            self._plain.add(func)
        return made


def create_app(test_config: dict | None = None) -> Flask:
    app = AccesoFlask(__name__)
    app.session_interface = CookieSessions()
    test_config = dict(test_config or {})
    settings: Settings = test_config.pop("SETTINGS", None) or load_settings()
    app.config.from_mapping(
        SECRET_KEY=server_secret_key(settings),
        SETTINGS=settings,
        DEV_MODE=settings.dev_mode,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        REMEMBER_COOKIE_DURATION=timedelta(days=30),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        BABEL_DEFAULT_LOCALE="es",
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS_DIR),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_request_bytes,
    )
    app.config.update(test_config)

    engine = make_engine(settings.database_url)
    app.extensions["acceso.engine"] = engine
    app.extensions["acceso.sessions"] = make_session_factory(engine)
    app.extensions["acceso.readers"] = make_session_factory(
        engine
        if engine.dialect.name == "sqlite"
        else engine.execution_options(isolation_level="AUTOCOMMIT")
    )
    app.extensions["acceso.portals"] = load_portals(settings.portals_file)
    app.extensions["acceso.site"] = load_site(settings.portals_file)
    app.extensions["acceso.temporal"] = test_config.get("TEMPORAL") or TemporalBridge(settings)
    if isinstance(app.extensions["acceso.temporal"], TemporalBridge):
        relay_after_commit(app.extensions["acceso.sessions"], app.extensions["acceso.temporal"])

    compile_catalogs()
    web_db.init_app(app)
    ratelimit.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    login_manager.login_view = None
    formatting.init_app(app)

    from web import (
        account,
        auth,
        codec,
        developers,
        health,
        main,
        oidc,
        recovery,
        registration,
        staff,
    )

    app.register_blueprint(main.bp)
    app.register_blueprint(registration.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(recovery.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(oidc.bp)
    app.register_blueprint(developers.bp)
    for view in (oidc.authorize, oidc.token, oidc.userinfo, oidc.revoke, oidc.introspect):
        csrf.exempt(view)
    app.register_blueprint(csrf.exempt(codec.bp))
    web_metrics.init_app(app)
    app.register_blueprint(csrf.exempt(security.bp))
    if settings.dev_mode:
        from web import devinbox

        app.register_blueprint(devinbox.bp)

    @app.after_request
    def remember_language(response):
        if sessionless():
            return response
        chosen = request.args.get("lang")
        if chosen in ("es", "en"):
            response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 24 * 3600, samesite="Lax")
        return response

    @app.context_processor
    def layout_context():
        return {
            "portal": g.get("portal"),
            "all_portals": app.extensions["acceso.portals"],
            "site": app.extensions["acceso.site"],
            "get_locale": get_locale,
        }

    errors.init_app(app)
    security.init_app(app)

    return app
