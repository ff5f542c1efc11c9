"""What the help desk does to an applicant's account and an administrator to a staff member's:
each change is one conditional statement, so eight presses of the same button (two agents, a
double click, a retried request) change the account once, write one audit line and tell the
owner once; and two administrators disabling each other cannot leave nobody to administer."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session, aliased

from portal import two_factor
from portal.audit import add_event
from portal.models import AccountStatus, LoginThrottle, StaffRole, StaffUser, User, UserSession
from processes.account_notice.service import notify_account_owner, notify_staff
from processes.account_notice.vocabulary import NoticeKind
from processes.logout_delivery.service import sign_out_everywhere


class Changed(StrEnum):
    """What an administrator's change did."""

    DONE = "done"
    ALREADY = "already"
    LAST_ADMIN = "last_admin"
    NOT_ACCEPTED = "not_accepted"


def _done(session: Session, changed: bool) -> bool:
    """Commits a change that happened; rolls back one that another press already made."""
    if changed:
        session.commit()
    else:
        session.rollback()
    return changed


def _unthrottle(session: Session, portal: str, username: str) -> bool:
    return bool(
        session.execute(
            delete(LoginThrottle)
            .where(LoginThrottle.portal == portal)
            .where(LoginThrottle.username_key == username.lower())
        ).rowcount
    )


# --- the help desk, on applicants' accounts ---------------------------------------------------


def unlock_account(session: Session, user: User, actor: str, note: str) -> bool:
    """Clears the sign-in lock with the agent's note; False when there was none to clear."""
    if not _unthrottle(session, user.portal, user.username):
        return _done(session, False)
    add_event(
        session,
        actor=actor,
        action="account.unlocked_by_helpdesk",
        portal=user.portal,
        user_id=user.id,
        note=note,
    )
    notify_account_owner(session, user, NoticeKind.UNLOCKED_BY_HELPDESK)
    return _done(session, True)


def reset_second_factor(session: Session, user: User, actor: str, note: str) -> bool:
    """Removes the factor for someone who lost it; every session and app sign-in ends, since
    whoever held the factor may hold a session too. False when there was no factor."""
    if not two_factor.remove(session, user):
        return _done(session, False)
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    sign_out_everywhere(session, user.id)
    add_event(
        session,
        actor=actor,
        action="second_factor.reset_by_helpdesk",
        portal=user.portal,
        user_id=user.id,
        note=note,
    )
    notify_account_owner(session, user, NoticeKind.SECOND_FACTOR_REMOVED, by_helpdesk="1")
    return _done(session, True)


def set_account_status(
    session: Session, user: User, to: AccountStatus, actor: str, note: str
) -> bool:
    """Disables an active account (its sessions and app sign-ins end at once) or enables a
    disabled one; False when it already was `to` (or is in neither state)."""
    source = AccountStatus.ACTIVE if to == AccountStatus.DISABLED else AccountStatus.DISABLED
    changed = session.execute(
        update(User).where(User.id == user.id, User.status == source).values(status=to)
    ).rowcount
    if not changed:
        return _done(session, False)
    if to == AccountStatus.DISABLED:
        session.execute(delete(UserSession).where(UserSession.user_id == user.id))
        sign_out_everywhere(session, user.id)
    add_event(
        session,
        actor=actor,
        action=(
            "account.disabled_by_helpdesk"
            if to == AccountStatus.DISABLED
            else "account.enabled_by_helpdesk"
        ),
        portal=user.portal,
        user_id=user.id,
        note=note,
    )
    _done(session, True)
    session.refresh(user)
    return True


# --- administrators, on staff accounts ---------------------------------------------------------


def _is_admin(staff: type[StaffUser]) -> ColumnElement[bool]:
    return (literal(",") + staff.roles + literal(",")).like(f"%,{StaffRole.ADMIN},%")


