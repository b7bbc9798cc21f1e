"""Risk score 0–100 per enterprise from its findings, and the supervision list (SPEC §4).

Each finding contributes ``weight(rule) × factor(severity)`` points while its condition is
open; once resolved, the contribution halves every ``half_life_days`` of event time.
Contributions combine like independent probabilities, ``100 × (1 − Π(1 − c/100))``, so
several findings add up but never pass 100.  No findings, score 0.  A score of 60 or more
puts the enterprise on the supervision list.

Levels: ``none`` (0), ``low`` (< 30), ``medium`` (< 60), ``high`` (≥ 60, supervised).

>>> from datetime import date, datetime, timezone
>>> from detectors.findings import Finding
>>> risk = RiskScore("914403001922038216")
>>> t0 = datetime(2024, 6, 1, tzinfo=timezone.utc)
>>> risk.score(t0)
0.0
>>> f = Finding("utility_drop", "critical", "open", date(2024, 5, 6), date(2024, 5, 30), 0.0, 100.0)
>>> risk.update(f, t0); round(risk.score(t0), 1), risk.on_supervision_list(t0)
(67.5, True)
>>> risk.update(f.replace(status="resolved"), t0)
>>> round(risk.score(datetime(2024, 7, 1, tzinfo=timezone.utc)), 1)   # 30 days later: half
33.8
>>> risk.to_record(datetime(2024, 7, 1, tzinfo=timezone.utc))["level"]
'medium'
"""

from __future__ import annotations

from datetime import datetime

from detectors.alerts import SCHEMA_VERSION, rfc3339
from detectors.findings import Finding

WEIGHTS = {
    "dormant_entity": 60.0,
    "sales_energy_mismatch": 55.0,
    "tax_zero_streak": 50.0,
    "utility_drop": 45.0,
    "headcount_drop": 40.0,
    "tax_sales_drop": 35.0,
    "complaint_burst": 30.0,
    "utility_spike": 20.0,
}
SEVERITY_FACTOR = {"info": 0.5, "warning": 1.0, "critical": 1.5}
SUPERVISION_THRESHOLD = 60.0
HALF_LIFE_DAYS = 30.0
FORGET_BELOW = 0.5  # points: a contribution this small is dropped (bounded state)
MAX_ENTRIES = 16


def risk_level(score: float) -> str:
    """``none``, ``low``, ``medium`` or ``high`` (≥ 60: on the supervision list)."""
    if score <= 0:
        return "none"
    if score < 30:
        return "low"
    return "medium" if score < SUPERVISION_THRESHOLD else "high"


class RiskScore:
    """The risk of one enterprise, from the findings it has had."""

    def __init__(self, uscc: str, half_life_days: float = HALF_LIFE_DAYS):
        self.uscc = uscc
        self.half_life_days = half_life_days
        # (rule, window_start) -> (points at full strength, resolved at or None if open)
        self.entries: dict[tuple, tuple[float, datetime | None]] = {}
        self.updated_at: datetime | None = None

    def update(self, finding: Finding, at: datetime) -> None:
        """Take one finding (open or resolved) seen at event time ``at``."""
        key = (finding.rule, finding.window_start)
        if finding.status == "withdrawn":  # it never held: it never counted
            self.entries.pop(key, None)
            self.updated_at = at if self.updated_at is None else max(self.updated_at, at)
            return
        points = min(100.0, WEIGHTS.get(finding.rule, 30.0) * SEVERITY_FACTOR.get(finding.severity, 1.0))
        previous = self.entries.get(key)
        if previous is not None:
            points = max(points, previous[0])
        for other, (p, resolved_at) in list(self.entries.items()):
            if other[0] == finding.rule and other != key and resolved_at is None:
                self.entries[other] = (p, at)  # one open condition per rule: the older one is over
        self.entries[key] = (points, at if finding.status == "resolved" else None)
        self.updated_at = at if self.updated_at is None else max(self.updated_at, at)
        self._forget(at)

    def contributions(self, at: datetime) -> dict[str, float]:
        """Points per rule at event time ``at`` (the strongest finding of each rule)."""
        out: dict[str, float] = {}
        for (rule, _), entry in self.entries.items():
            points = self._points(entry, at)
            if points >= FORGET_BELOW:
                out[rule] = max(out.get(rule, 0.0), points)
        return out

    def score(self, at: datetime) -> float:
        """Risk score 0–100 at event time ``at``."""
        remaining = 1.0
        for points in self.contributions(at).values():
            remaining *= 1 - points / 100
        return round(100 * (1 - remaining), 2)

    def on_supervision_list(self, at: datetime) -> bool:
        return self.score(at) >= SUPERVISION_THRESHOLD

    def to_record(self, at: datetime) -> dict:
        """The ``monitor.risk`` message (SPEC §5)."""
        score = self.score(at)
        contributions = self.contributions(at)
        rules = [r for r, p in sorted(contributions.items(), key=lambda kv: (-kv[1], kv[0])) if p >= FORGET_BELOW]
        return {"uscc": self.uscc, "score": score, "level": risk_level(score), "rules": rules,
                "updated_at": rfc3339(at), "schema_version": SCHEMA_VERSION}

    def _forget(self, at: datetime) -> None:
        for key, (points, resolved_at) in list(self.entries.items()):
            if resolved_at is not None:
                age = max(0.0, (at - resolved_at).total_seconds() / 86400)
                if points * 0.5 ** (age / self.half_life_days) < FORGET_BELOW:
                    del self.entries[key]
        if len(self.entries) > MAX_ENTRIES:  # keep the strongest
            strongest = sorted(self.entries.items(), key=lambda kv: -self._points(kv[1], at))[:MAX_ENTRIES]
            self.entries = dict(strongest)

    def _points(self, entry, at: datetime) -> float:
        points, resolved_at = entry
        if resolved_at is None:
            return points
        return points * 0.5 ** (max(0.0, (at - resolved_at).total_seconds() / 86400) / self.half_life_days)
