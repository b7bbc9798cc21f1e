"""Shared pieces of the worker benchmarks (pipeline, latency, memory): simulated data,
loading the embedded broker with a bare aiokafka producer, starting ``entwatch worker``
child processes and reading their ``/metrics``."""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from streams.broker import free_port  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def machine() -> dict:
    mem = 0
    try:
        mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) // 1024
    except Exception:
        pass
    return {"cores": os.cpu_count(), "memory_mib": mem, "python": platform.python_version(),
            "platform": platform.platform(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "revision": revision()}


def revision() -> str:
    """The commit measured, with ``+dirty`` if streams/ or detectors/ had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "streams", "detectors"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def simulated(config) -> list[tuple[str, bytes, bytes]]:
    """(kind, key, value) of the simulator's well-formed events, in delivery order (what
    ``entwatch replay`` would send; the malformed non-dict items are skipped)."""
    from producers.simulator import generate
    from streams.contracts import KINDS

    out = []
    for event in generate(config):
        if not isinstance(event, dict) or not isinstance(event.get("uscc"), str) or event.get("kind") not in KINDS:
            continue
        out.append((event["kind"], event["uscc"].encode(), orjson.dumps(event)))
    return out


def readings_of(messages) -> int:
    n = 0
    for kind, _, value in messages:
        if kind == "utility":
            obj = orjson.loads(value)
            r = obj.get("readings") if isinstance(obj, dict) else None
            n += len(r) if isinstance(r, list) else 0
    return n


async def produce(bootstrap: str, messages, topic_of) -> float:
    """Send (kind, key, value) messages with a bare aiokafka producer (the settings
    ``entwatch replay`` uses) to ``topic_of(kind)``; seconds taken."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024,
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        began = time.perf_counter()
        for kind, key, value in messages:
            await producer.send(topic_of(kind), value, key=key)
        await producer.flush()
        return time.perf_counter() - began
    finally:
        await producer.stop()


def parse_metrics(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for every sample of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def total(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k == prefix or k.startswith(prefix + "{"))


@dataclass
class Worker:
    """An ``entwatch worker`` child process in its own process group (as tests/conftest.py)."""

    broker_url: str
    storage_url: str
    log: Path
    env: dict = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    started: float = 0.0

    def start(self) -> "Worker":
        env = {**os.environ, "ENTWATCH_BROKER_URL": self.broker_url, "ENTWATCH_STORAGE_URL": self.storage_url,
               "ENTWATCH_METRICS_PORT": str(self.port), "ENTWATCH_LOG_LEVEL": "WARNING", **self.env}
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([PYTHON, "-m", "streams.cli", "worker"], env=env, cwd=ROOT,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2):
                    return time.perf_counter()
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"worker not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def metrics(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as resp:
                return parse_metrics(resp.read().decode())
        except OSError:
            return {}

    def stop(self) -> None:
        import signal

        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


def wait_processed(workers: list[Worker], sent: int, timeout: float, poll: float = 0.25) -> tuple[float, dict]:
    """Poll the workers' /metrics until their input events add up to ``sent`` and every
    worker reports lag 0 (everything committed); returns (perf_counter at that point, sums)."""
    deadline = time.monotonic() + timeout
    sums: dict = {}
    while time.monotonic() < deadline:
        pages = [w.metrics() for w in workers]
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {w.proc.returncode}:\n{w.log.read_text()[-3000:]}")
        if all(pages):
            sums = {"events_in": sum(total(p, "entwatch_events_in_total") for p in pages),
                    "readings": sum(total(p, "entwatch_readings_processed_total") for p in pages),
                    "lag": sum(total(p, "entwatch_consumer_lag") for p in pages),
                    "alerts": sum(total(p, "entwatch_alerts_raised_total") for p in pages)}
            if sums["events_in"] >= sent and sums["lag"] == 0:
                return time.perf_counter(), sums
        time.sleep(poll)
    raise TimeoutError(f"not processed in {timeout} s: {sums} of {sent}")


PY_SPY = ROOT / ".venv" / "bin" / "py-spy"


def need_py_spy() -> None:
    """Stop before any work if a profile is asked for and py-spy is missing."""
    if not PY_SPY.exists():
        raise SystemExit("py-spy is not installed: run .venv/bin/pip install -e '.[bench]', or run without the profile")


@contextmanager
def py_spy(pid: int, output: Path | None):
    """Sample process ``pid`` with py-spy (50 Hz, raw collapsed stacks into ``output``) for
    the duration of the block; no profile if ``output`` is None."""
    if output is None:
        yield
        return
    spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--rate", "50", "--format", "raw",
                            "--output", str(output), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
        spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        spy.wait(60)
    finally:
        if spy.poll() is None:
            spy.kill()


def py_spy_top(raw: Path, n: int = 15) -> dict:
    """From ``py-spy record -f raw`` (collapsed stacks): the top self-time functions and the
    share of samples under each of the hot path's entry points."""
    self_t: Counter = Counter()
    incl: Counter = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        samples += c
        frames = [re.sub(r" \((.*?):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        frames = [re.sub(r"/.*?/(site-packages|main|lib/python3\.\d+)/", "", f) for f in frames]
        self_t[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    share = lambda c: round(c / samples, 3) if samples else 0.0  # noqa: E731
    return {"samples": samples,
            "self": [(f, share(c)) for f, c in self_t.most_common(n)],
            "inclusive": [(f, share(c)) for f, c in incl.most_common(60)
                          if not f.startswith(("<module>", "run ", "_run ", "run_forever", "_run_once", "main "))][:30]}
