"""The ``entwatch`` command.

Every error a person can cause ends in one line that says what to do, and exit code 2;
tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from console.cli import ConsoleThread
from streams import reconcile, schemas
from streams.errors import UserError
from streams.readapi import ReadError, WorkerReader, open_reader, worker_url
from streams.settings import Settings

SHANGHAI = timezone(timedelta(hours=8))   # the simulated city's clock




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
    if settings.example_secrets():  # .env.example's change-me values must never reach a deployment
        raise UserError(f"{', '.join(settings.example_secrets())}: still the example value from .env.example "
                        "(change-me…); set a real secret")
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

    import faulthandler

    import faust

    from streams.app import create_app

    # a crash or SIGABRT writes every thread's stack to the log: what a worker that does not exit
    # is doing (tests send SIGABRT to one that outlived SIGTERM by 30 s; Faust takes SIGUSR1/2)
    faulthandler.enable(all_threads=True)
    app = create_app(settings, storage)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()  # ends with SystemExit once Faust has stopped
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    # Faust has stopped: offsets committed, tables and producer flushed.  Close the storage
    # here and leave without the interpreter's teardown, in which chDB's engine sometimes
    # never returned (1-4 workers of a full test run outlived SIGTERM after "Closing event
    # loop", with no Python frame left to dump).
    try:
        storage.close()
    except Exception as exc:  # the worker is done either way
        logging.getLogger("entwatch").warning("closing the storage: %s", exc)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
        print(f"  read     {stack.metrics_url}/read/counts   (named queries: {stack.metrics_url}/read; "
              f"header Authorization: Bearer <the token in {stack.settings.token_file()}>)", flush=True)
        console = ConsoleThread(stack.settings).__enter__()  # a thread: the stack's children stay broker + worker
        print(f"  console  {console.url}   (users: entwatch console adduser NAME --role analyst)", flush=True)
        print("Send events with: entwatch replay FILE.jsonl --broker " + stack.broker.url, flush=True)
        print("Stop with Ctrl-C.", flush=True)
        stack.wait()
        console.stop()
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

    @property
    def reader(self) -> WorkerReader:
        """The worker's read API, with the stack's token (``api-token`` in the data dir)."""
        return WorkerReader(self.metrics_url, self.settings.api_token_value(create=True))

    def __enter__(self) -> "EmbeddedStack":
        from streams.broker import wait_for_port
        from streams.topics import ensure_topics

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        try:
            wait_for_port_free(self.settings.metrics_host, self.settings.metrics_port)
            self.broker.start()
            # The embedded broker starts empty: records a previous run left on disk (RocksDB
            # state store) would describe topics that no longer exist.
            shutil.rmtree(self.settings.state_dir(), ignore_errors=True)
            self.settings.broker_url = self.broker.url
            ensure_topics(self.settings)
            env = {**os.environ, "ENTWATCH_BROKER_URL": self.broker.url,
                   "ENTWATCH_STORAGE_URL": self.settings.effective_storage_url(),
                   "ENTWATCH_METRICS_PORT": str(self.settings.metrics_port),
                   "ENTWATCH_DATA_DIR": str(self.settings.data_dir)}
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.settings.api_token_value(create=True)  # before the worker starts: both read the same file
            log = open(self.settings.data_dir / "worker.log", "ab")
            self.worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            wait_for_port(self.settings.metrics_host, self.settings.metrics_port, 60, self.worker)
            wait_for_ready(self.reader, 120, self.worker)
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


def wait_for_ready(reader: WorkerReader, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until the worker consumes (partitions assigned, state recovered) and its storage answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"worker exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{reader.base_url}/ready", timeout=5):
                reader.read("counts")
                return
        except (OSError, ReadError):
            time.sleep(0.2)
    raise TimeoutError(f"the worker at {reader.base_url} was not ready within {timeout:.0f} s")


# ---------------------------------------------------------------- demo

def demo_config(enterprises: int, days: int, seed: int, today=None):
    """The demo's city: ``days`` ending yesterday (nothing may lie in the future)."""
    from datetime import date, timedelta

    from producers.simulator import SimulationConfig

    today = today or date.today()
    return SimulationConfig(enterprises=enterprises, days=days, seed=seed, start=today - timedelta(days=days + 1))


