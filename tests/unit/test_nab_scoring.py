"""The NAB harness (bench/nab.py) scores the way NAB does: hand-computed cases of its rules,
then known results on the development split (null detector 0, a detector that fires on the
first row of every window 100, NAB's windowed Gaussian 50.9 / 31.1 / 58.8)."""

from __future__ import annotations

import doctest
import importlib.util
import math
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import require

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("nab_harness", BENCH / "nab.py")
nab = sys.modules["nab_harness"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nab)

STANDARD = nab.PROFILES["standard"]
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def reward(position: float) -> float:
    """NAB's scaled sigmoid, written independently: 2/(1 + e^(5x)) − 1 = −tanh(2.5x)."""
    return -1.0 if position > 3.0 else -math.tanh(2.5 * position)


def series(n=100, windows=((40, 49),)):
    """n rows (probation: the first 15), one window of 10 rows by default."""
    return nab.Series("synthetic.csv", tuple(START + timedelta(minutes=5 * i) for i in range(n)),
                      (0.0,) * n, tuple(windows))


def fired(*rows, n=100):
    return [i in rows for i in range(n)]


def test_the_harness_doctests_hold():
    result = doctest.testmod(nab)
    assert result.attempted >= 2 and result.failed == 0


def test_a_missed_window_costs_the_false_negative_weight():
    assert nab.file_score(series(), fired(), STANDARD)[0] == -1.0
    assert nab.file_score(series(), fired(), nab.PROFILES["reward_low_FN_rate"])[0] == -2.0


def test_a_detection_on_a_windows_first_row_is_worth_exactly_the_true_positive_weight():
    assert nab.file_score(series(), fired(40), STANDARD)[0] == pytest.approx(1.0, abs=1e-12)


def test_a_later_detection_is_worth_less_and_only_the_first_one_in_a_window_counts():
    later = reward(-0.5) / reward(-1.0)                          # row 45 of 40..49
    assert nab.file_score(series(), fired(45), STANDARD)[0] == pytest.approx(later)
    assert nab.file_score(series(), fired(45, 46, 49), STANDARD)[0] == pytest.approx(later)
    assert later < 0.86


def test_false_positives_cost_by_their_distance_from_the_previous_window():
    before_any_window = nab.file_score(series(), fired(20), STANDARD)[0]
    just_after = nab.file_score(series(), fired(50), STANDARD)[0]
    far_after = nab.file_score(series(), fired(99), STANDARD)[0]
    assert before_any_window == pytest.approx(-1.0 - 0.11)
    assert just_after == pytest.approx(-1.0 + 0.11 * reward(1 / 9))   # 1 row past a 10-row window
    assert far_after == pytest.approx(-1.0 - 0.11)
    assert nab.file_score(series(), fired(60, 61, 62), STANDARD)[1]["fp"] == 3   # every row counts


def test_the_probation_period_is_not_scored():
    assert series().probation == 15
    assert nab.file_score(series(), fired(3), STANDARD)[0] == -1.0
    # a window that lies wholly in the probation period counts for nothing
    assert nab.file_score(series(windows=((2, 8),)), fired(), STANDARD)[0] == 0.0
    assert series(n=10_000).probation == 750                       # 15 %, at most 750 rows


def test_a_score_at_exactly_the_threshold_is_a_detection():
    class Fixed:
        threshold = 0.7

        def update(self, timestamp, value):
            return 0.7 if timestamp == START + timedelta(minutes=5 * 40) else 0.0

    result = nab.evaluate(Fixed, [series()])
    assert result["standard"] == pytest.approx(100.0) and result["detections"] == 1


# -- the development split ----------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus():
    require(nab.DEFAULT_CORPUS.is_dir(), f"the NAB development split is not at {nab.DEFAULT_CORPUS} "
                                         "(set ENTWATCH_NAB_CORPUS)")
    return nab.load_corpus(nab.DEFAULT_CORPUS)


def test_the_null_detector_scores_0_and_the_first_row_of_every_window_100(corpus):
    assert len(corpus) == 34 and sum(len(s.windows) for s in corpus) == 67
    never = {s.name: [False] * len(s.values) for s in corpus}
    first_rows = {s.name: [any(i == a for a, _ in s.windows) for i in range(len(s.values))] for s in corpus}
    assert nab.corpus_score(corpus, never) == {profile: 0.0 for profile in nab.PROFILES}
    for score in nab.corpus_score(corpus, first_rows).values():
        assert score == pytest.approx(100.0)


def test_nabs_windowed_gaussian_scores_what_nab_published_for_it_on_this_split(corpus):
    result = nab.evaluate(nab.WindowedGaussian, corpus)
    published = nab.SCOREBOARD["windowed Gaussian"]
    assert (result["standard"], result["reward_low_FP_rate"], result["reward_low_FN_rate"]) == \
        pytest.approx(published, abs=0.05)
