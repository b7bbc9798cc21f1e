"""The private members of Faust and aiokafka that streams/seam.py relies on still exist,
with the signatures it calls them with: an upgrade fails here, not at the first rebalance."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
from pathlib import Path

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
