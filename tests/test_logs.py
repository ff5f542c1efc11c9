"""Logs are JSON lines with the workflow id, and neither logs nor workflow history hold a secret."""

from __future__ import annotations

import io
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.client import WorkflowHistory
from temporalio.testing import ActivityEnvironment

from portal.codec import ENCODING
from portal.logs import REDACTED, JsonFormatter, configure_logging, install_filters
from portal.models import ClinicalRecord, EmailToken, Registration, User
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import press_link_button, submit

PASSWORD = "Clave123segura"
EMAIL = "ana.logs@example.org"
FULL_NAME = "Ana Pérez Logs"
USERNAME = "ana.logs"


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def json_logger(name: str) -> tuple[logging.Logger, ListHandler]:
    handler = install_filters(ListHandler())
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, handler


def test_lines_are_json_with_time_level_logger_and_message():
    logger, handler = json_logger("acceso.test.shape")
    logger.info(
        "registration %s reached %s", "REF123", "confirm_email", extra={"portal": "patient"}
    )
    entry = json.loads(handler.lines[0])
    assert entry["level"] == "INFO"
    assert entry["logger"] == "acceso.test.shape"
    assert entry["message"] == "registration REF123 reached confirm_email"
    assert entry["portal"] == "patient"
    assert entry["time"].endswith("+00:00")


def test_password_and_token_fields_are_redacted_wherever_they_appear():
    logger, handler = json_logger("acceso.test.redact")
    raw_token = "Zx" * 22
    logger.info("login password=%s for %s", "Hunter2-secret", "ana")
    logger.info("confirm link http://acceso.test/patient/confirm/%s", raw_token)
    logger.info("headers %s", {"Authorization": "Bearer abc.def.ghi", "X-Namespace": "default"})
    logger.info("form", extra={"new_password": "Hunter2-secret", "codec_keys": "k1:AAAA"})
    try:
        raise ValueError("token='tok-abc-123' rejected")
    except ValueError:
        logger.exception("failed")
    text = "\n".join(handler.lines)
    for secret in ("Hunter2-secret", raw_token, "abc.def.ghi", "k1:AAAA", "tok-abc-123"):
        assert secret not in text
    assert REDACTED in text
    assert json.loads(handler.lines[3])["new_password"] == REDACTED


def test_activity_logs_carry_the_workflow_id():
    logger, handler = json_logger("acceso.test.activity")

    @activity.defn
    def noisy() -> None:
        logger.info("sending mail")

    env = ActivityEnvironment()
    env.info = env.info.__class__(**{**env.info.__dict__, "workflow_id": "registration/x/REF"})
    env.run(noisy)
    entry = json.loads(handler.lines[0])
    assert entry["workflow_id"] == "registration/x/REF"
    assert entry["activity_type"] == env.info.activity_type


def test_configure_logging_is_idempotent():
    stream = io.StringIO()
    root = logging.getLogger()
    configure_logging(stream=stream)
    configure_logging(stream=stream)
    ours = [h for h in root.handlers if getattr(h, "_acceso", False)]
    assert len(ours) == 1
    assert isinstance(ours[0].formatter, JsonFormatter)
    root.removeHandler(ours[0])


# The whole patient story through web, worker, dev server and SMTP, with every log line kept.


class RawRecords(logging.Handler):
    """What code asked to log, before any redaction: proves nobody tries to log a secret."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(f"{record.getMessage()} {vars(record)}")


@pytest.fixture
def captured_logs():
    root = logging.getLogger()
    raw = RawRecords()
    root.addHandler(raw)
    stream = io.StringIO()
    # INFO is the production level; below it the test's own SMTP server echoes whole messages.
    ours = configure_logging(level=logging.INFO, stream=stream)
    root.handlers.remove(raw)
    root.handlers.insert(0, raw)
    yield raw, stream
    root.removeHandler(raw)
    root.removeHandler(ours)
    root.setLevel(logging.WARNING)


def history_bytes(history: WorkflowHistory) -> bytes:
    return b"".join(event.SerializeToString() for event in history.events)


def needles(value: str) -> list[bytes]:
    """The forms a string takes in a payload: UTF-8 and JSON's \\u escapes."""
    return list({value.encode(), json.dumps(value).strip('"').encode()})


def started_input_is_encrypted(history: WorkflowHistory) -> bool:
    started = history.events[0].workflow_execution_started_event_attributes
    return all(p.metadata["encoding"] == ENCODING for p in started.input.payloads)


