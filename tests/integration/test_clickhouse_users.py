"""deploy/clickhouse/users.d/entwatch-users.xml on a real server: the writer applies the
schema and writes, Grafana's user reads and cannot write, passwords come from the
environment.

The server here is Debian's 18.16: it checks the file loads, the passwords (``from_env``)
and the ``readonly`` profile. The ``<grants>`` (database-level limits) need ClickHouse 22+
and are not checked here; on 18.16 they are ignored."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException

from streams.storage import apply_schema, open_storage
from tests.conftest import require
from tests.services import CLICKHOUSE_BIN, ClickHouseServer

pytestmark = pytest.mark.integration

USERS = Path(__file__).parents[2] / "deploy" / "clickhouse" / "users.d" / "entwatch-users.xml"
WRITER, READER = "writer-secret", "reader-secret"
READONLY = 164  # ClickHouse's error code for "... in readonly mode"


@pytest.fixture(scope="module")
def server():
    """A private server with entwatch's users file, passwords in its environment."""
    require(Path(CLICKHOUSE_BIN).exists(), f"{CLICKHOUSE_BIN} is not installed (apt-get install clickhouse-server)")
    mp = pytest.MonkeyPatch()
    mp.setenv("CLICKHOUSE_WRITER_PASSWORD", WRITER)
    mp.setenv("CLICKHOUSE_GRAFANA_PASSWORD", READER)
    s = ClickHouseServer()
    (s.dir / "users.d").mkdir()
    shutil.copy(USERS, s.dir / "users.d" / USERS.name)
    try:
        s.start()
    finally:
        mp.undo()  # the server process has read them; later children need not see them
    yield s
    s.stop()


def client(server, user: str, password: str, **kw) -> Client:
    return Client("127.0.0.1", port=server.tcp_port, user=user, password=password, **kw)


@pytest.fixture(scope="module")
def stored(server):
    """The schema applied and one risk row written, as entwatch_writer (the init job and the workers)."""
    storage = open_storage(f"clickhouse://entwatch_writer:{WRITER}@127.0.0.1:{server.tcp_port}/entwatch")
    try:
        apply_schema(storage)
        storage.insert("risk", [{"uscc": "914403001922038216", "score": 72.5, "level": "high", "rules": ["utility_drop"],
                                 "updated_at": datetime(2024, 3, 1, tzinfo=timezone.utc), "revision": 1}])
        return storage.query("SELECT uscc, score FROM risk FINAL")
    finally:
        storage.close()


def test_the_writer_applies_the_schema_and_writes(stored):
    assert stored == [{"uscc": "914403001922038216", "score": 72.5}]


def test_grafana_reads_and_may_set_query_limits(server, stored):
    grafana = client(server, "entwatch_grafana", READER, database="entwatch")
    assert grafana.execute("SELECT count() FROM risk FINAL SETTINGS max_execution_time = 30") == [(1,)]


@pytest.mark.parametrize("statement", [
    "INSERT INTO entwatch.risk (uscc, score) VALUES",
    "DROP TABLE entwatch.risk",
    "ALTER TABLE entwatch.risk DELETE WHERE 1",
    "CREATE DATABASE elsewhere",
])
def test_grafana_cannot_change_anything(server, stored, statement):
    grafana = client(server, "entwatch_grafana", READER)
    args = ([("x", 1.0)],) if statement.endswith("VALUES") else ()
    with pytest.raises(ServerException) as caught:
        grafana.execute(statement, *args)
    assert caught.value.code == READONLY, str(caught.value)[:300]


@pytest.mark.parametrize("user", ["entwatch_writer", "entwatch_grafana"])
def test_a_wrong_or_missing_password_is_refused(server, user):
    for password in ("", "change-me-writer", "change-me-grafana"):
        with pytest.raises(ServerException):
            client(server, user, password).execute("SELECT 1")
