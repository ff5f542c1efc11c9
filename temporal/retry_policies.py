"""How activities retry, shared by every process: e-mail waits out an SMTP outage for long,
one-row database writes retry briskly."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

MAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
