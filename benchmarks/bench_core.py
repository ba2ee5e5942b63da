"""Timing and memory of the core estimators at the sizes of the issue.

Default sizes: n = 10,000 labeled and N = 1,000,000 unlabeled rows with 10
covariates plus an intercept for OLS, logistic and Poisson regression; a mean
with N = 1,000,000; the median (Quantile, q = 0.5) with N = 10,000,000.

For each estimator and each method (PPI++, classical, naive pooling) a fresh
model is built from NumPy arrays, so nothing is cached between timings. Two
times are measured separately with ``time.perf_counter``:

* construction: ``Model(...)``, which validates the data (shapes, finite values,
  ranges, rank of both designs);
* fit: ``model.fit(method=...)`` followed by ``conf_int()``; for PPI++ this
  includes the three M-estimates it combines.

Each time is the median of ``--repeats`` runs of wall-clock time
(``time.perf_counter``), or of the process's CPU time with ``--clock cpu``
(steadier on a busy machine; it adds up the time of every BLAS thread). Peak
memory is the growth of traced allocations (``tracemalloc``) during one extra
construction + fit, above the memory already held by the input arrays.

BLAS threads matter: on a machine whose cores are busy, multi-threaded OpenBLAS
can make small matrix products thousands of times slower. Compare with
``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` set in the environment.

Usage::

    python benchmarks/bench_core.py                      # the issue's sizes, 3 repeats
    python benchmarks/bench_core.py --repeats 5
    python benchmarks/bench_core.py --n 2000 --N 100000 --N-quantile 1000000   # quick run
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_core.py --only quantile --clock cpu

The script prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import scipy

import ppinfer

METHODS = ("ppi++", "classical", "naive")


def regression_data(kind: str, n: int, N: int, p: int, rng: np.random.Generator):
    """Arrays (y, X, yhat, X_unlabeled, yhat_unlabeled) for a regression of ``kind``.

    Covariates are standard normal with an intercept column first; predictions
    are informative but biased: a noisy, shifted version of the outcome's mean.
    """
    beta = np.concatenate([[0.5], np.linspace(0.3, -0.3, p) / np.sqrt(p)])

    def draw(size: int, with_outcome: bool):
        X = np.empty((size, p + 1))
        X[:, 0] = 1.0
        X[:, 1:] = rng.standard_normal((size, p))
        eta = X @ beta
        noisy = eta + 0.3 + 0.5 * rng.standard_normal(size)  # prediction's linear predictor
        if kind == "ols":
            y = eta + rng.standard_normal(size) if with_outcome else None
            yhat = noisy
        elif kind == "logit":
            y = (rng.random(size) < 1.0 / (1.0 + np.exp(-eta))).astype(float) if with_outcome else None
            yhat = 1.0 / (1.0 + np.exp(-noisy))
        else:
            y = rng.poisson(np.exp(eta)).astype(float) if with_outcome else None
            yhat = np.exp(noisy)
        return X, y, yhat

    X, y, yhat = draw(n, True)
    X_unlabeled, _, yhat_unlabeled = draw(N, False)
    return y, X, yhat, X_unlabeled, yhat_unlabeled


def scalar_data(n: int, N: int, rng: np.random.Generator):
    """Arrays (y, yhat, yhat_unlabeled) for a mean or a quantile."""
    y = rng.standard_normal(n)
    yhat = 0.8 * y + 0.6 * rng.standard_normal(n) + 0.2
    yhat_unlabeled = 0.8 * rng.standard_normal(N) + 0.6 * rng.standard_normal(N) + 0.2
    return y, yhat, yhat_unlabeled


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_once(build: Callable, method: str, clock: Callable[[], float]) -> tuple[float, float]:
    """Seconds to construct a fresh model and to fit it with ``method``."""
    start = clock()
    model = build()
    built = clock()
    model.fit(method=method).conf_int()
    return built - start, clock() - built


def peak_memory_mb(build: Callable, method: str) -> float:
    """Peak growth of traced allocations (MB) during one construction and fit."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    baseline, _ = tracemalloc.get_traced_memory()
    model = build()
    model.fit(method=method).conf_int()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del model
    return (peak - baseline) / 2**20


def benchmark(name: str, sizes: str, build: Callable, repeats: int, memory: bool, clock: Callable) -> dict:
    """Median construction time (over every run) and median fit time per method."""
    build()  # warm-up: imports, first-call overheads
    constructions, fits = [], {}
    for method in METHODS:
        runs = [time_once(build, method, clock) for _ in range(repeats)]
        constructions += [construct for construct, _ in runs]
        fits[method] = statistics.median(fit for _, fit in runs)
    row = {"estimator": name, "sizes": sizes, "construct": statistics.median(constructions)}
    row.update({f"fit {method}": fits[method] for method in METHODS})
    row["memory"] = peak_memory_mb(build, "ppi++") if memory else float("nan")
    return row


def markdown(rows: list[dict]) -> str:
    header = (
        "| estimator | sizes | construction (s) | fit PPI++ (s) | fit classical (s) | fit naive (s) "
        "| peak memory, PPI++ (MB) |"
    )
    lines = [header, "|" + "---|" * 7]
    for row in rows:
        lines.append(
            f"| {row['estimator']} | {row['sizes']} | {row['construct']:.3f} | {row['fit ppi++']:.3f} "
            f"| {row['fit classical']:.3f} | {row['fit naive']:.3f} | {row['memory']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="labeled rows (default 10,000)")
    parser.add_argument("--N", type=int, default=1_000_000, help="unlabeled rows of regressions and mean (default 10^6)")
    parser.add_argument("--N-quantile", type=int, default=10_000_000, help="unlabeled rows of the median (default 10^7)")
    parser.add_argument("--p", type=int, default=10, help="covariates besides the intercept (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the median is reported")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall-clock time (default) or the process's CPU time")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    parser.add_argument("--only", nargs="+", choices=["ols", "logit", "poisson", "mean", "quantile"],
                        help="benchmark these estimators only")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    clock = CLOCKS[args.clock]
    chosen = args.only or ["ols", "logit", "poisson", "mean", "quantile"]

    threads = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ)
    print(
        f"ppinfer {ppinfer.__version__}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs"
        f"{', ' + threads if threads else ''}; {args.clock} time, median of {args.repeats} runs.\n"
    )
    classes = {"ols": ("OLS", ppinfer.OLS), "logit": ("Logit", ppinfer.Logit), "poisson": ("Poisson", ppinfer.Poisson)}
    rows = []
    for kind in chosen:
        if kind in classes:
            title, cls = classes[kind]
            data = regression_data(kind, args.n, args.N, args.p, rng)
            sizes = f"n = {args.n:,}, N = {args.N:,}, p = {args.p} + 1"
            rows.append(benchmark(title, sizes, lambda data=data: cls(*data), args.repeats, not args.no_memory, clock))
        elif kind == "mean":
            data = scalar_data(args.n, args.N, rng)
            rows.append(benchmark("Mean", f"n = {args.n:,}, N = {args.N:,}", lambda data=data: ppinfer.Mean(*data),
                                  args.repeats, not args.no_memory, clock))
        else:
            data = scalar_data(args.n, args.N_quantile, rng)
            rows.append(benchmark("Quantile (q = 0.5)", f"n = {args.n:,}, N = {args.N_quantile:,}",
                                  lambda data=data: ppinfer.Quantile(*data, q=0.5), args.repeats, not args.no_memory, clock))
        del data
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
