"""Logistic regression near separation with very accurate predictions, before and after.

A design with the features of the real-data case of issue 8 (a covariate that nearly
separates the outcome, predictions that correlate about 0.94 with it, n = 400 labeled and
46,000 unlabeled units), drawn from a known logistic model so that the truth is exact::

    x1 ~ N(0, 0.25^2),  x2 ~ N(0, 1),  x3 ~ Bernoulli(0.3)
    logit P(y = 1) = -0.5 + 13 x1 + 0.5 x2 - 1.0 x3

About 18% of the units have P(y = 1) below 0.01 or above 0.99. The predictions are
probabilities from a classifier that sees more than the covariates (the outcome itself,
through noise): ``yhat = expit(eta + 2 (2 y - 1) + N(0, 1))``, correlation 0.94 with y;
their logistic fit on the covariates is steeper than the truth (biased for the slopes).

Each replication fits classical, PPI and PPI++ "before" (``cov_type="HC0"``, z) and "after"
(the defaults: HC3, t with n - p degrees of freedom). Reported per coefficient: coverage at
nominal 0.90 and 0.95, mean standard error over the Monte Carlo standard deviation of the
estimates, mean width. Run (2 worker processes)::

    nice -n 10 python simulations/logit_separation.py --reps 2000 --jobs 2

It writes ``results/logit_separation.csv`` and prints the table quoted in ``simulations/README.md``.
"""

from __future__ import annotations

import argparse
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

import ppinfer
from small_samples import METHODS, NOMINALS, RESULTS, SEED, run, summarise

BETA = pd.Series({"Intercept": -0.5, "x1": 13.0, "x2": 0.5, "x3": -1.0})
#: how far the predictions lean towards the outcome on the logit scale, and their noise
PREDICTION_SHIFT, PREDICTION_NOISE = 2.0, 1.0


@dataclass(frozen=True)
class SeparationCell:
    """The near-separation design with ``n`` labeled and ``N`` unlabeled units."""

    n: int = 400
    N: int = 46_000

    key = zlib.crc32(b"logit-separation")
    parameters = tuple(BETA.index)

    def versions(self) -> dict[str, dict]:
        return {"before": {"cov_type": "HC0", "use_t": False}, "after": {}}

    def describe(self) -> dict:
        return {"design": "logit near separation", "n": self.n, "N": self.N}

    def draw(self, rng: np.random.Generator):
        def sample(size: int):
            X = pd.DataFrame({
                "Intercept": 1.0,
                "x1": rng.normal(0.0, 0.25, size),
                "x2": rng.normal(size=size),
                "x3": (rng.uniform(size=size) < 0.3).astype(float),
            })
            eta = X.to_numpy() @ BETA.to_numpy()
            y = (rng.uniform(size=size) < expit(eta)).astype(float)
            yhat = expit(eta + PREDICTION_SHIFT * (2.0 * y - 1.0) + rng.normal(0.0, PREDICTION_NOISE, size))
            return X, y, yhat

        X, y, yhat = sample(self.n)
        X_unlabeled, _, yhat_unlabeled = sample(self.N)
        return ppinfer.Logit(y, X, yhat, X_unlabeled, yhat_unlabeled), BETA.to_numpy()


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=RESULTS / "logit_separation.csv")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    table = summarise(run([SeparationCell()], args.reps, args.seed, args.jobs, chunk=50))
    seconds = time.perf_counter() - start
    table["seconds_total"] = round(seconds, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(f"ppinfer {ppinfer.__version__}: {args.reps} replications, {args.jobs} processes, {seconds:.0f} s; "
          f"separation warnings in {table.separated.iloc[0]} replications")
    for nominal in NOMINALS:
        part = table[table.nominal == nominal]
        print(f"\nNominal {nominal:.2f} (MC SE {np.sqrt(nominal * (1 - nominal) / args.reps):.4f}); "
              "coverage and se / sd, before -> after:\n")
        print("| coefficient | " + " | ".join(f"{m} coverage | {m} se/sd" for m in METHODS) + " |")
        print("|---" * (1 + 2 * len(METHODS)) + "|")
        for parameter, group in part.groupby("parameter", sort=False):
            cells = []
            for method in METHODS:
                pick = group[group.method == method].set_index("version")
                cells.append(f"{pick.coverage['before']:.3f} → {pick.coverage['after']:.3f}")
                cells.append(f"{pick.se_over_sd['before']:.3f} → {pick.se_over_sd['after']:.3f}")
            print(f"| {parameter} | " + " | ".join(cells) + " |")
    return table


if __name__ == "__main__":
    main()
