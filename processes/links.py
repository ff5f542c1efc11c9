"""An e-mailed link's page and its button work alike in every process, so they are written once:
the page reads the link without changing anything, and only its POST claims the link together
with its process's row, in conditional updates that let exactly one of two clicks win."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from portal.models import EmailToken, utcnow
from portal.tokens import claim_link, token_hash
from processes.transitions import claim_row

Row = TypeVar("Row")


class LinkState(StrEnum):
    """What a link's page may say, and what pressing its button did."""

    USABLE = "usable"
    DONE_NOW = "done_now"
    USED = "used"
    EXPIRED = "expired"
    WRONG_PERSON = "wrong_person"
    UNKNOWN = "unknown"


@dataclass
class Link(Generic[Row]):
    """A link as its page sees it: its state, its token row and its process's row."""

    state: LinkState
    token: EmailToken | None = None
    row: Row | None = None

    def done_now(self) -> Link[Row]:
        return Link(LinkState.DONE_NOW, self.token, self.row)


TOKEN_BY_HASH = select(EmailToken).where(EmailToken.token_hash == bindparam("token_hash"))
"""Built once per process, as `_process_row`'s: every link's page and button read through here."""


@lru_cache(maxsize=64)
def _process_row(model: type) -> Select:
    return select(model).where(model.workflow_id == bindparam("workflow_id"))


def read_link(
    session: Session,
    portal: str | None,
    raw: str,
    purpose: str,
    model: type[Row],
    waiting: Callable[[Row], bool] = lambda row: True,
) -> Link[Row]:
    """What a link's page may say, read without changing anything: unknown (another portal's or
    another purpose's link, or one whose process row is gone), used, expired (or its process no
    longer `waiting` for it) or usable. A link whose page is under no portal is read with
    `portal` None."""
    token = session.scalar(TOKEN_BY_HASH, {"token_hash": token_hash(raw)})
    if token is None or portal not in (None, token.portal) or token.purpose != purpose:
        return Link(LinkState.UNKNOWN)
    row = session.scalar(_process_row(model), {"workflow_id": token.workflow_id})
    if row is None:
        return Link(LinkState.UNKNOWN)
    if token.used_at is not None:
        return Link(LinkState.USED, token, row)
    if not token.usable(utcnow()) or not waiting(row):
        return Link(LinkState.EXPIRED, token, row)
    return Link(LinkState.USABLE, token, row)


def claim(session: Session, link: Link, *where: Any, **values: Any) -> bool:
    """The link and its process's row, claimed together: the row changes to `values` only while
    `where` still holds of it, so a click racing the process (or another click) loses cleanly;
    the caller rolls back on False."""
    return claim_link(session, link.token.id) and claim_row(
        session, type(link.row), link.row.id, *where, **values
    )
