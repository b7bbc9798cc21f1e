"""Replay / backfill: send SPEC §2 events from a JSON Lines or CSV file to their topics.

Each line (or CSV row) is validated before it is sent, exactly as the worker validates a
message: a bad one is reported with its file and line number, counted, and never sent; the
rest goes on.  The file is streamed, so memory does not grow with its size.  Each event goes
to the topic of its ``kind`` with the USCC as key; a JSON Lines event is sent as the
original bytes of its line.

``send_lines`` is the one way events reach Kafka from ``producers/``: replay uses it, and so
does the simulator's live mode (``simulated_lines``), which paces the city's deliveries at
K times real time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from streams.contracts import KINDS, Rejection, validate_event
from streams.settings import Settings

MAX_PROBLEMS_SHOWN = 20
DEFAULT_MAX_BYTES = 4 * 1024 * 1024

MAX_IN_FLIGHT = 20_000  # messages handed to the producer and not yet acknowledged

@dataclass
class ReplayReport:
    """What a replay did."""

    sent: int = 0
    bad: int = 0
    by_kind: Counter = field(default_factory=Counter)
    bad_reasons: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # first few "file:line: reason" messages
    seconds: float = 0.0
    unit: str = "lines"  # what ``bad`` counts: lines (JSON Lines) or rows (CSV)

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(self.by_kind.items())) or "none"
        rate = self.sent / self.seconds if self.seconds else 0
        line = f"sent {self.sent:,} events ({kinds}) in {self.seconds:.1f} s ({rate:,.0f}/s)"
        if self.bad:
            reasons = ", ".join(f"{r} {n}" for r, n in self.bad_reasons.most_common())
            line += f"; {self.bad:,} bad {self.unit} not sent ({reasons})"
        return line


@dataclass(frozen=True)
class Line:
    """One unit of input, judged: a JSON Lines line, a group of CSV rows, or a simulated delivery."""

    number: int
    raw: bytes
    kind: str | None
    uscc: str | None
    rejection: Rejection | None
    end: int = 0                # byte offset just after this input, for progress
    until: int = 0              # last line number when the unit spans several lines (CSV groups)
    rows: int = 1               # input rows it stands for (counted as bad rows when rejected)
    at: datetime | None = None  # when it is delivered in event time (simulator), for pacing

    def where(self, path) -> str:
        """``file:line`` or ``file:first-last``."""
        if self.until and self.until != self.number:
            return f"{path}:{self.number}-{self.until}"
        return f"{path}:{self.number}"


def judge(number: int, raw: bytes, end: int, max_bytes: int = DEFAULT_MAX_BYTES) -> Line:
    """Decode and validate one JSON Lines line as the worker would (``streams.contracts``)."""
    if len(raw) > max_bytes:
        return Line(number, raw, None, None, Rejection("decode", "oversize",
                                                       f"{len(raw)} bytes exceeds the limit of {max_bytes}"), end)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Line(number, raw, None, None, Rejection("decode", "invalid_json", str(exc)[:200]), end)
    verdict = validate_event(obj)
    if isinstance(verdict, Rejection):
        return Line(number, raw, None, None, verdict, end)
    return Line(number, raw, verdict.kind, verdict.uscc, None, end)


def read_lines(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Line]:
    """Judge each non-blank line of a JSON Lines file without keeping it."""
    offset = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            offset += len(raw)
            raw = raw.strip()
            if raw:
                yield judge(number, raw, offset, max_bytes)


def simulated_lines(config) -> Iterator[Line]:
    """The simulated city's deliveries as lines to send, with their delivery time.

    Malformed events are sent too (the worker dead-letters them), on the topic and with the key
    of the event they were made from.  Bytes are those ``write_files`` writes.
    """
    from producers.simulator import deliveries

    kind = uscc = None
    for number, (at, obj, tag) in enumerate(deliveries(config), 1):
        if tag != "malformed":
            kind, uscc = obj["kind"], obj["uscc"]
        raw = obj.encode() if isinstance(obj, str) else orjson.dumps(obj)
        yield Line(number, raw, kind, uscc, None, at=at)


def replay(
    path: Path,
    settings: Settings,
    *,
    mapping=None,
    rate: float | None = None,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,  # called with bytes read so far
    on_problem: Callable[[str], None] | None = None,
) -> ReplayReport:
    """Send the valid events of ``path`` (JSON Lines, or CSV with a ``producers.mapping.Mapping``).

    ``rate`` caps events per second; ``dry_run`` validates and reports without sending.
    """
    if mapping is not None:
        from producers.mapping import read_csv

        lines, unit = read_csv(path, mapping, max_bytes=settings.max_message_bytes), "rows"
    else:
        lines, unit = read_lines(path, settings.max_message_bytes), "lines"
    return send_lines(lines, settings, where=path, rate=rate, dry_run=dry_run, unit=unit,
                      on_progress=on_progress, on_problem=on_problem)


def send_lines(
    lines: Iterable[Line],
    settings: Settings,
    *,
    where: object = "input",
    rate: float | None = None,
    speed: float | None = None,
    paced_from: datetime | None = None,
    dry_run: bool = False,
    unit: str = "lines",
    stop: threading.Event | None = None,
    on_progress: Callable[[Line], None] | Callable[[int], None] | None = None,
    on_problem: Callable[[str], None] | None = None,
    progress_every: int = 1000,
) -> ReplayReport:
    """Send the valid lines to the topics of their kinds (key = USCC); count and report the rest.

    Pacing: ``rate`` caps events per second; ``speed`` sends lines that carry a delivery time
    (``Line.at``) at ``speed`` times real time, those before ``paced_from`` at full speed.
    ``stop`` ends the sending early (what was handed to the producer is still flushed).
    ``on_progress`` gets the bytes read so far (file input) or the last line (``at`` set).
    """
    return asyncio.run(_send(lines, settings, where, rate, speed, paced_from, dry_run, unit, stop,
                             on_progress, on_problem, progress_every))


async def _send(lines, settings, where, rate, speed, paced_from, dry_run, unit, stop, on_progress, on_problem,
                progress_every) -> ReplayReport:
    producer = None if dry_run else await _start_producer(settings)
    topics = {kind: settings.topic(kind) for kind in KINDS}
    report = ReplayReport(unit=unit)
    in_flight: deque = deque()   # delivery futures not yet seen done (at most MAX_IN_FLIGHT)

    def check_delivered() -> None:
        while in_flight and in_flight[0].done():
            in_flight.popleft().result()    # raises what the broker said

    started = time.monotonic()
    anchor: tuple[float, float] | None = None   # (event-time seconds, monotonic) of the first paced line
    count = 0
    try:
        for line in lines:
            count += 1
            if line.rejection is not None:
                report.bad += line.rows
                report.bad_reasons[line.rejection.reason] += line.rows
                if len(report.problems) < MAX_PROBLEMS_SHOWN:
                    message = f"{line.where(where)}: {line.rejection.reason}: {line.rejection.detail}"
                    report.problems.append(message)
                    if on_problem:
                        on_problem(message)
            else:
                if speed and line.at is not None and (paced_from is None or line.at >= paced_from):
                    stamp = line.at.timestamp()
                    if anchor is None:
                        anchor = (stamp, time.monotonic())
                    ahead = anchor[1] + (stamp - anchor[0]) / speed - time.monotonic()
                    if ahead > 0.002:
                        await asyncio.sleep(ahead)
                if producer is not None:
                    in_flight.append(await producer.send(topics[line.kind], line.raw, key=line.uscc.encode()))
                    if len(in_flight) > MAX_IN_FLIGHT:  # a slow broker: wait instead of buffering more
                        await in_flight.popleft()
                report.sent += 1
                report.by_kind[line.kind] += 1
                if rate:
                    ahead = report.sent / rate - (time.monotonic() - started)
                    if ahead > 0.002:
                        await asyncio.sleep(ahead)
            if count % progress_every == 0:
                check_delivered()
                if on_progress:
                    on_progress(line if line.at is not None else line.end)
                if stop is not None and stop.is_set():
                    break
                await asyncio.sleep(0)   # let the producer's sender run
        if producer is not None:
            await producer.flush()
            while in_flight:
                await in_flight.popleft()
    finally:
        if producer is not None:
            await producer.stop()
    report.seconds = time.monotonic() - started
    return report


async def _start_producer(settings: Settings):
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers(),
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=settings.max_message_bytes * 2,
        request_timeout_ms=30_000,
        **settings.aiokafka_security(),  # SASL/TLS from ENTWATCH_BROKER_* (streams/settings.py)
    )
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer
