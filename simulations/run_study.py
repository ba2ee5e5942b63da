"""Run the full simulation grid, one estimand at a time, into simulations/results/<estimand>.csv.

The grid is the "paper" preset of ``ppinfer.simulation``: n in {50, 100, 200, 500, 1000}
labeled units, N = 10,000 unlabeled units, prediction quality (correlation with the
outcome) in {0, 0.5, 0.9} and prediction bias in {0, 0.5}, for the mean, the median,
OLS, logistic and Poisson regression slopes and a trial's treatment effect; methods
classical, naive pooling, PPI and PPI++. Every scenario's numbers depend only on the
seed and the scenario (not on n_jobs or on the other scenarios), so estimands can be
run separately and in any order::

    nice -n 10 python simulations/run_study.py --reps 1000 --n-jobs 2
    nice -n 10 python simulations/run_study.py --reps 1000 --estimand ate

A second, smaller study varies the number of unlabeled units N (1,000 to 100,000) and the
bias of the predictions for the mean and an OLS slope, to show naive pooling's collapse::

    nice -n 10 python simulations/run_study.py --study naive --reps 1000

Then ``python simulations/report.py`` draws the figures and prints the numbers quoted in
simulations/README.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ppinfer import simulation as sim

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 2026

#: the naive-pooling study: coverage as N and the bias grow (n = 200, prediction quality 0.9)
NAIVE_GRID = dict(estimand=["mean", "ols"], n=[200], N=[1_000, 10_000, 100_000], prediction_quality=[0.9],
                  prediction_bias=[0.0, 0.1, 0.25, 0.5])
NAIVE_METHODS = ["classical", "naive", "ppi++"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=sim.PRESETS["paper"]["reps"])
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--estimand", nargs="+", default=list(sim.BUILTIN_ESTIMANDS))
    parser.add_argument("--study", choices=["paper", "naive"], default="paper")
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder of the CSV files (default results/)")
    arguments = parser.parse_args(argv)
    output = arguments.output
    output.mkdir(parents=True, exist_ok=True)
    if arguments.study == "naive":
        start = time.perf_counter()
        study = sim.run(sim.grid(**NAIVE_GRID), NAIVE_METHODS, reps=arguments.reps, seed=arguments.seed,
                        n_jobs=arguments.n_jobs)
        study.to_csv(output / "naive_by_N.csv")
        print(f"naive study: {arguments.reps} replications in {time.perf_counter() - start:.0f} s", flush=True)
        return
    for estimand in arguments.estimand:
        scenarios, _ = sim.preset("paper", estimand=estimand)
        start = time.perf_counter()
        study = sim.run(scenarios, reps=arguments.reps, seed=arguments.seed, n_jobs=arguments.n_jobs)
        path = output / f"{estimand}.csv"
        study.to_csv(path)
        print(f"{estimand}: {len(scenarios)} scenarios x {arguments.reps} replications in "
              f"{time.perf_counter() - start:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