def cmd_demo(args) -> int:
    """The embedded stack fed by the simulated city, live: history at full speed, then paced."""
    import tempfile
    import threading
    from datetime import datetime

    from producers.replay import send_lines, simulated_lines
    from producers.simulator import write_truth

    if not 0 <= args.paced_days < args.days:
        raise UserError(f"--paced-days must be between 0 and --days ({args.days}); e.g. --paced-days 60")
    try:
        config = demo_config(args.enterprises, args.days, args.seed)
    except ValueError as exc:
        raise UserError(f"{exc}; see entwatch demo --help") from None
    paced_from = datetime.combine(config.end - timedelta(days=args.paced_days), datetime.min.time()).astimezone(
        SHANGHAI)
    workdir = Path(tempfile.mkdtemp(prefix="entwatch-demo-"))
    truth_path = workdir / "truth.jsonl"
    anomalies = write_truth(config, truth_path)
    stack = EmbeddedStack(load_settings(metrics_port=args.metrics_port, data_dir=args.data_dir))
    with stack:
        url = stack.metrics_url
        print(f"entwatch demo is up: a city of {config.enterprises:,} enterprises, {config.start} to "
              f"{config.end - timedelta(days=1)}; {anomalies} anomalies injected (ground truth: {truth_path})",
              flush=True)
        print(f"  sending   up to {paced_from:%Y-%m-%d} at full speed, then {args.speed:,.0f}x real time "
              f"(one simulated day every {86400 / args.speed:.1f} s)", flush=True)
        print(f"  metrics   {url}/metrics", flush=True)
        print(f"  read      {url}/read/alert_counts   (named queries: {url}/read; "
              f"header Authorization: Bearer <the token in {stack.settings.token_file()}>)", flush=True)
        print(f"  storage   {stack.settings.effective_storage_url()}", flush=True)
        print(f"  broker    {stack.broker.url}   (Tansu, in memory)", flush=True)
        print(f"  alerts    entwatch alerts --worker {url} --follow", flush=True)
        console = ConsoleThread(stack.settings, demo_user=True).__enter__()
        print(f"  console   {console.url}   log in as {console.user} / {console.password}  (an analyst, "
              "this run's password)", flush=True)
        print("Ctrl-C stops.", flush=True)
        clock: dict = {"at": None, "done": False, "error": None}
        stop = threading.Event()

        def feed() -> None:
            try:
                report = send_lines(simulated_lines(config), stack.settings, speed=args.speed, paced_from=paced_from,
                                    stop=stop, progress_every=200,
                                    on_progress=lambda line: clock.__setitem__("at", line.at))
                clock["sent"] = report.sent
            except Exception as exc:   # the broker stopped under us (Ctrl-C) or a bug: say it, do not hide it
                clock["error"] = f"{exc.__class__.__name__}: {exc}"
            clock["done"] = True

        sender = threading.Thread(target=feed, name="simulator", daemon=True)
        sender.start()
        while not stack.stopping:
            for _ in range(25):
                if stack.stopping:
                    break
                time.sleep(0.2)
            if stack.stopping:
                break
            print("  " + demo_status(stack.reader, clock), flush=True)
        stop.set()
        console.stop()
    print("entwatch stopped.", flush=True)
    return 0


def demo_status(reader: WorkerReader, clock: dict) -> str:
    """One line: simulated time, stored events by kind, dead letters, alerts (the read API's ``counts``)."""
    at = clock.get("at")
    when = "sending finished" if clock.get("done") else f"simulated time {at:%Y-%m-%d %H:%M}" if at else "starting"
    if clock.get("error"):
        when = f"sending stopped ({clock['error'][:120]})"
    try:
        rows = reader.read("counts")
    except (OSError, ReadError, LookupError, ValueError):
        return f"{when}; storage not answering yet"
    kinds = ", ".join(f"{r['name']} {int(r['n']):,}" for r in rows if r["what"] == "events") or "nothing yet"
    dead = sum(int(r["n"]) for r in rows if r["what"] == "deadletters")
    by_status = {r["name"]: int(r["n"]) for r in rows if r["what"] == "alerts"}
    alerts = f"{sum(by_status.values()):,} ({by_status.get('open', 0):,} open)"
    return f"{when}; stored: {kinds}; dead letters {dead:,}; alerts {alerts}"


