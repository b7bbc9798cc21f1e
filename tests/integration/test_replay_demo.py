"""`entwatch demo`: the stack fed live by the simulator; says where to look; stored counts grow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from streams.broker import free_port

pytestmark = pytest.mark.integration


def test_demo_says_where_to_look_and_events_land_in_storage(tmp_path):
    port = free_port()
    demo = subprocess.Popen([sys.executable, "-m", "streams.cli", "demo", "--enterprises", "40", "--days", "50",
                             "--paced-days", "5", "--speed", "200000", "--metrics-port", str(port),
                             "--data-dir", str(tmp_path / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HOME": str(tmp_path)}, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, f"entwatch demo exited early: {''.join(lines)}"
            lines.append(line)
            if "stored:" in line and "utility" in line and "alerts" in line:
                break
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}/metrics" in out and f"http://127.0.0.1:{port}/read/" in out
        assert f"chdb://{tmp_path / 'data' / 'chdb'}" in out and "entwatch alerts" in out
        assert "truth.jsonl" in out and "stored: " in lines[-1]
    finally:
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(60)
    assert code == 0 and "entwatch stopped." in demo.stdout.read()
