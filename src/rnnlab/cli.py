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
    "rnnlab.seq2seq.cli",  # translate
    "rnnlab.labelling.cli",  # transcribe
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


def _flag_names(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> dict[str, str]:
    """Python argument name -> command-line flag, for the subcommand being run
    (``seq_len`` -> ``--seq-len``)."""
    names: dict[str, str] = {}
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.option_strings:
                names.setdefault(action.dest, max(action.option_strings, key=len))
    return names


def _in_flags(message: str, names: dict[str, str]) -> str:
    """Library errors name Python arguments ("seq_len: expected ..."); the command line
    says the flag the user typed instead ("--seq-len: expected ...")."""
    head, sep, rest = message.partition(":")
    if sep and head in names:
        return names[head] + sep + rest
    return message


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
        msg = _in_flags(msg, _flag_names(parser, argv))
        print(f"rnnlab {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