def test_no_secret_or_pii_in_logs_or_history_across_registration_and_reset(
    stack, raw_client, background_loop, captured_logs
):
    raw_logs, json_stream = captured_logs
    with stack.session_factory() as session:
        session.add(
            ClinicalRecord(portal="patient", record_number="HC-9", full_name=FULL_NAME, email=EMAIL)
        )
        session.commit()

    client = stack.client
    registered = submit(
        client,
        "/patient/register",
        {
            "email": EMAIL,
            "username": USERNAME,
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "full_name": FULL_NAME,
        },
    )
    assert registered.status_code == 302, registered.get_data(as_text=True)[:2000]
    confirm_link = link_in(stack.mailbox.wait_for(EMAIL, "Confirme"), "/patient/confirm/")
    confirm_token = confirm_link.rsplit("/", 1)[-1]
    press_link_button(client, confirm_link)
    stack.mailbox.wait_for(EMAIL, "confirmado")

    with stack.session_factory() as session:
        user = session.scalar(select(User).where(User.username == USERNAME))
        registration_id = session.scalar(
            select(Registration.workflow_id).where(Registration.user_id == user.id)
        )
    temporal = stack.app.extensions["acceso.temporal"]
    outcome = temporal.call(lambda c: c.get_workflow_handle(registration_id).result(), timeout=30)
    assert outcome["status"] == "active"

    submit(stack.new_client(), "/patient/recover/password", {"email": EMAIL, "username": USERNAME})
    reset_link = link_in(stack.mailbox.wait_for(EMAIL, "cambio de contrase"), "/patient/reset/")
    reset_token = reset_link.rsplit("/", 1)[-1]
    press_link_button(stack.new_client(), reset_link)
    temporary_mail = body_text(stack.mailbox.wait_for(EMAIL, "temporal"))
    temporary_password = re.search(r"^\s+([A-Za-z0-9]{14})\s*$", temporary_mail, re.M).group(1)
    with stack.session_factory() as session:
        reset_id = session.scalar(
            select(EmailToken.workflow_id).where(EmailToken.purpose == "password_reset")
        )
    reset_outcome = temporal.call(lambda c: c.get_workflow_handle(reset_id).result(), timeout=30)
    assert reset_outcome["status"] == "completed"

    secrets_ = {
        "password": PASSWORD,
        "confirm token": confirm_token,
        "reset token": reset_token,
        "temporary password": temporary_password,
    }
    pii = {"e-mail": EMAIL, "full name": FULL_NAME, "username": USERNAME}

    # Logs: neither what code asked to log nor what reached the output holds a secret.
    output = json_stream.getvalue()
    assert output.strip(), "nothing was logged: the capture is not wired"
    for line in output.splitlines():
        json.loads(line)
    for what, value in secrets_.items():
        assert value not in output, f"{what} in the JSON log output"
        leaked = [m for m in raw_logs.messages if value in m]
        assert not leaked, f"code tried to log the {what}: {leaked[:1]}"

    # History as Temporal stores it, read with a client that has no codec.
    for workflow_id in (registration_id, reset_id):
        history = background_loop.run(raw_client.get_workflow_handle(workflow_id).fetch_history())
        stored = history_bytes(history)
        assert started_input_is_encrypted(history), workflow_id
        for what, value in {**secrets_, **pii}.items():
            for form in needles(value):
                assert form not in stored, f"{what} in the stored history of {workflow_id}"

    description = background_loop.run(raw_client.get_workflow_handle(registration_id).describe())
    attributes = {k: v for k, v in description.search_attributes.items() if k.startswith("Acceso")}
    assert attributes["AccesoPortal"] == ["patient"]
    assert attributes["AccesoStep"] == ["active"]
    assert registration_id.endswith(attributes["AccesoReference"][0])


def test_raw_history_is_unreadable_but_the_codec_client_reads_it(
    stack, raw_client, background_loop
):
    """The same history decodes with the app's codec, so operators lose nothing but plaintext."""
    from processes.recovery.vocabulary import PasswordResetStart
    from processes.recovery.workflows import PasswordResetWorkflow

    portal = stack.app.extensions["acceso.portals"]["patient"]
    start = PasswordResetStart(portal="patient", policy=portal.policy, user_id=None)
    temporal = stack.app.extensions["acceso.temporal"]
    workflow_id = "password-reset/patient/codec-probe"

    async def run(client):
        handle = await client.start_workflow(
            PasswordResetWorkflow.run, start, id=workflow_id, task_queue=stack.settings.task_queue
        )
        return await handle.result()

    assert temporal.call(run, timeout=30).status == "no_account"
    history = background_loop.run(raw_client.get_workflow_handle(workflow_id).fetch_history())
    assert started_input_is_encrypted(history)
    assert b"no_account" not in history_bytes(history)
    decoded = temporal.call(lambda c: c.get_workflow_handle(workflow_id).result(), timeout=10)
    assert decoded["status"] == "no_account"


def test_json_logs_survive_threads():
    """Activities log from executor threads; each line stays whole JSON."""
    logger, handler = json_logger("acceso.test.threads")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: logger.info("line %d", i), range(200)))
    assert len({json.loads(line)["message"] for line in handler.lines}) == 200


def test_gunicorn_access_lines_lose_link_tokens():
    """gunicorn logs each request line, and confirmation links carry their token in the path."""
    from gunicorn.config import Config

    from portal.logs import GunicornLogger

    config = Config()
    config.set("accesslog", "-")
    gunicorn_logger = GunicornLogger(config)
    stream = io.StringIO()
    for handler in gunicorn_logger.access_log.handlers:
        handler.setStream(stream)
    token = "Qw" * 22
    gunicorn_logger.access_log.info('127.0.0.1 "GET /patient/confirm/%s HTTP/1.1" 302', token)
    line = json.loads(stream.getvalue())
    assert token not in line["message"]
    assert line["logger"] == "gunicorn.access"
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_acceso", False)]
    assert len(ours) == 1, "the app's own logs are configured by the gunicorn logger class"
    root.removeHandler(ours[0])
    root.setLevel(logging.WARNING)
