"""Portal declarations: each portal's flow and policy come from a config file, never from code."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

DEFAULT_LANGUAGE = "es"


class Text(str):
    """A text people read, from the config file, in one or more languages: `"..."` or
    `{ es = "...", en = "..." }`. As a plain string it is the default language (so stored
    values, e.g. a chosen security question, never depend on the reader); rendered in a page or
    formatted into a message it is in the request's language, falling back to the default."""

    translations: dict[str, str]

    def __new__(cls, value: str | dict[str, str]) -> Text:
        if isinstance(value, dict):
            if not value:
                raise ValueError("a translated text needs at least one language")
            source = value.get(DEFAULT_LANGUAGE) or next(iter(value.values()))
            text = super().__new__(cls, source)
            text.translations = {str(k): str(v) for k, v in value.items()}
        else:
            text = super().__new__(cls, value)
            text.translations = {}
        return text

    @property
    def source(self) -> str:
        """The default-language text, as a plain `str`."""
        return str.__str__(self)

    def get(self, language: str | None) -> str:
        return self.translations.get(language or "", "") or self.source

    def localised(self) -> str:
        return self.get(_current_language())

    def __str__(self) -> str:
        return self.localised()

    def __format__(self, spec: str) -> str:
        return format(self.localised(), spec)

    def __html__(self) -> str:
        from markupsafe import escape

        return str(escape(self.localised()))

    def __reduce__(self):
        return (Text, (self.translations or self.source,))


def _current_language() -> str | None:
    """The request's language where there is one (flask-babel), else None (the default)."""
    try:
        from flask_babel import get_locale
    except ImportError:  # pragma: no cover - the worker has flask-babel too
        return None
    try:
        locale = get_locale()
    except RuntimeError:
        return None
    return str(locale) if locale else None


@dataclass(frozen=True)
class PasswordRules:
    min_length: int = 8
    require_upper: bool = True
    require_lower: bool = True
    require_digit: bool = True
    require_symbol: bool = False


class ResetMode(StrEnum):
    """How a confirmed password reset ends: a mailed temporary password, or one typed on the
    link's page."""

    TEMPORARY_PASSWORD = "temporary_password"
    LINK = "link"


@dataclass(frozen=True)
class Policy:
    """The knobs a workflow reads; carried in the workflow input so a replay sees the same values."""

    email_link_hours: int = 48
    max_confirmation_resends: int = 5
    registration_abandon_hours: int = 168
    approval_sla_hours: int = 24
    approval_final_hours: int = 120
    identity_strike_limit: int = 3
    login_lockout_threshold: int = 5
    password_reset_mode: ResetMode = ResetMode.TEMPORARY_PASSWORD
    reset_link_hours: int = 2
    reset_link_resend_minutes: int = 5
    max_reset_links: int = 3
    username_reminder_cooldown_minutes: int = 15
    temporary_password_hours: int = 24
    security_question_count: int = 0
    invitation_days: int = 7
    idle_minutes: int = 30
    require_second_factor: tuple[str, ...] = ()
    """Roles that must use an authenticator app; an empty tuple leaves it to each applicant."""
    new_device_notice: bool = True
    """E-mail the owner when an account signs in from a browser it has not used before."""
    not_me_link_hours: int = 168
    """How long the "this was not me" link of that e-mail works."""
    email_change_link_hours: int = 24
    email_change_undo_days: int = 7
    """How long the old address may undo an e-mail change (its notice's link, a workflow timer)."""
    shared_email_addresses: bool = False
    """Whether several accounts may use one address (a family's patient records often do)."""
    offline_access_days: int = 90
    """How long a health app's offline access lasts unused; every refresh starts it again."""
    password_reset_ends_offline_access: bool = True
    """Whether a password reset or change also ends health apps' offline access."""
    fhir_base_urls: tuple[str, ...] = ()
    """The FHIR servers this portal authorizes for: a SMART request's `aud` must name one.
    Empty: any `aud` is accepted (a demo whose FHIR server's port changes)."""
    proxy_adolescent_age: int = 12
    """At this birthday a parent's or guardian's grant becomes `limited`; both are told."""
    proxy_majority_age: int = 18
    """At this birthday a grant for a child ends and the new adult is invited to register."""
    proxy_renewal_months: int = 12
    """An adult subject renews a grant this often (reminders 30 and 7 days before) or it lapses."""
    proxy_link_hours: int = 72
    """How long a proxy invitation, or an adult's approval link, waits for an answer."""
    proxy_review_sla_hours: int = 24
    proxy_review_final_hours: int = 120
    """Staff review of a request for a child: overdue (reviewers e-mailed), then it expires."""
    app_review_sla_hours: int = 72
    app_review_final_hours: int = 336
    """Staff review of a third-party app's registration: overdue (reviewers e-mailed) at the
    SLA, lapsed at the final deadline (the developer is told and may apply again)."""
    app_credentials_link_hours: int = 72
    """How long an approved app's credentials link works (once)."""


