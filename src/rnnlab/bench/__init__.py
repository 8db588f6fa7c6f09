"""``rnnlab bench NAME``: speed comparisons that print ratios measured in one run.

Each module here defines ``main(quick: bool = False) -> dict`` that prints a table and
returns the measurements; ``benchmarks/NAME.py`` calls the same function. Wall-clock
numbers are never asserted in tests; only the printed ratios matter.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import time
from collections.abc import Callable

from rnnlab.errors import InputError
from rnnlab.output import print_json


def available() -> list[str]:
    """Names of the benchmarks in this package."""
    return sorted(i.name for i in pkgutil.iter_modules(__path__) if not i.name.startswith("_"))


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed comparisons (ratios measured in one run)")
    p.add_argument("name", help="benchmark name, or 'all'")
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    p.add_argument("--device", default=None, help="cpu or cuda (benchmarks that take one)")
    p.add_argument("--json", action="store_true", help="print one JSON record last")
    p.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    names = available() if args.name == "all" else [args.name]
    for name in names:
        if name not in available():
            raise InputError(f"unknown benchmark {name!r}; valid: all, {', '.join(available())}")
    records = {}
    for n in names:
        main = importlib.import_module(f"{__name__}.{n}").main
        kwargs = {"quick": args.quick}
        if args.device is not None:
            if "device" not in inspect.signature(main).parameters:
                if len(names) > 1:
                    continue  # 'all --device cuda': the benchmarks that run on a device
                raise InputError(f"device: the {n} benchmark runs on the CPU only")
            kwargs["device"] = args.device
        records[n] = main(**kwargs)
    if args.json:
        print_json(records if len(names) > 1 else records[names[0]])
    return 0
