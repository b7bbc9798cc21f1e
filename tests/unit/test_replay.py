"""Replay without a broker (``--dry-run``): every line judged as the worker would, reported at file:line."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import orjson

from producers.replay import Line, read_lines, send_lines
from streams.cli import main
from streams.settings import Settings

TAX = {"kind": "tax", "event_id": "t-1", "uscc": "914403001922038216", "source": "tax",
       "event_time": "2024-04-10T09:00:00+08:00", "schema_version": 1, "period": "2024-03",
       "declared_sales_cny": 10.0, "tax_paid_cny": 1.0}


def test_bad_lines_are_reported_at_their_line_and_counted_by_reason(tmp_path, capsys):
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\n".join([orjson.dumps(TAX), b"{not json", b"", orjson.dumps({**TAX, "uscc": "914403001922038217"}),
                                 orjson.dumps({**TAX, "declared_sales_cny": -1}), orjson.dumps(TAX)]) + b"\n")
    assert main(["replay", str(path), "--dry-run", "--quiet"]) == 0
    out = capsys.readouterr()
    assert "would send 2 events (tax 2)" in out.out
    assert "3 bad lines not sent (invalid_json 1, invalid_uscc 1, invalid_declared_sales_cny 1)" in out.out
    for where in (":2: invalid_json", ":4: invalid_uscc", ":5: invalid_declared_sales_cny"):
        assert f"{path}{where}" in out.out + out.err


def test_an_oversize_line_is_refused_as_the_worker_would(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_bytes(orjson.dumps({**TAX, "filler": "x" * 2000}) + b"\n")
    [line] = read_lines(path, max_bytes=1024)
    assert line.rejection.reason == "oversize"


def test_a_missing_file_is_one_line_saying_what_to_give(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope.jsonl"), "--dry-run"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_pacing_follows_delivery_time_over_speed_after_the_fast_forward():
    t0 = datetime(2024, 5, 1, tzinfo=timezone(timedelta(hours=8)))
    lines = [Line(i, b"{}", "tax", "914403001922038216", None, at=t0 + timedelta(hours=i)) for i in range(10)]
    began = time.monotonic()
    report = send_lines(lines, Settings(), speed=3600 / 0.05, paced_from=t0 + timedelta(hours=5), dry_run=True)
    elapsed = time.monotonic() - began
    assert report.sent == 10 and 0.2 <= elapsed < 0.5     # hours 5..9 paced: 4 gaps of 0.05 s


def test_a_rate_caps_events_per_second():
    lines = [Line(i, b"{}", "tax", "914403001922038216", None) for i in range(21)]
    began = time.monotonic()
    send_lines(lines, Settings(), rate=100, dry_run=True)
    assert 0.18 <= time.monotonic() - began < 0.5
