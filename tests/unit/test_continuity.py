"""streams.continuity.Continuity: messages Faust fetched and dropped are read again, in order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

from faust.types import TP

from streams import continuity as worker

TOPIC = "enterprise.utility"
A = TP(TOPIC, 0)


class Consumer:
    """The few consumer calls Continuity makes, recording the seeks."""

    def __init__(self, position: int = 0):
        self._committed_offset = defaultdict(lambda: None)
        self.seeks: list[tuple[TP, int]] = []
        self.gaps: list[tuple[TP, int, int]] = []
        self.at = position
        self.revoked = False

    async def seek(self, tp, offset):
        self.seeks.append((tp, offset))
        if self.revoked:
            raise RuntimeError(f"{tp} is not assigned")

    async def position(self, tp):
        return self.at

    def assignment(self):
        return {A}

    async def earliest_offsets(self, *tps):
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


def test_a_batch_that_skips_offsets_is_set_aside_and_the_partition_sought_back():
    consumer = Consumer()
    c = continuity(consumer)
    assert offsets(asyncio.run(c.admit(messages(0, 1, 2)))) == [0, 1, 2]
    assert offsets(asyncio.run(c.admit(messages(6, 7)))) == []  # 3..5 were dropped
    assert consumer.seeks == [(A, 3)]
    assert offsets(asyncio.run(c.admit(messages(3, 4, 5, 6, 7)))) == [3, 4, 5, 6, 7]
    assert c.processed(A) == 7


def test_the_first_batch_is_checked_against_the_committed_offset():
    consumer = Consumer()
    consumer._committed_offset[A] = 10  # the next offset to read
    c = continuity(consumer)
    assert offsets(asyncio.run(c.admit(messages(12)))) == []
    assert consumer.seeks == [(A, 10)]
    assert offsets(asyncio.run(c.admit(messages(9, 10, 11)))) == [9, 10, 11]  # a redelivery is processed again


def test_with_nothing_committed_the_first_batch_must_start_at_the_log_start():
    consumer = Consumer()
    c = continuity(consumer)
    assert offsets(asyncio.run(c.admit(messages(5, 6)))) == []  # 0..4 were dropped before the first commit
    assert consumer.seeks == [(A, 0)]
    assert offsets(asyncio.run(c.admit(messages(0, 1, 2, 3, 4, 5, 6)))) == [0, 1, 2, 3, 4, 5, 6]


def test_an_idle_worker_whose_position_is_past_what_it_processed_seeks_back():
    consumer = Consumer(position=50)
    c = continuity(consumer)
    asyncio.run(c.admit(messages(0, 1)))
    asyncio.run(c.check_idle())
    assert consumer.seeks == [(A, 2)]
    with c.working():  # a batch in progress: never
        asyncio.run(c.check_idle())
    assert consumer.seeks == [(A, 2)]


def test_an_idle_worker_that_processed_nothing_rereads_from_the_log_start():
    consumer = Consumer(position=300)
    asyncio.run(continuity(consumer).check_idle())
    assert consumer.seeks == [(A, 0)]


def test_a_gap_that_never_fills_is_given_up_after_the_last_reread():
    consumer = Consumer(position=20)
    c = continuity(consumer)
    asyncio.run(c.admit(messages(0)))
    for _ in range(worker.MAX_REREADS + 1):
        asyncio.run(c.check_idle())
    assert consumer.seeks == [(A, 1)] * worker.MAX_REREADS
    assert c.expected(A) == 20
    assert consumer.gaps == [(A, 1, 19)]  # so Faust's commits pass offsets 1..19
    assert offsets(asyncio.run(c.admit(messages(20)))) == [20]


def test_a_seek_back_that_fails_is_logged_and_the_batch_goes_on(caplog):
    consumer = Consumer()
    c = continuity(consumer)
    consumer.revoked = True  # taken away by a rebalance while the batch was in hand
    assert offsets(asyncio.run(c.admit(messages(4, 5)))) == []
    assert consumer.seeks == [(A, 0)] and "could not seek back to 0" in caplog.text
