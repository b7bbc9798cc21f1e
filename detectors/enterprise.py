"""All eight rule families for one enterprise: ``EnterpriseDetectors``.

One object per enterprise (picklable, a few KB), fed by the worker with closed days,
monthly returns, complaints and the stream's event-time watermark.  Every method returns
the findings to publish (``detectors.findings.Finding``): an ``open`` finding when a
condition starts or changes, a ``resolved`` one when it clears.

Methods that compare with peers take the worker's shared ``Cohorts``; without it the
enterprise is judged on its own history only.

>>> from datetime import date, timedelta
>>> det = EnterpriseDetectors("914403001922038216")
>>> det.on_profile({"name": "Demo Co", "industry": "C39", "town": "Chang'an", "status": "active",
...                 "established_on": date(2015, 1, 1), "key_enterprise": False})
[]
>>> found = []
>>> for i in range(60):                       # April-May 2024: normal, then a stop from 27 May
...     day = date(2024, 4, 8) + timedelta(days=i)
...     found += det.on_day("electricity", day, 2000.0 if i < 49 else 30.0)
>>> [(f.rule, f.status, f.severity, f.window_start.isoformat()) for f in found][:1]
[('utility_drop', 'open', 'warning', '2024-05-27')]
>>> print(found[0].explanation["en"])
Electricity use averaged 30.0 kWh a day on 3 working days from 2024-05-27 to 2024-05-29, 2% of its own recent normal level of 2,000 kWh (below 30% suggests a halt).
"""

from __future__ import annotations

import hashlib
import math
from datetime import date, timedelta
from statistics import median as _median
from typing import Mapping

from detectors import explain
from detectors.calendar import in_spring_festival
from detectors.baseline import robust_scale
from detectors.cohorts import Cohorts, CohortView
from detectors.findings import (
    Condition, Finding, RULES, evidence, months_before, pack_finding, period_add, period_end, period_of, period_start,
    withdrawn,
    unpack_finding,
)
from detectors.poisson import PoissonBurst
from detectors.thresholds import DEFAULT, Thresholds
from detectors.utility import UtilitySeries

UTILITY_ORDER = ("electricity", "water", "gas")
TAX_MONTHS_KEPT = 16
SOCIAL_MONTHS_KEPT = 6
# sales per kWh differs by orders of magnitude between industries: compare within one only
SAME_INDUSTRY = ("industry_town", "industry")


