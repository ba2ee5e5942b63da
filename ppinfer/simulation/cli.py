"""``ppinfer simulate``: run a preset simulation study, print its table, write its figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .processes import BUILTIN_ESTIMANDS
from .runner import run
from .scenarios import PRESETS, preset

#: the figures written, as (metric, file name)
FIGURES = (("coverage", "coverage.png"), ("width", "width.png"), ("type1", "type1.png"), ("power", "power.png"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the ``simulate`` subcommand."""
    parser.add_argument("--preset", choices=list(PRESETS), default="quick",
                        help="quick: 6 estimands x 8 settings, 100 replications (about a minute on 2 cores); "
                             "paper: the full grid, 1000 replications")
    parser.add_argument("--reps", type=int, default=None, help="replications per scenario (default: the preset's)")
    parser.add_argument("--estimand", nargs="+", choices=list(BUILTIN_ESTIMANDS), default=None,
                        help="run these of the preset's estimands only")
    parser.add_argument("--n-jobs", type=int, default=-1, help="worker processes (default -1: every core)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--alpha", type=float, default=0.05, help="intervals at level 1 - alpha (default 0.05)")
    parser.add_argument("--output", type=Path, default=Path("simulation-results"),
                        help="folder for summary.csv and the figures (default ./simulation-results)")
    parser.add_argument("--no-figures", action="store_true", help="write the CSV file only")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (by default shown on a terminal only)")


def _table(study) -> str:
    """Coverage, mean width and effective n of the focus parameters, one row per scenario."""
    summary = study.summary(parameter="focus")
    index = [c for c in study.scenario_columns if summary[c].nunique() > 1 or c in ("estimand", "n")]
    pieces = {
        "coverage": summary.pivot_table(index=index, columns="method", values="coverage", sort=False),
        "width": summary.pivot_table(index=index, columns="method", values="mean_width", sort=False),
    }
    table = pd.concat(pieces, axis=1)[[(k, m) for k in pieces for m in study.methods]]
    if "ppi++" in study.methods:
        effective = summary[summary["method"] == "ppi++"].set_index(index)["effective_n_empirical"]
        table[("eff. n", "ppi++")] = effective
    formats = {column: ("{:.3f}".format if column[0] == "coverage" else "{:.3g}".format) for column in table}
    formats[("eff. n", "ppi++")] = "{:.0f}".format
    return table.to_string(formatters=formats, na_rep="-")


def run_preset(arguments: argparse.Namespace) -> int:
    """Run the chosen preset and report it."""
    scenarios, reps = preset(arguments.preset, estimand=arguments.estimand)
    reps = reps if arguments.reps is None else arguments.reps
    study = run(scenarios, reps=reps, seed=arguments.seed, n_jobs=arguments.n_jobs, alpha=arguments.alpha,
                progress=False if arguments.no_progress else "auto")
    nominal = 1.0 - study.alpha
    mc_se = (nominal * (1.0 - nominal) / reps) ** 0.5
    print(
        f"ppinfer simulation study ({arguments.preset} preset): {len(scenarios)} scenarios x {reps} replications, "
        f"seed {study.seed}, {study.elapsed:.0f} s.\nCoverage of {nominal:.0%} intervals (Monte Carlo SE about "
        f"{mc_se:.3f}), mean interval width, and PPI++'s effective labeled sample size (n x MSE classical / MSE "
        "PPI++).\nParameters: mean y; median q=0.5; slope x1 of OLS, logit, Poisson; treatment effect ate.\n"
    )
    print(_table(study))
    output = arguments.output
    output.mkdir(parents=True, exist_ok=True)
    study.to_csv(output / "summary.csv")
    written = [output / "summary.csv"]
    if not arguments.no_figures:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        for metric, name in FIGURES:
            figure = study.plot(metric)
            figure.savefig(output / name, dpi=110)
            plt.close(figure)
            written.append(output / name)
    print("\nWrote " + ", ".join(str(path) for path in written))
    return 0


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - via ppinfer.cli
    parser = argparse.ArgumentParser(prog="ppinfer simulate")
    add_arguments(parser)
    return run_preset(parser.parse_args(argv if argv is not None else sys.argv[1:]))
