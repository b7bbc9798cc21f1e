"""``entwatch evaluate``: the alerts of a simulated city scored against its ground truth."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--truth", required=True, help="ground-truth JSON Lines file (from entwatch simulate)")


def command(args) -> int:
    raise NotImplementedError("entwatch evaluate is being built")
