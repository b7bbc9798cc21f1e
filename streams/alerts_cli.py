"""``entwatch alerts``: the open alerts, as a table or JSON Lines."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="JSON Lines instead of a table")


def command(args) -> int:
    raise NotImplementedError("entwatch alerts is being built")
