"""Issue 11's attacks on a real worker, on chDB and on clickhouse-server 18.16: each is
refused and leaves no trace, and ingestion goes on while a read runs out its time limit.

The worker runs with the operator query ON (the widest surface; it is off by default), a
10 s read time limit and a 300 MB read memory limit.  On the server backend it reads as
``entwatch_reader`` (deploy/clickhouse/users.d), never as the writer."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid

import orjson
import psutil
import pytest

from streams.broker import EmbeddedBroker
from streams.settings import Settings
from tests.conftest import Worker, wait_until
from tests.integration.kafka_io import produce_raw
from tests.integration.test_pipeline import EVENTS, replay, valid_ids

pytestmark = pytest.mark.integration

READ_TIMEOUT = 10
USCC = "91441900MA00000010"  # has a registry row, tax returns and meter readings in EVENTS


class Listener:
    """A TCP port that counts the connections made to it (url()/remote() must make none)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module", params=["server", "chdb"])
def target(request, tmp_path_factory):
    """One worker per backend with the fixture events stored, and the tools to attack it."""
    tmp = tmp_path_factory.mktemp(f"security-{request.param}")
    if request.param == "server":
        server = request.getfixturevalue("clickhouse_server")
        storage = f"clickhouse://default@127.0.0.1:{server.tcp_port}/t_{uuid.uuid4().hex[:12]}"
    else:
        server, storage = None, f"chdb://{tmp / 'chdb'}"
    listener = Listener()
    with EmbeddedBroker() as broker:
        worker = Worker(broker.url, storage, tmp / "worker.log",
                        extra_env={"ENTWATCH_READ_TIMEOUT": str(READ_TIMEOUT),
                                   "ENTWATCH_READ_MAX_MEMORY_BYTES": str(300_000_000)}).start()
        try:
            replay(EVENTS, broker.url)
            stored = len(valid_ids(EVENTS))
            wait_until(lambda: events_stored(worker) == stored, what="the fixture events stored")
            yield {"backend": request.param, "worker": worker, "broker": broker, "tmp": tmp, "server": server,
                   "storage": storage, "listener": listener, "stored": stored}
        finally:
            worker.stop()
            listener.close()


def events_stored(worker) -> int:
    return sum(r["n"] for r in worker.read("counts") if r["what"] == "events")


def call(worker, path: str, body: bytes | None = None, token: str | None = "worker", **headers) -> tuple[int, dict]:
    """(status, JSON answer) of a request to the worker's web port."""
    if token == "worker":
        token = worker.token
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(worker.base_url + path, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"text": raw.decode(errors="replace")}


def operator(worker, sql: str) -> tuple[int, dict]:
    return call(worker, "/operator/query", sql.encode())


def no_table(target, name: str) -> bool:
    rows = target["worker"].query(f"SELECT count() AS n FROM system.tables WHERE name = '{name}'")
    return rows[0]["n"] == 0


# ---------------------------------------------------------------- the operator query's attacks

@pytest.mark.parametrize("sql", [
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT file('/etc/passwd') AS f",
    'SELECT "fi\\x6ce"(\'/etc/passwd\') AS f',
    "SELECT * APPLY(file) FROM (SELECT '/etc/passwd' AS p)",
], ids=["table-function", "function", "escaped-name", "apply"])
def test_reading_a_file_is_refused(target, sql):
    status, answer = operator(target["worker"], sql)
    assert status == 400, answer
    assert "root:" not in json.dumps(answer)


def test_into_outfile_writes_no_file(target):
    fresh, existing = target["tmp"] / "fresh.txt", target["tmp"] / "profile.sh"
    existing.write_text("echo hello\n")
    for sql in (f"SELECT 'x' INTO OUTFILE '{fresh}' FORMAT TSVRaw",
                f"SELECT 'touch /tmp/pwned' INTO OUTFILE '{existing}' APPEND FORMAT TSVRaw"):
        status, answer = operator(target["worker"], sql)
        assert status == 400, answer
    assert not fresh.exists() and existing.read_text() == "echo hello\n"


def test_with_insert_adds_no_row(target):
    worker = target["worker"]
    for sql in ("WITH 1 AS x INSERT INTO events SELECT 'tax', 'pwned', 'pwned', 'x', now(), '{}'",
                "INSERT INTO events SELECT 'tax', 'pwned', 'pwned', 'x', now(), '{}'"):
        status, answer = operator(worker, sql)
        assert status == 400, answer
    assert worker.query("SELECT count() AS n FROM events WHERE event_id = 'pwned'") == [{"n": 0}]
    assert events_stored(worker) == target["stored"]


def test_parallel_with_ddl_creates_no_table(target):
    for sql in ("SELECT 1 PARALLEL WITH CREATE TABLE pwned (x UInt8) ENGINE = Memory",
                "SELECT 1 PARALLEL WITH DROP TABLE events"):
        status, answer = operator(target["worker"], sql)
        assert status == 400, answer
    assert no_table(target, "pwned") and not no_table(target, "events")


