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
CHECK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_attempts=4
)
"""An automatic check of something outside (a developer's web site): a few tries over about
half a minute ride out a blip; a failure after them is a result staff see, not an outage."""
MAIL_FIRST_TRY = RetryPolicy(maximum_attempts=1)
"""An e-mail's first try as a local activity: it either goes out within the workflow task, or
the process falls back to a regular activity with MAIL_RETRY, whose retries show in the UI."""
