"""Running processes survive new code: every committed history (tests/histories, recorded by
scripts/record_histories.py from real runs) replays on today's workflow code, and a change
made without `workflow.patched` is caught by that replay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from processes.account_notice.vocabulary import AccountNotice, NoticeDelivered
from processes.account_notice.workflows import AccountNoticeWorkflow
from tests.fixtures.codec import suite_data_converter
from worker import WORKFLOW_RUNNER, WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
EXPECTED_KINDS = {
    "RegistrationWorkflow",
    "PasswordResetWorkflow",
    "UsernameReminderWorkflow",
    "InvitationWorkflow",
    "AccountNoticeWorkflow",
    "StaffInvitationWorkflow",
    "EmailChangeWorkflow",
    "ProxyGrantWorkflow",
    "AppRegistrationWorkflow",
}


def histories() -> list[Path]:
    return sorted(HISTORIES.rglob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def replayer(*workflows) -> Replayer:
    return Replayer(
        workflows=list(workflows) or WORKFLOWS,
        workflow_runner=WORKFLOW_RUNNER,
        data_converter=suite_data_converter(),
    )


def test_there_are_histories_of_every_workflow_the_worker_runs():
    kinds = {path.parent.name for path in histories()}
    assert {w.__name__ for w in WORKFLOWS} <= kinds, "run `make histories`"
    assert kinds >= EXPECTED_KINDS


@pytest.mark.parametrize(
    "path", histories(), ids=lambda p: f"{p.parent.name}/{p.stem}" if isinstance(p, Path) else p
)
async def test_committed_history_replays_on_todays_code(path):
    result = await replayer().replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@workflow.defn(name="AccountNoticeWorkflow", sandboxed=False)
class NoticeAuditedFirst(AccountNoticeWorkflow):
    """Today's notice workflow with one new activity call in front, shipped without a patch."""

    @workflow.run
    async def run(self, notice: AccountNotice) -> NoticeDelivered:
        await workflow.execute_activity(
            "record_event", notice.kind, start_to_close_timeout=timedelta(seconds=30)
        )
        return await super().run(notice)


@workflow.defn(name="AccountNoticeWorkflow", sandboxed=False)
class NoticeAuditedFirstBehindAPatch(AccountNoticeWorkflow):
    """The same change done safely: only runs started after the deploy take the new step."""

    @workflow.run
    async def run(self, notice: AccountNotice) -> NoticeDelivered:
        if workflow.patched("audit-notice-first"):
            await workflow.execute_activity(
                "record_event", notice.kind, start_to_close_timeout=timedelta(seconds=30)
            )
        return await super().run(notice)


def notice_history() -> WorkflowHistory:
    """The password-change notice, recorded to its end (other notices may stop mid-way when
    their test ends, and a history with no commands cannot show a mismatch)."""
    found = sorted((HISTORIES / "AccountNoticeWorkflow").glob("test_changing_the_password*.json"))
    assert found, "no committed AccountNoticeWorkflow history: run `make histories`"
    return load(found[0])


async def test_a_new_activity_without_a_patch_fails_replay_of_an_open_process():
    with pytest.raises(workflow.NondeterminismError):
        await replayer(NoticeAuditedFirst).replay_workflow(notice_history())


async def test_the_same_change_behind_workflow_patched_replays():
    await replayer(NoticeAuditedFirstBehindAPatch).replay_workflow(notice_history())
