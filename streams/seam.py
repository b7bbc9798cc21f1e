"""Every use of a private member of Faust, mode or aiokafka, in one module.

entwatch pins ``faust-streaming`` exactly (pyproject.toml) and ``tests/unit/test_seam.py``
checks that each member named in ``PRIVATE_MEMBERS`` still exists with the signature used
here, so an upgrade fails in CI, not at the first rebalance.  Everything else in
``streams/`` uses public API only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from contextlib import asynccontextmanager, contextmanager

import faust
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as faust_kafka
from mode.utils.futures import notify

from streams.offsets import fetched_ends

log = logging.getLogger("entwatch.worker")

# (owner, member): what this module relies on.  Checked by tests/unit/test_seam.py.
PRIVATE_MEMBERS = (
    ("faust.transport.consumer:Consumer", "_drain_messages"),
    ("faust.transport.consumer:ThreadDelegateConsumer", "_new_consumer_thread"),
    ("faust.transport.consumer:Consumer", "_add_gap"),
    ("faust.transport.consumer:Consumer", "_read_offset"),
    ("faust.transport.consumer:Consumer", "_unacked_messages"),
    ("faust.transport.consumer:Consumer", "_waiting_for_ack"),
    ("faust.transport.consumer:Consumer", "_committed_offset"),
    ("faust.transport.consumer:Consumer", "_commit_fut"),
    ("mode:Service", "_stopped"),
    ("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "_create_worker_consumer"),
    ("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "_highwaters"),
    ("faust.app.base:App", "_new_transport"),
    ("faust.streams", "_current_event"),
    ("aiokafka.consumer.consumer:AIOKafkaConsumer", "_fetch_max_wait_ms"),
    ("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "_ensure_consumer"),
    ("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "_consumer"),
    ("aiokafka.consumer.consumer:AIOKafkaConsumer", "_coordinator"),
    ("aiokafka.consumer.group_coordinator:GroupCoordinator", "_maybe_leave_group"),
    ("aiokafka.consumer.group_coordinator:GroupCoordinator", "_group_instance_id"),
    ("aiokafka.consumer.group_coordinator:GroupCoordinator", "_send_req"),
)


def committed_offset(consumer, tp) -> int | None:
    """The next offset to read of ``tp`` as the group last committed it (None if unknown)."""
    return consumer._committed_offset.get(tp)


async def add_gap(consumer, tp, first: int, last: int) -> None:
    """Let Faust's commits pass offsets ``first..last`` that will never be processed."""
    await consumer._add_gap(tp, first, last)


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with:

    - the fetch wait from the settings: Faust hard-codes 1,500 ms, which a caught-up
      worker waits on every fetch that finds nothing new (the broker answers a fetch as
      soon as data arrives, so a shorter wait costs nothing under load);
    - end offsets for table recovery as fetches report them (``streams.offsets``);
    - a LeaveGroup on stop in generation 0 too (``leave_in_every_generation``);
    - the group's committed offsets asked of the broker (``group_committed``)."""

    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read by the fetcher it starts
        return consumer

    async def _highwaters(self, partitions):
        return await fetched_ends(self.app.bootstrap, await super()._highwaters(partitions),
                                  security=self.app.kafka_security)

    async def on_start(self) -> None:
        await super().on_start()
        if isinstance(self._consumer._coordinator, GroupCoordinator):  # not a client-only app's
            leave_in_every_generation(self._consumer._coordinator)

    async def group_committed(self, tps) -> dict:
        """The next offset to read of each of ``tps`` as the group committed it, asked of
        the broker (None: never committed)."""
        return await self.call_thread(self._group_committed, list(tps))

    async def _group_committed(self, tps) -> dict:
        consumer = self._ensure_consumer()
        return {tp: await consumer.committed(faust_kafka.ensure_aiokafka_TP(tp)) for tp in tps}


def leave_in_every_generation(coordinator) -> None:
    """Make a stopping consumer leave its group in generation 0 too.

    aiokafka sends LeaveGroup only when its generation is above 0, as Kafka numbers
    generations from 1; Tansu numbers the first one 0, so a worker stopped before any
    rebalance left nothing behind and its partitions waited for the session timeout
    (11 s for 1.6 s of shutdown, issue 15).  Static members (``group_instance_id``) are
    left alone: they keep their place in the group on purpose."""
    leave = coordinator._maybe_leave_group

    async def maybe_leave_group():
        if coordinator.generation != 0 or coordinator._group_instance_id is not None:
            return await leave()
        try:
            await coordinator._send_req(LeaveGroupRequest(coordinator.group_id, coordinator.member_id))
        except KafkaError as exc:
            log.warning("LeaveGroup request failed: %s", exc)
        else:
            log.info("LeaveGroup request succeeded (generation 0)")
        coordinator.reset_generation()

    coordinator._maybe_leave_group = maybe_leave_group


