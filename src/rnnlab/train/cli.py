"""``rnnlab train``, ``rnnlab sample``, ``rnnlab eval`` (the language-model issue)."""

from __future__ import annotations


def add_parser(sub) -> None:
    # Placeholder until the training loop lands: no subcommands registered yet.
    return None
