"""Replay / backfill: send SPEC §2 events from a JSON Lines file to their topics.

Each line is validated before it is sent: a bad line is reported with its file and line
number, counted, and never sent; the rest goes on.  The file is streamed, so memory does
not grow with its size.  Each event goes to the topic of its ``kind`` with the USCC as key,
as the original bytes of its line.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import orjson

from streams.contracts import KINDS, Rejection, validate_event
from streams.settings import Settings


@dataclass
class ReplayReport:
    """What a replay did."""

    sent: int = 0
    bad: int = 0
    by_kind: Counter = field(default_factory=Counter)
    bad_reasons: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # first few "file:line: reason" messages
    seconds: float = 0.0

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(self.by_kind.items())) or "none"
        rate = self.sent / self.seconds if self.seconds else 0
        line = f"sent {self.sent:,} events ({kinds}) in {self.seconds:.1f} s ({rate:,.0f}/s)"
        if self.bad:
            reasons = ", ".join(f"{r} {n}" for r, n in self.bad_reasons.most_common())
            line += f"; {self.bad:,} bad lines not sent ({reasons})"
        return line


@dataclass(frozen=True)
class Line:
    """One line of a replay file: judged, with its number."""

    number: int
    raw: bytes
    kind: str | None
    uscc: str | None
    rejection: Rejection | None
    end: int = 0  # byte offset just after this line, for progress


def read_lines(path: Path) -> Iterator[Line]:
    """Judge each non-blank line of a JSON Lines file without keeping it."""
    offset = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            offset += len(raw)
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield Line(number, raw, None, None, Rejection("decode", "invalid_json", str(exc)[:200]), offset)
                continue
            verdict = validate_event(obj)
            if isinstance(verdict, Rejection):
                yield Line(number, raw, None, None, verdict, offset)
            else:
                yield Line(number, raw, verdict.kind, verdict.uscc, None, offset)


MAX_PROBLEMS_SHOWN = 20


def replay(
    path: Path,
    settings: Settings,
    *,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,  # called with bytes read so far
    on_problem: Callable[[str], None] | None = None,
) -> ReplayReport:
    """Send the valid events of ``path``; ``rate`` caps events per second."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers(),
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=settings.max_message_bytes * 2,
        compression_type=None,
    )
    topics = {kind: settings.topic(kind) for kind in KINDS}
    report = ReplayReport()
    started = time.monotonic()
    try:
        for line in read_lines(path):
            if line.rejection is not None:
                report.bad += 1
                report.bad_reasons[line.rejection.reason] += 1
                message = f"{path}:{line.number}: {line.rejection.reason}: {line.rejection.detail}"
                if len(report.problems) < MAX_PROBLEMS_SHOWN:
                    report.problems.append(message)
                    if on_problem:
                        on_problem(message)
            else:
                producer.send(topics[line.kind], key=line.uscc.encode(), value=line.raw)
                report.sent += 1
                report.by_kind[line.kind] += 1
                if rate:
                    ahead = report.sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            if on_progress and line.number % 1000 == 0:
                on_progress(line.end)
        producer.flush()
    finally:
        producer.close()
    report.seconds = time.monotonic() - started
    return report
