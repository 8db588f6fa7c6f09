"""The ``rnnlab`` command.

Each subcommand lives beside the code it drives and adds itself through an
``add_parser(subparsers)`` function listed in :data:`COMMANDS`. A subcommand's handler
receives the parsed arguments and returns an exit status. Bad input
(:class:`rnnlab.errors.InputError`, which :class:`UsageError` is, and ``OSError``) becomes
one line on stderr and exit status 2; set ``RNNLAB_TRACEBACK=1`` to see the traceback
instead. Any other exception is a bug: it keeps its traceback and exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from rnnlab.errors import InputError, UsageError
from rnnlab.output import print_json

__all__ = ["UsageError", "build_parser", "main", "print_json"]

# module path of each subcommand group; each defines add_parser(subparsers)
COMMANDS = (
    "rnnlab.train.cli",  # train, sample, eval
    "rnnlab.experiments.cli",  # reproduce
    "rnnlab.bench",  # bench
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2 (argparse prints usage too)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnlab",
        description="Recurrent networks and classical sequence models on PyTorch.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rnnlab`` command; returns the exit status (0 ok, 1 a bug or a failed
    run, 2 bad input, 130 interrupted)."""
    try:
        # the subcommands' modules import torch: a Ctrl-C in the seconds that takes is an
        # interruption like any other, not a traceback
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130
    try:
        status = args.handler(args)
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130
    except (InputError, OSError) as exc:
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"rnnlab {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