def _as_date(value) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _spring_festival_month(period: str, min_days: int = 7) -> bool:
    start, end = period_start(period), period_end(period)
    days = (end - start).days + 1
    return sum(in_spring_festival(start + timedelta(days=i)) for i in range(days)) >= min_days


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class EnterpriseDetectors:
    """The rule families of SPEC §4 for one enterprise (see docs/DETECTION.md)."""

    def __init__(self, uscc: str, thresholds: Thresholds = DEFAULT):
        self.uscc = uscc
        self.t = thresholds
        self.profile: dict | None = None
        self.series: dict[str, UtilitySeries] = {}
        self.tax: dict[str, tuple[float, float]] = {}
        self.social: dict[str, tuple[int, float]] = {}
        self.complaints: dict[date, int] = {}
        self.complaint_ids: dict[int, date] = {}
        self.observed_since: date | None = None   # earliest day this enterprise's data covers
        self.today: date | None = None            # the last watermark day seen
        self.last_active: date | None = None      # last day with consumption
        self.last_sales: str | None = None        # last period with declared sales
        self.last_staff: str | None = None        # last period with insured staff
        self.mismatch_period: str | None = None
        self.mismatch_run: list[str] = []         # consecutive months out of line with peers
        self.sales_ref: float | None = None       # the reference a sales drop is measured against
        self.cohort_month: str | None = None
        self.conditions: dict[str, Condition] = {}

    # -- inputs ---------------------------------------------------------------------------
    def on_profile(self, profile: dict) -> list[Finding]:
        """The latest registry profile (name, industry, town, status, established_on,
        key_enterprise)."""
        self.profile = {**profile, "established_on": _as_date(profile.get("established_on"))}
        out: list[Finding] = []
        if self.tax:
            out += self._zero_streak()
        if self.profile.get("status") != "active" and self._is_open("dormant_entity"):
            out += self._cond("dormant_entity").report(None)
        return out

    def on_day(self, utility: str, day: date, amount: float | None,
               cohorts: Cohorts | None = None) -> list[Finding]:
        """One closed local day of one utility (``amount`` None = no data that day).
        Called once per day, in day order per utility."""
        cohorts = cohorts if cohorts is not None else Cohorts()
        series = self.series.get(utility)
        if series is None:
            series = self.series[utility] = UtilitySeries(utility, self.t)
        if series.last_day is not None and day <= series.last_day:
            return []
        self._seen(day)
        series.observe(day, amount, self.profile, cohorts, self.uscc, self.t)
        if amount is not None and amount > self.t.active_day_amount:
            self.last_active = day if self.last_active is None else max(self.last_active, day)
        out = self._utility_drop() + self._utility_spike()
        if utility == "electricity" and day == period_end(period_of(day)) and period_of(day) in self.tax:
            out += self._mismatch(period_of(day), cohorts)
        return out

    def on_tax(self, period: str, declared_sales: float, tax_paid: float,
               cohorts: Cohorts | None = None) -> list[Finding]:
        """A monthly tax return; the same period again replaces (corrects) it."""
        cohorts = cohorts if cohorts is not None else Cohorts()
        corrected = period in self.tax
        self.last_sales = self._file_month(self.tax, period, (float(declared_sales), float(tax_paid)),
                                           TAX_MONTHS_KEPT, self.last_sales)
        findings = self._zero_streak() + self._sales_drop(cohorts) + self._mismatch(period, cohorts)
        return _withdraw_rejudged(findings, period) if corrected else findings

    def on_social(self, period: str, headcount: int, contributions: float,
                  cohorts: Cohorts | None = None) -> list[Finding]:
        """Monthly social insurance: insured headcount and contributions."""
        cohorts = cohorts if cohorts is not None else Cohorts()
        corrected = period in self.social
        self.last_staff = self._file_month(self.social, period, (int(headcount), float(contributions)),
                                           SOCIAL_MONTHS_KEPT, self.last_staff)
        findings = self._headcount(cohorts)
        return _withdraw_rejudged(findings, period) if corrected else findings

    def _file_month(self, book: dict, period: str, value: tuple, kept: int, last: str | None) -> str | None:
        """Store a monthly value (a correction replaces it), keep the newest ``kept`` months,
        and return the latest month whose first value is positive (``last`` if it fell out)."""
        book[period] = value
        for old in sorted(book)[:-kept]:
            del book[old]
        self._seen(period_start(period))
        positive = [p for p, v in book.items() if v[0] > 0]
        older = last if last and last < min(book) else None
        return max(positive) if positive else older

    def on_complaint(self, day: date, cohorts: Cohorts | None = None,
                     complaint_id: str | None = None) -> list[Finding]:
        """One complaint received on local ``day`` (a repeated ``complaint_id`` counts once)."""
        cohorts = cohorts if cohorts is not None else Cohorts()
        if complaint_id is not None:
            digest = _digest(complaint_id)
            if digest in self.complaint_ids:
                return []
            self.complaint_ids[digest] = day
        self.complaints[day] = self.complaints.get(day, 0) + 1
        self._seen(day)
        newest = max(self.complaints)
        horizon = newest - timedelta(days=self.t.complaint_window_days + self.t.complaint_history_days)
        for old in [d for d in self.complaints if d <= horizon]:
            del self.complaints[old]
        for old in [k for k, d in self.complaint_ids.items() if d <= horizon]:
            del self.complaint_ids[old]
        return self._complaint_burst(max(day, self.today or day), cohorts)

    def on_watermark(self, day: date, cohorts: Cohorts | None = None) -> list[Finding]:
        """Event time moved on for the whole stream: every day up to ``day`` is closed."""
        cohorts = cohorts if cohorts is not None else Cohorts()
        if self.today is not None and day <= self.today:
            return []
        self.today = day
        self._seen(day)
        if period_of(day) != self.cohort_month:
            self.cohort_month = period_of(day)
            cohorts.observe(self.profile, "complaints_90d", self.uscc, self._complaints_between(
                day - timedelta(days=self.t.complaint_history_days - 1), day))
        out: list[Finding] = []
        if self._is_open("complaint_burst"):
            out += self._complaint_burst(max(day, max(self.complaints, default=day)), cohorts)
        return out + self._dormant(day) + self._review_month(day, cohorts)

    def _review_month(self, day: date, cohorts: Cohorts) -> list[Finding]:
        """The day after a month's returns are all filed (``Thresholds.tax_filed_by_day``,
        ``social_filed_by_day`` of the next month): judge the month's peer-dependent rules
        again, against every peer that filed it.  A return filed early was judged against the
        peers that had filed before it; the verdict of the whole cohort replaces it (an alert
        that the peers explain is withdrawn, one they no longer explain opens), so the final
        alerts do not depend on who filed first."""
        if day.day != self.t.tax_filed_by_day + 1 and day.day != self.t.social_filed_by_day + 1:
            return []
        period = period_add(period_of(day), -1)
        out: list[Finding] = []
        if day.day == self.t.tax_filed_by_day + 1 and self.tax and max(self.tax) == period:
            out += _withdraw_rejudged(self._sales_drop(cohorts, review=period), period)
        if day.day == self.t.social_filed_by_day + 1 and self.social and max(self.social) == period:
            out += _withdraw_rejudged(self._headcount(cohorts, review=True), period)
        return out

    def close_through(self, day: date, daily: Mapping, cohorts: Cohorts | None = None,
                      reach: Mapping[str, date] | None = None,
                      overdue: Mapping[str, date] | None = None) -> list[Finding]:
        """Close every day up to ``day``: feed ``on_day`` for each utility's days not yet
        closed (from its first day with data), then ``on_watermark(day)``.

        ``daily`` maps ``(utility, day)`` to the day's total: a number or anything with an
        ``amount`` (``detectors.record.EnterpriseState.days``).  Call it for every
        enterprise with the same ``day``, one day at a time (day-major), so peers' days are
        complete before they are compared.

        ``reach`` (per utility, the last day reached by the enterprise's own readings
        recorded by the close, ``EnterpriseState.reach``): a utility's days past its reach
        wait for its readings (a meter that uploads its month after the month), and are
        closed as days without data only ``Thresholds.meter_wait_days`` after they ended.
        ``overdue`` (the same, recorded by the end of ``day``): a series that still waits
        for days before ``day`` takes only those, which have had the whole lateness to
        arrive, so when it catches up depends on when its upload was recorded, not on when
        it was consumed; caught up, it judges ``day`` itself with ``reach``, as a series that
        is up to date does.  Without ``reach`` every day up to ``day`` is closed now.
        Sets ``judged_days_through``: the last day every utility has been judged through."""
        cohorts = cohorts if cohorts is not None else Cohorts()
        out: list[Finding] = []
        first_days = getattr(daily, "first_days", None)  # a DayBook knows them without a scan
        if first_days is not None:
            firsts = first_days()
        else:
            firsts = {}
            for utility, d in daily:
                if utility not in firsts or d < firsts[utility]:
                    firsts[utility] = d
        judged = day
        for utility in sorted(set(firsts) | set(self.series), key=_utility_rank):
            series = self.series.get(utility)
            cursor = series.last_day + timedelta(days=1) if series and series.last_day else firsts.get(utility)
            last = day
            if reach is not None:
                reached = reach.get(utility, date.min)
                if overdue is not None and cursor is not None and cursor < day:
                    reached = overdue.get(utility, date.min)  # behind: what is surely in by now
                    if reached >= day - _ONE_DAY:
                        reached = max(reached, reach.get(utility, date.min))
                if reached < day:  # waits for its readings, up to meter_wait_days
                    last = max(reached, day - timedelta(days=self.t.meter_wait_days))
            if cursor is not None:
                through = last if cursor <= last else cursor - _ONE_DAY
                if through < judged:
                    judged = through
            while cursor is not None and cursor <= last:
                total = daily.get((utility, cursor))
                amount = None if total is None else float(getattr(total, "amount", total))
                out += self.on_day(utility, cursor, amount, cohorts)
                cursor += _ONE_DAY
        self.judged_days_through = judged
        return out + self.on_watermark(day, cohorts)

    # -- helpers ----------------------------------------------------------------------------
    def _seen(self, day: date) -> None:
        if self.observed_since is None or day < self.observed_since:
            self.observed_since = day

    def _cond(self, rule: str) -> Condition:
        cond = self.conditions.get(rule)
        if cond is None:
            cond = self.conditions[rule] = Condition(rule)
        return cond

    def _is_open(self, rule: str) -> bool:
        cond = self.conditions.get(rule)
        return cond is not None and cond.is_open

    def _age_ok(self, at: date, months: int) -> bool:
        established = (self.profile or {}).get("established_on")
        return established is not None and established <= months_before(at, months)

    def _complaints_between(self, first: date, last: date) -> int:
        return sum(n for d, n in self.complaints.items() if first <= d <= last)

    def open_rules(self) -> list[str]:
        """The rules whose condition is open now."""
        return [r for r in RULES if self._is_open(r)]

    # -- utility_drop / utility_spike -------------------------------------------------------
    def _utility_drop(self) -> list[Finding]:
        dropping = [s for s in self._ordered_series() if s.drop_start is not None]
        finding = None
        if dropping:
            t = self.t
            items, ev = [], []
            for s in dropping:
                observed, expected = s.drop_summary()
                items.append((s.utility, observed, expected, s.drop_start, s.drop_last, s.low_days))
                ev.append(evidence("utility", f"{s.utility}_{s.unit}_per_day",
                                   f"{s.drop_start}/{s.drop_last}", observed, expected))
            observed, expected = dropping[0].drop_summary()
            critical = any(s.near_zero >= t.drop_critical_days for s in dropping)
            finding = Finding(
                "utility_drop", "critical" if critical else "warning", "open",
                min(s.drop_start for s in dropping), max(s.drop_last for s in dropping),
                observed, expected, ev, explain.utility_drop(items, t.drop_ratio),
                _clamp(1 - observed / expected) if expected else 1.0)
        return self._cond("utility_drop").report(finding)

    def _utility_spike(self) -> list[Finding]:
        spiking = [s for s in self._ordered_series() if s.spike_start is not None]
        finding = None
        if spiking:
            items, ev = [], []
            for s in spiking:
                observed, expected = s.spike_summary()
                items.append((s.utility, observed, expected, s.spike_start, s.spike_last))
                ev.append(evidence("utility", f"{s.utility}_{s.unit}_per_day",
                                   f"{s.spike_start}/{s.spike_last}", observed, expected))
            observed, expected = spiking[0].spike_summary()
            ratio = observed / expected if expected else math.inf
            finding = Finding(
                "utility_spike", "critical" if ratio >= 3 * self.t.spike_ratio else "warning", "open",
                min(s.spike_start for s in spiking), max(s.spike_last for s in spiking),
                observed, expected, ev, explain.utility_spike(items, self.t.spike_ratio),
                _clamp(1 - self.t.spike_ratio / ratio) if ratio > 0 else 0.0)
        return self._cond("utility_spike").report(finding)

    def _ordered_series(self) -> list[UtilitySeries]:
        return [self.series[u] for u in sorted(self.series, key=_utility_rank)]

    # -- dormant_entity -----------------------------------------------------------------------
    def _dormant(self, day: date) -> list[Finding]:
        t, p = self.t, self.profile or {}
        finding = None
        if p.get("status") == "active" and self._age_ok(day, t.dormant_min_age_months):
            horizon = months_before(day, t.dormant_months)
            activity = [d for d in (self.last_active,
                                    period_end(self.last_sales) if self.last_sales else None,
                                    period_end(self.last_staff) if self.last_staff else None) if d]
            last = max(activity, default=None)
            if self.observed_since <= horizon and (last is None or last < horizon):
                start = max(d for d in (p.get("established_on"), self.observed_since,
                                        last + timedelta(days=1) if last else None) if d)
                ev = [evidence("utility", "last_day_with_consumption", f"{start}/{day}",
                               self.last_active.isoformat() if self.last_active else None, None),
                      evidence("tax", "last_period_with_sales", f"{start}/{day}", self.last_sales, None),
                      evidence("social", "last_period_with_insured_staff", f"{start}/{day}", self.last_staff, None)]
                inactive = float((day - start).days + 1)
                finding = Finding("dormant_entity", "warning", "open", start, day, inactive, 0.0, ev,
                                  explain.dormant_entity(start, day, t.dormant_months),
                                  _clamp(inactive / 365.0))
        return self._cond("dormant_entity").report(finding)

    # -- tax_zero_streak ----------------------------------------------------------------------
    def _zero_streak(self) -> list[Finding]:
        t = self.t
        latest = max(self.tax)
        months, p = 0, latest
        while p in self.tax and self.tax[p] == (0.0, 0.0):
            months, p = months + 1, period_add(p, -1)
        finding = None
        if months >= t.zero_streak_months and self._age_ok(period_end(latest), t.zero_min_age_months):
            first = period_add(latest, 1 - months)
            streak = [period_add(first, i) for i in range(months)]
            metered = [m for m in streak if self._metered(m)]
            operating = [m for m in metered if self._operating(m)]
            is_operating = bool(operating) and 2 * len(operating) >= len(metered)
            ev = [evidence("tax", "declared_sales_cny", m, 0.0, None) for m in streak[-6:]]
            ev += [evidence("utility", f"{u}_{s.unit}", m, s.month(m)[0], None)
                   for m in operating[-3:] for u, s in self.series.items() if s.month(m)]
            finding = Finding("tax_zero_streak", "critical" if is_operating else "warning", "open",
                              period_start(first), period_end(latest), float(months), 0.0, ev,
                              explain.tax_zero_streak(first, latest, months, is_operating),
                              _clamp(months / (2.0 * t.zero_streak_months)))
        return self._cond("tax_zero_streak").report(finding)

    def _metered(self, period: str) -> bool:
        return any((m := s.month(period)) and m[1] >= 10 for s in self.series.values())

    def _operating(self, period: str) -> bool:
        """Did any meter show ordinary operation in ``period``?"""
        for s in self.series.values():
            m = s.month(period)
            if not m or m[1] < 10 or m[2] < 0.5 * m[1]:
                continue
            level = s.baseline.workday_level()
            if level is None or m[0] / m[1] >= self.t.drop_ratio * level:
                return True
        return False

    # -- tax_sales_drop -----------------------------------------------------------------------
    def _sales_drop(self, cohorts: Cohorts, review: str | None = None) -> list[Finding]:
        """``review``: the month is judged again with its whole cohort; a drop that opened in
        that month is decided afresh, not against the reference frozen when it opened."""
        t = self.t
        latest = max(self.tax)
        sales, paid = self.tax[latest]
        trailing = [self.tax[q][0] for q in (period_add(latest, -i) for i in (1, 2, 3)) if q in self.tax]
        median3 = _median(trailing) if len(trailing) >= 2 else None
        last_year = self.tax.get(period_add(latest, -12))
        last_year = last_year[0] if last_year is not None and last_year[0] > 0 else None
        if median3 and median3 > 0 and review is None:  # a review's values are in the cohort already
            cohorts.observe(self.profile, "sales_vs_trailing", self.uscc, sales / median3, tag=latest)
        if last_year and review is None:
            cohorts.observe(self.profile, "sales_vs_last_year", self.uscc, sales / last_year, tag=latest)
        cond = self._cond("tax_sales_drop")
        holds, peer_factor = False, None
        fresh = review is not None and cond.is_open and cond.start == period_start(review)
        if cond.is_open and self.sales_ref and not fresh:
            holds = sales < t.sales_drop_ratio * self.sales_ref
        elif median3 and median3 > 0 and not (sales == 0 and paid == 0):
            # a month the Spring Festival shutdown covers is not judged: how long a factory
            # stops (two to four weeks) alone moves its sales by more than half.  Otherwise each
            # reference is scaled by the peers' median change for the same month, so a dip
            # every peer shares is not a drop
            refs = []
            if not _spring_festival_month(latest):
                for metric, base in (("sales_vs_trailing", median3), ("sales_vs_last_year", last_year)):
                    if not base:
                        continue
                    view = cohorts.stats(self.profile, metric, exclude=self.uscc,
                                         min_members=t.peer_min_members, tag=latest)
                    if view is not None:
                        factor = min(1.0, max(view.median, 0.0))
                        peer_factor = factor if peer_factor is None else min(peer_factor, factor)
                        base *= factor
                    refs.append(base)
            holds = bool(refs) and all(sales < t.sales_drop_ratio * ref for ref in refs)
            self.sales_ref = min(refs) if holds else None
        finding = None
        if holds:
            ref = self.sales_ref
            ev = [evidence("tax", "declared_sales_cny", latest, sales, median3)]
            if last_year is not None:
                ev.append(evidence("tax", "declared_sales_cny_same_month_last_year", latest, sales, last_year))
            first = cond.start if cond.is_open else period_start(latest)
            finding = Finding("tax_sales_drop",
                              "critical" if sales < t.sales_critical_ratio * ref else "warning", "open",
                              first, period_end(latest), sales, ref, ev,
                              explain.tax_sales_drop(latest, sales, median3 or ref, last_year,
                                                     peer_factor if peer_factor is not None and peer_factor < 1
                                                     else None, t.sales_drop_ratio),
                              _clamp(1 - sales / ref) if ref else 1.0)
        else:
            self.sales_ref = None
        return cond.report(finding)

    # -- sales_energy_mismatch ------------------------------------------------------------------
    def _mismatch(self, period: str, cohorts: Cohorts) -> list[Finding]:
        t = self.t
        electricity = self.series.get("electricity")
        if electricity is None or period not in self.tax:
            return []
        if self.mismatch_period is not None and period < self.mismatch_period:
            return []  # a correction of an older month: the condition is about the latest
        month = electricity.month(period)
        if electricity.last_day is None or electricity.last_day < period_end(period):
            return []  # the month's electricity is not complete yet
        if month is None or month[1] < t.mismatch_min_days:
            return []
        self.mismatch_period = period
        sales, kwh = self.tax[period][0], month[0]
        finding = None
        if sales >= t.no_power_min_sales and kwh < t.no_power_kwh_month:
            ev = [evidence("tax", "declared_sales_cny", period, sales, None),
                  evidence("utility", "electricity_kwh", period, kwh, None)]
            finding = Finding("sales_energy_mismatch", "critical", "open", period_start(period),
                              period_end(period), sales, 0.0, ev,
                              explain.sales_energy_mismatch(period, sales, kwh, None, None, True), 1.0)
        elif sales > 0 and kwh > 0:
            x = math.log(sales / kwh)
            view = cohorts.stats(self.profile, "log_sales_per_kwh", exclude=self.uscc,
                                 min_members=t.mismatch_min_members, levels=SAME_INDUSTRY)
            view = view or self._own_sales_per_kwh(period, electricity)
            z = view.z(x, min_scale=t.mismatch_min_scale) if view else 0.0
            out_of_line = view is not None and abs(z) > t.mismatch_z
            self.mismatch_run = (self.mismatch_run + [period])[-t.mismatch_months:] if out_of_line else []
            if out_of_line and (len(self.mismatch_run) >= t.mismatch_months or abs(z) >= t.mismatch_z_now
                                or self._is_open("sales_energy_mismatch")):
                peer = math.exp(view.median)
                ev = [evidence("tax", "declared_sales_cny_per_kwh", period, sales / kwh, peer),
                      evidence("tax", "declared_sales_cny", period, sales, None),
                      evidence("utility", "electricity_kwh", period, kwh, None)]
                finding = Finding("sales_energy_mismatch", "warning", "open", period_start(self.mismatch_run[0]),
                                  period_end(period), sales / kwh, peer, ev,
                                  explain.sales_energy_mismatch(period, sales, kwh, peer, view.level, z > 0),
                                  abs(z) / (abs(z) + t.mismatch_z))
            elif out_of_line:
                return []  # out of line once: wait for the next month before deciding
            if out_of_line:
                cohorts.forget(self.profile, "log_sales_per_kwh", self.uscc)
            else:
                cohorts.observe(self.profile, "log_sales_per_kwh", self.uscc, x)
        return self._cond("sales_energy_mismatch").report(finding)

    def _own_sales_per_kwh(self, period: str, electricity: UtilitySeries) -> CohortView | None:
        """Without enough peers of its industry, the enterprise's own log sales per kWh over
        the 12 months before ``period`` (complete months outside the Spring Festival and
        before any open mismatch), if there are at least ``mismatch_own_months``."""
        t = self.t
        cond = self._cond("sales_energy_mismatch")
        before = period_of(cond.start) if cond.is_open else period
        values = []
        for q in (period_add(before, -i) for i in range(1, 13)):
            month, filed = electricity.month(q), self.tax.get(q)
            if (month and filed and month[1] >= t.mismatch_min_days and month[0] > 0 and filed[0] > 0
                    and not _spring_festival_month(q)):
                values.append(math.log(filed[0] / month[0]))
        if len(values) < t.mismatch_own_months:
            return None
        center = _median(values)
        return CohortView("own", (), len(values), center, robust_scale(values, center), sum(values) / len(values))

    # -- headcount_drop -------------------------------------------------------------------------
    def _headcount(self, cohorts: Cohorts, review: bool = False) -> list[Finding]:
        """``review``: judged again with the month's whole cohort (its values are in it already)."""
        t = self.t
        latest = max(self.social)
        now = self.social[latest][0]
        finding = None
        for months, share in ((1, t.headcount_drop_1m), (3, t.headcount_drop_3m)):
            base_period = period_add(latest, -months)
            before = self.social.get(base_period)
            if before is None or before[0] <= 0:
                continue
            before = before[0]
            metric = f"headcount_change_{months}m"
            if not review:
                cohorts.observe(self.profile, metric, self.uscc, now / before, tag=latest)
            if before - now < max(share * before, t.headcount_min_people):
                continue
            view = cohorts.stats(self.profile, metric, exclude=self.uscc,
                                 min_members=t.peer_min_members, tag=latest)
            if view is not None and view.median <= 1 - share:
                continue  # the peers lost as many: seasonal, not this enterprise's own
            drop = 1 - now / before
            ev = [evidence("social", "insured_headcount", latest, float(now), float(before))]
            finding = Finding("headcount_drop",
                              "critical" if months == 1 and drop >= t.headcount_critical else "warning",
                              "open", period_start(period_add(base_period, 1)), period_end(latest),
                              float(now), float(before), ev,
                              explain.headcount_drop(latest, now, before, base_period), _clamp(drop))
            break
        return self._cond("headcount_drop").report(finding)

    # -- complaint_burst ------------------------------------------------------------------------
    def _complaint_burst(self, at: date, cohorts: Cohorts) -> list[Finding]:
        t = self.t
        window, history = t.complaint_window_days, t.complaint_history_days
        first_day = at - timedelta(days=window - 1)
        recent = sorted(d for d in self.complaints if first_day <= d <= at)
        count = sum(self.complaints[d] for d in recent)
        base = self._complaints_between(first_day - timedelta(days=history), first_day - timedelta(days=1))
        since = self.observed_since or at
        base_days = max(0, min(history, (first_day - since).days))
        view = cohorts.stats(self.profile, "complaints_90d", exclude=self.uscc, min_members=t.cohort_min_members)
        prior = view.mean / history if view is not None else t.complaint_prior_rate
        burst = PoissonBurst(window, t.complaint_prior_days)
        finding = None
        if count >= t.complaint_min:
            score = burst.score(count, base, base_days, prior)
            if score >= t.complaint_log10_p:
                expected = burst.expected(base, base_days, prior)
                from_peers = base_days < t.complaint_prior_days
                ev = [evidence("complaint", "complaints_7d", f"{recent[0]}/{recent[-1]}", float(count), expected)]
                finding = Finding("complaint_burst",
                                  "critical" if count >= 2 * t.complaint_min and score >= 2 * t.complaint_log10_p
                                  else "warning", "open", recent[0], recent[-1], float(count), expected, ev,
                                  explain.complaint_burst(recent[0], recent[-1], count, expected, from_peers),
                                  _clamp(score / 10.0))
        return self._cond("complaint_burst").report(finding)

    # -- pickling: keep it compact ----------------------------------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        if state["t"] == DEFAULT:
            state["t"] = None
        state["conditions"] = [pack_finding(c.current) for c in self.conditions.values() if c.current is not None]
        return state

    def __setstate__(self, state):
        state = dict(state)
        state["t"] = state["t"] or DEFAULT
        conditions = {}
        saved = state["conditions"]
        for packed in saved.values() if isinstance(saved, dict) else saved:   # a dict: pickled before packing
            current = packed if isinstance(packed, Finding) else unpack_finding(packed)
            cond = conditions[current.rule] = Condition(current.rule)
            cond.current = current
        state["conditions"] = conditions
        self.__dict__.update(state)


_ONE_DAY = timedelta(days=1)


def _withdraw_rejudged(findings: list[Finding], period: str) -> list[Finding]:
    """After ``period`` was judged again (a corrected return, or the review once the month's
    filing closed): an alert that began in that period and no longer holds never held at
    all, so it is withdrawn rather than resolved."""
    start, end = period_start(period), period_end(period)
    return [withdrawn(f) if f.status == "resolved" and start <= f.window_start <= end else f for f in findings]


def _utility_rank(utility: str) -> tuple[int, str]:
    return (UTILITY_ORDER.index(utility) if utility in UTILITY_ORDER else len(UTILITY_ORDER), utility)


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, float(x)))
