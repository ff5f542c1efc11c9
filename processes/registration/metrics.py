"""The registration's numbers for /metrics, counted in the database: started, outcomes and the
overdue review queue (the alert docs/operations.md documents)."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from portal.metrics import REGISTRATION_OUTCOMES
from portal.models import AuditEvent, Registration
from processes.registration.vocabulary import AWAITING_REVIEW


class RegistrationCollector:
    """Registrations started, outcomes and the overdue review queue, counted in the database."""

    def __init__(self, session_factory):
        self.session_factory = session_factory

    def collect(self):
        started = CounterMetricFamily(
            "acceso_registrations_started", "Registrations begun, by portal", labels=["portal"]
        )
        outcomes = CounterMetricFamily(
            "acceso_registration_outcomes",
            "Registrations reaching an outcome (confirmed, approved, denied, lapsed, expired, "
            "closed), by portal",
            labels=["portal", "outcome"],
        )
        overdue = GaugeMetricFamily(
            "acceso_registrations_overdue",
            "Registrations waiting for review past their SLA, by portal",
            labels=["portal"],
        )
        with self.session_factory() as session:
            for portal, count in session.execute(
                select(Registration.portal, func.count()).group_by(Registration.portal)
            ):
                started.add_metric([portal], count)
            for portal, action, count in session.execute(
                select(AuditEvent.portal, AuditEvent.action, func.count())
                .where(AuditEvent.action.in_(list(REGISTRATION_OUTCOMES)))
                .group_by(AuditEvent.portal, AuditEvent.action)
            ):
                outcomes.add_metric([portal, REGISTRATION_OUTCOMES[action]], count)
            for portal, count in session.execute(
                select(Registration.portal, func.count())
                .where(Registration.overdue.is_(True))
                .where(Registration.status.in_(AWAITING_REVIEW))
                .group_by(Registration.portal)
            ):
                overdue.add_metric([portal], count)
        return [started, outcomes, overdue]