# ---------------------------------------------------------------- replay

def add_csv_arguments(p) -> None:
    """The CSV mapping options of ``replay`` and ``reconcile``."""
    g = p.add_argument_group("CSV", "a CSV file needs a mapping of its columns (docs/REPLAY.md)")
    g.add_argument("--mapping", help="YAML mapping file (examples in docs/examples/)")
    g.add_argument("--kind", choices=("registry", "utility", "tax", "social", "complaint"),
                   help="the kind of every row (instead of, or overriding, the mapping's)")
    g.add_argument("--map", action="append", metavar="COLUMN=FIELD[:FORMAT]",
                   help="column to field, e.g. --map 纳税人识别号=uscc --map 所属期=period:%%Y%%m (repeatable)")
    g.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="a constant field, e.g. --set source=dg-tax (repeatable)")
    g.add_argument("--encoding", help="file encoding (default utf-8; e.g. gb18030 for Excel exports)")
    g.add_argument("--delimiter", help="cell separator (default ,; tab for TSV)")
    g.add_argument("--timezone", help="offset of times without one (default +08:00)")
    g.add_argument("--group", choices=("auto", "event_id", "day", "none"),
                   help="utility rows into uploads: same event_id, same meter and day, or one per row")


def replay_mapping(args):
    """The CSV mapping of ``entwatch replay`` (``--mapping`` file and/or flags), or None for JSON Lines."""
    from producers.mapping import Mapping

    flags = bool(args.kind or args.map or args.set or args.encoding or args.delimiter or args.timezone or args.group)
    is_csv = Path(args.file).suffix.lower() in (".csv", ".tsv", ".txt") or args.mapping or flags
    if not is_csv:
        return None
    if not args.mapping and not args.kind:
        raise UserError(f"{args.file} is CSV: give its column mapping with --mapping FILE.yaml "
                        "(examples in docs/examples/) or --kind KIND [--map COLUMN=FIELD ...]")
    base = Mapping.load(Path(args.mapping)) if args.mapping else None
    if base is not None and not flags:
        return base
    return Mapping.from_flags(args.kind, args.map or [], args.set or [], base, encoding=args.encoding,
                              delimiter=args.delimiter, timezone=args.timezone, group=args.group)


def cmd_replay(args) -> int:
    """Send a JSON Lines or CSV file's events to their topics."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from producers.mapping import MappingError
    from producers.replay import replay

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a JSON Lines or CSV file")
    settings = load_settings(broker_url=args.broker)
    try:
        mapping = replay_mapping(args)
        if not args.dry_run:
            reach_broker(settings)
        columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, transient=True, disable=args.quiet) as progress:
            task = progress.add_task(f"{'check' if args.dry_run else 'replay'} {path.name}", total=path.stat().st_size)
            report = replay(
                path, settings, mapping=mapping, rate=args.rate, dry_run=args.dry_run,
                on_progress=lambda done: progress.update(task, completed=done),
                on_problem=lambda msg: progress.console.print(f"[yellow]bad {report_unit(mapping)}[/] {msg}",
                                                              highlight=False, soft_wrap=True),
            )
    except MappingError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:
        broker_error(exc, settings)
        raise
    if report.bad > len(report.problems):
        print(f"... and {report.bad - len(report.problems)} more bad {report.unit}", file=sys.stderr)
    summary = report.summary()
    print(summary.replace("sent", "would send", 1) if args.dry_run else summary)
    return 0


def report_unit(mapping) -> str:
    return "line" if mapping is None else "row"


def cmd_reconcile(args) -> int:
    """Compare storage with a replayed file; exit 1 when they differ."""
    from producers.mapping import MappingError

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the JSON Lines or CSV file you replayed")
    settings = load_settings(storage_url=args.storage)
    where = args.worker or worker_url(settings)
    try:
        expected = reconcile.expected_from(reconcile.file_units(path, replay_mapping(args)), ZoneInfo(settings.timezone))
        reader = open_reader(settings, worker=args.worker)
        where = getattr(getattr(reader, "session", None), "where", where)
        report = reconcile.reconcile(expected, reader)
    except MappingError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"no worker answers at {where} ({getattr(exc, 'reason', exc)}); start `entwatch up`, "
                        "or pass --worker URL or --storage clickhouse://…") from None
    except ReadError as exc:
        raise UserError(f"cannot read storage from {where}: {exc}") from None
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def reach_broker(settings: Settings) -> None:
    """Create the topics if missing (as the worker would); a broker that does not answer is the user's to fix."""
    import socket

    from streams.topics import ensure_topics

    def answers(server: str) -> bool:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
                return True
        except (OSError, ValueError):
            return False

    if not any(answers(server) for server in settings.bootstrap_servers().split(",")):
        raise UserError(f"cannot send to the broker at {settings.broker_url} (nothing answers there): "
                        "is it running? set --broker or ENTWATCH_BROKER_URL")
    try:
        ensure_topics(settings)
    except Exception as exc:
        broker_error(exc, settings)
        raise


