"""Portal declarations: each portal's flow and policy come from a config file, never from code."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class PasswordRules:
    min_length: int = 8
    require_upper: bool = True
    require_lower: bool = True
    require_digit: bool = True
    require_symbol: bool = False


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
    password_reset_mode: str = "temporary_password"
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
    support_phones: tuple[tuple[str, str], ...] = ()
    security_questions: tuple[str, ...] = ()
    staff_restricted: bool = True
    policy: Policy = field(default_factory=Policy)
    password_rules: PasswordRules = field(default_factory=PasswordRules)
    steps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.flow not in FLOW_STEPS:
            raise ValueError(f"portal {self.slug}: unknown flow {self.flow!r}")
        if not self.steps:
            object.__setattr__(self, "steps", FLOW_STEPS[self.flow])


def _build(cls, data: dict):
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    return cls(**data)


def _policy_from(data: dict) -> Policy:
    data = dict(data)
    if "require_second_factor" in data:
        data["require_second_factor"] = tuple(data["require_second_factor"])
    return _build(Policy, data)


def _portal_from(slug: str, data: dict) -> Portal:
    data = dict(data)
    return _build(
        Portal,
        {
            **data,
            "slug": slug,
            "policy": _policy_from(data.get("policy", {})),
            "password_rules": _build(PasswordRules, data.get("password_rules", {})),
            "support_phones": tuple(
                (p["label"], p["number"]) for p in data.get("support_phones", [])
            ),
            "security_questions": tuple(data.get("security_questions", [])),
            "steps": tuple(data.get("steps", ())),
        },
    )


@lru_cache(maxsize=8)
def load_portals(path: Path) -> dict[str, Portal]:
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    return {slug: _portal_from(slug, data) for slug, data in raw.get("portals", {}).items()}