def _another_active_admin(staff_id: int) -> ColumnElement[bool]:
    """Whether an active administrator other than `staff_id` remains, read by the UPDATE that
    needs it (one statement, so SQLite's single writer settles a race) after the active
    administrators' rows are locked (so PostgreSQL's concurrent updates wait their turn)."""
    other = aliased(StaffUser)
    return (
        select(func.count())
        .select_from(other)
        .where(other.active.is_(True), other.id != staff_id, _is_admin(other))
        .scalar_subquery()
        > 0
    )


def _lock_active_admins(session: Session) -> None:
    session.execute(
        select(StaffUser.id)
        .where(StaffUser.active.is_(True), _is_admin(StaffUser))
        .with_for_update()
    )


def disable_staff(session: Session, staff: StaffUser, actor: str) -> Changed:
    """Signs them out everywhere; never the last active administrator."""
    _lock_active_admins(session)
    disabled = session.execute(
        update(StaffUser)
        .where(StaffUser.id == staff.id, StaffUser.active.is_(True))
        .where(or_(~_is_admin(StaffUser), _another_active_admin(staff.id)))
        .values(active=False)
    ).rowcount
    if not disabled:
        session.rollback()
        session.refresh(staff)
        return Changed.ALREADY if not staff.active else Changed.LAST_ADMIN
    session.execute(delete(UserSession).where(UserSession.staff_id == staff.id))
    add_event(session, actor=actor, action="staff.disabled", username=staff.username)
    session.commit()
    session.refresh(staff)
    return Changed.DONE


def enable_staff(session: Session, staff: StaffUser, actor: str) -> Changed:
    if not staff.password_hash:
        return Changed.NOT_ACCEPTED
    enabled = session.execute(
        update(StaffUser)
        .where(StaffUser.id == staff.id, StaffUser.active.is_(False))
        .values(active=True)
    ).rowcount
    if not enabled:
        session.rollback()
        return Changed.ALREADY
    add_event(session, actor=actor, action="staff.enabled", username=staff.username)
    session.commit()
    session.refresh(staff)
    return Changed.DONE


def change_access(
    session: Session, staff: StaffUser, actor: str, roles: list[str], portals: list[str]
) -> Changed:
    """New roles and portals, audited with what they were; taking the administrator role from
    the last active administrator is refused."""
    before = {"roles": staff.roles, "portals": staff.portals}
    new_roles = ",".join(r for r in StaffRole if r in roles)
    keeps_admin = StaffRole.ADMIN in roles
    _lock_active_admins(session)
    changed = session.execute(
        update(StaffUser)
        .where(StaffUser.id == staff.id)
        .where(
            or_(
                literal(keeps_admin),
                StaffUser.active.is_(False),
                ~_is_admin(StaffUser),
                _another_active_admin(staff.id),
            )
        )
        .values(roles=new_roles, portals=",".join(portals))
    ).rowcount
    if not changed:
        session.rollback()
        return Changed.LAST_ADMIN
    add_event(
        session,
        actor=actor,
        action="staff.access_changed",
        username=staff.username,
        before=before,
        after={"roles": new_roles, "portals": ",".join(portals)},
    )
    session.commit()
    session.refresh(staff)
    return Changed.DONE


def reset_staff_factor(session: Session, staff: StaffUser, actor: str) -> bool:
    """They enrol again at their next sign-in; their sessions end now."""
    if not two_factor.remove(session, staff):
        return _done(session, False)
    session.execute(delete(UserSession).where(UserSession.staff_id == staff.id))
    add_event(session, actor=actor, action="staff.second_factor.reset", username=staff.username)
    notify_staff(session, staff, NoticeKind.SECOND_FACTOR_REMOVED)
    return _done(session, True)


def unlock_staff(session: Session, staff: StaffUser, actor: str) -> bool:
    if not _unthrottle(session, "staff", staff.username):
        return _done(session, False)
    add_event(session, actor=actor, action="staff.unlocked", username=staff.username)
    return _done(session, True)
