"""The private members of Faust and aiokafka that streams/seam.py relies on still exist,
with the signatures it calls them with: an upgrade fails here, not at the first rebalance."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import aiokafka
import faust
from aiokafka import AIOKafkaConsumer

from streams import seam

ROOT = Path(__file__).resolve().parents[2]
SIGNATURES = {  # member -> the parameters the seam passes
    "_drain_messages": ["self", "fetcher"],
    "_add_gap": ["self", "tp", "offset_from", "offset_to"],
    "_new_consumer_thread": ["self"],
    "_create_worker_consumer": ["self", "transport"],
    "_highwaters": ["self", "partitions"],
    "_new_transport": ["self"],
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
