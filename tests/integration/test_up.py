"""`entwatch up` as a new user runs it: starts, says where things are, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streams.broker import free_port

pytestmark = pytest.mark.integration


def children(pid: int) -> set[int]:
    """Pids of the direct children of ``pid`` (from /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(p) for p in text)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_up_starts_prints_where_things_are_and_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path), "ENTWATCH_STATE_STORE": "rocksdb"}
    stale = tmp_path / ".local/share/entwatch/state/entwatch/v1/tables/enterprise_state-0.db/CURRENT"
    stale.parent.mkdir(parents=True)  # a previous run's records: the new, empty broker knows nothing of them
    stale.write_text("MANIFEST-000001\n")
    up = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--metrics-port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            assert line, f"entwatch up exited early: {''.join(lines)}"
            lines.append(line)
            if line.startswith("Stop with Ctrl-C"):
                break
        out = "".join(lines)
        assert "entwatch is up in" in out
        assert f"http://127.0.0.1:{port}/metrics" in out
        assert f"chdb://{tmp_path}/.local/share/entwatch/chdb" in out
        assert "kafka://127.0.0.1:" in out

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert b"entwatch_source_freshness_seconds" in resp.read()
        assert not stale.exists() or stale.read_text() != "MANIFEST-000001\n"
        kids = children(up.pid)
        assert len(kids) == 2, f"expected broker and worker as children, got {kids}"

        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0
        assert "entwatch stopped." in up.stdout.read()
        time.sleep(0.5)
        assert not [k for k in kids if alive(k)], "a child outlived entwatch up"
    finally:  # a failed assertion must not leave the stack running
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()


def test_up_refuses_a_busy_port_with_a_one_line_message(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "streams.cli", "up", "--metrics-port", str(port)],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert f"port {port}" in done.stderr and "--metrics-port" in done.stderr
