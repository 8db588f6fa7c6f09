"""``rnnlab reproduce NAME``: run a named reproduction and compare with the paper."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlab.errors import UsageError
from rnnlab.experiments import ExperimentConfig, ExperimentResult, get, registry
from rnnlab.output import print_json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce a published result (rnnlab reproduce --list)",
        description="Reproduce a published result and compare this run with the paper.",
    )
    p.add_argument("name", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--quick", action="store_true", help="the seconds-long preset")
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="number of trials (default: as many as its documented rate; 1 with --quick)",
    )
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", type=Path, default=None, help="output folder (runs/NAME)")
    p.add_argument("--json", action="store_true", help="print one JSON record last")
    p.set_defaults(handler=_reproduce)


def _table(rows: list[tuple[str, str, str]]) -> str:
    head = ("metric", "this run", "published")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def _reproduce(args: argparse.Namespace) -> int:
    if args.list:
        for exp in registry().values():
            print(f"{exp.name:<18} {exp.summary}")
        return 0
    if not args.name:
        raise UsageError("an experiment name is required (rnnlab reproduce --list)")
    exp = get(args.name)
    if args.seeds is None:
        args.seeds = 1 if args.quick else exp.trials
    if args.seeds < 1:
        raise UsageError(f"--seeds: expected an integer >= 1, received {args.seeds}")
    out = args.out or Path("runs") / exp.name
    results: list[ExperimentResult] = []
    for k in range(args.seeds):
        seed = args.seed + k
        trial_out = out if args.seeds == 1 else out / f"seed{seed}"
        trial_out.mkdir(parents=True, exist_ok=True)
        res = exp.run(ExperimentConfig(quick=args.quick, seed=seed, out=trial_out))
        (trial_out / "report.md").write_text(res.report or f"# {exp.name}\n")
        results.append(res)
    last = results[-1]
    keys = list(dict.fromkeys([*last.metrics, *last.published]))
    rows = [(k, _fmt(last.metrics.get(k)), _fmt(last.published.get(k))) for k in keys]
    rate = sum(r.success for r in results) / len(results)
    print(f"{exp.name}: {exp.summary}")
    print(_table(rows))
    print(f"success: {sum(r.success for r in results)}/{len(results)} trials; report in {out}")
    if not args.quick:
        print(f"documented: {exp.required}/{exp.trials} trials (seeds 0-{exp.trials - 1}) succeed")
    if args.json:
        print_json(
            {
                "experiment": exp.name,
                "success": rate == 1.0,  # every trial met the paper's rule
                "success_rate": rate,
                "documented_rate": f"{exp.required}/{exp.trials}",
                "seeds": [args.seed + k for k in range(args.seeds)],
                "metrics": last.metrics,
                "published": last.published,
                "trials": [{"success": r.success, "metrics": r.metrics} for r in results],
                "report": str(out / "report.md"),
            }
        )
    return 0
