"""Records the committed workflow histories that tests/test_replay.py replays.

Runs the tests below (real workflow code on the Temporal dev server and the time-skipping
server; fictional applicants; payloads encrypted with the suite's test key) with
ACCESO_RECORD_HISTORIES set, so tests/fixtures/histories.py writes every workflow history as
tests/histories/<WorkflowType>/<test name>-<n>.json. Run it (`make histories`) after a workflow
change has been made replay-safe, and commit the new files beside the old ones: old histories
prove that open processes still replay, new ones cover the new paths.

    python scripts/record_histories.py [--keep]    (--keep: add to tests/histories, do not clear)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = ROOT / "tests" / "histories"

PATHS = {
    "patient confirmation": [
        "tests/test_registration_workflow.py::test_following_the_link_activates_and_sends_user_confirmed",
        "tests/test_registration_workflow.py::test_abandoned_registration_expires_and_frees_its_username",
        "tests/test_registration_workflow.py::test_a_click_that_raced_the_deadline_is_honoured",
        "tests/test_patient_portal.py::test_registration_sends_a_confirmation_link_that_activates_the_account",
        "tests/test_registration_lifecycle.py::test_a_patient_lifecycle_fits_in_fourteen_history_events",
    ],
    "member escalation then retry": [
        "tests/test_member_workflow.py::test_help_desk_allows_a_retry_and_the_applicant_finishes",
        "tests/test_member_workflow.py::test_help_desk_closes_the_case_and_the_registration_ends",
        "tests/test_member_portal.py::test_three_strikes_send_the_applicant_to_the_help_desk_and_retry_is_allowed",
    ],
    "provider approve, deny, overdue": [
        "tests/test_provider_workflow.py::test_confirmed_email_then_approval_activates_and_mails_the_applicant",
        "tests/test_provider_workflow.py::test_denial_mails_the_reason_and_ends_denied",
        "tests/test_provider_workflow.py::test_sla_lapse_marks_overdue_escalates_and_keeps_waiting",
        "tests/test_provider_workflow.py::test_final_deadline_closes_the_application_and_tells_the_applicant",
        "tests/test_provider_portal.py::test_application_is_confirmed_reviewed_approved_and_mailed",
        "tests/test_provider_portal.py::test_denial_needs_a_reason_mails_it_and_login_says_denied",
    ],
    "password reset, both modes": [
        "tests/test_password_reset_workflow.py::test_confirmed_reset_issues_a_temporary_password_once",
        "tests/test_password_reset_workflow.py::test_reset_link_expires_after_its_lifetime",
        "tests/test_patient_accounts.py::test_password_recovery_unlocks_and_forces_a_new_password",
        "tests/test_provider_portal.py::test_forgotten_username_and_password_for_a_provider",
    ],
    "username reminder": [
        "tests/test_username_reminder_workflow.py::test_a_mistyped_request_blocks_nobody_and_a_sent_one_cools_down",
        "tests/test_patient_accounts.py::test_recover_username_lists_every_username_of_the_address",
    ],
    "invitation accepted and revoked": [
        "tests/test_invitation_workflow.py::test_accepting_activates_the_employee",
        "tests/test_invitation_workflow.py::test_revoked_invitation_ends_and_refuses_its_link",
        "tests/test_provider_portal.py::test_primary_invites_an_employee_who_accepts_and_can_be_disabled",
        "tests/test_provider_portal.py::test_primary_revokes_a_pending_invitation_and_its_link_stops_working",
    ],
    "staff invitation accepted and lapsed": [
        "tests/test_staff_invitation_workflow.py::test_an_accepted_invitation_ends_without_touching_the_account",
        "tests/test_staff_invitation_workflow.py::test_an_unanswered_invitation_lapses_after_its_lifetime",
        "tests/test_staff_admin.py::test_an_invited_person_sets_a_password_enrols_and_signs_in",
    ],
    "back-channel logout delivered and given up": [
        "tests/test_logout_delivery_workflow.py::test_a_client_down_for_a_while_gets_its_logout_when_it_comes_back",
        "tests/test_logout_delivery_workflow.py::test_a_client_down_past_the_deadline_is_given_up_on",
    ],
    "e-mail change confirmed, kept, expired, replaced and undone": [
        "tests/test_email_change_workflow.py::test_a_confirmed_change_applies_and_its_undo_window_closes_after_the_policy_days",
        "tests/test_email_change_workflow.py::test_an_unconfirmed_change_expires_after_the_link_lifetime",
        "tests/test_email_change_workflow.py::test_a_newer_request_replaces_the_waiting_change",
        "tests/test_email_change_workflow.py::test_an_undo_inside_the_window_ends_the_change_undone",
        "tests/test_email_change.py::test_a_confirmed_change_applies_ends_other_sessions_and_offers_the_old_address_an_undo",
        "tests/test_email_change.py::test_undo_inside_the_window_restores_the_address_ends_every_session_and_sends_a_reset",
    ],
    "cleanup sweep": [
        "tests/test_cleanup.py::test_a_sweep_goes_on_while_batches_come_back_full_and_reports_each_table",
        "tests/test_cleanup.py::test_the_hourly_schedule_is_made_once_and_its_sweep_empties_what_is_over",
    ],
    "proxy grant: invitation, approval, staff review, birthdays, renewal, end date, revoke": [
        "tests/test_proxy_grant_workflow.py::test_an_accepted_invitation_is_in_force_until_the_subject_revokes_it",
        "tests/test_proxy_grant_workflow.py::test_an_unanswered_invitation_expires_after_the_link_lifetime",
        "tests/test_proxy_grant_workflow.py::test_an_adult_who_declines_ends_the_request_and_the_proxy_is_told",
        "tests/test_proxy_grant_workflow.py::test_staff_review_turns_overdue_at_the_sla_and_expires_at_the_final_deadline",
        "tests/test_proxy_grant_workflow.py::test_staff_denial_tells_the_proxy",
        "tests/test_proxy_grant_workflow.py::test_a_child_s_grant_is_limited_at_the_adolescent_birthday_and_ends_at_majority",
        "tests/test_proxy_grant_workflow.py::test_a_grant_for_an_older_child_is_limited_at_once",
        "tests/test_proxy_grant_workflow.py::test_a_birthday_passed_while_the_request_waited_for_staff_limits_it_at_approval",
        "tests/test_proxy_grant_workflow.py::test_an_adult_s_grant_sends_renewal_reminders_and_lapses_unless_renewed",
        "tests/test_proxy_grant_workflow.py::test_a_grant_ends_on_its_end_date",
        "tests/test_proxy_grant_workflow.py::test_a_revoke_that_won_the_race_with_the_birthday_is_what_the_grant_says",
        "tests/test_proxy_access.py::test_a_parent_s_request_for_a_child_is_approved_by_staff",
        "tests/test_proxy_access.py::test_an_adult_approves_a_relative_s_request_by_e_mailed_link",
        "tests/test_proxy_access.py::test_the_subject_revokes_and_the_proxy_s_next_request_goes_back_to_their_own_view",
        "tests/test_proxy_access.py::test_staff_denial_is_e_mailed_with_its_reason",
    ],
    "app registration: approved, denied, lapsed, failed check, new credentials": [
        "tests/test_app_registration_workflow.py::test_an_approved_app_gets_its_client_and_a_credentials_link_and_no_secret_in_history",
        "tests/test_app_registration_workflow.py::test_a_denial_e_mails_the_reason_and_makes_no_client",
        "tests/test_app_registration_workflow.py::test_an_unreviewed_app_reminds_reviewers_at_the_sla_and_lapses_at_the_final_deadline",
        "tests/test_app_registration_workflow.py::test_a_privacy_page_that_never_answers_reaches_staff_as_a_failed_check",
        "tests/test_app_registration.py::test_an_app_is_submitted_checked_approved_by_staff_and_its_new_secret_authenticates",
        "tests/test_app_registration_workflow.py::test_a_new_credentials_link_is_mailed_once_and_repeats_start_nothing_until_the_quiet_ends",
    ],
    "account notice": [
        "tests/test_outbox.py::test_changing_the_password_e_mails_the_owner_what_changed_and_when",
    ],
    "new-device sign-in notice": [
        "tests/test_account_activity.py::test_a_sign_in_from_a_new_browser_emails_the_owner_and_not_me_ends_that_session",
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep existing histories")
    args = parser.parse_args()
    if not args.keep and HISTORIES.exists():
        shutil.rmtree(HISTORIES)
    HISTORIES.mkdir(parents=True, exist_ok=True)
    nodes, missing = [], []
    for node in (node for group in PATHS.values() for node in group):
        path, _, name = node.partition("::")
        source = ROOT / path
        found = source.exists() and f"def {name}(" in source.read_text()
        (nodes if found else missing).append(node)
    for node in missing:
        print(f"record_histories: no such test any more, skipped: {node}", file=sys.stderr)
    env = {**os.environ, "ACCESO_RECORD_HISTORIES": str(HISTORIES)}
    result = subprocess.run(  # noqa: S603 (this interpreter's pytest on our own test ids)
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *nodes],
        cwd=ROOT,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        print(
            "record_histories: a recording test failed; histories are incomplete", file=sys.stderr
        )
        return result.returncode
    files = sorted(HISTORIES.rglob("*.json"))
    for path in files:
        json.loads(path.read_text())
    kinds = sorted({path.parent.name for path in files})
    print(f"{len(files)} histories of {', '.join(kinds)} in {HISTORIES.relative_to(ROOT)}")
    sys.path.insert(0, str(ROOT))
    from worker import WORKFLOWS

    unrecorded = sorted({w.__name__ for w in WORKFLOWS} - set(kinds))
    if unrecorded:
        print(
            f"record_histories: no history of {', '.join(unrecorded)}: add a test of it to PATHS",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