class _Consumer(faust_kafka.Consumer):
    """Faust's consumer, except that the input topics' messages of each fetch go to the
    app's ``on_batch`` together, instead of one by one through a stream.

    Faust's per-message delivery (a task pair per message in the fetch loop, an event, a
    queue, the stream's iteration) costs 140-170 µs a message on a CI machine, more than
    entwatch's own work on it (docs/BENCHMARKS.md, pipeline).  Here a fetch costs one call.
    Everything else -- group membership, table recovery and changelogs, commits of acked
    offsets, the other topics' delivery -- stays Faust's.
    """

    def _new_consumer_thread(self):
        self.consumer_thread = _ConsumerThread(self, loop=self.loop, beacon=self.beacon)
        return self.consumer_thread

    async def _drain_messages(self, fetcher) -> None:  # the fetch loop of faust.transport.consumer.Consumer
        app = self.app
        if app.on_batch is None:
            return await super()._drain_messages(fetcher)
        read_offset = self._read_offset
        unacked = self._unacked_messages
        inbound = app.monitor.stream_inbound_time  # Faust's "stream stuck" check reads it
        commits = PromptCommits(self.commit_unless_stopping, self.add_future)  # Faust's timer stays as a backstop
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                await self.sleep(0)
                if self.should_stop:
                    break
                batch = []
                generation = app.consumer_generation_id
                async for tp, message in self.getmany(timeout=1.0):
                    if tp.topic in app.input_topics:
                        # Not Faust's read-offset rule: Continuity decides what follows on.
                        batch.append(message)
                        unacked.add(message)  # from now on a rebalance waits for it
                        continue
                    offset, last = message.offset, read_offset[tp]
                    if last is not None and offset < last:
                        continue  # already read (Faust's rule): a fetch from before a seek
                    if last and offset - last > 1 and app.topics.acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
                if not batch:
                    continue
                if not self.flow_active or app.consumer_generation_id != generation:
                    # A rebalance began meanwhile: leave the batch unprocessed and unacked;
                    # the partitions' next owner (or Continuity) reads it again.
                    self.forget(batch)
                    continue
                now = time.monotonic()
                for m in batch:
                    inbound[m.tp] = now
                try:
                    await app.on_batch(batch)
                except Exception:
                    log.exception("processing a batch of %d messages failed; the worker stops and its "
                                  "uncommitted messages are read again when it restarts", len(batch))
                    raise
                commits.after_batch()
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise

    async def commit_unless_stopping(self) -> bool:
        """Faust's commit, unless the worker is stopping: its own stop commits what was acked,
        and a commit started after that would find the consumer thread gone."""
        return False if self.should_stop else await self.commit()

    async def on_partitions_revoked(self, revoked) -> None:
        """Commit what was acked, then let Faust revoke.

        Faust forgets the acked offsets of revoked partitions first and commits after, so
        every rebalance (eager: all partitions) re-processed whatever had been acked since
        the last periodic commit; on Tansu the next owner, often this same worker, then
        found its fetch position past the group's commit (issue 15)."""
        if revoked and self.assignment() and not await self.commit():
            await self.commit()  # the first only waited for a commit in flight, of older offsets
        await super().on_partitions_revoked(revoked)

    async def perform_seek(self) -> None:
        """Faust's seek of every partition to the group's commit (after each rebalance), and
        the input partitions the group never committed to their log start.

        Faust leaves those where the consumer stands, and a fetch that spanned the
        rebalance may have moved it past messages the fetch loop then dropped (the
        rebalance began meanwhile): on a sparse topic they waited for Continuity.

        No commit runs meanwhile: Faust reads the group's commits, then overwrites its own
        copy with them, so a batch (fetched during table recovery) committed in between was
        undone in that copy and the consumer sought back over it; the lag gauge then stayed
        at the batch's size (500 messages, in 1 of 8 runs of the scale-in test)."""
        async with self.no_commits():
            await super().perform_seek()
        fresh = [tp for tp in self.assignment()
                 if tp.topic in self.app.input_topics and self._committed_offset.get(tp) is None]
        if not fresh:
            return
        try:
            for tp, start in (await self.earliest_offsets(*fresh)).items():
                await self.seek(tp, start)
        except Exception as exc:  # revoked meanwhile, or the broker busy: Continuity re-reads if need be
            log.warning("could not seek %d uncommitted input partitions to their log start (%s)", len(fresh), exc)

    @asynccontextmanager
    async def no_commits(self):
        """Hold commits off: one in flight lands first; one started meanwhile (Faust's timer's,
        a batch's) waits and commits nothing (Faust's rule for a commit already running)."""
        while (running := self._commit_fut) is not None:
            await asyncio.wait({running})
        self._commit_fut = held = asyncio.Future()
        try:
            yield
        finally:
            self._commit_fut = None
            notify(held)

    async def group_committed(self, tps) -> dict:
        """The next offset to read of each of ``tps`` as the group committed it on the
        broker (None: never committed); Faust's own copy is empty during a rebalance."""
        return await self.consumer_thread.group_committed(tps)

    def forget(self, messages) -> None:
        """No longer wait for ``messages`` (not processed; to be read again), and wake a
        rebalance that waits for the unacked ones."""
        self._unacked_messages.difference_update(messages)
        notify(self._waiting_for_ack)


