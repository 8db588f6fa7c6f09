"""Named reproductions of published results, run by ``rnnlab reproduce NAME``.

An experiment is a function registered with :func:`register`. It receives an
:class:`ExperimentConfig` and returns an :class:`ExperimentResult`; the command line
runs it for each seed, writes ``report.md`` and the plots under ``out``, and prints a
table of this run against the published numbers. Every module in this package is
imported by :func:`registry`, so adding an experiment means adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.errors import InputError


@dataclass(frozen=True)
class ExperimentConfig:
    """How to run an experiment.

    quick: the seconds-long preset the test suite runs; False runs the full preset.
    seed: the random seed of this trial.
    out: folder for the report and plots (created by the caller).
    """

    quick: bool = False
    seed: int = 0
    out: Path = Path("runs")


@dataclass
class ExperimentResult:
    """What one trial of an experiment found.

    success: the paper's success rule applied to this run.
    metrics: this run's numbers (sequences seen, error rates, ...), JSON-serialisable.
    published: the published numbers the run is compared with (docs/tasks.md), same keys where
        they correspond.
    report: markdown text for report.md (setup, deviations from the paper, the table).
    plots: paths of the figures written under ``config.out``.
    """

    experiment: str
    success: bool
    metrics: dict = field(default_factory=dict)
    published: dict = field(default_factory=dict)
    report: str = ""
    plots: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Experiment:
    """A registered reproduction.

    trials: how many seeds (0, 1, ...) its documented success rate is measured over
        (1: only seed 0 has been measured so far); ``rnnlab reproduce NAME`` runs that
        many by default.
    required: how many of those trials meet the paper's rule (measured and documented in
        the README); ``make test-slow`` requires at least this many, so a success that
        rests on one lucky seed is not called a reproduction. 0: the rule is not met at
        the CPU budget (the report says why); the full preset must still run.
    """

    name: str
    summary: str
    run: Callable[[ExperimentConfig], ExperimentResult]
    trials: int = 1
    required: int = 1


_REGISTRY: dict[str, Experiment] = {}


def register(name: str, summary: str, *, trials: int = 1, required: int | None = None):
    """Decorator: register ``run(config) -> ExperimentResult`` under ``name``, with its
    documented success rate: ``required`` (default: all) of ``trials`` seeds succeed."""
    required = trials if required is None else required
    if not 0 <= required <= trials:
        raise RuntimeError(f"experiment {name!r}: required must be in [0, trials = {trials}]")

    def wrap(fn: Callable[[ExperimentConfig], ExperimentResult]):
        if name in _REGISTRY:
            raise RuntimeError(f"experiment {name!r} registered twice")
        _REGISTRY[name] = Experiment(name, summary, fn, trials, required)
        return fn

    return wrap


def registry() -> dict[str, Experiment]:
    """All experiments, by name (imports every module of this package once)."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "cli":
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
    """The experiment called ``name``; ValueError listing the valid names otherwise."""
    experiments = registry()
    if name not in experiments:
        valid = ", ".join(experiments) or "(none)"
        raise InputError(f"unknown experiment {name!r}; valid: {valid}")
    return experiments[name]
