"""The ``entwatch`` command.

Every error a person can cause ends in one line that says what to do, and exit code 2;
tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pydantic import ValidationError

from streams.settings import Settings


class UserError(Exception):
    """An error the user can fix; its message says how."""


def load_settings(**overrides) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise UserError(f"setting {field} (ENTWATCH_{field.upper()}): {err['msg']}") from None


# ---------------------------------------------------------------- worker

def cmd_worker(args) -> int:
    """Run the Faust worker against a broker and storage (deployments)."""
    import logging

    settings = load_settings(broker_url=args.broker, storage_url=args.storage, metrics_port=args.metrics_port)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from streams.storage import StorageError, open_storage
    from streams.topics import ensure_topics

    try:
        ensure_topics(settings)
    except Exception as exc:
        raise UserError(f"cannot reach the broker at {settings.broker_url} ({exc.__class__.__name__}): "
                        "start it or set ENTWATCH_BROKER_URL") from None
    try:
        storage = open_storage(settings.effective_storage_url(),
                               settings.storage_password.get_secret_value() if settings.storage_password else None)
        storage.version()
    except StorageError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:
        raise UserError(f"cannot reach storage at {settings.effective_storage_url().split('@')[-1]} "
                        f"({str(exc).splitlines()[0][:200]}): start ClickHouse or set ENTWATCH_STORAGE_URL") from None

    import faust

    from streams.app import create_app

    app = create_app(settings, storage)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


# ---------------------------------------------------------------- up

def cmd_up(args) -> int:
    """Start the embedded stack: broker, worker with chDB, metrics; stop on Ctrl-C/SIGTERM."""
    stack = EmbeddedStack(load_settings(metrics_port=args.metrics_port, data_dir=args.data_dir),
                          broker_port=args.broker_port)
    started = time.monotonic()
    with stack:
        print(f"entwatch is up in {time.monotonic() - started:.1f} s", flush=True)
        print(f"  broker   {stack.broker.url}   (Tansu, in memory: topics vanish when it stops)", flush=True)
        print(f"  storage  {stack.settings.effective_storage_url()}", flush=True)
        print(f"  metrics  {stack.metrics_url}/metrics", flush=True)
        print(f"  query    {stack.metrics_url}/query?sql=SELECT+count()+FROM+entwatch.events", flush=True)
        print("Send events with: entwatch replay FILE.jsonl --broker " + stack.broker.url, flush=True)
        print("Stop with Ctrl-C.", flush=True)
        stack.wait()
    print("entwatch stopped.", flush=True)
    return 0


class EmbeddedStack:
    """Broker + worker child processes, owned by pid; stopped together."""

    def __init__(self, settings: Settings, broker_port: int | None = None):
        from streams.broker import EmbeddedBroker, free_port

        self.settings = settings
        self.broker = EmbeddedBroker(port=broker_port or 0)
        if not settings.metrics_port:
            settings.metrics_port = free_port()
        self.worker: subprocess.Popen | None = None
        self._stop = False

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.metrics_host}:{self.settings.metrics_port}"

    def __enter__(self) -> "EmbeddedStack":
        from streams.broker import wait_for_port
        from streams.topics import ensure_topics

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        try:
            wait_for_port_free(self.settings.metrics_host, self.settings.metrics_port)
            self.broker.start()
            self.settings.broker_url = self.broker.url
            ensure_topics(self.settings)
            env = {**os.environ, "ENTWATCH_BROKER_URL": self.broker.url,
                   "ENTWATCH_STORAGE_URL": self.settings.effective_storage_url(),
                   "ENTWATCH_METRICS_PORT": str(self.settings.metrics_port),
                   "ENTWATCH_DATA_DIR": str(self.settings.data_dir)}
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.settings.data_dir / "worker.log", "ab")
            self.worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            wait_for_port(self.settings.metrics_host, self.settings.metrics_port, 60, self.worker)
            wait_for_ready(self.metrics_url, 120, self.worker)
        except BaseException as exc:
            self.__exit__(None, None, None)
            if isinstance(exc, (TimeoutError, RuntimeError)):
                raise UserError(f"the stack did not start: {exc}; see {self.settings.data_dir / 'worker.log'}") from None
            raise
        return self

    def _on_signal(self, signum, frame) -> None:
        self._stop = True

    @property
    def stopping(self) -> bool:
        """True once Ctrl-C or SIGTERM has asked the stack to stop."""
        return self._stop

    def wait(self) -> None:
        while not self._stop:
            if self.worker.poll() is not None:
                raise UserError(f"the worker exited with code {self.worker.returncode}; "
                                f"see {self.settings.data_dir / 'worker.log'}")
            if self.broker.proc.poll() is not None:
                raise UserError("the broker exited unexpectedly; run entwatch up again")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.broker.stop()


def wait_for_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket() as s:
        if s.connect_ex((host, port)) == 0:
            raise UserError(f"port {port} on {host} is in use: stop what uses it or pass --metrics-port")


def wait_for_ready(base_url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until the worker consumes (partitions assigned, state recovered) and its storage answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"worker exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/ready", timeout=5):
                query_worker(base_url, "SELECT 1")
                return
        except (OSError, UserError):
            time.sleep(0.2)
    raise TimeoutError(f"the worker at {base_url} was not ready within {timeout:.0f} s")


def query_worker(base_url: str, sql: str) -> list[dict]:
    """Run a read-only query through a running worker (embedded storage belongs to it)."""
    url = f"{base_url}/query?{urllib.parse.urlencode({'sql': sql})}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())["rows"]
    except urllib.error.HTTPError as exc:
        raise UserError(json.loads(exc.read() or b"{}").get("error", str(exc))) from None


# ---------------------------------------------------------------- demo

def cmd_demo(args) -> int:
    """The embedded stack fed by a simulated city; prints what lands in storage."""
    import tempfile
    import threading
    from datetime import date, timedelta

    from producers.replay import replay
    from producers.simulator import SimulationConfig, write_files

    stack = EmbeddedStack(load_settings(metrics_port=args.metrics_port, data_dir=args.data_dir))
    days = args.days
    config = SimulationConfig(enterprises=args.enterprises, days=days, seed=args.seed,
                              start=date.today() - timedelta(days=days + 1))
    workdir = Path(tempfile.mkdtemp(prefix="entwatch-demo-"))
    print(f"simulating {config.enterprises:,} enterprises over {days} days ...", flush=True)
    stats = write_files(config, workdir / "events.jsonl", workdir / "truth.jsonl")
    print(f"  {sum(stats['by_kind'].values()):,} events, {sum(stats['anomalies'].values())} injected anomalies "
          f"(ground truth: {workdir / 'truth.jsonl'})", flush=True)
    with stack:
        print(f"entwatch is up: metrics {stack.metrics_url}/metrics, storage {stack.settings.effective_storage_url()}",
              flush=True)
        sender = threading.Thread(target=replay, args=(workdir / "events.jsonl", stack.settings),
                                  kwargs={"rate": args.rate}, daemon=True)
        sender.start()
        print(f"replaying at up to {args.rate:,.0f} events/s; Ctrl-C stops.", flush=True)
        while not stack.stopping:
            for _ in range(25):
                if stack.stopping:
                    break
                time.sleep(0.2)
            try:
                rows = query_worker(stack.metrics_url,
                                    "SELECT kind, count() AS n FROM events GROUP BY kind ORDER BY kind")
                dead = query_worker(stack.metrics_url, "SELECT count() AS n FROM deadletters")[0]["n"]
                days_stored = query_worker(stack.metrics_url, "SELECT count() AS n FROM utility_daily FINAL")[0]["n"]
            except (OSError, UserError):
                continue
            kinds = ", ".join(f"{r['kind']} {int(r['n']):,}" for r in rows) or "nothing yet"
            print(f"  stored: {kinds}; enterprise-days {int(days_stored):,}; dead letters {int(dead):,}", flush=True)
    print("entwatch stopped.", flush=True)
    return 0


# ---------------------------------------------------------------- replay

def cmd_replay(args) -> int:
    """Send a JSON Lines file's events to their topics."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from producers.replay import replay

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a JSON Lines file")
    settings = load_settings(broker_url=args.broker)
    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    try:
        with Progress(*columns, transient=True, disable=args.quiet) as progress:
            task = progress.add_task(f"replay {path.name}", total=path.stat().st_size)
            report = replay(
                path, settings, rate=args.rate,
                on_progress=lambda done: progress.update(task, completed=done),
                on_problem=lambda msg: progress.console.print(f"[yellow]bad line[/] {msg}", highlight=False, soft_wrap=True),
            )
    except Exception as exc:
        if exc.__class__.__module__.startswith("kafka"):
            raise UserError(f"cannot send to the broker at {settings.broker_url} ({exc.__class__.__name__}): "
                            "is it running? set --broker or ENTWATCH_BROKER_URL") from None
        raise
    if report.bad > len(report.problems):
        print(f"... and {report.bad - len(report.problems)} more bad lines", file=sys.stderr)
    print(report.summary())
    return 0