FLOW_STEPS = {
    "patient": ("confirm_email",),
    "member": ("identity", "account", "confirm_email"),
    "provider": ("confirm_email", "review"),
}


@dataclass(frozen=True)
class Portal:
    slug: str
    name: str
    flow: str
    organisation: str = ""
    support_email: str = ""
    helpdesk_email: str = ""
    escalation_email: str = ""
    support_phones: tuple[tuple[Text, str], ...] = ()
    security_questions: tuple[Text, ...] = ()
    logo: str = ""
    staff_restricted: bool = True
    policy: Policy = field(default_factory=Policy)
    password_rules: PasswordRules = field(default_factory=PasswordRules)
    steps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.flow not in FLOW_STEPS:
            raise ValueError(f"portal {self.slug}: unknown flow {self.flow!r}")
        if not self.steps:
            object.__setattr__(self, "steps", FLOW_STEPS[self.flow])


_TEXTS = ("name", "organisation")
"""Portal settings people read, translatable per language like support labels and questions."""


def _build(cls, data: dict):
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    return cls(**data)


def _policy_from(data: dict) -> Policy:
    data = dict(data)
    for listed in ("require_second_factor", "fhir_base_urls"):
        if listed in data:
            data[listed] = tuple(data[listed])
    return _build(Policy, data)


def _portal_from(slug: str, data: dict) -> Portal:
    data = dict(data)
    return _build(
        Portal,
        {
            **data,
            **{key: Text(data[key]) for key in _TEXTS if key in data},
            "slug": slug,
            "policy": _policy_from(data.get("policy", {})),
            "password_rules": _build(PasswordRules, data.get("password_rules", {})),
            "support_phones": tuple(
                (Text(p["label"]), p["number"]) for p in data.get("support_phones", [])
            ),
            "security_questions": tuple(Text(q) for q in data.get("security_questions", [])),
            "steps": tuple(data.get("steps", ())),
        },
    )


@dataclass(frozen=True)
class Site:
    """What every page's header and footer show: the organisation, its logo (a path under
    web/static or a URL) and links to its policies; empty links are left out."""

    organisation: Text = field(default_factory=lambda: Text("Acceso"))
    logo: str = ""
    privacy_url: str = ""
    terms_url: str = ""
    accessibility_url: str = ""
    language_assistance_url: str = ""


@lru_cache(maxsize=8)
def _read(path: Path) -> dict:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


@lru_cache(maxsize=8)
def load_portals(path: Path) -> dict[str, Portal]:
    raw = _read(path)
    return {slug: _portal_from(slug, data) for slug, data in raw.get("portals", {}).items()}


@lru_cache(maxsize=8)
def load_site(path: Path) -> Site:
    data = dict(_read(path).get("site", {}))
    if "organisation" in data:
        data["organisation"] = Text(data["organisation"])
    return _build(Site, data)
