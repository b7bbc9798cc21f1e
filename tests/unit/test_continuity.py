"""streams.continuity.Continuity: messages Faust fetched and dropped are read again, in order,
and a rebalance never sends a partition back to its log start."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

from faust.types import TP

from streams import continuity as worker

TOPIC = "enterprise.utility"
A = TP(TOPIC, 0)


class Consumer:
    """The few consumer calls Continuity makes, recording the seeks.

    ``_committed_offset`` is Faust's copy of the group's commits (emptied on revoke, filled
    again by its seek after recovery); ``group`` is what the broker holds.  ``meanwhile``
    runs while a lookup is awaited, to put a rebalance in the middle of it."""

    def __init__(self, position: int = 0):
        self._committed_offset = defaultdict(lambda: None)
        self.group: dict[TP, int] = {}
        self.seeks: list[tuple[TP, int]] = []
        self.gaps: list[tuple[TP, int, int]] = []
        self.at = position
        self.revoked = False
        self.meanwhile = []
        self.failing = False

    def commit(self, tp: TP, offset: int) -> None:
        self.group[tp] = offset
        self._committed_offset[tp] = offset

    async def _lookup(self):
        await asyncio.sleep(0)
        while self.meanwhile:
            self.meanwhile.pop(0)()
        if self.failing:
            raise ConnectionError("coordinator not available")

    async def seek(self, tp, offset):
        self.seeks.append((tp, offset))
        if self.revoked:
            raise RuntimeError(f"{tp} is not assigned")

    async def position(self, tp):
        await self._lookup()
        return self.at

    def assignment(self):
        return {A}

    async def group_committed(self, tps):
        await self._lookup()
        return {tp: self.group.get(tp) for tp in tps}

    async def earliest_offsets(self, *tps):
        await self._lookup()
        return {tp: 0 for tp in tps}

    async def _add_gap(self, tp, first, last):
        self.gaps.append((tp, first, last))


def continuity(consumer: Consumer) -> worker.Continuity:
    app = SimpleNamespace(consumer=consumer, rebalancing=False)
    return worker.Continuity(app, {TOPIC: "utility"}, idle_after=0.0)


def messages(*offsets: int, tp: TP = A) -> list:
    return [SimpleNamespace(tp=tp, offset=o) for o in offsets]


def offsets(batch) -> list[int]:
    return [m.offset for m in batch]


def admit(c: worker.Continuity, *numbers: int) -> list[int]:
    return offsets(asyncio.run(c.admit(messages(*numbers))))


def rebalance(consumer: Consumer, c: worker.Continuity) -> None:
    """Eager rebalance, the partition revoked and assigned to this worker again: Faust empties
    its copy of the commits, then the app's revoke handler runs."""
    consumer._committed_offset.pop(A, None)
    c.revoked({A})


def test_a_batch_that_skips_offsets_is_set_aside_and_the_partition_sought_back():
    consumer = Consumer()
    c = continuity(consumer)
    assert admit(c, 0, 1, 2) == [0, 1, 2]
    assert admit(c, 6, 7) == []  # 3..5 were dropped
    assert consumer.seeks == [(A, 3)]
    assert admit(c, 3, 4, 5, 6, 7) == [3, 4, 5, 6, 7]
    assert c.processed(A) == 7


def test_the_first_batch_is_checked_against_the_committed_offset():
    consumer = Consumer()
    consumer.commit(A, 10)  # the next offset to read
    c = continuity(consumer)
    assert admit(c, 12) == []
    assert consumer.seeks == [(A, 10)]
    assert admit(c, 9, 10, 11) == [10, 11]  # 9 is committed: processed already


def test_messages_before_the_due_offset_are_skipped_not_processed_twice():
    c = continuity(Consumer())
    assert admit(c, 0, 1, 2) == [0, 1, 2]
    assert admit(c, 1, 2, 3, 4) == [3, 4]  # a fetch from before a seek back to the committed offset
    assert c.processed(A) == 4


def test_with_nothing_committed_the_first_batch_must_start_at_the_log_start():
    consumer = Consumer()
    c = continuity(consumer)
    assert admit(c, 5, 6) == []  # 0..4 were dropped before the first commit
    assert consumer.seeks == [(A, 0)]
    assert admit(c, 0, 1, 2, 3, 4, 5, 6) == [0, 1, 2, 3, 4, 5, 6]


