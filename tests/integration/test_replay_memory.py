"""A 1,000,000-line replay streams: peak memory does not grow with the file (issue 3)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from streams.uscc import make_uscc

pytestmark = pytest.mark.integration
MB = 1024  # VmHWM is in KiB


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


def replay_peak_rss(path: Path, broker_url: str, out: Path) -> tuple[int, float, str]:
    """Run ``entwatch replay`` as a child; its peak RSS (KiB), seconds, output.

    The peak is the child's own ``VmHWM`` (its address space after exec), polled while it
    runs: ``ru_maxrss`` from ``wait4`` would also count the image forked from this pytest
    process before the exec, hundreds of MB late in a test session."""
    began = time.monotonic()
    with out.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "replay", str(path), "--broker", broker_url,
                                 "--quiet"], stdout=log, stderr=subprocess.STDOUT)
        peak = 0
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.05)
    output = out.read_text()
    assert proc.returncode == 0, output
    return peak, time.monotonic() - began, output


def test_replaying_a_million_lines_takes_no_more_memory_than_a_hundred_thousand(broker, tmp_path):
    small = write_replay_file(tmp_path / "small.jsonl", 100_000)
    large = write_replay_file(tmp_path / "large.jsonl", 1_000_000)

    rss_small, secs_small, out_small = replay_peak_rss(small, broker.url, tmp_path / "small.log")
    rss_large, secs_large, out_large = replay_peak_rss(large, broker.url, tmp_path / "large.log")

    assert "sent 99,990 events" in out_small and "sent 999,900 events" in out_large
    assert "100 bad lines not sent (invalid_json 100)" in out_large
    print(f"\npeak RSS: 100,000 lines {rss_small / MB:.0f} MB ({secs_small:.0f} s); "
          f"1,000,000 lines {rss_large / MB:.0f} MB ({secs_large:.0f} s); "
          f"file {large.stat().st_size / 2**20:.0f} MB")
    assert rss_large - rss_small < 16 * MB
    assert rss_large < 200 * MB
