"""A 1,000,000-line replay streams: peak memory does not grow with the file (issue 3)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from streams.uscc import make_uscc

pytestmark = pytest.mark.integration
MB = 1024  # ru_maxrss is in KiB on Linux


def write_replay_file(path: Path, lines: int) -> Path:
    """Monthly tax and social returns of 5,000 enterprises, and a bad line every 10,000."""
    usccs = [make_uscc(f"91441900MA{i:07d}") for i in range(5000)]
    with path.open("wb") as f:
        buf = []
        for i in range(lines):
            u = usccs[i % 5000]
            month = i // 5000
            period = f"{2000 + month // 12:04d}-{month % 12 + 1:02d}"
            if i % 10_000 == 9_999:
                buf.append(b'{"kind": "tax", "truncated\n')
            elif i % 2:
                buf.append(orjson.dumps({"kind": "tax", "event_id": f"t-{i}", "uscc": u, "source": "tax",
                                         "event_time": "2024-04-10T09:00:00+08:00", "schema_version": 1,
                                         "period": period, "declared_sales_cny": 1000.0 + i % 977,
                                         "tax_paid_cny": 130.0}) + b"\n")
            else:
                buf.append(orjson.dumps({"kind": "social", "event_id": f"s-{i}", "uscc": u, "source": "hrss",
                                         "event_time": "2024-04-10T09:00:00+08:00", "schema_version": 1,
                                         "period": period, "insured_headcount": 10 + i % 50,
                                         "contributions_cny": 9000.0}) + b"\n")
            if len(buf) >= 10_000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))
    return path


def replay_peak_rss(path: Path, broker_url: str) -> tuple[int, float, str]:
    """Run ``entwatch replay`` as a child; its own peak RSS (KiB, from wait4), seconds, output."""
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "replay", str(path), "--broker", broker_url,
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, output
    return usage.ru_maxrss, time.monotonic() - began, output


def test_replaying_a_million_lines_takes_no_more_memory_than_a_hundred_thousand(broker, tmp_path):
    small = write_replay_file(tmp_path / "small.jsonl", 100_000)
    large = write_replay_file(tmp_path / "large.jsonl", 1_000_000)

    rss_small, secs_small, out_small = replay_peak_rss(small, broker.url)
    rss_large, secs_large, out_large = replay_peak_rss(large, broker.url)

    assert "sent 99,990 events" in out_small and "sent 999,900 events" in out_large
    assert "100 bad lines not sent (invalid_json 100)" in out_large
    print(f"\npeak RSS: 100,000 lines {rss_small / MB:.0f} MB ({secs_small:.0f} s); "
          f"1,000,000 lines {rss_large / MB:.0f} MB ({secs_large:.0f} s); "
          f"file {large.stat().st_size / 2**20:.0f} MB")
    assert rss_large - rss_small < 16 * MB
    assert rss_large < 200 * MB