def test_url_and_remote_make_no_connection(target):
    port = target["listener"].port
    for sql in (f"SELECT * FROM url('http://127.0.0.1:{port}/leak', 'LineAsString')",
                f"SELECT * FROM remote('127.0.0.1:{port}', system.one)",
                f"SELECT * FROM s3('http://127.0.0.1:{port}/bucket/key', 'LineAsString')"):
        status, answer = operator(target["worker"], sql)
        assert status == 400, answer
    time.sleep(0.5)
    assert target["listener"].connections == 0


@pytest.mark.parametrize("sql", [
    "SELECT count() FROM numbers(100000000000)",
    "SELECT count() FROM system.numbers",
], ids=["numbers", "system.numbers"])
def test_a_long_scan_is_stopped_at_the_time_limit(target, sql):
    started = time.monotonic()
    status, answer = operator(target["worker"], sql)
    took = time.monotonic() - started
    assert status in (400, 504), answer  # 18.16 refuses numbers() outright (readonly), the rest time out
    assert took < READ_TIMEOUT + 6, took
    assert target["worker"].read("counts")  # and the worker still answers


def test_a_memory_hog_is_stopped_at_the_memory_limit(target):
    worker = target["worker"]
    process = psutil.Process(worker.proc.pid)
    before = process.memory_info().rss
    for sql in ("SELECT length(groupArray(number)) AS n FROM (SELECT number FROM system.numbers LIMIT 250000000)",
                "SELECT length(groupArray(number)) AS n FROM numbers(250000000)"):
        status, answer = operator(worker, sql)
        assert status == 400 and answer["error"].startswith(("Code: 241.", "Code: 164.")), answer  # memory, readonly
    grown = process.memory_info().rss - before
    assert grown < 700_000_000, f"the worker grew by {grown / 1e6:.0f} MB"  # 3,900 MB before the limit


def test_the_operator_query_reads_as_a_read_only_user(target):
    worker = target["worker"]
    status, answer = operator(worker, "SELECT 1 AS x SETTINGS readonly = 0")
    assert status == 400, answer
    if target["backend"] == "server":
        rows = worker.query("SELECT user FROM system.processes WHERE query LIKE '%who-reads-4711%'")
        assert [r["user"] for r in rows] == ["entwatch_reader"]
    else:
        assert worker.query("SELECT getSetting('readonly') AS r") == [{"r": 1}]


def test_the_operator_query_is_post_only(target):
    status, _ = call(target["worker"], "/operator/query?sql=SELECT+1")
    assert status == 405


# ---------------------------------------------------------------- the token and the Origin

@pytest.mark.parametrize("path", ["/read/counts", "/read", "/operator/query", "/query?sql=SELECT+1", "/",
                                  "/router/", "/table/enterprise_state/x/"])
def test_a_request_without_the_token_is_refused(target, path):
    worker = target["worker"]
    body = b"SELECT 1" if path == "/operator/query" else None
    assert call(worker, path, body, token=None)[0] == 401
    assert call(worker, path, body, token="x" * 32)[0] == 401
    assert call(worker, path, body, token=worker.token + "x")[0] == 401


def test_metrics_and_ready_answer_without_a_token(target):
    worker = target["worker"]
    assert call(worker, "/ready", token=None)[0] == 200
    with urllib.request.urlopen(f"{worker.base_url}/metrics", timeout=10) as response:
        assert response.status == 200 and b"entwatch_events_in_total" in response.read()


def test_a_cross_origin_request_is_refused_even_with_the_token(target):
    worker = target["worker"]
    for path, body in (("/read/counts", None), ("/operator/query", b"SELECT 1"), ("/metrics", None)):
        assert call(worker, path, body, Origin="http://evil.example")[0] == 403
        assert call(worker, path, body, Origin="null")[0] == 403
        assert call(worker, path, body, **{"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert call(worker, "/read/counts", Origin=worker.base_url)[0] == 200  # the port's own origin


# ---------------------------------------------------------------- named queries

@pytest.mark.parametrize("query, problem", [
    ("/read/alerts?rule=utility_drop'+OR+1=1+--", "rule"),
    ("/read/alerts?limit=1;DROP+TABLE+events", "limit"),
    ("/read/alerts?since=2024-01-01", "since"),
    ("/read/enterprise?uscc=91441900MA00000010'+OR+'1'='1", "uscc"),
    ("/read/alerts?sql=SELECT+1", "sql"),
    ("/read/alerts?rule=utility_drop&rule=utility_spike", "rule"),
    ("/read/events_range?kind=utility&first_uscc=Z&last_uscc=Y", "first_uscc"),
    ("/read/monthly?uscc=91441900MA00000010&kind=events", "kind"),
], ids=["choice", "count", "naive-time", "uscc", "unknown", "repeated", "bound", "table"])
def test_an_injection_in_a_parameter_is_refused_with_the_parameter_named(target, query, problem):
    status, answer = call(target["worker"], query)
    assert status == 400 and answer["param"] == problem, answer


def test_a_free_text_parameter_is_a_value_never_sql(target):
    worker = target["worker"]
    for town in ("长安镇' OR '1'='1", "长安镇\\' OR 1=1 --", "x') UNION ALL SELECT * FROM events --"):
        assert worker.read("supervision_list", town=town, threshold=0) == []
        assert worker.read("alerts", town=town) == []
    assert events_stored(worker) == target["stored"]


def test_the_named_queries_answer_with_the_stored_data(target):
    worker = target["worker"]
    assert [r["town"] for r in worker.read("enterprise", uscc=USCC)] == ["长安镇"]
    tax = worker.read("monthly", uscc=USCC, kind="tax")
    assert tax and {r["uscc"] for r in tax} == {USCC} and tax[0]["period"].startswith("2024-")
    series = worker.read("enterprise_series", uscc=USCC, first_day="2024-01-01", last_day="2024-12-31")
    assert series and all(r["amount"] > 0 for r in series)
    events = worker.read("events_range", kind="tax", first_uscc=USCC, last_uscc=USCC)
    assert events and {r["uscc"] for r in events} == {USCC}
    assert {r["event_id"] for r in tax} <= {r["event_id"] for r in events}  # every return kept, corrected ones too
    assert all("payload" not in r for r in events)
    daily = worker.read("daily_range", first_uscc="0" * 18, last_uscc="Y" * 18)
    assert len(daily) >= len(series)
    assert worker.read("monthly_range", kind="social", first_uscc="0" * 18, last_uscc="Y" * 18)
    counts = {(r["what"], r["name"]): r["n"] for r in worker.read("counts")}
    assert counts[("events", "utility")] > 0 and ("deadletters", "") in counts


def test_entwatch_alerts_reads_with_the_token_or_as_the_read_only_user(target, tmp_path):
    """chDB: through the worker, with its token; the server: directly, as entwatch_reader, never the writer."""
    import os
    import subprocess
    import sys

    from tests.conftest import PASSWORDS

    worker = target["worker"]
    env = {**os.environ, "HOME": str(tmp_path), "ENTWATCH_READER_PASSWORD": PASSWORDS["CLICKHOUSE_READER_PASSWORD"],
           "ENTWATCH_API_TOKEN": worker.token}
    where = ["--storage", target["storage"]] if target["backend"] == "server" else ["--worker", worker.base_url]

    def run(**changed):
        return subprocess.run([sys.executable, "-m", "streams.cli", "alerts", "--json", "--all", *where],
                              capture_output=True, text=True, timeout=60,
                              env={k: v for k, v in {**env, **changed}.items() if v is not None})

    done = run()
    assert done.returncode == 0 and done.stdout == "", done.stderr
    if target["backend"] == "server":
        refused = [run(ENTWATCH_READER_USER="default"), run(ENTWATCH_READER_PASSWORD="not-the-password")]
        assert "read-only user" in refused[0].stderr
    else:
        refused = [run(ENTWATCH_API_TOKEN=None), run(ENTWATCH_API_TOKEN="not-the-password-0123")]
        assert "no API token" in refused[0].stderr
    for failed in refused:
        assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
        assert "not-the-password" not in failed.stderr


# ---------------------------------------------------------------- ingestion during a long read

def test_ingestion_goes_on_while_a_long_read_runs(target):
    worker = target["worker"]
    done: dict = {}

    def long_read():
        started = time.monotonic()
        done["status"] = operator(worker, "SELECT count() FROM system.numbers")[0]
        done["took"] = time.monotonic() - started

    reader = threading.Thread(target=long_read)
    reader.start()
    time.sleep(1.0)  # the read is running
    settings = Settings()
    messages = []
    for i in range(60):
        event = {"kind": "tax", "event_id": f"during-long-read-{i}", "uscc": USCC, "source": "tax",
                 "event_time": f"2024-0{1 + i % 9}-1{i % 10}T00:00:00+08:00", "schema_version": 1,
                 "period": f"2023-{1 + i % 12:02d}", "declared_sales_cny": 1000.0 + i, "tax_paid_cny": 10.0}
        messages.append((settings.topic("tax"), USCC.encode(), orjson.dumps(event)))
    produce_raw(target["broker"].bootstrap, messages)
    wait_until(lambda: events_stored(worker) >= target["stored"] + 60, timeout=READ_TIMEOUT + 20,
               what="the events sent during the long read")
    stored_while_reading = reader.is_alive()
    reader.join(READ_TIMEOUT + 20)
    target["stored"] += 60
    assert done["status"] == 504 and done["took"] >= READ_TIMEOUT - 1, done
    assert stored_while_reading, "the events were stored only after the long read ended"