def broker_error(exc: BaseException, settings: Settings) -> None:
    """Turn a Kafka client error into a one-line UserError (other errors pass)."""
    module = exc.__class__.__module__
    if module.startswith(("kafka", "aiokafka")) or isinstance(exc, (ConnectionError, TimeoutError)):
        raise UserError(f"cannot send to the broker at {settings.broker_url} ({exc.__class__.__name__}): "
                        "is it running? set --broker or ENTWATCH_BROKER_URL") from None


# ---------------------------------------------------------------- simulate

def parse_speed(text: str) -> float | None:
    """``max`` → None (no pacing); otherwise a positive factor of real time."""
    if text.strip().lower() in ("max", "inf", "0"):
        return None
    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write a factor of real time (e.g. 3600) or max") from None
    if speed <= 0:
        raise argparse.ArgumentTypeError("the speed must be above 0 (or max)")
    return speed


def cmd_simulate(args) -> int:
    """Write a simulated city (events + ground truth) as JSON Lines files, or send it to Kafka live."""
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
    if args.to_kafka:
        return simulate_to_kafka(args, config)
    out = Path(args.out or "city")
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


def simulate_to_kafka(args, config) -> int:
    """Send the city's deliveries to the broker as they are generated, paced at ``--speed``."""
    from datetime import datetime

    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from producers.replay import send_lines, simulated_lines
    from producers.simulator import write_truth

    settings = load_settings(broker_url=args.broker)
    paced_from = None
    if args.fast_forward:
        if not 0 < args.fast_forward < config.days:
            raise UserError(f"--fast-forward must be between 1 and --days - 1 ({config.days - 1})")
        paced_from = datetime.combine(config.start + timedelta(days=args.fast_forward),
                                      datetime.min.time()).astimezone(SHANGHAI)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_truth(config, Path(args.out) / "truth.jsonl")
    origin = datetime.combine(config.history_start, datetime.min.time()).astimezone(SHANGHAI)
    total = (datetime.combine(config.end, datetime.min.time()).astimezone(SHANGHAI) - origin).total_seconds()
    try:
        reach_broker(settings)
        with Progress("[progress.description]{task.description}", BarColumn(), TimeElapsedColumn(),
                      transient=True, disable=args.quiet) as progress:
            task = progress.add_task("simulate", total=total)

            def show(line) -> None:
                progress.update(task, completed=(line.at - origin).total_seconds(),
                                description=f"simulated {line.at:%Y-%m-%d %H:%M}")

            report = send_lines(simulated_lines(config), settings, speed=args.speed, paced_from=paced_from,
                                on_progress=show, progress_every=200)
    except Exception as exc:
        broker_error(exc, settings)
        raise
    pace = "at full speed" if not args.speed else f"at {args.speed:,.0f}x real time"
    print(f"{report.summary()} {pace}, to {settings.broker_url}")
    if args.out:
        print(f"ground truth: {Path(args.out) / 'truth.jsonl'}")
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

    p = sub.add_parser("demo", help="the embedded stack fed live by a simulated city")
    p.add_argument("--enterprises", type=int, default=300, help="city size (default 300)")
    p.add_argument("--days", type=int, default=180, help="simulated days, ending yesterday (default 180)")
    p.add_argument("--paced-days", type=int, default=60,
                   help="the last this many days are paced; the ones before go at full speed (default 60)")
    p.add_argument("--speed", type=float, default=86400.0,
                   help="pace, times real time (default 86400: a simulated day per second)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--metrics-port", type=int, help="worker web/metrics port (default 6066)")
    p.add_argument("--data-dir", help="where chDB keeps its data (default ~/.local/share/entwatch)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("worker", help="run the Faust worker against a given broker and storage")
    p.add_argument("--broker", help="kafka://host:port (default ENTWATCH_BROKER_URL)")
    p.add_argument("--storage", help="clickhouse://user:pass@host:9000/db or chdb:///dir (default ENTWATCH_STORAGE_URL)")
    p.add_argument("--metrics-port", type=int, help="web/metrics port (default ENTWATCH_METRICS_PORT or 6066)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("replay", help="send events from a JSON Lines or CSV file to their topics")
    p.add_argument("file", help="JSON Lines file of SPEC §2 events, or a CSV export (with a mapping)")
    p.add_argument("--broker", help="kafka://host:port (default ENTWATCH_BROKER_URL)")
    p.add_argument("--rate", type=float, help="at most this many events per second")
    p.add_argument("--dry-run", action="store_true", help="validate and report only; send nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_csv_arguments(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("reconcile", help="compare what storage holds with a replayed file (exit 1 if it differs)")
    p.add_argument("file", help="the JSON Lines file or CSV export that was replayed")
    p.add_argument("--storage", help="clickhouse://… to read a server directly (as the read-only user)")
    p.add_argument("--worker", help="the worker's URL for embedded storage (default: this machine's)")
    add_csv_arguments(p)
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("simulate", help="a simulated city with ground truth: to JSON Lines files, or live to Kafka")
    p.add_argument("--out", help="output directory (default ./city; with --to-kafka only the ground truth)")
    p.add_argument("--enterprises", type=int, default=2000)
    p.add_argument("--days", type=int, default=366)
    p.add_argument("--start", help="first day, YYYY-MM-DD (default 2024-01-01)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--electricity-interval", choices=("hour", "day"), default="hour")
    p.add_argument("--to-kafka", action="store_true", help="send the events to the broker as they are generated")
    p.add_argument("--broker", help="kafka://host:port for --to-kafka (default ENTWATCH_BROKER_URL)")
    p.add_argument("--speed", type=parse_speed, default=None, metavar="K|max",
                   help="with --to-kafka: K times real time in event time (3600: an hour a second), or max (default)")
    p.add_argument("--fast-forward", type=int, default=0, metavar="DAYS",
                   help="with --to-kafka --speed: send the first DAYS days at full speed, then pace")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    from streams import alerts_cli, evaluate
    p = sub.add_parser("alerts", help="list open alerts (table or JSON Lines; --follow)")
    alerts_cli.add_arguments(p)
    p.set_defaults(func=alerts_cli.command)

    from console import cli as console_cli

    p = sub.add_parser("evaluate", help="precision, recall and delay of the alerts against a ground truth, "
                                        "or (--cases) against the analysts' outcomes")
    evaluate.add_arguments(p)
    p.set_defaults(func=lambda args: (console_cli.command(argparse.Namespace(console_command="outcomes", json=False))
                                      if args.cases else evaluate.command(args)))
    p = sub.add_parser("console", help="the monitoring centre's web console; `console adduser NAME` adds a user")
    console_cli.add_arguments(p)
    p.set_defaults(func=console_cli.command)

    p = sub.add_parser("schemas", help="write the JSON Schemas of every message (deploy/schemas)")
    schemas.add_arguments(p)
    p.set_defaults(func=schemas.command)
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