# ---------------------------------------------------------------- simulate

def cmd_simulate(args) -> int:
    """Write a simulated city (events + ground truth) as JSON Lines files."""
    from datetime import date

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from producers.simulator import SimulationConfig, write_files

    try:
        config = SimulationConfig(
            enterprises=args.enterprises, days=args.days, seed=args.seed,
            start=date.fromisoformat(args.start) if args.start else SimulationConfig.start,
            electricity_interval=args.electricity_interval,
        )
    except ValueError as exc:
        raise UserError(f"{exc}; see entwatch simulate --help") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    events, truth = out / "events.jsonl", out / "truth.jsonl"
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True, disable=args.quiet) as progress:
        task = progress.add_task(f"simulate {config.enterprises:,} enterprises", total=config.days)
        stats = write_files(config, events, truth, progress=lambda done, total: progress.update(task, completed=done))
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.get("by_kind", {}).items()))
    print(f"wrote {events} ({counts}) and {truth} ({sum(stats.get('anomalies', {}).values()):,} anomalies) "
          f"in {stats.get('seconds', 0):.1f} s")
    print(f"send it with: entwatch replay {events} --broker kafka://127.0.0.1:PORT")
    return 0


# ---------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="entwatch", description="Streaming monitor of enterprises' operations.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("up", help="start the embedded stack (broker, worker with chDB, metrics)")
    p.add_argument("--broker-port", type=int, help="broker port on 127.0.0.1 (default: a free one)")
    p.add_argument("--metrics-port", type=int, help="worker web/metrics port (default 6066)")
    p.add_argument("--data-dir", help="where chDB keeps its data (default ~/.local/share/entwatch)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("demo", help="the embedded stack fed by a simulated city")
    p.add_argument("--enterprises", type=int, default=300)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rate", type=float, default=2000.0, help="events per second sent (default 2000)")
    p.add_argument("--metrics-port", type=int, help="worker web/metrics port (default 6066)")
    p.add_argument("--data-dir", help="where chDB keeps its data (default ~/.local/share/entwatch)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("worker", help="run the Faust worker against a given broker and storage")
    p.add_argument("--broker", help="kafka://host:port (default ENTWATCH_BROKER_URL)")
    p.add_argument("--storage", help="clickhouse://user:pass@host:9000/db or chdb:///dir (default ENTWATCH_STORAGE_URL)")
    p.add_argument("--metrics-port", type=int, help="web/metrics port (default ENTWATCH_METRICS_PORT or 6066)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("replay", help="send events from a JSON Lines file to their topics")
    p.add_argument("file", help="JSON Lines file of SPEC §2 events")
    p.add_argument("--broker", help="kafka://host:port (default ENTWATCH_BROKER_URL)")
    p.add_argument("--rate", type=float, help="at most this many events per second")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("simulate", help="write a simulated city with ground truth (JSON Lines)")
    p.add_argument("--out", default="city", help="output directory (default ./city)")
    p.add_argument("--enterprises", type=int, default=2000)
    p.add_argument("--days", type=int, default=366)
    p.add_argument("--start", help="first day, YYYY-MM-DD (default 2024-01-01)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--electricity-interval", choices=("hour", "day"), default="hour")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    from streams import alerts_cli, evaluate
    p = sub.add_parser("alerts", help="list open alerts (table or JSON Lines; --follow)")
    alerts_cli.add_arguments(p)
    p.set_defaults(func=alerts_cli.command)

    p = sub.add_parser("evaluate", help="precision, recall and delay of the alerts against a ground truth")
    evaluate.add_arguments(p)
    p.set_defaults(func=evaluate.command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except UserError as exc:
        print(f"entwatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