class PromptCommits:
    """Commit what a batch acked as soon as it is done, not on the next tick of a timer.

    A worker catching up after a rebalance processes seconds of the stream in one batch
    (1,600 messages in 0.2 s on a 2-core machine); on Faust's timer alone (1 s) one killed
    then had processed 1,460 messages since its last commit, all done again by its
    successor (1.18 x the stream in the scale-in test; issue 15).  At most one commit runs
    at a time; a batch that ends while one runs gets one more after it.  The price: a
    commit request per batch instead of one a second.

    >>> async def demo():
    ...     acked, committed = [], []
    ...     async def commit():  # Faust's: commits what is acked when it starts
    ...         upto = list(acked)
    ...         await asyncio.sleep(0.01)  # the broker's answer
    ...         committed.append(upto)
    ...         return True
    ...     commits = PromptCommits(commit, asyncio.ensure_future)
    ...     acked.append(1); commits.after_batch()
    ...     await asyncio.sleep(0)  # the commit of batch 1 is on its way
    ...     acked.append(2); commits.after_batch()
    ...     acked.append(3); commits.after_batch()
    ...     await commits.running
    ...     return committed
    >>> asyncio.run(demo())  # batches 2 and 3 ended during the first commit: one more
    [[1], [1, 2, 3]]
    """

    def __init__(self, commit, spawn):
        self.commit = commit  # async () -> bool: Faust's commit (False: it only waited for one in flight)
        self.spawn = spawn  # runs a coroutine beside the caller; returns its future
        self.wanted = False
        self.running: asyncio.Future | None = None

    def after_batch(self) -> None:
        """A batch was acked: commit it now, or right after the commit that is running."""
        self.wanted = True
        if self.running is None or self.running.done():
            self.running = self.spawn(self._commit_while_wanted())

    async def _commit_while_wanted(self) -> None:
        while self.wanted:
            self.wanted = False
            if not await self.commit():
                await self.commit()  # the first only waited for a commit in flight (the timer's), of older acks


class _Transport(faust_kafka.Transport):
    Consumer = _Consumer


class WorkerApp(faust.App):
    """A Faust app whose worker consumer uses ``fetch_max_wait_ms`` and true end offsets,
    and hands each fetch of ``input_topics`` to ``on_batch`` (``_Consumer``)."""

    fetch_max_wait_ms = 1500
    bootstrap = "127.0.0.1:9092"
    kafka_security: dict = {}  # the broker's TLS/SASL options for entwatch's own clients (Settings.aiokafka_security)
    input_topics: frozenset[str] = frozenset()
    on_batch = None  # async (list of Faust messages of input_topics) -> None

    def _new_transport(self):
        return _Transport(self.conf.broker_consumer, self)


@contextmanager
def as_current(event):
    """Make ``event`` Faust's current event, so table writes go to its partition's changelog
    (None: no current event)."""
    token = _current_event.set(None if event is None else weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
