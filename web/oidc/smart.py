"""What the consent page says about SMART scopes: each FHIR resource type and permission in
plain words, so a person knows what a health app will read before allowing it."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from portal.smart import ContextScope, resource_scope

RESOURCE_WORDS = {
    "*": _l("Toda su historia clínica"),
    "Patient": _l("Sus datos personales (nombre, fecha de nacimiento, contacto)"),
    "Observation": _l("Sus resultados de laboratorio y signos vitales"),
    "Condition": _l("Sus diagnósticos y problemas de salud"),
    "AllergyIntolerance": _l("Sus alergias e intolerancias"),
    "MedicationRequest": _l("Sus recetas y medicamentos"),
    "Immunization": _l("Sus vacunas"),
    "Procedure": _l("Sus procedimientos y cirugías"),
    "Encounter": _l("Sus consultas e internaciones"),
    "DiagnosticReport": _l("Sus informes de estudios"),
    "DocumentReference": _l("Sus documentos clínicos"),
    "Coverage": _l("Su cobertura de salud"),
    "ExplanationOfBenefit": _l("Sus reclamos y pagos de su cobertura"),
}

PERMISSION_WORDS = {
    "c": _l("crear"),
    "r": _l("leer"),
    "u": _l("modificar"),
    "d": _l("borrar"),
    "s": _l("buscar"),
}

CONTEXT_WORDS = {
    ContextScope.LAUNCH_PATIENT: _l("Saber de qué paciente es la historia que usa"),
    ContextScope.FHIR_USER: _l("Saber quién es usted en la historia clínica"),
    ContextScope.ONLINE_ACCESS: _l("Usar sus datos mientras usted tenga la sesión abierta"),
}


@dataclass(frozen=True)
class ResourceChoice:
    """One resource scope as a checkbox: the person may untick it."""

    scope: str
    what: str
    permissions: str


def resource_choices(scopes: list[str]) -> list[ResourceChoice]:
    choices = []
    for scope in scopes:
        parsed = resource_scope(scope)
        if parsed is None:
            continue
        permissions = ", ".join(str(PERMISSION_WORDS[p]) for p in parsed.permissions)
        choices.append(ResourceChoice(scope, str(RESOURCE_WORDS[parsed.resource]), permissions))
    return choices


def describe_resource_scope(scope: str) -> str | None:
    """A resource scope as the consent page worded it, or None for any other scope."""
    choices = resource_choices([scope])
    return f"{choices[0].what} ({choices[0].permissions})" if choices else None
