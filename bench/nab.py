"""Numenta Anomaly Benchmark (NAB) harness (issue 14): run streaming detectors over a
NAB-format corpus and score them with NAB's published method.

A detector is anything with ``update(timestamp, value) -> score`` (score in [0, 1]) and a
``threshold`` attribute: a point is a detection when ``score >= threshold`` (NAB's sweeper
counts a point at exactly the threshold as a detection).  One fresh detector per file; it
sees every row, the probation period included, with UTC-aware timestamps.

Scoring, as NAB v1.1 does it (``nab/sweeper.py`` and ``nab/runner.py``):

* the first ``min(floor(0.15·n), 750)`` rows of a file are the probation period: they are
  not scored, and a window whose rows all lie in it counts for nothing;
* inside an anomaly window ``[a, b]`` (width ``w = b − a + 1`` rows) a detection at row
  ``i`` is worth ``S(−(b − i + 1)/w) / S(−1) × tp``, with the scaled sigmoid
  ``S(x) = 2/(1 + e^{5x}) − 1`` (−1 beyond x = 3): a detection on a window's first row is
  worth exactly ``tp``, later ones less; only the best (= first) detection of a window
  counts, and a window without one costs ``fn``;
* a detection outside every window costs ``fp`` if no window came before it, else
  ``−S(d/(w' − 1)) × fp`` with ``d`` the rows since the previous window's last row and
  ``w'`` its width (a detection just after a window costs almost nothing); every such row
  counts, so a detector that fires on ten rows in a row pays ten times;
* the corpus score is the sum over files, normalised per profile as
  ``100 × (score − null) / (perfect − null)``: ``null`` is the score of a detector that
  never fires (−fn per scored window), ``perfect`` is ``tp`` × the number of windows.

Profiles (NAB ``config/profiles.json``): standard (tp 1, fp 0.11, fn 1),
reward_low_FP_rate (tp 1, fp 0.22, fn 1), reward_low_FN_rate (tp 1, fp 0.11, fn 2).
NAB itself reports each detector at the threshold its optimiser found best on the whole
corpus; here every detector is scored at its own default threshold, fixed before the run.

    .venv/bin/python bench/nab.py [--corpus bench/data/nab-dev] [--out bench/results/nab.json] [--small]

(the corpus defaults to ``$ENTWATCH_NAB_CORPUS``, else ``bench/data/nab-dev``: the 34 series of NAB's
development split with their labels, MIT, vendored with NAB's LICENSE.txt).

Prints one line per detector (standard, low-FP, low-FN, detections, time) and writes the
figures, per file as well, to ``bench/results/nab.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

import numpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.baseline import robust_scale  # noqa: E402
from detectors.univariate import UnivariateDetector  # noqa: E402

PROFILES = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}
PROBATION_SHARE = 0.15
PROBATION_MAX_ROWS = 0.15 * 5000
DEFAULT_CORPUS = Path(os.environ.get("ENTWATCH_NAB_CORPUS", ROOT / "bench" / "data" / "nab-dev"))

# NAB's published scores on this development split (standard, low FP, low FN), issue 14
SCOREBOARD = {
    "ARTime": (80.4, 71.6, 85.4), "CAD-OSE": (77.2, 74.9, 78.7), "HTM": (72.8, 65.9, 76.9),
    "Skyline": (65.4, 51.9, 71.5), "Random Cut Forest": (51.6, 41.8, 60.9),
    "windowed Gaussian": (50.9, 31.1, 58.8),
}


# -- the corpus -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One NAB data file: its rows and its anomaly windows as (first, last) row indices."""

    name: str
    timestamps: tuple[datetime, ...]
    values: tuple[float, ...]
    windows: tuple[tuple[int, int], ...]

    @property
    def probation(self) -> float:
        """Rows before this index are not scored (NAB: 15 % of the file, at most 750 rows)."""
        return min(math.floor(PROBATION_SHARE * len(self.values)), PROBATION_MAX_ROWS)


def parse_time(text: str) -> datetime:
    """A NAB timestamp (``2014-04-10 07:15:00`` or with ``.000000``), read as UTC.

    >>> parse_time("2014-04-10 07:15:00.000000").isoformat()
    '2014-04-10T07:15:00+00:00'
    """
    text = text.strip()
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)


def load_corpus(root: Path) -> list[Series]:
    """Every file named in ``labels/combined_windows.json`` under ``root/data``, in name order."""
    root = Path(root)
    windows_file = root / "labels" / "combined_windows.json"
    if not windows_file.is_file():
        raise SystemExit(f"no NAB corpus at {root}: {windows_file} is missing (give --corpus)")
    windows = json.loads(windows_file.read_text())
    corpus = []
    for name in sorted(windows):
        with open(root / "data" / name, newline="") as f:
            rows = list(csv.DictReader(f))
        stamps = tuple(parse_time(r["timestamp"]) for r in rows)
        index = {t: i for i, t in enumerate(stamps)}
        limits = []
        for start, end in windows[name]:
            a, b = index.get(parse_time(start)), index.get(parse_time(end))
            if a is None or b is None:
                raise SystemExit(f"{name}: window {start} .. {end} does not start and end on rows of the file")
            limits.append((a, b))
        corpus.append(Series(name, stamps, tuple(float(r["value"]) for r in rows), tuple(sorted(limits))))
    return corpus


