"""CSV imports of clinical and member records: validate the whole file, then write it at once."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal.audit import add_event
from portal.models import ClinicalRecord, MemberRecord
from portal.smart import FHIR_ID

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Column:
    name: str
    max_length: int
    required: bool = True
    kind: str = "text"
    optional_column: bool = False
    """The file may leave the column out altogether (added after files were already in use)."""


@dataclass(frozen=True)
class RecordKind:
    """How one CSV shape maps onto one table: its columns, its key, and the portal flow it feeds."""

    name: str
    model: type
    key: str
    flow: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


FHIR_PATIENT_ID = Column(
    "fhir_patient_id", 64, required=False, kind="fhir_id", optional_column=True
)
"""The FHIR Patient id a SMART app gets; empty, it is the record's key (record number or
client ID)."""

KINDS = {
    "patients": RecordKind(
        name="patients",
        model=ClinicalRecord,
        key="record_number",
        flow="patient",
        columns=(
            Column("full_name", 200),
            Column("email", 254, kind="email"),
            Column("record_number", 64),
            Column("date_of_birth", 10, required=False, kind="date", optional_column=True),
            FHIR_PATIENT_ID,
        ),
    ),
    "members": RecordKind(
        name="members",
        model=MemberRecord,
        key="client_id",
        flow="member",
        columns=(
            Column("client_id", 64),
            Column("first_name", 100),
            Column("last_name", 100),
            Column("suffix", 16, required=False),
            Column("date_of_birth", 10, kind="date"),
            Column("email", 254, required=False, kind="email"),
            FHIR_PATIENT_ID,
        ),
    ),
}


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


@dataclass
class ParsedFile:
    rows: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ImportRejected(Exception):
    """The file had bad rows; nothing was written."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


def _check_value(column: Column, raw: str) -> tuple[str, str | None]:
    """The cleaned value and the problem with it, if any."""
    value = raw.strip()
    if not value:
        return value, "required" if column.required else None
    if len(value) > column.max_length:
        return value, f"too long (at most {column.max_length} characters)"
    if column.kind == "email":
        try:
            return validate_email(value, check_deliverability=False).normalized, None
        except EmailNotValidError:
            return value, "not a valid address"
    if column.kind == "date":
        try:
            if not DATE_RE.match(value):
                raise ValueError(value)
            born = date.fromisoformat(value)
        except ValueError:
            return value, "not a date in YYYY-MM-DD form"
        if born > date.today():
            return value, "is in the future"
    if column.kind == "fhir_id" and not FHIR_ID.match(value):
        return value, "not a FHIR id (letters, digits, '-' and '.', at most 64)"
    return value, None


def parse_file(path: Path, kind: RecordKind) -> ParsedFile:
    """Every row of the file, cleaned, or every problem found, each with its line number."""
    parsed = ParsedFile()
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        parsed.errors.append(f"file is not UTF-8 text ({error.reason} at byte {error.start})")
        return parsed
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader)
    except StopIteration:
        parsed.errors.append(f"line 1: empty file; expected columns {','.join(kind.column_names)}")
        return parsed
    header = [name.strip().lower() for name in header]
    missing = [
        column.name
        for column in kind.columns
        if column.name not in header and not column.optional_column
    ]
    if missing:
        parsed.errors.append(f"line 1: missing column(s): {', '.join(missing)}")
        return parsed

    first_seen: dict[str, int] = {}
    while True:
        line = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            parsed.errors.append(f"line {line}: {error}")
            break
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            parsed.errors.append(f"line {line}: expected {len(header)} fields, found {len(values)}")
            continue
        raw = dict(zip(header, values, strict=True))
        row: dict[str, str] = {}
        for column in kind.columns:
            if column.name not in raw:
                continue  # an optional column the file leaves out keeps what is stored
            value, problem = _check_value(column, raw[column.name])
            if problem:
                parsed.errors.append(f"line {line}: {column.name}: {problem}")
            row[column.name] = value
        key = row[kind.key]
        if "fhir_patient_id" in row and not row["fhir_patient_id"]:
            _, problem = _check_value(FHIR_PATIENT_ID, key)
            if problem:
                parsed.errors.append(f"line {line}: fhir_patient_id: {problem} (from {kind.key})")
            row["fhir_patient_id"] = key
        if key:
            if key in first_seen:
                parsed.errors.append(
                    f"line {line}: {kind.key}: duplicate of line {first_seen[key]}"
                )
            else:
                first_seen[key] = line
        parsed.rows.append(row)
    return parsed


def import_records(
    session_factory: sessionmaker[Session],
    kind: RecordKind,
    path: Path,
    portal: str,
    *,
    actor: str = "cli",
    update_existing: bool = True,
) -> ImportResult:
    """Validate first, then upsert in one transaction, so a bad file never leaves half its rows.

    update_existing=False leaves rows already present alone, for demo data loaded on every start.
    """
    parsed = parse_file(path, kind)
    if parsed.errors:
        raise ImportRejected(parsed.errors)
    result = ImportResult()
    model = kind.model
    with session_factory.begin() as session:
        existing = {
            getattr(record, kind.key): record
            for record in session.scalars(select(model).where(model.portal == portal))
        }
        for row in parsed.rows:
            record = existing.get(row[kind.key])
            if record is None:
                session.add(model(portal=portal, **{"fhir_patient_id": row[kind.key], **row}))
                result.created += 1
            elif not update_existing:
                result.skipped += 1
            elif all(getattr(record, name) == value for name, value in row.items()):
                result.unchanged += 1
            else:
                for name, value in row.items():
                    setattr(record, name, value)
                result.updated += 1
        if result.created or result.updated or update_existing:
            add_event(
                session,
                actor=actor,
                action=f"import.{kind.name}",
                portal=portal,
                file=Path(path).name,
                created=result.created,
                updated=result.updated,
                unchanged=result.unchanged,
                skipped=result.skipped,
            )
    return result
