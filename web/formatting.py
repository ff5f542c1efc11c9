"""Dates and statuses as people read them, in the page's language: "30 nov 2026, 14:05" rather
than an ISO timestamp, "En revisión" in a coloured badge rather than a status code."""

from __future__ import annotations

from datetime import date, datetime

from flask import Flask
from flask_babel import format_date, format_datetime
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

STATUSES = {
    # registrations
    "started": (_l("Iniciado"), "neutral"),
    "identity": (_l("Validando identidad"), "info"),
    "account": (_l("Creando usuario"), "info"),
    "escalated": (_l("En la mesa de ayuda"), "warning"),
    "confirm_email": (_l("Esperando confirmación del correo"), "info"),
    "pending_review": (_l("En revisión"), "warning"),
    "review": (_l("En revisión"), "warning"),
    "approved": (_l("Aprobada"), "success"),
    "denied": (_l("Denegada"), "danger"),
    "completed": (_l("Completado"), "success"),
    "expired": (_l("Vencido"), "neutral"),
    "lapsed": (_l("Vencida sin respuesta"), "danger"),
    # accounts
    "unconfirmed": (_l("Sin confirmar"), "info"),
    "active": (_l("Activa"), "success"),
    "disabled": (_l("Desactivada"), "neutral"),
    # help-desk cases
    "open": (_l("Abierto"), "warning"),
    "retry_allowed": (_l("Otro intento permitido"), "success"),
    "closed": (_l("Cerrado"), "neutral"),
}


def status_label(status: str | None) -> str:
    known = STATUSES.get(status or "")
    return str(known[0]) if known else (status or "—")


def status_badge(status: str | None) -> Markup:
    """A translated status in a badge whose colour says good, waiting, or stopped."""
    label, tone = STATUSES.get(status or "", (status or "—", "neutral"))
    return Markup('<span class="badge {}">{}</span>').format(tone, escape(str(label)))


def when(value: datetime | None) -> str:
    """A moment as "30 nov 2026, 14:05" (UTC, as stored), without seconds or microseconds."""
    if value is None:
        return "—"
    return format_datetime(value, "d MMM y, HH:mm")


def iso(value: datetime | None) -> str:
    """A moment for a <time datetime> attribute, to the second."""
    return value.replace(microsecond=0).isoformat() if value else ""


def day(value: date | datetime | str | None) -> str:
    """A date ("1979-11-03" as records keep it, or a date) as "3 nov 1979"."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value
    return format_date(value, "d MMM y")


def init_app(app: Flask) -> None:
    app.add_template_filter(when, "when")
    app.add_template_filter(day, "day")
    app.add_template_filter(iso, "iso")
    app.add_template_filter(status_badge, "status_badge")
    app.add_template_filter(status_label, "status_label")
