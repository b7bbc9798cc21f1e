"""The alert lifecycle (SPEC §5): one condition = one alert, updated while it lasts and
resolved when it clears, under a deterministic ``alert_id``.

``AlertBook.apply(uscc, finding, profile, at)`` takes a detector's finding and returns the
alert messages to publish on ``monitor.alerts`` (zero or one): a new alert when a condition
opens, an update when its severity rises or its window has grown by ``refresh_days`` since
the last message, and a final ``resolved`` message.  ``at`` is the event time of detection
(the stream's watermark time), never the wall clock.

``alert_id`` is a hash of (uscc, rule, window_start): reprocessing the same data mints the
same id.

>>> from datetime import date, datetime, timezone
>>> from detectors.findings import Finding
>>> book = AlertBook()
>>> f = Finding("utility_drop", "warning", "open", date(2024, 5, 6), date(2024, 5, 8), 10.0, 100.0,
...             [], {"zh": "…", "en": "…"}, 0.9)
>>> at = datetime(2024, 5, 10, tzinfo=timezone.utc)
>>> first = book.apply("914403001922038216", f, {"name": "Demo"}, at)
>>> first[0]["alert_id"], first[0]["status"], first[0]["detected_at"]
('5976473f7e8f7a6520e95e7f84f73e3b', 'open', '2024-05-10T00:00:00Z')
>>> book.apply("914403001922038216", f.replace(window_end=date(2024, 5, 9)), None, at)  # nothing new
[]
>>> worse = f.replace(severity="critical", window_end=date(2024, 5, 13))
>>> [(a["alert_id"][:8], a["severity"]) for a in book.apply("914403001922038216", worse, None, at)]
[('5976473f', 'critical')]
>>> done = book.apply("914403001922038216", worse.replace(status="resolved"), None, at)
>>> [(a["alert_id"][:8], a["status"]) for a in done], book.open_alerts()
([('5976473f', 'resolved')], [])
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone

from detectors.findings import SEVERITIES, Finding

SCHEMA_VERSION = 1


def alert_id(uscc: str, rule: str, window_start: date) -> str:
    """The deterministic id of the alert about ``rule``'s condition starting ``window_start``."""
    key = f"{uscc}|{rule}|{window_start.isoformat()}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def rfc3339(at: datetime) -> str:
    """A timezone-aware time as RFC 3339 in UTC (``...Z``)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: event times must be timezone-aware")
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class AlertBook:
    """Open alerts by (uscc, rule), and the decision of what to publish."""

    def __init__(self, refresh_days: int = 7):
        self.refresh_days = refresh_days
        self.open: dict[tuple[str, str], dict] = {}
        self.published_end: dict[tuple[str, str], str] = {}

    def apply(self, uscc: str, finding: Finding, profile: dict | None, at: datetime) -> list[dict]:
        """Fold one finding in; return the alert messages to publish."""
        key = (uscc, finding.rule)
        current = self.open.get(key)
        if finding.status in ("resolved", "withdrawn"):
            if current is None:
                return []
            alert = self._fill(dict(current), finding, keep_start=True)
            alert["status"] = finding.status
            del self.open[key]
            self.published_end.pop(key, None)
            return [alert]
        if current is None:
            profile = profile or {}
            alert = {
                "alert_id": alert_id(uscc, finding.rule, finding.window_start),
                "uscc": uscc,
                "enterprise_name": profile.get("name") or "",
                "industry": profile.get("industry") or "",
                "town": profile.get("town") or "",
                "rule": finding.rule,
                "severity": finding.severity,
                "status": "open",
                "window_start": finding.window_start.isoformat(),
                "detected_at": rfc3339(at),
            }
            self.open[key] = self._fill(alert, finding, keep_start=False)
            self.published_end[key] = self.open[key]["window_end"]
            return [dict(self.open[key])]
        before_severity = current["severity"]
        self._fill(current, finding, keep_start=True)
        grown = (date.fromisoformat(current["window_end"])
                 - date.fromisoformat(self.published_end[key])).days >= self.refresh_days
        if current["severity"] != before_severity or grown:
            self.published_end[key] = current["window_end"]
            return [dict(current)]
        return []

    @staticmethod
    def _fill(alert: dict, finding: Finding, keep_start: bool) -> dict:
        if "severity" in alert and keep_start:
            severity = max(alert["severity"], finding.severity, key=SEVERITIES.index)
        else:
            severity = finding.severity
        alert.update({
            "severity": severity,
            "window_end": finding.window_end.isoformat(),
            "score": round(float(finding.score), 4),
            "observed": float(finding.observed),
            "expected": float(finding.expected),
            "evidence": list(finding.evidence),
            "explanation": dict(finding.explanation),
            "schema_version": SCHEMA_VERSION,
        })
        return alert

    def open_alerts(self, uscc: str | None = None) -> list[dict]:
        """The alerts open now (of one enterprise, or all)."""
        return [dict(a) for (u, _), a in sorted(self.open.items()) if uscc is None or u == uscc]
