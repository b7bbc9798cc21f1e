"""Real services for the integration tests: a private ClickHouse 18.16 server, and
helpers to run entwatch workers as child processes (owned by pid)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from streams.broker import free_port, wait_for_port

CLICKHOUSE_BIN = "/usr/sbin/clickhouse-server"
HERE = Path(__file__).resolve().parent


@dataclass
class ClickHouseServer:
    """Debian's clickhouse-server on free loopback ports with its own data directory."""

    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="entwatch-ch-")))
    tcp_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"clickhouse://default@127.0.0.1:{self.tcp_port}/entwatch"

    def start(self, timeout: float = 60) -> "ClickHouseServer":
        self.tcp_port, self.http_port = free_port(), free_port()
        template = (HERE / "clickhouse" / "config.xml.in").read_text()
        config = (template.replace("@DIR@", str(self.dir)).replace("@TCP_PORT@", str(self.tcp_port))
                  .replace("@HTTP_PORT@", str(self.http_port)))
        (self.dir / "config.xml").write_text(config)
        shutil.copy(HERE / "clickhouse" / "users.xml", self.dir / "users.xml")
        self.proc = subprocess.Popen(
            [CLICKHOUSE_BIN, f"--config-file={self.dir / 'config.xml'}"],
            cwd=self.dir, stdout=open(self.dir / "server.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port("127.0.0.1", self.tcp_port, timeout, self.proc)
        from clickhouse_driver import Client

        deadline = time.monotonic() + timeout
        while True:
            try:
                Client("127.0.0.1", port=self.tcp_port).execute("SELECT 1")
                return self
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_process(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM a child's process group, then SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGABRT)  # an entwatch worker writes its threads' stacks to its log
        time.sleep(1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def entwatch(*args: str, env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    """Start ``entwatch ARGS`` as a child process in its own process group."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
