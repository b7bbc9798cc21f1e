"""What the console refuses, as a value the pages turn into a short answer."""

from __future__ import annotations


class Refused(Exception):
    """A request the console refuses: a status code and why (rendered as a short page)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason
