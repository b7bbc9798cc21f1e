"""What a detector reports: a ``Finding``, and the ``Condition`` that turns a stream of
"the rule holds / does not hold" verdicts into open, update and resolved findings.

A condition is reported once when it starts (``open``), again whenever what it says
changes (its window grows, the severity rises, the observed value moves), and once more
when it clears (``resolved``).  Its ``window_start`` never moves while it lasts: that is
what names the alert.

>>> from datetime import date
>>> c = Condition("utility_drop")
>>> f = Finding("utility_drop", "warning", "open", date(2024, 5, 6), date(2024, 5, 8), 1.0, 50.0)
>>> [x.status for x in c.report(f)]
['open']
>>> c.report(f)
[]
>>> later = Finding("utility_drop", "critical", "open", date(2024, 5, 7), date(2024, 5, 9), 0.5, 50.0)
>>> [(x.severity, x.window_start.isoformat()) for x in c.report(later)]
[('critical', '2024-05-06')]
>>> [(x.status, x.window_end.isoformat()) for x in c.report(None)]
[('resolved', '2024-05-09')]
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

SEVERITIES = ("info", "warning", "critical")
RULES = ("utility_drop", "utility_spike", "dormant_entity", "tax_zero_streak", "tax_sales_drop",
         "sales_energy_mismatch", "headcount_drop", "complaint_burst")


@dataclass(frozen=True)
class Finding:
    """One rule's verdict about one enterprise for one data period.

    ``score`` is in [0, 1] (how far past its threshold the condition is; see
    docs/DETECTION.md); ``evidence`` is a list of ``{source, metric, period, value,
    baseline}``; ``explanation`` is ``{"zh": ..., "en": ...}``.
    """

    rule: str
    severity: str
    status: str
    window_start: date
    window_end: date
    observed: float
    expected: float
    evidence: list = field(default_factory=list)
    explanation: dict = field(default_factory=dict)
    score: float = 0.0

    def replace(self, **changes) -> "Finding":
        return dataclasses.replace(self, **changes)


EVIDENCE_KEYS = ("source", "metric", "period", "value", "baseline")


def pack_finding(f: Finding) -> tuple:
    """A compact, picklable form of a finding (no field names, explanation compressed):
    what a condition keeps in an enterprise's state.

    >>> f = Finding("utility_drop", "warning", "open", date(2024, 5, 6), date(2024, 5, 8), 1.0, 50.0,
    ...             [evidence("utility", "electricity_kwh_per_day", "2024-05-06/2024-05-08", 1.0, 50.0)],
    ...             {"zh": "用电骤降。", "en": "Electricity fell."}, 0.98)
    >>> unpack_finding(pack_finding(f)) == f
    True
    """
    text = json.dumps([f.explanation.get("zh", ""), f.explanation.get("en", ""),
                       [[e.get(k) for k in EVIDENCE_KEYS] for e in f.evidence]], ensure_ascii=False)
    return (f.rule, f.severity, f.status, f.window_start.toordinal(), f.window_end.toordinal(), f.observed,
            f.expected, zlib.compress(text.encode(), 9), f.score)


def unpack_finding(packed: tuple) -> Finding:
    """The finding ``pack_finding`` packed."""
    rule, severity, status, start, end, observed, expected, text, score = packed
    zh, en, items = json.loads(zlib.decompress(text).decode())
    return Finding(rule, severity, status, date.fromordinal(start), date.fromordinal(end), observed, expected,
                   [dict(zip(EVIDENCE_KEYS, e)) for e in items], {"zh": zh, "en": en}, score)


def evidence(source: str, metric: str, period: str, value, baseline) -> dict:
    """One evidence item (numbers rounded for people)."""
    return {"source": source, "metric": metric, "period": period,
            "value": _round(value), "baseline": _round(baseline)}


def _round(x):
    if isinstance(x, float):
        return round(x, 4) if abs(x) < 100 else round(x, 1)
    return x


def _worse(a: str, b: str) -> str:
    return a if SEVERITIES.index(a) >= SEVERITIES.index(b) else b


class Condition:
    """The open/update/resolve life of one rule's condition for one enterprise."""

    __slots__ = ("rule", "current")

    def __init__(self, rule: str):
        self.rule = rule
        self.current: Finding | None = None

    @property
    def is_open(self) -> bool:
        return self.current is not None

    @property
    def start(self) -> date | None:
        return self.current.window_start if self.current else None

    def report(self, finding: Finding | None) -> list[Finding]:
        """Feed the latest verdict (a Finding if the rule holds, None if it does not);
        returns the findings to publish (zero or one)."""
        current = self.current
        if finding is None:
            if current is None:
                return []
            self.current = None
            return [_resolved(current)]
        if current is None:
            self.current = finding.replace(status="open")
            return [self.current]
        merged = finding.replace(status="open", window_start=current.window_start,
                                 severity=_worse(finding.severity, current.severity))
        if _same(merged, current):
            return []
        self.current = merged
        return [merged]

    def __getstate__(self):
        return (self.rule, self.current)

    def __setstate__(self, state):
        self.rule, self.current = state


def _same(a: Finding, b: Finding) -> bool:
    return (a.severity, a.window_end, _round(a.observed), a.evidence) == (
        b.severity, b.window_end, _round(b.observed), b.evidence)


def withdrawn(f: Finding) -> Finding:
    """``f`` withdrawn: corrected data show that its condition never held (SPEC §5)."""
    return f.replace(status="withdrawn", explanation={
        "zh": "已撤回：更正后的数据表明该情况并不成立。原判断：" + f.explanation.get("zh", "").removeprefix("已恢复正常："),
        "en": "Withdrawn: corrected data show the condition did not hold. It was: "
              + f.explanation.get("en", "").removeprefix("Cleared: "),
    })


def _resolved(f: Finding) -> Finding:
    return f.replace(status="resolved", explanation={
        "zh": "已恢复正常：" + f.explanation.get("zh", ""),
        "en": "Cleared: " + f.explanation.get("en", ""),
    })


# -- months ------------------------------------------------------------------------------

@lru_cache(maxsize=8192)
def period_of(day: date) -> str:
    """``2024-05`` for any day in May 2024."""
    return f"{day.year:04d}-{day.month:02d}"


@lru_cache(maxsize=8192)
def period_add(period: str, months: int) -> str:
    """The period ``months`` later (negative: earlier).

    >>> period_add("2024-01", -1), period_add("2023-11", 14)
    ('2023-12', '2025-01')
    """
    index = int(period[:4]) * 12 + int(period[5:7]) - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@lru_cache(maxsize=8192)
def period_start(period: str) -> date:
    return date(int(period[:4]), int(period[5:7]), 1)


@lru_cache(maxsize=8192)
def period_end(period: str) -> date:
    return period_start(period_add(period, 1)) - timedelta(days=1)


@lru_cache(maxsize=8192)
def months_before(day: date, months: int) -> date:
    """The same day of the month ``months`` earlier (clamped to the month's end).

    >>> months_before(date(2024, 8, 31), 6)
    datetime.date(2024, 2, 29)
    """
    p = period_add(period_of(day), -months)
    return min(period_start(p).replace(day=1) + timedelta(days=day.day - 1), period_end(p))