# -- NAB's score --------------------------------------------------------------------------
def scaled_sigmoid(position: float) -> float:
    """NAB's reward for a detection at a relative ``position``: about 0.987 at a window's
    left edge (−1), 0 at its right edge, negative after it, −1 from 3 window widths on.

    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.5)
    (0.98661, 0.0, -1.0)
    """
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def file_score(series: Series, detections, costs: dict) -> tuple[float, dict]:
    """NAB's raw score of one file for a list of booleans (one per row), and the counts
    ``{"windows", "detected", "fp"}`` (scored windows, windows detected, false rows)."""
    max_tp = scaled_sigmoid(-1.0)
    probation = series.probation
    best = {}                       # window -> best reward so far (starts at -fn)
    fp_total, fp_rows = 0.0, 0
    windows = iter(series.windows)
    current = next(windows, None)
    previous = None                 # (last row, width) of the last window passed
    for i, fired in enumerate(detections):
        while current is not None and i > current[1]:
            previous = (current[1], current[1] - current[0] + 1)
            current = next(windows, None)
        inside = current is not None and current[0] <= i <= current[1]
        if i < probation:
            continue
        if inside:
            best.setdefault(current, -costs["fn"])
            if fired:
                width = current[1] - current[0] + 1
                reward = scaled_sigmoid(-(current[1] - i + 1) / width) * costs["tp"] / max_tp
                best[current] = max(best[current], reward)
        elif fired:
            if previous is None:
                cost = -1.0
            else:
                cost = scaled_sigmoid(abs(previous[0] - i) / (previous[1] - 1))
            fp_total += cost * costs["fp"]
            fp_rows += 1
    detected = sum(1 for v in best.values() if v > 0)
    return sum(best.values()) + fp_total, {"windows": len(best), "detected": detected, "fp": fp_rows}


def corpus_score(corpus: list[Series], detections_by_file: dict[str, list[bool]]) -> dict:
    """Normalised NAB score per profile (null detector 0, perfect 100), with the raw totals."""
    out = {}
    n_windows = sum(len(s.windows) for s in corpus)
    for profile, costs in PROFILES.items():
        raw = null = 0.0
        for series in corpus:
            raw += file_score(series, detections_by_file[series.name], costs)[0]
            null += file_score(series, [False] * len(series.values), costs)[0]
        perfect = n_windows * costs["tp"]
        out[profile] = 100.0 * (raw - null) / (perfect - null)
    return out


# -- running detectors ----------------------------------------------------------------------
def run_detector(make, series: Series) -> list[float]:
    """Scores of a fresh detector (``make()``) over every row of ``series``."""
    detector = make()
    return [detector.update(t, v) for t, v in zip(series.timestamps, series.values)]


def evaluate(make, corpus: list[Series], threshold: float | None = None) -> dict:
    """Run ``make()`` on every file and score it at ``threshold`` (default: the detector's own
    ``threshold`` attribute)."""
    began = time.perf_counter()
    if threshold is None:
        threshold = make().threshold
    detections, files = {}, {}
    for series in corpus:
        scores = run_detector(make, series)
        detections[series.name] = fired = [s >= threshold for s in scores]
        raw, counts = file_score(series, fired, PROFILES["standard"])
        files[series.name] = {"standard_raw": round(raw, 4), **counts}
    result = {name: round(v, 2) for name, v in corpus_score(corpus, detections).items()}
    result["threshold"] = threshold
    result["detections"] = sum(sum(f) for f in detections.values())
    result["windows_detected"] = sum(f["detected"] for f in files.values())
    result["false_positive_rows"] = sum(f["fp"] for f in files.values())
    result["seconds"] = round(time.perf_counter() - began, 1)
    result["files"] = files
    return result


class NullDetector:
    """Never fires: NAB's null detector, the 0 of the normalised score."""

    threshold = 1.0

    def update(self, timestamp, value) -> float:
        return 0.0