def test_a_batch_between_a_revoke_and_fausts_seek_follows_on_from_the_groups_commit():
    """Issue 15: after a rebalance the survivors re-read whole partitions from offset 0.  Faust
    empties its committed offsets on revoke and refills them only in its seek after table
    recovery, but recovery has resumed the flow and a fetch arrives in between."""
    consumer = Consumer()
    consumer.commit(A, 3700)
    c = continuity(consumer)
    assert admit(c, *range(3700, 3729)) == list(range(3700, 3729))
    consumer.commit(A, 3729)
    rebalance(consumer, c)
    assert consumer._committed_offset[A] is None  # Faust's seek has not run yet
    assert admit(c, 3729, 3730) == [3729, 3730]  # the group's commit, asked of the broker
    assert consumer.seeks == []  # not back to the log start


def test_an_answer_asked_for_before_a_revoke_is_not_used_after_it():
    """The idle check asks for the log start of a partition the group never committed; the
    partition is revoked while it waits, another worker commits 3729, the partition comes
    back.  The log start (0) it then hears of belongs to the previous assignment."""
    consumer = Consumer(position=3731)
    c = continuity(consumer)

    def moved_and_back():
        rebalance(consumer, c)
        consumer.group[A] = 3729  # committed by the partition's owner meanwhile

    consumer.meanwhile.append(moved_and_back)
    asyncio.run(c.check_idle())
    assert consumer.seeks == []
    assert admit(c, 3729, 3730) == [3729, 3730]
    assert consumer.seeks == []


def test_a_due_offset_below_the_groups_commit_is_never_used():
    consumer = Consumer()
    c = continuity(consumer)
    c.next[A] = 0  # learned for an earlier assignment, say
    consumer.commit(A, 3729)
    assert c.expected(A) == 3729
    assert admit(c, 3729) == [3729] and consumer.seeks == []


def test_an_idle_worker_whose_position_stays_past_what_it_processed_seeks_back():
    consumer = Consumer(position=50)
    c = continuity(consumer)
    admit(c, 0, 1)
    asyncio.run(c.check_idle())
    assert consumer.seeks == []  # once could be a fetch on its way to the processor
    with c.working():  # a batch in progress: never
        asyncio.run(c.check_idle())
    asyncio.run(c.check_idle())
    assert consumer.seeks == []  # the batch made the first sighting void
    asyncio.run(c.check_idle())
    assert consumer.seeks == [(A, 2)]


def test_an_idle_check_stops_when_a_rebalance_begins_while_it_asks_for_positions():
    consumer = Consumer(position=50)
    c = continuity(consumer)
    admit(c, 0, 1)
    asyncio.run(c.check_idle())
    consumer.meanwhile.append(lambda: rebalance(consumer, c))
    asyncio.run(c.check_idle())
    assert consumer.seeks == []


def test_an_idle_worker_that_processed_nothing_rereads_from_the_log_start():
    consumer = Consumer(position=300)
    c = continuity(consumer)
    asyncio.run(c.check_idle())
    asyncio.run(c.check_idle())
    assert consumer.seeks == [(A, 0)]


def test_a_gap_that_never_fills_is_given_up_after_the_last_reread():
    consumer = Consumer(position=20)
    c = continuity(consumer)
    admit(c, 0)
    for _ in range(worker.MAX_REREADS + 2):  # the first check only takes note
        asyncio.run(c.check_idle())
    assert consumer.seeks == [(A, 1)] * worker.MAX_REREADS
    assert c.expected(A) == 20
    assert consumer.gaps == [(A, 1, 19)]  # so Faust's commits pass offsets 1..19
    assert admit(c, 20) == [20]


def test_a_seek_back_that_fails_is_logged_and_the_batch_goes_on(caplog):
    consumer = Consumer()
    c = continuity(consumer)
    consumer.revoked = True  # taken away by a rebalance while the batch was in hand
    assert admit(c, 4, 5) == []
    assert consumer.seeks == [(A, 0)] and "could not seek back to 0" in caplog.text


def test_when_the_broker_cannot_say_what_was_committed_the_batch_is_processed_as_it_comes(caplog):
    consumer = Consumer()
    consumer.failing = True
    c = continuity(consumer)
    assert admit(c, 3729, 3730) == [3729, 3730]
    assert consumer.seeks == [] and "could not learn the committed offsets" in caplog.text
    consumer.failing = False
    assert admit(c, 3732) == []  # the gap after what it processed is still seen
    assert consumer.seeks == [(A, 3731)]
