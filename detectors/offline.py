"""The whole detection path without Kafka: events in, alerts and risk out.

``run_events(events)`` takes validated event models (``streams.contracts``) in arrival
order and does what a streaming worker does: aggregate per enterprise
(``streams.aggregates.EnterpriseState``), run the event-driven rules (tax, social,
complaints, registry) as events arrive, close local days with the event-time watermark
(``detectors.days.EventClock``: largest event time seen minus the allowed lateness) and feed
the closed days to ``EnterpriseDetectors`` day-major (every enterprise's day D before any
enterprise's day D+1), turn findings into alert messages (``AlertBook``) and keep a risk
score per enterprise (``RiskScore``).  Nothing reads the wall clock: the same input gives
the same alerts, however fast it is replayed.

Used by the evaluation and the tests; the worker calls the same pieces.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

from streams.aggregates import CITY_TZ, EnterpriseState

from detectors.alerts import AlertBook
from detectors.cohorts import Cohorts
from detectors.days import DEFAULT_LATENESS, EventClock
from detectors.enterprise import EnterpriseDetectors
from detectors.findings import Finding
from detectors.risk import RiskScore
from detectors.thresholds import DEFAULT, Thresholds


class OfflineMonitor:
    """Aggregates, detectors, alerts and risk for a whole city, fed one event at a time."""

    def __init__(self, thresholds: Thresholds = DEFAULT, lateness: timedelta = DEFAULT_LATENESS,
                 tz: ZoneInfo = CITY_TZ, refresh_days: int = 7):
        self.thresholds = thresholds
        self.tz = tz
        self.clock = EventClock(lateness, tz)
        self.cohorts = Cohorts(min_members=thresholds.cohort_min_members)
        self.book = AlertBook(refresh_days)
        self.states: dict[str, EnterpriseState] = {}
        self.detectors: dict[str, EnterpriseDetectors] = {}
        self.risks: dict[str, RiskScore] = {}
        self.alerts: list[dict] = []
        self.findings: list[tuple[str, Finding]] = []

    def _enterprise(self, uscc: str) -> tuple[EnterpriseState, EnterpriseDetectors]:
        state = self.states.get(uscc)
        if state is None:
            state = self.states[uscc] = EnterpriseState()
            self.detectors[uscc] = EnterpriseDetectors(uscc, self.thresholds)
        return state, self.detectors[uscc]

    def feed(self, event) -> list[dict]:
        """Process one validated event; returns the alert messages it caused."""
        before = len(self.alerts)
        state, det = self._enterprise(event.uscc)
        at = max(self.clock.now or event.event_time, event.event_time)
        findings: list[Finding] = []
        if event.kind == "registry":
            if state.apply_registry(event):
                findings = det.on_profile(state.profile)
        elif event.kind == "utility":
            state.apply_utility(event, self.tz)
            state.prune()
        elif event.kind == "tax":
            if state.apply_monthly(event):
                findings = det.on_tax(event.period, event.declared_sales_cny, event.tax_paid_cny, self.cohorts)
        elif event.kind == "social":
            if state.apply_monthly(event):
                findings = det.on_social(event.period, event.insured_headcount, event.contributions_cny,
                                         self.cohorts)
        elif event.kind == "complaint":
            day = event.event_time.astimezone(self.tz).date()
            findings = det.on_complaint(day, self.cohorts, complaint_id=event.event_id)
        self._publish(event.uscc, findings, at)
        for day in self.clock.observe(event.event_time):
            self.close_day(day)
        return self.alerts[before:]

    def close_day(self, day) -> None:
        """Close local ``day`` for every enterprise (day-major)."""
        at = self.clock.now
        for uscc in sorted(self.detectors):
            findings = self.detectors[uscc].close_through(day, self.states[uscc].days, self.cohorts)
            self._publish(uscc, findings, at)

    def finish(self) -> None:
        """Close the days the lateness still holds open (end of a finite replay)."""
        if self.clock.now is None:
            return
        last = self.clock.now.astimezone(self.tz).date() - timedelta(days=1)
        while self.clock.closed_through is not None and self.clock.closed_through < last:
            self.clock.closed_through += timedelta(days=1)
            self.close_day(self.clock.closed_through)

    def _publish(self, uscc: str, findings: list[Finding], at: datetime) -> None:
        for finding in findings:
            self.findings.append((uscc, finding))
            risk = self.risks.get(uscc)
            if risk is None:
                risk = self.risks[uscc] = RiskScore(uscc)
            risk.update(finding, at)
            self.alerts += self.book.apply(uscc, finding, self.states[uscc].profile, at)

    def risk_records(self) -> dict[str, dict]:
        """The ``monitor.risk`` record of every enterprise seen, at the last event time."""
        at = self.clock.now
        out = {}
        for uscc in sorted(self.states):
            risk = self.risks.get(uscc) or RiskScore(uscc)
            out[uscc] = risk.to_record(at)
        return out


def run_events(events: Iterable, thresholds: Thresholds = DEFAULT,
               lateness: timedelta = DEFAULT_LATENESS, flush: bool = False) -> tuple[list[dict], dict[str, dict]]:
    """Run validated events (in arrival order) through the detection path.

    Returns ``(alerts, risk)``: every alert message in publication order, and the latest
    ``monitor.risk`` record per enterprise.  ``flush=True`` also closes the days the
    lateness would still hold open at the end of the input."""
    monitor = OfflineMonitor(thresholds, lateness)
    for event in events:
        monitor.feed(event)
    if flush:
        monitor.finish()
    return monitor.alerts, monitor.risk_records()
