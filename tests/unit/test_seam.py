"""The private members of Faust and aiokafka that streams/seam.py relies on still exist,
with the signatures it calls them with: an upgrade fails here, not at the first rebalance."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import aiokafka
import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.protocol.group import LeaveGroupRequest
from faust.transport.consumer import Consumer as FaustConsumer

from streams import seam

ROOT = Path(__file__).resolve().parents[2]
SIGNATURES = {  # member -> the parameters the seam passes
    "_drain_messages": ["self", "fetcher"],
    "_add_gap": ["self", "tp", "offset_from", "offset_to"],
    "_new_consumer_thread": ["self"],
    "_create_worker_consumer": ["self", "transport"],
    "_highwaters": ["self", "partitions"],
    "_new_transport": ["self"],
    "_ensure_consumer": ["self"],
    "_maybe_leave_group": ["self"],
    "_send_req": ["self", "request"],
}


def owner(path: str):
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, name) if name else obj


def test_every_private_member_the_seam_uses_exists_with_the_expected_signature():
    for path, member in seam.PRIVATE_MEMBERS:
        cls = owner(path)
        if member.startswith("_") and not hasattr(cls, member):
            # instance attributes are set in __init__: look for them there
            source = inspect.getsource(cls.__init__) if inspect.isclass(cls) else ""
            assert f"self.{member}" in source, f"{path}.{member} is gone"
            continue
        if member in SIGNATURES:
            params = list(inspect.signature(getattr(cls, member)).parameters)
            assert params[:len(SIGNATURES[member])] == SIGNATURES[member], (path, member, params)


def test_the_versions_the_seam_was_written_for_are_pinned_exactly():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"faust-streaming=={faust.__version__}"' in pyproject
    assert f'"aiokafka=={aiokafka.__version__}"' in pyproject


def test_no_other_module_of_streams_touches_a_private_member_of_faust_or_aiokafka():
    names = "|".join(re.escape(m) for _, m in seam.PRIVATE_MEMBERS)
    pattern = re.compile(rf"\.({names})\b")
    offenders = [p.name for p in (ROOT / "streams").glob("*.py")
                 if p.name != "seam.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_the_fetch_wait_attribute_is_set_on_aiokafkas_consumer():
    assert "_fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.__init__)


def test_the_methods_the_seam_overrides_keep_their_signatures():
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert list(inspect.signature(FaustConsumer.on_partitions_revoked).parameters) == ["self", "revoked"]
    assert list(inspect.signature(FaustConsumer.perform_seek).parameters) == ["self"]
    assert list(inspect.signature(AIOKafkaConsumerThread.on_start).parameters) == ["self"]


def test_faust_still_forgets_acked_offsets_before_it_commits_on_revoke():
    """Why the seam commits first: if Faust ever commits before it forgets, drop the override."""
    source = inspect.getsource(FaustConsumer.on_partitions_revoked)
    assert source.index("self._acked.pop") < source.index("self._on_partitions_revoked")


class Coordinator:
    """What leave_in_every_generation touches of aiokafka's GroupCoordinator."""

    def __init__(self, generation: int, instance: str | None = None):
        self.generation, self._group_instance_id = generation, instance
        self.group_id, self.member_id = "entwatch", "faust-1"
        self.sent, self.left_by_aiokafka = [], False

    async def _maybe_leave_group(self):
        self.left_by_aiokafka = True

    async def _send_req(self, request):
        self.sent.append(request)

    def reset_generation(self):
        self.generation, self.member_id = -1, ""


def test_a_consumer_in_tansus_generation_0_leaves_its_group_on_stop():
    first = Coordinator(generation=0)
    seam.leave_in_every_generation(first)
    asyncio.run(first._maybe_leave_group())
    assert [type(r) for r in first.sent] == [LeaveGroupRequest] and not first.left_by_aiokafka
    assert (first.generation, first.member_id) == (-1, "")
    for later in (Coordinator(generation=3), Coordinator(generation=0, instance="worker-1")):
        seam.leave_in_every_generation(later)
        asyncio.run(later._maybe_leave_group())
        assert later.left_by_aiokafka and later.sent == []  # aiokafka's own rule: leave, or stay (static)


class Commits:
    """Faust's commit as PromptCommits sees it: what was acked when it started reaches the
    broker a moment later; False when it only waited for a commit already in flight."""

    def __init__(self, waits_first: int = 0):
        self.acked, self.committed, self.waits_first = [], [], waits_first

    async def commit(self) -> bool:
        if self.waits_first:
            self.waits_first -= 1
            await asyncio.sleep(0.01)
            return False
        upto = list(self.acked)
        await asyncio.sleep(0.01)
        self.committed.append(upto)
        return True


def test_each_batch_is_committed_once_it_is_done_without_waiting_for_the_timer():
    async def run():
        faust_ = Commits()
        commits = seam.PromptCommits(faust_.commit, asyncio.ensure_future)
        for batch in (1, 2):
            faust_.acked.append(batch)
            commits.after_batch()
            await commits.running
        return faust_.committed

    assert asyncio.run(run()) == [[1], [1, 2]]


def test_batches_that_end_during_a_commit_get_one_more_commit_after_it():
    async def run():
        faust_ = Commits()
        commits = seam.PromptCommits(faust_.commit, asyncio.ensure_future)
        faust_.acked.append(1)
        commits.after_batch()
        await asyncio.sleep(0)  # batch 1's commit is on its way
        for batch in (2, 3):
            faust_.acked.append(batch)
            commits.after_batch()
        await commits.running
        return faust_.committed

    assert asyncio.run(run()) == [[1], [1, 2, 3]]


def test_a_commit_that_only_waited_for_the_timers_commit_is_made_again():
    async def run():
        faust_ = Commits(waits_first=1)  # the timer's commit, of older acks, was in flight
        commits = seam.PromptCommits(faust_.commit, asyncio.ensure_future)
        faust_.acked.append(1)
        commits.after_batch()
        await commits.running
        return faust_.committed

    assert asyncio.run(run()) == [[1]]


class Seeking:
    """Faust's own commit() beside the seam's no_commits(), around a stand-in for the commit
    itself (what it does is logged)."""

    commit = FaustConsumer.commit
    maybe_wait_for_commit_to_finish = FaustConsumer.maybe_wait_for_commit_to_finish
    no_commits = seam._Consumer.no_commits
    _commit_fut = None

    def __init__(self):
        self.app, self.loop, self.log = SimpleNamespace(client_only=False), asyncio.get_running_loop(), []

    async def force_commit(self, topics=None, start_new_transaction=True) -> bool:
        self.log.append("commit begins")
        await asyncio.sleep(0.01)
        self.log.append("commit lands")
        return True


def test_no_commit_runs_while_faust_seeks_to_the_groups_commits():
    """A commit in flight lands before the seek reads the group's commits; one started
    during the seek (a batch's, the timer's) commits nothing, as with any commit in flight."""
    async def run():
        consumer = Seeking()
        in_flight = asyncio.ensure_future(consumer.commit())
        await asyncio.sleep(0)
        async with consumer.no_commits():
            consumer.log.append("seek begins")
            during = asyncio.ensure_future(consumer.commit())
            await asyncio.sleep(0.02)
            consumer.log.append("seek ends")
        await in_flight
        after = await consumer.commit()
        return consumer.log, await during, after

    log, during, after = asyncio.run(run())
    assert log == ["commit begins", "commit lands", "seek begins", "seek ends", "commit begins", "commit lands"]
    assert (during, after) == (False, True)
