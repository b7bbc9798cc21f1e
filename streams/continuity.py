"""Every message of an input partition reaches the processor, in order (``Continuity``)."""

from __future__ import annotations

import asyncio
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
LOOKUP_SECONDS = 10.0  # longest wait for the broker to say what the group committed


class Continuity:
    """Makes sure every message of an input partition reaches the processor, in order.

    Faust's fetch loop drops fetched messages without processing or acking them when their
    consumer generation is stale or its flow control is paused, and the consumer's
    position has by then moved past them; nothing fetches them again until the next
    rebalance.  Seen on Tansu right after a restart: a worker that fetched the backlog
    in that window processed none of it, or skipped a batch in the middle.  So:

    - a batch message past the offset due on its partition is set aside (the messages
      before it were dropped) and the partition is sought back to that offset;
    - a batch message before it (processed already: a fetch from before a seek) is
      skipped rather than processed twice;
    - a worker idle for ``idle_after`` seconds whose consumer position stays past the
      offset due on a partition for two checks in a row seeks it back too (one check could
      catch a fetch on its way to the processor).

    The offset due (``expected``) is the last processed + 1 in this assignment, or what
    the group committed, whichever is higher; the log start only if the group never
    committed on the partition.  What the group committed is Faust's copy when it has one,
    otherwise asked of the broker: Faust empties its copy when partitions are revoked and
    refills it only in its seek after table recovery, and the worker fetches (and used to
    take the log start as due) in between.  Answers that arrive after a revoke are
    dropped: they belong to the previous assignment.

    Re-reading is safe: every step of a batch is idempotent.  After ``MAX_REREADS`` seeks to
    the same offset (messages deleted by retention meanwhile, say) the gap is logged as an
    error and the partition goes on.
    """

    def __init__(self, app: faust.App, kind_by_topic: dict[str, str], idle_after: float):
        self.app = app
        self.topics = kind_by_topic
        self.idle_after = idle_after
        self.next: dict[TP, int] = {}  # next offset due per input partition, in this assignment
        self.sought: dict[TP, tuple[int, float, int]] = {}  # offset, when, how many times
        self.suspect: dict[TP, int] = {}  # idle check: consumer position past the due offset last time
        self.assignment = 0  # counts revokes: an answer asked for before one is stale
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
        """The next offset due on ``tp`` (None: not known yet).

        Never below Faust's committed offset: a due offset learned for an earlier
        assignment cannot send the partition back over what the group has committed."""
        nxt, committed = self.next.get(tp), committed_offset(self.app.consumer, tp)
        if nxt is None or committed is None:
            return committed if nxt is None else nxt
        return max(nxt, committed)

    async def _know(self, tps) -> None:
        """Learn the offset due on ``tps`` where it is not known: what the group committed,
        as the broker has it, or the log start where it never committed."""
        unknown = [tp for tp in tps if self.expected(tp) is None]
        if not unknown:
            return
        assignment, consumer = self.assignment, self.app.consumer
        try:
            due = await asyncio.wait_for(consumer.group_committed(unknown), LOOKUP_SECONDS)
            never = [tp for tp in unknown if due.get(tp) is None]
            if never:
                due.update(await asyncio.wait_for(consumer.earliest_offsets(*never), LOOKUP_SECONDS))
        except Exception as exc:  # broker busy or coordinator moving: ask again at the next batch
            log.warning("could not learn the committed offsets of %d partitions (%s: %s); their fetches are "
                        "processed as they come", len(unknown), exc.__class__.__name__, exc)
            return
        if self.assignment != assignment:
            return  # revoked meanwhile: these offsets were asked for the previous assignment
        for tp in unknown:
            if due.get(tp) is not None:
                self.next.setdefault(tp, due[tp])

    async def admit(self, messages: list) -> list:
        """The batch's messages that follow on from what was processed; seeks back where
        messages were dropped before them, skips those processed already."""
        await self._know({m.tp for m in messages})
        out, back = [], {}
        for m in messages:
            tp, offset = m.tp, m.offset
            if tp in back:
                continue
            expected = self.expected(tp)
            if expected is not None and offset != expected:
                if offset > expected:
                    back[tp] = (expected, offset)
                continue  # before it: processed already (a fetch from before a seek)
            out.append(m)
            self.next[tp] = offset + 1
        for tp, (expected, arrived) in back.items():
            await self._seek(tp, expected, arrived, f"the batch went on at offset {arrived}")
        return out

    async def check_idle(self) -> None:
        """Seek back partitions whose consumer position stays past the offset due, if the
        worker has had nothing to process for a while."""
        now = time.monotonic()
        if self.busy or now - self.last_batch < self.idle_after or self.app.rebalancing:
            self.suspect.clear()
            return
        consumer, assignment = self.app.consumer, self.assignment
        tps = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        await self._know(tps)
        for tp in tps:
            position = await consumer.position(tp)
            if self.busy or self.assignment != assignment or self.app.rebalancing:
                return  # a batch or a rebalance began meanwhile
            expected = self.expected(tp)
            if expected is None or position is None or position <= expected:
                self.suspect.pop(tp, None)
            elif self.suspect.get(tp) != position:
                self.suspect[tp] = position  # maybe a fetch on its way to the processor: look again
            else:
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
                self.suspect.pop(tp, None)
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
        """Forget what was known of ``tps``: their next owner starts from the group's commit."""
        self.assignment += 1
        for tp in tps:
            self.next.pop(tp, None)
            self.sought.pop(tp, None)
            self.suspect.pop(tp, None)
