"""Persistence: a condition counts only after it held for ``k`` consecutive periods.

Score first, decide second: a detector says whether *this* period looks abnormal; a
``Persistence`` remembers the run and says when it has lasted long enough.  Periods that
carry no information (a holiday, a day without data) are passed as ``None``: they neither
extend nor break the run.

>>> p = Persistence(3)
>>> [p.update(flag, day) for day, flag in enumerate([True, None, True, False, True, True, True])]
[False, False, False, False, False, False, True]
>>> p.run, p.start
(3, 4)
"""

from __future__ import annotations

from typing import Any


class Persistence:
    """Counts consecutive periods in which a condition held; remembers when the run began."""

    __slots__ = ("k", "run", "start", "last")

    def __init__(self, k: int):
        self.k = k
        self.run = 0
        self.start: Any = None
        self.last: Any = None

    def update(self, flag: bool | None, period: Any = None) -> bool:
        """Feed one period's verdict; True once the run is at least ``k`` long."""
        if flag is None:
            return self.run >= self.k
        if flag:
            if self.run == 0:
                self.start = period
            self.run += 1
            self.last = period
        else:
            self.reset()
        return self.run >= self.k

    def reset(self) -> None:
        self.run, self.start, self.last = 0, None, None

    @property
    def holds(self) -> bool:
        return self.run >= self.k

    def __getstate__(self):
        return (self.k, self.run, self.start, self.last)

    def __setstate__(self, state):
        self.k, self.run, self.start, self.last = state
