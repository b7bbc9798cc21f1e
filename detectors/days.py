"""When a local day is closed: the event-time watermark policy.

The stream's watermark is how far the meter readings have covered time, minus an allowed
lateness (9 days by default, ``DEFAULT_LATENESS``).  A local day (Asia/Shanghai) is
*closed* once the watermark has passed its end: no event that can still arrive in time may change it, so its totals can be fed to
the detectors, exactly once, in day order.  Late events beyond the lateness still reach
the aggregates (and storage), but a closed day is never re-judged.

The detection driver (``detectors.partition.PartitionDriver``) uses it like this:

    clock = EventClock()
    for event in stream:
        ...aggregate...
        for day in clock.observe(event.event_time):     # days closed by this event
            for uscc in enterprises:                      # day-major: every peer first
                findings = detectors[uscc].close_through(day, states[uscc].days, cohorts)

>>> from datetime import datetime, timezone, timedelta
>>> cst = timezone(timedelta(hours=8))
>>> clock = EventClock(lateness=timedelta(days=2))
>>> clock.observe(datetime(2024, 5, 10, 9, 0, tzinfo=cst))        # the first event closes nothing
[]
>>> clock.closed_through
datetime.date(2024, 5, 7)
>>> [d.isoformat() for d in clock.observe(datetime(2024, 5, 12, 1, 0, tzinfo=cst))]
['2024-05-08', '2024-05-09']
>>> clock.observe(datetime(2024, 5, 1, tzinfo=cst))                # late: the clock never goes back
[]
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

CITY_TZ = ZoneInfo("Asia/Shanghai")
# How long after a day the meter data of that day may still arrive and count: weekly
# uploads (a week of readings, sent the day after the week) bring data 8 days old, so a
# day is judged 9 days after it ends.  ``ENTWATCH_UTILITY_LATENESS_DAYS`` sets it per
# deployment (docs/STREAMING.md: what it costs in alert delay, and what arrives later).
DEFAULT_LATENESS = timedelta(days=9)


def closed_through(watermark_time: datetime, lateness: timedelta = DEFAULT_LATENESS,
                   tz: ZoneInfo = CITY_TZ) -> date:
    """The last local day that is closed when the largest event time seen is
    ``watermark_time``."""
    if watermark_time.tzinfo is None:
        raise ValueError("naive datetime: event times must be timezone-aware")
    return (watermark_time - lateness).astimezone(tz).date() - timedelta(days=1)


class EventClock:
    """The stream's event-time watermark, and the days it closes as it moves."""

    def __init__(self, lateness: timedelta = DEFAULT_LATENESS, tz: ZoneInfo | str = CITY_TZ):
        self.lateness = lateness
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.now: datetime | None = None            # the largest event_time seen
        self.closed_through: date | None = None     # the last closed local day

    def observe(self, event_time: datetime) -> list[date]:
        """Advance with one event; returns the local days this closes, in order (the very
        first event only starts the clock)."""
        if self.now is not None and event_time <= self.now:
            return []
        self.now = event_time
        through = closed_through(event_time, self.lateness, self.tz)
        if self.closed_through is None:
            self.closed_through = through
            return []
        days = []
        while self.closed_through < through:
            self.closed_through += timedelta(days=1)
            days.append(self.closed_through)
        return days

    @property
    def watermark(self) -> datetime | None:
        """The event time up to which the stream is complete (largest seen minus lateness)."""
        return None if self.now is None else self.now - self.lateness

    def __getstate__(self):
        return (self.lateness, str(self.tz), self.now, self.closed_through)

    def __setstate__(self, state):
        self.lateness, tz, self.now, self.closed_through = state
        self.tz = ZoneInfo(tz)
