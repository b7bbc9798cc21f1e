"""The official Chinese calendar, as factories in Dongguan live it.

Public holidays, adjusted working days (weekend days made working to bridge a holiday)
and holiday names come from the ``chinese_calendar`` library (the State Council's
yearly notices).  On top of that, the *Spring Festival factory shutdown*: most factories
stop from a few days before the official holiday until two to four weeks after it, while
migrant workers travel home and back.  The window is derived from the library's Spring
Festival holiday dates for that year, never hard-coded.

Outside the years the library knows, every day falls back to the plain weekday rule
(Monday–Friday work) and no Spring Festival window is known.

>>> from datetime import date
>>> day_type(date(2024, 2, 12)), holiday_name(date(2024, 2, 12))
('spring_festival', 'Spring Festival')
>>> [d.isoformat() for d in spring_festival_window(2024)]
['2024-02-03', '2024-03-09']
>>> day_type(date(2024, 10, 1)), day_type(date(2024, 9, 29)), day_type(date(2024, 10, 9))
('holiday', 'adjusted_workday', 'workday')
>>> is_workday(date(2024, 9, 29)), is_holiday(date(2024, 10, 5))
(True, True)
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar as _cc

SPRING_FESTIVAL = "Spring Festival"
SHUTDOWN_BEFORE_DAYS = 7   # factories wind down about a week before the official holiday
SHUTDOWN_AFTER_DAYS = 21   # ... and take up to three weeks after it to restart
# Each factory picks its own dates: some stop up to three weeks before the holiday, some
# reopen up to five weeks after it.  In this wider season a stop of the factory's own is
# presumed seasonal unless it outlasts the season (``in_spring_festival_season``).
SEASON_BEFORE_DAYS = 21
SEASON_AFTER_DAYS = 35

DAY_TYPES = ("workday", "adjusted_workday", "weekend", "holiday", "spring_festival")


def _known(day: date) -> bool:
    return _FIRST_YEAR <= day.year <= _LAST_YEAR


_FIRST_YEAR = min(_cc.holidays).year
_LAST_YEAR = max(_cc.holidays).year


def is_workday(day: date) -> bool:
    """True on an official working day (including an adjusted working weekend day)."""
    if not _known(day):
        return day.weekday() < 5
    return _cc.is_workday(day)


def is_holiday(day: date) -> bool:
    """True on an official rest day (weekend or public holiday)."""
    return not is_workday(day)


def holiday_name(day: date) -> str | None:
    """The English name of the public holiday ``day`` belongs to (also set on the adjusted
    working days that bridge it), or None."""
    if not _known(day):
        return None
    return _cc.get_holiday_detail(day)[1]


def is_adjusted_workday(day: date) -> bool:
    """True on a weekend day that is an official working day (调休上班)."""
    return day.weekday() >= 5 and is_workday(day)


def is_public_holiday(day: date) -> bool:
    """True on a rest day that belongs to a public holiday (not an ordinary weekend)."""
    return is_holiday(day) and holiday_name(day) is not None


@lru_cache(maxsize=64)
def spring_festival_window(year: int, before: int = SHUTDOWN_BEFORE_DAYS,
                           after: int = SHUTDOWN_AFTER_DAYS) -> tuple[date, date] | None:
    """First and last day of the factory shutdown around the Spring Festival of ``year``:
    from ``before`` days before the official holiday to ``after`` days after it.  None for a
    year the calendar library does not know."""
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        return None
    days = sorted(d for d in _cc.get_holidays(date(year, 1, 1), date(year, 3, 31))
                  if _cc.get_holiday_detail(d)[1] == SPRING_FESTIVAL)
    if not days:
        return None
    return days[0] - timedelta(days=before), days[-1] + timedelta(days=after)


def festival_day(day: date) -> date | None:
    """The first day of the official Spring Festival holiday that ``day`` is nearest to
    (that of ``day``'s year from January to June, of the next year from July); None for a
    year the calendar library does not know.

    >>> festival_day(date(2024, 1, 5)), festival_day(date(2024, 11, 30))
    (datetime.date(2024, 2, 10), datetime.date(2025, 1, 28))
    """
    window = spring_festival_window(day.year if day.month <= 6 else day.year + 1, 0, 0)
    return window[0] if window else None


def in_spring_festival(day: date) -> bool:
    """True inside the Spring Festival factory-shutdown window of ``day``'s year."""
    window = spring_festival_window(day.year)
    return window is not None and window[0] <= day <= window[1]


@lru_cache(maxsize=4096)
def in_spring_festival_season(day: date) -> bool:
    """True in the season around the Spring Festival in which factories stop and restart
    each on its own dates: from ``SEASON_BEFORE_DAYS`` before the official holiday to
    ``SEASON_AFTER_DAYS`` after it (the shutdown window lies inside it).  A prior, not a
    verdict: a stop that begins in the season is taken for the factory's seasonal stop, and
    judged as a drop only once the season is over and it goes on (``UtilitySeries``).

    >>> in_spring_festival_season(date(2024, 1, 22)), in_spring_festival_season(date(2024, 1, 15))
    (True, False)
    >>> in_spring_festival_season(date(2024, 3, 20)), in_spring_festival_season(date(2024, 3, 25))
    (True, False)
    """
    for year in (day.year, day.year + 1):
        window = spring_festival_window(year, SEASON_BEFORE_DAYS, SEASON_AFTER_DAYS)
        if window is not None and window[0] <= day <= window[1]:
            return True
    return False


@lru_cache(maxsize=4096)
def day_type(day: date) -> str:
    """What kind of day this is for a factory, one of ``DAY_TYPES``.

    ``spring_festival`` wins over everything (the shutdown covers working days too), then
    ``holiday`` (a public-holiday rest day), ``adjusted_workday``, ``workday``, ``weekend``.
    """
    if in_spring_festival(day):
        return "spring_festival"
    if is_public_holiday(day):
        return "holiday"
    if is_adjusted_workday(day):
        return "adjusted_workday"
    return "workday" if is_workday(day) else "weekend"


def is_normal_day(day: date) -> bool:
    """True on an ordinary working day or weekend: what a baseline may learn from."""
    return day_type(day) in ("workday", "weekend")
