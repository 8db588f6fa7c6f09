"""What the ``rnnlab`` subcommands print for machines: one JSON record, the last line."""

from __future__ import annotations

import json


def print_json(record: dict) -> None:
    """Print the machine-readable record as the last line of output."""
    print(json.dumps(record, default=_json_default), flush=True)


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
