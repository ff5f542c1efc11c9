"""The one send-once path every e-mail takes, on the real activity, database and SMTP sink: a
retry after a crash past the SMTP server's answer repeats the same link, and a retry after the
send was recorded sends nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from temporalio.testing import ActivityEnvironment

from mail.activities import LinkEmail, MailActivities
from mail.mailer import Mailer
from portal.config import load_portals
from portal.models import EmailToken, SentMail, User, utcnow
from portal.tokens import token_hash
from tests.fixtures.smtp import link_in

pytestmark = pytest.mark.dialects

WORKFLOW_ID = "registration/patient/MAILONCE01"


class ProcessDiesAfterTheSmtpAnswer(Exception):
    """Stands for the worker being killed between the server's 250 and the send's record."""


class MailerThatDiesAfterSending(Mailer):
    def send(self, *args, **kwargs) -> None:
        super().send(*args, **kwargs)
        raise ProcessDiesAfterTheSmtpAnswer


@pytest.fixture
def ana(session_factory) -> int:
    with session_factory() as session:
        user = User(
            portal="patient",
            username="ana.once",
            email="ana.once@example.org",
            full_name="Ana Once",
            password_hash="$argon2id$unused",
            role="patient",
        )
        session.add(user)
        session.commit()
        return user.id


def link_email(user_id: int, send_key: str = f"{WORKFLOW_ID}/confirm/1") -> LinkEmail:
    return LinkEmail(
        template="confirm_email",
        purpose="confirm_email",
        path="confirm",
        portal="patient",
        workflow_id=WORKFLOW_ID,
        user_id=user_id,
        lifetime_hours=24,
        send_key=send_key,
    )


def mail_activities(settings, session_factory, mailer_class=Mailer) -> MailActivities:
    return MailActivities(
        session_factory, mailer_class(settings), load_portals(settings.portals_file)
    )


def links_sent(mailbox) -> list[str]:
    return [link_in(m, "/patient/confirm/") for m in mailbox.to("ana.once@example.org")]


def test_a_link_e_mail_retried_after_a_crash_past_the_smtp_answer_carries_the_same_link(
    settings, session_factory, mailbox, ana
):
    dying = mail_activities(settings, session_factory, MailerThatDiesAfterSending)
    with pytest.raises(ProcessDiesAfterTheSmtpAnswer):
        ActivityEnvironment().run(dying.send_link, link_email(ana))

    retried = ActivityEnvironment().run(
        mail_activities(settings, session_factory).send_link, link_email(ana)
    )

    first, second = links_sent(mailbox)
    assert first == second
    with session_factory() as session:
        token = session.scalar(
            select(EmailToken).where(EmailToken.token_hash == token_hash(first.rsplit("/", 1)[-1]))
        )
        assert token is not None and token.id == retried.token_id
        assert token.usable(utcnow())
        assert session.get(SentMail, f"{WORKFLOW_ID}/confirm/1") is not None


def test_a_link_e_mail_retried_after_its_send_was_recorded_sends_nothing(
    settings, session_factory, mailbox, ana
):
    activities = mail_activities(settings, session_factory)
    first = ActivityEnvironment().run(activities.send_link, link_email(ana))
    again = ActivityEnvironment().run(activities.send_link, link_email(ana))

    assert len(links_sent(mailbox)) == 1
    assert again.token_id == first.token_id


def test_a_resend_is_a_new_logical_e_mail_that_replaces_the_first_link(
    settings, session_factory, mailbox, ana
):
    activities = mail_activities(settings, session_factory)
    ActivityEnvironment().run(activities.send_link, link_email(ana))
    ActivityEnvironment().run(
        activities.send_link, link_email(ana, send_key=f"{WORKFLOW_ID}/confirm/2")
    )

    first, second = links_sent(mailbox)
    assert first != second
    with session_factory() as session:
        usable = session.scalar(
            select(func.count())
            .select_from(EmailToken)
            .where(EmailToken.workflow_id == WORKFLOW_ID)
            .where(EmailToken.used_at.is_(None))
            .where(EmailToken.revoked_at.is_(None))
        )
    assert usable == 1
