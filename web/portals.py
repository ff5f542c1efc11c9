"""Every applicant-facing URL starts with a portal slug; this turns it into the portal's config."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, g

from portal.config import Portal


def portals() -> dict[str, Portal]:
    return current_app.extensions["acceso.portals"]


def current_portal() -> Portal:
    return g.portal


def portal_blueprint(
    name: str, import_name: str, flows: tuple[str, ...] = (), prefixed: bool = True
) -> Blueprint:
    """A blueprint whose routes carry /<portal>; `flows` limits it to portals of those flows."""
    bp = Blueprint(name, import_name, url_prefix="/<portal>" if prefixed else None)

    @bp.url_value_preprocessor
    def load_portal(_endpoint, values):
        if not values or "portal" not in values:
            return
        slug = values.pop("portal")
        portal = portals().get(slug or "")
        if portal is None or (flows and portal.flow not in flows):
            abort(404)
        g.portal = portal

    @bp.url_defaults
    def add_portal(endpoint, values):
        if "portal" not in values and "portal" in g:
            values["portal"] = g.portal.slug

    return bp