class WindowedGaussian:
    """NAB's windowed Gaussian baseline, as NAB runs it: the Gaussian tail probability of a
    value under the mean and (population) standard deviation of up to 6,400 earlier values,
    refreshed every 100 values once the window is full; score ``1 − P(|X − μ| ≥ |x − μ|)/2``.
    NAB's result files hold scores printed with 12 significant digits (Python 2 ``str``), and
    its threshold for this detector is 1.0, so a detection is a tail below 5e-13; the score
    is rounded the same way here, which reproduces NAB's figures for it."""

    threshold = 1.0

    def __init__(self, window: int = 6400, step: int = 100):
        self.window, self.step = window, step
        self.data = numpy.empty(window)
        self.size = 0
        self.pending: list[float] = []
        self.mean, self.std = 0.0, 1.0

    def update(self, timestamp, value) -> float:
        value = float(value)
        score = 0.0
        if self.size:
            z = abs(value - self.mean) / self.std
            score = float(f"{1.0 - 0.5 * math.erfc(z / math.sqrt(2.0)):.12g}")
        if self.size < self.window:
            self.data[self.size] = value
            self.size += 1
            self._refresh()
        else:
            self.pending.append(value)
            if len(self.pending) == self.step:
                self.data = numpy.concatenate([self.data[self.step:], self.pending])
                self.pending = []
                self._refresh()
        return score

    def _refresh(self) -> None:
        values = self.data[:self.size]
        self.mean, self.std = float(numpy.mean(values)), float(numpy.std(values))
        if self.std == 0.0:
            self.std = 0.000001


class RobustZBefore14:
    """``detectors.univariate.UnivariateDetector`` as it was before issue 14 (commit 419e1ce),
    kept here so that its NAB figure stays reproducible: median of the last 64 values, robust
    scale of the residuals, score ``|z|/(|z| + 3.5)``, threshold 0.5."""

    threshold = 0.5

    def __init__(self, window: int = 64, min_history: int = 16, z_ref: float = 3.5, clip_z: float = 3.0,
                 adapt_after: int = 6):
        self.window, self.min_history, self.z_ref = window, min_history, z_ref
        self.clip_z, self.adapt_after = clip_z, adapt_after
        self.level: deque = deque(maxlen=window)
        self.residuals: deque = deque(maxlen=window)
        self.run: list[float] = []

    def update(self, timestamp, value) -> float:
        value = float(value)
        if not self.level:
            self.level.append(value)
            return 0.0
        expected = median(self.level)
        scale = robust_scale(self.residuals, 0.0) if self.residuals else 0.0
        scale = max(scale, 1e-3 * abs(expected), 1e-9)
        residual = value - expected
        z = residual / scale
        warm = len(self.residuals) >= self.min_history
        if warm and abs(z) > self.z_ref:
            if self.run and (self.run[-1] > 0) != (residual > 0):
                self.run = []
            self.run.append(residual)
        else:
            self.run = []
        clipped = max(-self.clip_z * scale, min(self.clip_z * scale, residual))
        self.level.append(expected + clipped)
        self.residuals.append(clipped)
        if len(self.run) >= self.adapt_after:
            offset = median(self.run)
            self.level = deque((v + offset for v in self.level), maxlen=self.window)
            self.run = []
        return abs(z) / (abs(z) + self.z_ref) if warm else 0.0


DETECTORS = {
    "UnivariateDetector": UnivariateDetector,
    "windowed Gaussian (this harness)": WindowedGaussian,
    "UnivariateDetector before issue 14": RobustZBefore14,
    "null": NullDetector,
}


def main(argv=None) -> None:
    from _stack import machine   # bench-only helper (git revision, machine), not needed by the tests

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="NAB-format corpus (data/, labels/)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "nab.json")
    parser.add_argument("--small", action="store_true", help="a quick check: the first file of each family")
    args = parser.parse_args(argv)
    corpus = load_corpus(args.corpus)
    if args.small:
        families = {}
        for series in corpus:
            families.setdefault(series.name.split("/")[0], series)
        corpus = list(families.values())
    n_windows = sum(len(s.windows) for s in corpus)
    print(f"corpus {args.corpus}: {len(corpus)} files, {sum(len(s.values) for s in corpus):,} rows, "
          f"{n_windows} windows")
    print(f"{'detector':<36} {'threshold':>9} {'standard':>8} {'low FP':>7} {'low FN':>7} "
          f"{'windows':>7} {'FP rows':>7} {'s':>6}")
    results = {}
    for name, make in DETECTORS.items():
        r = results[name] = evaluate(make, corpus)
        print(f"{name:<36} {r['threshold']:>9.4g} {r['standard']:>8.1f} {r['reward_low_FP_rate']:>7.1f} "
              f"{r['reward_low_FN_rate']:>7.1f} {r['windows_detected']:>4}/{n_windows:<2} "
              f"{r['false_positive_rows']:>7} {r['seconds']:>6.1f}")
    for name, (std, low_fp, low_fn) in SCOREBOARD.items():
        print(f"{'NAB scoreboard: ' + name:<36} {'(NAB)':>9} {std:>8.1f} {low_fp:>7.1f} {low_fn:>7.1f}")
    report = {"benchmark": "nab", "machine": machine(), "corpus": str(args.corpus), "files": len(corpus),
              "rows": sum(len(s.values) for s in corpus), "windows": n_windows, "profiles": PROFILES,
              "detectors": results,
              "nab_scoreboard_dev_split": {k: dict(zip(PROFILES, v)) for k, v in SCOREBOARD.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
