"""``entwatch evaluate``: the alerts of a simulated city scored against its ground truth.

Three ways to get the alerts, one scoring (the rules are in docs/EVALUATION.md):

* ``--alerts alerts.jsonl``: the SPEC §5 messages the real pipeline published on
  ``monitor.alerts`` (several per ``alert_id``: open, updates, resolved);
* ``--events events.jsonl``: SPEC §2 events, run here through the worker's own processor
  (``streams.pipeline``, as ``entwatch worker`` judges them, over ``--partitions`` partitions;
  ``--partitions 1`` is one city-wide clock and cohort);
* ``--simulate --seed N --enterprises N``: simulate a city, then run it the same way.

Writes ``report.md``, ``evaluation.png``, ``evaluation.json`` and ``alerts.jsonl`` (the latest
message of each alert, by id, so two runs can be diffed) to ``--out``.

Scoring is plain functions on plain data, so it is tested on hand-made inputs:

>>> truth = [{"uscc": "A", "rule": "utility_drop", "start": "2024-05-06", "end": "2024-05-20", "parameters": {}}]
>>> alerts = [{"alert_id": "x", "uscc": "A", "rule": "utility_drop", "status": "open", "severity": "warning",
...            "window_start": "2024-05-06", "window_end": "2024-05-08", "detected_at": "2024-05-10T16:00:00Z"}]
>>> r = score(fold_alerts(alerts), load_truth(truth), enterprises=100, months=12)["rules"]["utility_drop"]
>>> r["precision"], r["recall"], r["delay_median_days"]
(1.0, 1.0, 5.0)
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterable, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from detectors.findings import RULES, SEVERITIES

CITY_TZ = ZoneInfo("Asia/Shanghai")
TOLERANCE_DAYS = 7          # an alert window may miss the truth window by this much and still match
DAYS_PER_MONTH = 365.25 / 12
TARGET = 0.9                # precision and recall target per rule


# -- inputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TruthRecord:
    """One injected anomaly (or a consequence of one: ``derived``)."""

    uscc: str
    rule: str
    start: date
    end: date
    derived: bool = False


@dataclass
class Alert:
    """One alert (all messages of one ``alert_id`` folded together)."""

    alert_id: str
    uscc: str
    rule: str
    window_start: date
    window_end: date
    detected_at: datetime
    severity: str
    resolved: bool


def load_truth(records: Iterable[dict]) -> list[TruthRecord]:
    """Ground-truth records (``{uscc, rule, start, end, parameters}``) as ``TruthRecord``s;
    a record whose parameters name ``caused_by`` is derived (allowed, not required)."""
    out = []
    for r in records:
        out.append(TruthRecord(r["uscc"], r["rule"], date.fromisoformat(r["start"]), date.fromisoformat(r["end"]),
                               bool((r.get("parameters") or {}).get("caused_by"))))
    return out


def _parse_time(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"detected_at {text!r} has no UTC offset")
    return at


def fold_alerts(messages: Iterable[dict]) -> list[Alert]:
    """Fold alert messages (open, updates, resolved; any order) into one ``Alert`` per
    ``alert_id``: the widest window, the earliest ``detected_at``, the highest severity.
    A withdrawn alert (corrected data showed it never held) is left out: it is no alert."""
    alerts: dict[str, Alert] = {}
    messages = list(messages)
    withdrawn = {m["alert_id"] for m in messages if m.get("status") == "withdrawn"}
    for m in messages:
        if m["alert_id"] in withdrawn:
            continue
        start, end = date.fromisoformat(m["window_start"]), date.fromisoformat(m["window_end"])
        at = _parse_time(m["detected_at"])
        a = alerts.get(m["alert_id"])
        if a is None:
            alerts[m["alert_id"]] = Alert(m["alert_id"], m["uscc"], m["rule"], start, end, at,
                                          m.get("severity", "warning"), m.get("status") == "resolved")
            continue
        a.window_start, a.window_end = min(a.window_start, start), max(a.window_end, end)
        a.detected_at = min(a.detected_at, at)
        a.severity = max(a.severity, m.get("severity", a.severity), key=_severity_rank)
        a.resolved = a.resolved or m.get("status") == "resolved"
    return sorted(alerts.values(), key=lambda a: (a.detected_at, a.uscc, a.rule, a.alert_id))


def latest_messages(messages: Iterable[dict]) -> list[dict]:
    """The latest message of each alert (publication order: a later message replaces an
    earlier one), by ``alert_id``: what a subscriber holds once every message is in.

    >>> [m["status"] for m in latest_messages([{"alert_id": "a", "status": "open"},
    ...                                         {"alert_id": "a", "status": "resolved"}])]
    ['resolved']
    """
    latest = {m["alert_id"]: m for m in messages}
    return [latest[k] for k in sorted(latest)]


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


# -- matching and figures ----------------------------------------------------------------------
def overlaps(alert: Alert, record: TruthRecord, tolerance_days: int = TOLERANCE_DAYS) -> bool:
    """Same enterprise and rule, and the windows overlap once the truth window is widened by
    ``tolerance_days`` on both sides."""
    slack = timedelta(days=tolerance_days)
    return (alert.uscc == record.uscc and alert.rule == record.rule
            and alert.window_start <= record.end + slack and alert.window_end >= record.start - slack)


def delay_days(alert: Alert, record: TruthRecord) -> float:
    """Event time from the start of the abnormal data (local midnight) to the alert's first
    detection, in days."""
    start = datetime.combine(record.start, datetime.min.time(), CITY_TZ)
    return (alert.detected_at - start).total_seconds() / 86400.0


def quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile with linear interpolation between order statistics (None if empty).

    >>> quantile([1, 2, 3, 4], 0.5), quantile([1, 2, 3, 4], 0.9), quantile([], 0.5)
    (2.5, 3.7, None)
    """
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def holiday_days(first: date, last: date) -> set[date]:
    """Public-holiday rest days and Spring Festival shutdown days in ``[first, last]``."""
    from detectors.calendar import day_type

    out, day = set(), first
    while day <= last:
        if day_type(day) in ("holiday", "spring_festival"):
            out.add(day)
        day += timedelta(days=1)
    return out


