"""Pages that are not a process: the portal list, a signed-in applicant's home, the FAQ."""

from __future__ import annotations

from flask import g, render_template
from flask_login import current_user

from web.portals import portal_blueprint, portals
from web.sessions import portal_login_required

bp = portal_blueprint("main", __name__, prefixed=False)


@bp.get("/")
def index():
    return render_template("main/index.html", portals=portals().values())


@bp.get("/<portal>/")
@portal_login_required
def home():
    return render_template("main/home.html", user=current_user.account)


@bp.get("/<portal>/faq")
def faq():
    return render_template(f"main/faq_{g.portal.flow}.html")
