"""Every message of an input partition reaches the processor, in order (``Continuity``)."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import faust
from faust.types import TP

from streams import metrics
from streams.seam import add_gap, committed_offset

log = logging.getLogger("entwatch.worker")

MAX_REREADS = 5  # seeks back to the same offset before a partition's gap is given up
IDLE_AFTER = 3.0  # seconds without a batch before Continuity checks consumer positions


class Continuity:
    """Makes sure every message of an input partition reaches the processor, in order.

    Faust's fetch loop drops fetched messages without processing or acking them when their
    consumer generation is stale or its flow control is paused, and the consumer's
    position has by then moved past them; nothing fetches them again until the next
    rebalance.  Seen on Tansu right after a restart: a worker that fetched the backlog
    in that window processed none of it, or skipped a batch in the middle.  So:

    - a batch message past the next offset expected on its partition is set aside (the
      messages before it were dropped) and the partition is sought back to that offset;
    - a worker idle for ``idle_after`` seconds whose consumer position is past the
      offset expected on a partition seeks it back too.

    The expected offset is the last processed + 1, or at first the committed offset (or
    the log start).  Re-reading is safe: every step of a batch is idempotent.  After
    ``MAX_REREADS`` seeks to the same offset (messages deleted by retention meanwhile, say)
    the gap is logged as an error and the partition goes on.
    """

    def __init__(self, app: faust.App, kind_by_topic: dict[str, str], idle_after: float):
        self.app = app
        self.topics = kind_by_topic
        self.idle_after = idle_after
        self.next: dict[TP, int] = {}  # next offset expected per input partition
        self.sought: dict[TP, tuple[int, float, int]] = {}  # offset, when, how many times
        self.busy = False
        self.last_batch = time.monotonic()

    @contextmanager
    def working(self):
        """Around each batch: the idle check leaves a worker alone while it works."""
        self.busy = True
        try:
            yield
        finally:
            self.busy = False
            self.last_batch = time.monotonic()

    def processed(self, tp: TP) -> int | None:
        """The last offset processed on ``tp`` in this assignment (or committed before it)."""
        nxt = self.expected(tp)
        return None if nxt is None else nxt - 1

    def expected(self, tp: TP) -> int | None:
        nxt = self.next.get(tp)
        return nxt if nxt is not None else committed_offset(self.app.consumer, tp)

    async def _know(self, tps) -> None:
        """Make the expected offset of ``tps`` known: with nothing processed or committed
        yet, a partition is read from its log start."""
        unknown = [tp for tp in tps if self.expected(tp) is None]
        if unknown:
            for tp, start in (await self.app.consumer.earliest_offsets(*unknown)).items():
                self.next.setdefault(tp, start)

    async def admit(self, messages: list) -> list:
        """The batch's messages that follow on from what was processed; seeks back where
        messages were dropped before them."""
        await self._know({m.tp for m in messages})
        out, back = [], {}
        for m in messages:
            tp, offset = m.tp, m.offset
            if tp in back:
                continue
            expected = self.expected(tp)
            if expected is not None and offset > expected:
                back[tp] = (expected, offset)
                continue
            out.append(m)
            self.next[tp] = max(offset + 1, self.next.get(tp, 0))
        for tp, (expected, arrived) in back.items():
            await self._seek(tp, expected, arrived, f"the batch went on at offset {arrived}")
        return out

    async def check_idle(self) -> None:
        """Seek back partitions whose consumer position is past what was processed, if the
        worker has had nothing to process for a while."""
        now = time.monotonic()
        if self.busy or now - self.last_batch < self.idle_after or self.app.rebalancing:
            return
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        await self._know(tps)
        for tp in tps:
            expected = self.expected(tp)
            position = await consumer.position(tp)
            if expected is not None and position is not None and position > expected:
                await self._seek(tp, expected, position, f"idle {now - self.last_batch:.0f} s at position {position}")

    async def _seek(self, tp: TP, offset: int, ahead: int, why: str) -> None:
        offset_before, at, tries = self.sought.get(tp, (None, 0.0, 0))
        if offset_before == offset:
            if time.monotonic() - at < self.idle_after:
                return  # already sought there: the messages before it are on their way
            if tries >= MAX_REREADS:  # e.g. deleted by retention meanwhile: go on rather than loop
                log.error("%s[%d]: offsets %d..%d never arrived after %d re-reads; going on from %d",
                          tp.topic, tp.partition, offset, ahead - 1, tries, ahead)
                self.next[tp] = ahead
                self.sought.pop(tp, None)
                await add_gap(self.app.consumer, tp, offset, ahead - 1)  # so commits can pass it
                return
        else:
            tries = 0
        log.warning("%s[%d]: messages from offset %d were fetched but not processed (%s); reading them again",
                    tp.topic, tp.partition, offset, why)
        metrics.REREADS.labels(self.topics[tp.topic]).inc()
        self.sought[tp] = (offset, time.monotonic(), tries + 1)
        try:
            await self.app.consumer.seek(tp, offset)
        except Exception as exc:  # revoked meanwhile: its next owner reads from the committed offset
            log.warning("%s[%d]: could not seek back to %d (%s)", tp.topic, tp.partition, offset, exc)

    def revoked(self, tps) -> None:
        for tp in tps:
            self.next.pop(tp, None)
            self.sought.pop(tp, None)