def _in_holidays(alert: Alert) -> bool:
    detected = alert.detected_at.astimezone(CITY_TZ).date()
    return bool(holiday_days(alert.window_start, alert.window_end)) or bool(holiday_days(detected, detected))


def score(alerts: list[Alert], truth: list[TruthRecord], enterprises: int, months: float,
          tolerance_days: int = TOLERANCE_DAYS) -> dict:
    """Per-rule precision, recall, F1, detection delays and false-alert rate, plus the
    holiday false alerts (see docs/EVALUATION.md for the rules)."""
    by_key: dict[tuple[str, str], list[TruthRecord]] = defaultdict(list)
    for t in truth:
        by_key[(t.uscc, t.rule)].append(t)
    anomalous = {t.uscc for t in truth}
    exposure = enterprises * months / 1000.0
    rules: dict[str, dict] = {}
    false_alerts: list[Alert] = []
    holiday: list[Alert] = []
    first_hit: dict[TruthRecord, Alert] = {}
    for a in alerts:
        hits = [t for t in by_key.get((a.uscc, a.rule), ()) if overlaps(a, t, tolerance_days)]
        if not hits:
            false_alerts.append(a)
            if a.uscc not in anomalous and _in_holidays(a):
                holiday.append(a)
        for t in hits:
            if t not in first_hit or a.detected_at < first_hit[t].detected_at:
                first_hit[t] = a
    for rule in sorted({a.rule for a in alerts} | {t.rule for t in truth} | set(RULES), key=_rule_rank):
        rule_alerts = [a for a in alerts if a.rule == rule]
        wrong = [a for a in false_alerts if a.rule == rule]
        primary = [t for t in truth if t.rule == rule and not t.derived]
        found = [t for t in primary if t in first_hit]
        delays = [delay_days(first_hit[t], t) for t in found]
        precision = _ratio(len(rule_alerts) - len(wrong), len(rule_alerts))
        recall = _ratio(len(found), len(primary))
        rules[rule] = {
            "alerts": len(rule_alerts),
            "correct_alerts": len(rule_alerts) - len(wrong),
            "false_alerts": len(wrong),
            "truth": len(primary),
            "detected": len(found),
            "allowed_truth": sum(1 for t in truth if t.rule == rule and t.derived),
            "allowed_detected": sum(1 for t in truth if t.rule == rule and t.derived and t in first_hit),
            "precision": _round(precision),
            "recall": _round(recall),
            "f1": _round(_f1(precision, recall)),
            "delay_median_days": _round(quantile(delays, 0.5), 2),
            "delay_p90_days": _round(quantile(delays, 0.9), 2),
            "false_alerts_per_1000_enterprise_months": _round(len(wrong) / exposure if exposure else None, 3),
            "holiday_false_alerts": sum(1 for a in holiday if a.rule == rule),
            "missed": [_truth_json(t) for t in primary if t not in first_hit][:20],
            "false_examples": [_alert_json(a) for a in wrong][:20],
        }
    total_alerts = len(alerts)
    total_truth = sum(r["truth"] for r in rules.values())
    precision = _ratio(total_alerts - len(false_alerts), total_alerts)
    recall = _ratio(sum(r["detected"] for r in rules.values()), total_truth)
    return {
        "enterprises": enterprises,
        "months": round(months, 2),
        "tolerance_days": tolerance_days,
        "rules": rules,
        "overall": {
            "alerts": total_alerts, "false_alerts": len(false_alerts), "truth": total_truth,
            "precision": _round(precision), "recall": _round(recall), "f1": _round(_f1(precision, recall)),
            "false_alerts_per_1000_enterprise_months": _round(len(false_alerts) / exposure if exposure else None, 3),
        },
        "holiday_false_alerts": len(holiday),
        "holiday_false_alert_examples": [_alert_json(a) for a in holiday][:20],
    }


def _rule_rank(rule: str) -> tuple[int, str]:
    return (RULES.index(rule) if rule in RULES else len(RULES), rule)


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def _truth_json(t: TruthRecord) -> dict:
    return {"uscc": t.uscc, "rule": t.rule, "start": t.start.isoformat(), "end": t.end.isoformat()}


def _alert_json(a: Alert) -> dict:
    return {"alert_id": a.alert_id, "uscc": a.uscc, "rule": a.rule, "window_start": a.window_start.isoformat(),
            "window_end": a.window_end.isoformat(), "detected_at": a.detected_at.isoformat(),
            "severity": a.severity}


# -- running the detectors ----------------------------------------------------------------------
class _Span:
    """First and last event time, and the enterprises seen."""

    def __init__(self) -> None:
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.enterprises: set[str] = set()
        self.rejected = 0

    def see(self, event) -> None:
        self.enterprises.add(event.uscc)
        at = event.event_time
        if self.first is None or at < self.first:
            self.first = at
        if self.last is None or at > self.last:
            self.last = at

    @property
    def months(self) -> float:
        if self.first is None:
            return 0.0
        return (self.last - self.first).total_seconds() / 86400.0 / DAYS_PER_MONTH


def detect_pipeline(raws: Iterable[bytes], span: _Span, partitions: int = 4) -> list[dict]:
    """Run JSON messages (delivery order) through the worker's own processor
    (``streams.pipeline.replay_in_process``: per-partition clocks and cohorts, as
    ``entwatch worker`` with ``partitions`` partitions); returns the alert messages.  The
    input is a whole file: at its end every day before the latest event's is closed, so a
    return filed after the last meter upload is judged too (``flush``)."""
    from streams.pipeline import replay_in_process

    alerts: list[dict] = []
    for result in replay_in_process(raws, partitions, flush=True):
        span.rejected += len(result.deadletters)
        for row in result.rows.get("events", ()):  # the accepted events
            span.see(_Seen(row["uscc"], row["event_time"]))
        alerts += [p.body for p in result.alerts]
    return alerts


