"""The Poisson tail, in log space, without scipy.

``log_poisson_sf(k, mu)`` is log P(X ≥ k) for X ~ Poisson(mu): how surprising it is to see
at least ``k`` events where ``mu`` were expected.  Computed by summing probability terms in
log space (log-sum-exp), so tiny tails (1e-300 and below) stay exact enough to rank.

>>> round(poisson_sf(5, 1.0), 6)          # P(X >= 5 | mu = 1)
0.00366
>>> round(log_poisson_sf(60, 2.0), 1)     # far beyond float underflow of the plain tail
-149.0
>>> poisson_sf(0, 3.0)
1.0
"""

from __future__ import annotations

import math


def log_poisson_pmf(k: int, mu: float) -> float:
    """log P(X = k) for X ~ Poisson(mu)."""
    if mu <= 0:
        return 0.0 if k == 0 else -math.inf
    return k * math.log(mu) - mu - math.lgamma(k + 1)


def _logsumexp(terms: list[float]) -> float:
    top = max(terms)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(t - top) for t in terms))


def log_poisson_sf(k: int, mu: float) -> float:
    """log P(X ≥ k) for X ~ Poisson(mu) (0.0 for k ≤ 0)."""
    if k <= 0:
        return 0.0
    if mu <= 0:
        return -math.inf
    if k <= mu:  # the tail is large: 1 - P(X < k), summed from below
        cdf = _logsumexp([log_poisson_pmf(j, mu) for j in range(k)])
        return math.log1p(-min(math.exp(cdf), 1.0 - 1e-16))
    terms = []
    j = k
    while True:  # terms decrease from k on (k > mu): stop when they no longer matter
        t = log_poisson_pmf(j, mu)
        terms.append(t)
        if t < terms[0] - 40 or j > k + 10_000:
            break
        j += 1
    return _logsumexp(terms)


def poisson_sf(k: int, mu: float) -> float:
    """P(X ≥ k) for X ~ Poisson(mu)."""
    return math.exp(log_poisson_sf(k, mu))


class PoissonBurst:
    """Scores a short-window count against a long-window rate (Poisson tail).

    The rate is shrunk towards a prior (``prior_rate`` per day, worth ``prior_days`` of
    observation), so a newcomer with little history is judged against its cohort.
    ``score`` is −log10 of the tail probability (0 = ordinary; 3 = a one-in-a-thousand
    count).

    >>> b = PoissonBurst(window_days=7, prior_days=30)
    >>> round(b.score(count=6, base_count=2, base_days=90, prior_rate=0.01), 2)
    8.14
    >>> round(b.score(count=1, base_count=2, base_days=90, prior_rate=0.01), 2)
    0.9
    """

    __slots__ = ("window_days", "prior_days")

    def __init__(self, window_days: int = 7, prior_days: float = 30.0):
        self.window_days = window_days
        self.prior_days = prior_days

    def expected(self, base_count: int, base_days: float, prior_rate: float) -> float:
        rate = (base_count + prior_rate * self.prior_days) / (base_days + self.prior_days)
        return rate * self.window_days

    def score(self, count: int, base_count: int, base_days: float, prior_rate: float) -> float:
        mu = self.expected(base_count, base_days, prior_rate)
        return -log_poisson_sf(count, mu) / math.log(10)

    def __getstate__(self):
        return (self.window_days, self.prior_days)

    def __setstate__(self, state):
        self.window_days, self.prior_days = state
