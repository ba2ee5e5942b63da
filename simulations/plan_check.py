"""Check study plans (ppinfer.power.ppi_sample_size) against the simulation harness.

For a mean (assumed correlation rho, outcome sd 1.5 as in the built-in design) and for an
OLS slope (moments from a pilot study of 5,000 labeled and 50,000 unlabeled units, large so
that the check is of the plan, not of the pilot's noise), plan the
labeled sample size n for a target interval width and for 80% power, then simulate
that design and compare the planned width and power with the simulated ones::

    nice -n 10 python simulations/plan_check.py --reps 1000

Writes simulations/results/plan_check.csv and prints it as a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ppinfer import simulation as sim
from ppinfer.datasets import simulate
from ppinfer.power import ppi_sample_size

RESULTS = Path(__file__).resolve().parent / "results"
N_UNLABELED, SD_MEAN, SEED = 10_000, 1.5, 2026
PILOT_N, PILOT_N_UNLABELED = 5_000, 50_000


def ppi_plus_plus_per_coefficient(dataset):
    """PPI++ with lambda tuned to each coefficient, as the plan assumes."""
    return dataset.model().fit(method="ppi++", lam="per-coefficient")


def simulated(estimand, n, quality, bias, effect, reps, n_jobs):
    """Mean width, coverage and the power against ``truth - effect`` of PPI++ for one design."""
    scenarios = sim.grid(estimand=estimand, n=n, N=N_UNLABELED, prediction_quality=quality, prediction_bias=bias)
    method = {"ppi++": "ppi++" if estimand == "mean" else ppi_plus_plus_per_coefficient}
    study = sim.run(scenarios, method, reps=reps, seed=SEED, n_jobs=n_jobs, progress=False, keep_replications=True)
    parameter = "y" if estimand == "mean" else "x1"
    row = study.summary(parameter=parameter).iloc[0]
    draws = study.replications[study.replications["parameter"] == parameter]
    null = draws["truth"] - effect
    power = float(np.mean((null < draws["lower"]) | (null > draws["upper"])))
    return row["mean_width"], row["coverage"], power


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--n-jobs", type=int, default=-1)
    arguments = parser.parse_args(argv)
    rows = []
    for quality in (0.5, 0.8, 0.95):
        for target, options in (("width 0.3", dict(width=0.3, effect=0.2)), ("power 0.8", dict(power=0.8, effect=0.2))):
            design = ppi_sample_size(N=N_UNLABELED, rho=quality, sd=SD_MEAN, **options)
            width, coverage, power = simulated("mean", design.n, quality, 0.0, 0.2, arguments.reps, arguments.n_jobs)
            rows.append({"estimand": "mean", "rho": quality, "target": target, "n": design.n,
                         "n_classical": design.n_classical, "planned_width": design.width, "simulated_width": width,
                         "planned_power": design.power, "simulated_power": power, "coverage": coverage})
    for quality in (0.5, 0.8, 0.95):
        pilot = simulate("ols", PILOT_N, PILOT_N_UNLABELED, quality=quality, bias=0.5, seed=SEED).model()
        for target, options in (("width 0.1", dict(width=0.1, effect=0.07)), ("power 0.8", dict(power=0.8, effect=0.07))):
            design = ppi_sample_size(N=N_UNLABELED, pilot=pilot, parameter="x1", **options)
            width, coverage, power = simulated("ols", design.n, quality, 0.5, 0.07, arguments.reps, arguments.n_jobs)
            rows.append({"estimand": "ols (x1), pilot", "rho": round(design.moments.rho, 3), "target": target,
                         "n": design.n, "n_classical": design.n_classical, "planned_width": design.width,
                         "simulated_width": width, "planned_power": design.power, "simulated_power": power,
                         "coverage": coverage})
    table = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "plan_check.csv", index=False)
    print(f"{arguments.reps} replications per design; power MC SE <= {0.5 / np.sqrt(arguments.reps):.3f}\n")
    print(table.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else table.round(3).to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
