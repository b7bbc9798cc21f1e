"""The end of a file (``entwatch evaluate``): every day before the latest event's is closed,
so returns filed after the last meter upload are judged too; without ``flush`` (a worker,
whose input never ends) they wait for readings that cover their day."""

from __future__ import annotations

from datetime import date, datetime

import orjson

from producers.simulator import AnomalyRates, SimulationConfig, generate
from streams.pipeline import replay_in_process


def alerts(lines: list[bytes], flush: bool) -> dict[str, dict]:
    return {p.body["alert_id"]: p.body for r in replay_in_process(lines, 4, flush=flush) for p in r.alerts}


def test_returns_filed_after_the_last_reading_are_judged_at_the_end_of_a_file():
    rates = AnomalyRates(**{name: 0.08 for name in AnomalyRates.__dataclass_fields__})
    config = SimulationConfig(enterprises=30, days=200, seed=5, start=date(2024, 1, 1), rates=rates,
                              electricity_interval="day")  # ends 18 July; June's returns come in July
    objects = [o for o in generate(config) if isinstance(o, dict)]
    lines = [orjson.dumps(o) for o in objects]
    last_reading = max(r["end"] for o in objects if o["kind"] == "utility" for r in o["readings"])

    streaming, whole = alerts(lines, flush=False), alerts(lines, flush=True)
    assert set(streaming) <= set(whole)
    extra = [whole[a] for a in set(whole) - set(streaming)]
    assert [a["rule"] for a in extra] == ["headcount_drop", "headcount_drop"]  # June's lay-offs
    assert all(datetime.fromisoformat(a["detected_at"]) > datetime.fromisoformat(last_reading) for a in extra)
