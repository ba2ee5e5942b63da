"""Passes and Gram-equivalents of the Logit and Poisson PPI++ fits over several draws.

The data of ``bench_passes.py`` (an intercept and 10 standard normal covariates,
n = 10,000 labeled rows, informative but biased predictions), drawn with seeds
``--seeds``: for each draw and model, the unlabeled passes of the PPI++ fit
(``res.unlabeled_passes``) and its CPU time over that of one ``X.T @ X`` of the
unlabeled design timed right before it (median of ``--repeats`` runs). How many
Newton passes a fit needs depends on the draw; this script shows the spread that
one draw in ``bench_passes.py`` hides. Compare two versions of the package with
``PYTHONPATH`` on a checkout of each.

Usage (from the repository root)::

    export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
    python benchmarks/bench_glm_steps.py                       # seeds 1 to 6, N = 1e6
    python benchmarks/bench_glm_steps.py --seeds 1 2 --N 1e7 --repeats 1
    PYTHONPATH=<checkout> python benchmarks/bench_glm_steps.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_passes import blas_limit, design, outcomes  # noqa: E402

import ppinfer  # noqa: E402

MODELS = {"Logit": ppinfer.Logit, "Poisson": ppinfer.Poisson}


def one_draw(name: str, seed: int, N: int, n: int, repeats: int) -> tuple[int, float]:
    rng = np.random.default_rng(seed)
    X_unlabeled, X = design(N, rng), design(n, rng)
    y, yhat = outcomes(name, X, rng, True)
    _, yhat_unlabeled = outcomes(name, X_unlabeled, rng, False)
    ratios, passes = [], 0
    for _ in range(repeats):
        model = MODELS[name](y, X, yhat, X_unlabeled, yhat_unlabeled)
        start = time.process_time()
        X_unlabeled.T @ X_unlabeled
        gram = time.process_time() - start
        start = time.process_time()
        res = model.fit(method="ppi++")
        res.conf_int()
        ratios.append((time.process_time() - start) / gram)
        passes = res.unlabeled_passes
    return passes, statistics.median(ratios)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--N", type=float, default=1e6)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = parser.parse_args(argv)
    limit, note = blas_limit(1)
    with limit:
        print(f"ppinfer {ppinfer.__version__} ({os.path.dirname(ppinfer.__file__)}); BLAS {note}; "
              f"N = {int(args.N):,}, n = {args.n:,}; CPU time, median of {args.repeats} run(s)\n")
        print("| model | seed | passes | Gram-equivalents |")
        print("|---|---|---|---|")
        for name in args.models:
            for seed in args.seeds:
                passes, grams = one_draw(name, seed, int(args.N), args.n, args.repeats)
                print(f"| {name} | {seed} | {passes} | {grams:.2f} |", flush=True)


if __name__ == "__main__":
    main()