class _Seen(NamedTuple):
    uscc: str
    event_time: datetime


def simulated_raws(config, on_day=None) -> Iterable[bytes]:
    """The simulated city's messages as a department would send them."""
    from producers.simulator import generate

    start = datetime.combine(config.start, datetime.min.time(), CITY_TZ)
    for obj in generate(config):
        if isinstance(obj, str):
            yield obj.encode()
            continue
        if on_day is not None:
            try:
                on_day((datetime.fromisoformat(obj["event_time"]) - start).days)
            except (ValueError, KeyError, TypeError):
                pass
        yield orjson.dumps(obj)


def file_raws(path: Path, on_bytes=None) -> Iterable[bytes]:
    """The non-blank lines of a JSON Lines file (``on_bytes(done)`` reports progress)."""
    done = 0
    with path.open("rb") as f:
        for line in f:
            done += len(line)
            if on_bytes is not None:
                on_bytes(done)
            if line.strip():
                yield line.rstrip(b"\r\n")


# -- the report ---------------------------------------------------------------------------------
def _fmt(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def figures_table(figures: dict) -> str:
    """The per-rule figures as a Markdown table."""
    lines = ["| rule | truth | detected | alerts | false | precision | recall | F1 | delay median (d) "
             "| delay p90 (d) | false / 1,000 ent-months | holiday false |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rule, r in figures["rules"].items():
        lines.append(f"| `{rule}` | {r['truth']} | {r['detected']} | {r['alerts']} | {r['false_alerts']} "
                     f"| {_fmt(r['precision'], 3)} | {_fmt(r['recall'], 3)} | {_fmt(r['f1'], 3)} "
                     f"| {_fmt(r['delay_median_days'], 1)} | {_fmt(r['delay_p90_days'], 1)} "
                     f"| {_fmt(r['false_alerts_per_1000_enterprise_months'], 3)} | {r['holiday_false_alerts']} |")
    o = figures["overall"]
    lines.append(f"| **all** | {o['truth']} | | {o['alerts']} | {o['false_alerts']} | {_fmt(o['precision'], 3)} "
                 f"| {_fmt(o['recall'], 3)} | {_fmt(o['f1'], 3)} | | "
                 f"| {_fmt(o['false_alerts_per_1000_enterprise_months'], 3)} | {figures['holiday_false_alerts']} |")
    return "\n".join(lines)


def report_markdown(figures: dict, source: str) -> str:
    failing = [rule for rule, r in figures["rules"].items() if r["truth"] and (
        (r["precision"] or 0) < TARGET or (r["recall"] or 0) < TARGET)]
    verdict = ("every rule meets precision ≥ 0.9 and recall ≥ 0.9" if not failing
               else "below target: " + ", ".join(failing))
    parts = [
        "# entwatch evaluation", "",
        f"Source: {source}. {figures['enterprises']:,} enterprises over {figures['months']:.1f} months "
        f"of event time; matching tolerance ±{figures['tolerance_days']} days (docs/EVALUATION.md).", "",
        figures_table(figures), "",
        f"Holiday false alerts (Spring Festival and public holidays, enterprises without an injected "
        f"anomaly): **{figures['holiday_false_alerts']}**. Targets: {verdict}.", "",
        "Delays are event time from the first day of abnormal data to the first alert. "
        "Derived truth records (`caused_by`) are allowed: an alert on one is correct, missing one is not a miss.",
        "", "![figures](evaluation.png)", "",
    ]
    for rule, r in figures["rules"].items():
        if r["missed"] or r["false_examples"]:
            parts.append(f"## `{rule}`")
            parts += [f"- missed: {m['uscc']} {m['start']}…{m['end']}" for m in r["missed"][:5]]
            parts += [f"- false alert: {a['uscc']} {a['window_start']}…{a['window_end']} "
                      f"(detected {a['detected_at'][:10]})" for a in r["false_examples"][:5]]
            parts.append("")
    return "\n".join(parts)


def write_chart(figures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = list(figures["rules"])
    r = figures["rules"]
    xs = range(len(rules))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    w = 0.38
    ax1.bar([x - w / 2 for x in xs], [r[k]["precision"] or 0 for k in rules], w, label="precision")
    ax1.bar([x + w / 2 for x in xs], [r[k]["recall"] or 0 for k in rules], w, label="recall")
    ax1.axhline(TARGET, color="grey", linestyle="--", linewidth=1, label=f"target {TARGET}")
    ax1.set_ylim(0, 1.25)
    ax1.set_xticks(list(xs), rules, rotation=35, ha="right", fontsize=8)
    ax1.set_title("Precision and recall per rule")
    ax1.legend(fontsize=8, loc="upper center", ncol=3)
    ax2.bar([x - w / 2 for x in xs], [r[k]["delay_median_days"] or 0 for k in rules], w, label="median")
    ax2.bar([x + w / 2 for x in xs], [r[k]["delay_p90_days"] or 0 for k in rules], w, label="p90")
    ax2.set_xticks(list(xs), rules, rotation=35, ha="right", fontsize=8)
    ax2.set_ylabel("days of event time")
    ax2.set_title("Detection delay")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(figures: dict, out: Path, source: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(report_markdown(figures, source), encoding="utf-8")
    write_chart(figures, out / "evaluation.png")


# -- the command -------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--truth", help="ground-truth JSON Lines file (from entwatch simulate); "
                                        "not needed with --simulate")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--alerts", help="alert messages (JSON Lines) the pipeline published on monitor.alerts")
    source.add_argument("--events", help="SPEC §2 events (JSON Lines): run the worker's processor on them")
    source.add_argument("--simulate", action="store_true", help="simulate a city, then run it the same way")
    source.add_argument("--cases", action="store_true",
                        help="precision per rule from the outcomes analysts recorded in the console "
                             "(confirmed / resolved; the same as entwatch console outcomes)")
    parser.add_argument("--partitions", type=int, default=4,
                        help="with --events/--simulate: partitions the worker's processor spreads the city over "
                             "(default 4, as entwatch up; 1 = one city-wide clock and cohort)")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (with --simulate; default 7)")
    parser.add_argument("--enterprises", type=int,
                        help="city size: with --simulate, how many to simulate (default 2000); with --alerts, "
                             "how many the city had (for false alerts per enterprise-month)")
    parser.add_argument("--days", type=int, default=366, help="simulated days (with --simulate; default 366)")
    parser.add_argument("--start", help="first simulated day, YYYY-MM-DD (default 2024-01-01)")
    parser.add_argument("--electricity-interval", choices=("hour", "day"), default="hour",
                        help="simulated electricity readings (with --simulate; default hour)")
    parser.add_argument("--months", type=float, help="months of event time the alerts cover (with --alerts)")
    parser.add_argument("--tolerance-days", type=int, default=TOLERANCE_DAYS,
                        help=f"how far an alert window may miss the truth window (default {TOLERANCE_DAYS})")
    parser.add_argument("--out", default="evaluation", help="output directory (default ./evaluation)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _read_jsonl(path: Path, what: str) -> list[dict]:
    from streams.cli import UserError

    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of the {what} (JSON Lines)")
    out = []
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise UserError(f"{path}:{number}: not JSON; the {what} file must hold one JSON object a line") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{number}: not a JSON object; the {what} file must hold one object a line")
            out.append(obj)
    return out


def _load(path: Path, what: str, parse, expected: str):
    """Read a JSON Lines file and ``parse`` its objects; a missing field is a one-line error."""
    from streams.cli import UserError

    records = _read_jsonl(path, what)
    try:
        return parse(records)
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: a record lacks or garbles {exc}; expected {expected}") from None


def _truth_from_file(path: Path) -> list[TruthRecord]:
    return _load(path, "ground truth", load_truth, "{uscc, rule, start, end, parameters} as entwatch simulate writes")


def _alerts_from_file(path: Path) -> list[Alert]:
    return _load(path, "alerts", fold_alerts,
                 "SPEC §5 alert messages (alert_id, uscc, rule, window_start, window_end, detected_at)")


def _engine(args) -> str:
    return f"worker's processor ({args.partitions} partitions)"


def command(args) -> int:
    """Score alerts against a ground truth and write the report."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

    from streams.cli import UserError

    began = time.perf_counter()
    out = Path(args.out)
    if args.tolerance_days < 0:
        raise UserError("--tolerance-days must be 0 or more")
    columns = ("[progress.description]{task.description}", BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    if args.simulate:
        from producers.simulator import SimulationConfig, ground_truth

        try:
            config = SimulationConfig(
                enterprises=2000 if args.enterprises is None else args.enterprises, days=args.days, seed=args.seed,
                start=date.fromisoformat(args.start) if args.start else SimulationConfig.start,
                electricity_interval=args.electricity_interval)
        except ValueError as exc:
            raise UserError(f"{exc}; see entwatch evaluate --help") from None
        truth = load_truth(ground_truth(config)) if not args.truth else _truth_from_file(Path(args.truth))
        span = _Span()
        with Progress(*columns, transient=True, disable=args.quiet) as progress:
            task = progress.add_task(f"simulate and detect {config.enterprises:,} enterprises", total=config.days)
            on_day = lambda d: progress.update(task, completed=max(0, d))  # noqa: E731
            messages = detect_pipeline(simulated_raws(config, on_day), span, args.partitions)
        alerts, final = fold_alerts(messages), latest_messages(messages)
        enterprises, months = config.enterprises, span.months
        source = (f"simulated city, seed {config.seed}, {config.enterprises:,} enterprises, {config.days} days from "
                  f"{config.start}, electricity by {config.electricity_interval}, through the {_engine(args)}")
    else:
        if not args.truth:
            raise UserError("give --truth truth.jsonl (the ground truth written by entwatch simulate)")
        truth = _truth_from_file(Path(args.truth))
        if args.events:
            path = Path(args.events)
            if not path.is_file():
                raise UserError(f"{path}: no such file; give the path of a JSON Lines events file")
            span = _Span()
            with Progress(*columns, transient=True, disable=args.quiet) as progress:
                task = progress.add_task(f"detect {path.name}", total=path.stat().st_size)
                on_bytes = lambda done: progress.update(task, completed=done)  # noqa: E731
                messages = detect_pipeline(file_raws(path, on_bytes), span, args.partitions)
            if not span.enterprises:
                raise UserError(f"{path}: no valid event in it; give a file of SPEC §2 events")
            alerts, final = fold_alerts(messages), latest_messages(messages)
            enterprises, months = len(span.enterprises), span.months
            source = f"events {path} through the {_engine(args)} ({span.rejected:,} rejected lines)"
        else:
            if not args.enterprises or args.enterprises < 1:
                raise UserError("with --alerts, give --enterprises N (how many enterprises the city had)")
            if not args.months or args.months <= 0:
                raise UserError("with --alerts, give --months M (how many months of event time the alerts cover)")
            alerts = _alerts_from_file(Path(args.alerts))
            final = latest_messages(orjson.loads(line) for line in Path(args.alerts).read_bytes().splitlines()
                                    if line.strip())
            enterprises, months = args.enterprises, args.months
            source = f"alerts {args.alerts}"
    figures = score(alerts, truth, enterprises, months, args.tolerance_days)
    figures["source"] = source
    write_outputs(figures, out, source)
    (out / "alerts.jsonl").write_bytes(b"".join(orjson.dumps(m, option=orjson.OPT_SORT_KEYS) + b"\n" for m in final))
    o = figures["overall"]
    print(f"{len(alerts):,} alerts against {o['truth']:,} anomalies: precision {_fmt(o['precision'], 3)}, "
          f"recall {_fmt(o['recall'], 3)}, holiday false alerts {figures['holiday_false_alerts']} "
          f"({time.perf_counter() - began:.0f} s)")
    print(f"wrote {out / 'report.md'}, {out / 'evaluation.png'} and {out / 'evaluation.json'}")
    return 0

