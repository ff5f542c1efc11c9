"""The dates a grant's timers wait for, computed from the start's ISO dates and the workflow's
clock, so a replay computes the same instants."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime


def on_or_after(day: date) -> datetime:
    """Midnight UTC at the start of `day`: the instant a birthday or an end date is reached."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def add_years(day: date, years: int) -> date:
    """A birthday `years` later; 29 February falls on 1 March in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later, or the month's last day when it has no such day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return moment.replace(year=year, month=month, day=min(moment.day, last))


def birthday(birth_date: str, age: int) -> datetime | None:
    """When someone born on `birth_date` (ISO) turns `age`; None without a birth date."""
    if not birth_date:
        return None
    return on_or_after(add_years(date.fromisoformat(birth_date), age))


def age_on(birth_date: str, today: date) -> int:
    born = date.fromisoformat(birth_date)
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
