"""SMART App Launch (HL7) on top of the OpenID Connect provider: the v2 scope grammar, which
scopes a client was approved for, and the FHIR Patient a person's record names.

Nothing here renders or talks to Temporal; the web tier shows the plain words for each resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.models import ClinicalRecord, MemberRecord, User

SMART_FLOWS = ("patient", "member")
"""Portals whose people have a FHIR Patient record: a health app can get a patient context."""


class ContextScope(StrEnum):
    """The SMART scopes that are not resource permissions."""

    LAUNCH_PATIENT = "launch/patient"
    FHIR_USER = "fhirUser"
    ONLINE_ACCESS = "online_access"


class Capability(StrEnum):
    """What discovery promises (SMART App Launch 2.0 section 'Capabilities'); only what works."""

    LAUNCH_STANDALONE = "launch-standalone"
    CLIENT_PUBLIC = "client-public"
    CLIENT_CONFIDENTIAL_SYMMETRIC = "client-confidential-symmetric"
    CONTEXT_STANDALONE_PATIENT = "context-standalone-patient"
    PERMISSION_PATIENT = "permission-patient"
    PERMISSION_OFFLINE = "permission-offline"
    PERMISSION_ONLINE = "permission-online"
    PERMISSION_V2 = "permission-v2"
    SSO_OPENID_CONNECT = "sso-openid-connect"


RESOURCE_TYPES = (
    "Patient",
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "Immunization",
    "Procedure",
    "Encounter",
    "DiagnosticReport",
    "DocumentReference",
    "Coverage",
    "ExplanationOfBenefit",
)
"""The FHIR resource types a `patient/` scope may name; `*` stands for all of them."""

PERMISSIONS = "cruds"
"""create, read, update, delete, search: a v2 scope lists a subset in this order."""

_RESOURCE_SCOPE = re.compile(r"^patient/(\*|[A-Z][A-Za-z]{1,63})\.([cruds]{1,5})$")
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
"""A FHIR resource id (FHIR R4 'id' datatype)."""


@dataclass(frozen=True)
class ResourceScope:
    """One `patient/<Resource>.<cruds>` scope, parsed."""

    scope: str
    resource: str
    permissions: str

    def covers(self, other: ResourceScope) -> bool:
        """Whether an approval of this scope allows asking for the other."""
        return self.resource in ("*", other.resource) and set(other.permissions) <= set(
            self.permissions
        )


def resource_scope(scope: str) -> ResourceScope | None:
    """The parsed v2 resource scope, or None for anything else (a v1 `.read` included)."""
    match = _RESOURCE_SCOPE.match(scope)
    if not match:
        return None
    resource, permissions = match.groups()
    if resource != "*" and resource not in RESOURCE_TYPES:
        return None
    if "".join(p for p in PERMISSIONS if p in permissions) != permissions:
        return None
    return ResourceScope(scope, resource, permissions)


def is_smart_scope(scope: str) -> bool:
    return scope in set(ContextScope) or resource_scope(scope) is not None


def supported_smart_scopes() -> list[str]:
    """What discovery lists: the context scopes and a read-and-search scope per resource type
    (any subset of cruds in the v2 order is accepted too)."""
    return [
        *ContextScope,
        "patient/*.rs",
        *(f"patient/{resource}.rs" for resource in RESOURCE_TYPES),
    ]


def check_scopes(scopes: list[str]) -> str | None:
    """Why a set of registered scopes is not acceptable, or None."""
    for scope in scopes:
        if scope.startswith("patient/") and resource_scope(scope) is None:
            return f"not a SMART v2 patient scope: {scope}"
    return None


def approved(approved_scopes: list[str] | None, scope: str) -> bool:
    """Whether a client approved for `approved_scopes` may ask for `scope`; a client approved
    for nothing in particular (None) may ask for the portal's OpenID Connect scopes only."""
    if approved_scopes is None:
        return not is_smart_scope(scope)
    if scope in approved_scopes:
        return True
    asked = resource_scope(scope)
    if asked is None:
        return False
    return any(
        (held := resource_scope(s)) is not None and held.covers(asked) for s in approved_scopes
    )


def writes(scopes: list[str]) -> bool:
    """Whether any `patient/` scope lets the app create, update or delete."""
    return any(
        (parsed := resource_scope(scope)) is not None and set(parsed.permissions) & set("cud")
        for scope in scopes
    )


def record_patient_id(record: ClinicalRecord) -> str:
    """A clinical record's FHIR Patient id: the imported one, else its record number."""
    return record.fhir_patient_id or record.record_number


def patient_id_for(session: Session, user: User) -> str | None:
    """The FHIR Patient id of the person's own record in their portal, or None if there is none:
    the clinical record the account was registered against (or, for accounts older than that
    link, the one with its e-mail), a member's record by client ID."""
    if user.clinical_record_id is not None:
        record = session.get(ClinicalRecord, user.clinical_record_id)
        if record is not None:
            return record_patient_id(record)
    if user.client_id:
        record = session.scalar(
            select(MemberRecord).where(
                MemberRecord.portal == user.portal, MemberRecord.client_id == user.client_id
            )
        )
        if record is not None:
            return record.fhir_patient_id or record.client_id
    records = session.scalars(
        select(ClinicalRecord)
        .where(
            ClinicalRecord.portal == user.portal,
            func.lower(ClinicalRecord.email) == user.email.lower(),
        )
        .limit(2)
    ).all()
    if len(records) != 1:
        return None  # none, or a family's shared address: never guess whose record it is
    return record_patient_id(records[0])
