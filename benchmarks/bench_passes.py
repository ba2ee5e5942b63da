"""In-memory cost of the fits in "Gram-equivalents", and a comparison with ppi_py.

The unit is the time of one Gram matrix ``X.T @ X`` of the unlabeled design:
N rows (default 10^6, ``--N``) and 11 float64 columns (an intercept and 10
standard normal covariates), C-ordered, one BLAS thread. Any fit must read the
N x 11 design at least once, and a Gram matrix is about the cheapest thing to
do while reading it, so a time divided by this unit says how many such reads
(plus the arithmetic done with them) the fit costs, independently of the
machine's speed.

Measured on the same design, with n = 10,000 labeled rows and informative but
biased predictions (the data of ``bench_core.py``, with the same covariates
for the three models):

* construction of ``OLS``, ``Logit`` and ``Poisson`` (the scan that validates
  the unlabeled sample and sums what later fits reuse); goal <= 1 Gram;
* the PPI++ fit: ``model.fit(method="ppi++")`` then ``conf_int()`` on a freshly
  built model (built outside the timing, so no fit is cached); goals: OLS <= 3
  Grams, Logit and Poisson <= 8;
* the peak growth of traced allocations (``tracemalloc``) during one
  construction, beside the size of the unlabeled arrays;
* the median, ``Quantile(q=0.5)``, at N = 10^7 (``--N-quantile``):
  construction, and PPI++ fit and interval; goal: both together < 2 s.

Every time is the median of ``--repeats`` runs (``time.perf_counter``, or with
``--clock cpu`` the process's CPU time, ``time.process_time``, which the load of
other processes on a shared machine disturbs less). Gram-equivalents are the
median of each run's time divided by a Gram matrix timed right before it, so
that a change of load between runs cancels out.

The comparison with ppi_py (the reference implementation, package
``ppi-python``) times ``ppi_py.ppi_ols_ci``, ``ppi_logistic_ci`` and
``ppi_poisson_ci`` (PPI++: lambda tuned, ``lam=None``; alpha = 0.05) against
ppinfer's whole PPI++ path: construction, ``fit(method="ppi++",
use_t=False)`` (normal intervals, as ppi_py's) and ``conf_int(alpha=0.05)``, on
the first ``--N-reference`` unlabeled rows (default 10^6; ppi_py takes 15 to 25 s
per call there on a 2-core machine, so ``--quick`` uses 10^5). Goals: OLS >= 50
times faster, Logit and Poisson >= 25 times. ppi_py is called once on small data
before timing (its first call compiles with numba). The largest difference
between the two intervals' end points, as a share of ppi_py's interval width,
shows they computed the same thing.

BLAS threads matter: the Gram matrix is timed with whatever BLAS threads the
process has, so run with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` (the
header line records these settings; with ``threadpoolctl`` installed the
script also limits BLAS to one thread itself, ``--blas-threads``).

Usage (from the repository root)::

    export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
    python benchmarks/bench_passes.py                  # N = 1e6, median at 1e7, ppi_py at 1e6
    python benchmarks/bench_passes.py --quick          # N = 1e5, 1e6 and 1e5: under a minute
    python benchmarks/bench_passes.py --N 1e7 --no-reference --repeats 3
    python benchmarks/bench_passes.py --N-reference 2e5
    python benchmarks/bench_passes.py --clock cpu      # CPU time: steadier on a busy machine

The script prints markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
import tracemalloc
import warnings

import numpy as np
import scipy
from bench_core import scalar_data

import ppinfer

P = 10
GOALS = {"construction": 1.0, "OLS": 3.0, "Logit": 8.0, "Poisson": 8.0}
SPEEDUP_GOALS = {"OLS": 50.0, "Logit": 25.0, "Poisson": 25.0}
CLASSES = {"OLS": ppinfer.OLS, "Logit": ppinfer.Logit, "Poisson": ppinfer.Poisson}


def design(size: int, rng: np.random.Generator) -> np.ndarray:
    """An intercept and ``P`` standard normal covariates, C-ordered float64."""
    X = np.empty((size, P + 1))
    X[:, 0] = 1.0
    X[:, 1:] = rng.standard_normal((size, P))
    return X


def outcomes(kind: str, X: np.ndarray, rng: np.random.Generator, with_outcome: bool):
    """The outcome (labeled rows only) and an informative but biased prediction for ``X``."""
    beta = np.concatenate([[0.5], np.linspace(0.3, -0.3, P) / np.sqrt(P)])
    eta = X @ beta
    noisy = eta + 0.3 + 0.5 * rng.standard_normal(X.shape[0])
    if kind == "OLS":
        y = eta + rng.standard_normal(X.shape[0]) if with_outcome else None
        return y, noisy
    if kind == "Logit":
        y = (rng.random(X.shape[0]) < 1.0 / (1.0 + np.exp(-eta))).astype(float) if with_outcome else None
        return y, 1.0 / (1.0 + np.exp(-noisy))
    y = rng.poisson(np.exp(eta)).astype(float) if with_outcome else None
    return y, np.exp(noisy)


#: the clock of every measurement: wall time, or this process's CPU time (``--clock cpu``)
CLOCK = {"clock": time.perf_counter}


def timed(function, argument=None) -> float:
    """Time of one call of ``function(argument)`` on the chosen clock."""
    start = CLOCK["clock"]()
    function(argument)
    return CLOCK["clock"]() - start


def median_time(function, repeats: int, setup=None) -> float:
    """Median time of ``function(setup())`` (setup not timed)."""
    return statistics.median(timed(function, setup() if setup is not None else None) for _ in range(repeats))


def median_ratio(function, repeats: int, unit, setup=None) -> tuple[float, float]:
    """Median time of ``function(setup())`` and the median of its ratios to ``unit()``, timed
    right before each run, so that a change of the machine's load between runs cancels."""
    times, ratios = [], []
    for _ in range(repeats):
        reference = timed(lambda _: unit())
        argument = setup() if setup is not None else None
        times.append(timed(function, argument))
        ratios.append(times[-1] / reference)
    return statistics.median(times), statistics.median(ratios)


def construction_peak_mb(build) -> float:
    """Peak growth of traced allocations (MB) while one model is built."""
    tracemalloc.start()
    baseline, _ = tracemalloc.get_traced_memory()
    model = build()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del model
    return (peak - baseline) / 1e6


def blas_limit(threads: int | None):
    """``threadpoolctl.threadpool_limits(threads)`` when available, else nothing."""
    if threads is None:
        return contextlib.nullcontext(), "not limited by the script"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "threadpoolctl not installed: the environment's setting applies"
    return threadpool_limits(threads), f"limited to {threads} by threadpoolctl"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def gram_rows(name: str, data: tuple, args) -> list[str]:
    """Construction and PPI++ fit of one model, in seconds and in Grams (each run against a Gram
    timed right before it)."""
    cls, N = CLASSES[name], args.N

    def build():
        return cls(*data)

    passes = {}

    def fit(model):
        res = model.fit(method="ppi++")
        res.conf_int()
        passes["fit"] = res.unlabeled_passes
        passes["total"] = model.unlabeled_passes

    def unit():
        return data[3].T @ data[3]

    build()  # warm-up: first-call costs
    construct, construct_grams = median_ratio(lambda _: build(), args.repeats, unit)
    fitted, fitted_grams = median_ratio(fit, args.repeats, unit, setup=build)
    memory = construction_peak_mb(build) if not args.no_memory else float("nan")
    scan = passes["total"] - passes["fit"]
    inputs = (data[3].nbytes + data[4].nbytes) / 1e6
    return [
        (f"| {name}: construction | {N:,} | {construct:.3f} | {construct_grams:.2f} | <= 1 "
         f"| {verdict(construct_grams <= GOALS['construction'])} | {scan} (scan) "
         f"| {memory:.0f} (the unlabeled arrays: {inputs:.0f}) |"),
        (f"| {name}: PPI++ fit + conf_int | {N:,} | {fitted:.3f} | {fitted_grams:.2f} "
         f"| <= {GOALS[name]:g} | {verdict(fitted_grams <= GOALS[name])} | {passes['fit']} | |"),
    ]


def gram_table(args, rng) -> tuple[list[str], dict]:
    """Construction and fits in Gram-equivalents, on one N x 11 design."""
    N, n = args.N, args.n
    X_unlabeled = design(N, rng)
    X = design(n, rng)
    gram = median_time(lambda _: X_unlabeled.T @ X_unlabeled, max(args.repeats, 5))
    lines = [
        (f"Unit: one `X.T @ X` of the {N:,} x {P + 1} unlabeled design = {gram * 1e3:.1f} ms "
         f"(median of {max(args.repeats, 5)}); n = {n:,} labeled rows."),
        "",
        ("| step | N | time (s) | Gram-equivalents | goal | met | passes over the unlabeled rows "
         "| peak memory of construction (MB) |"),
        "|" + "---|" * 8,
    ]
    data = {}
    for name in CLASSES:
        y, yhat = outcomes(name, X, rng, True)
        _, yhat_unlabeled = outcomes(name, X_unlabeled, rng, False)
        data[name] = (y, X, yhat, X_unlabeled, yhat_unlabeled)
        rows = gram_rows(name, data[name], args)
        lines += rows
        print("\n".join(rows), flush=True)
    return lines, data


def quantile_table(args, rng) -> list[str]:
    y, yhat, yhat_unlabeled = scalar_data(args.n, args.N_quantile, rng)

    def build():
        return ppinfer.Quantile(y, yhat, yhat_unlabeled, q=0.5)

    build()
    construct = median_time(lambda _: build(), args.repeats)
    fitted = median_time(lambda model: model.fit(method="ppi++").conf_int(), args.repeats, setup=build)
    total = construct + fitted
    return [
        "| estimator | n | N | construction (s) | PPI++ fit + conf_int (s) | total (s) | goal | met |",
        "|" + "---|" * 8,
        (f"| Quantile (q = 0.5) | {args.n:,} | {args.N_quantile:,} | {construct:.3f} | {fitted:.3f} | {total:.3f} "
         f"| < 2 s | {verdict(total < 2.0)} |"),
    ]


def reference_table(args, data: dict) -> list[str]:
    import ppi_py

    try:
        from importlib.metadata import version

        ppi_version = version("ppi-python")
    except Exception:  # noqa: BLE001  (only for the header)
        ppi_version = "(version unknown)"
    functions = {"OLS": ppi_py.ppi_ols_ci, "Logit": ppi_py.ppi_logistic_ci, "Poisson": ppi_py.ppi_poisson_ci}
    M = min(args.N_reference, args.N)
    lines = [
        (f"ppi_py {ppi_version} against ppinfer on the first {M:,} "
         f"unlabeled rows (n = {args.n:,}); median of {args.reference_repeats} run(s) each."),
        "",
        ("| estimator | N | ppi_py CI (s) | ppinfer construction + PPI++ fit + CI (s) | speed-up | goal | met "
         "| largest end-point difference / width |"),
        "|" + "---|" * 8,
    ]
    for name, function in functions.items():
        line = compare_one(name, function, data[name], M, args)
        lines.append(line)
        print(line, flush=True)
    return lines


def compare_one(name: str, function, data: tuple, M: int, args) -> str:
    """ppi_py's interval against ppinfer's on the first M unlabeled rows: one table row."""
    y, X, yhat, X_unlabeled, yhat_unlabeled = data
    X_u, yhat_u = X_unlabeled[:M], yhat_unlabeled[:M]
    function(X[:200], y[:200], yhat[:200], X_u[:400], yhat_u[:400], alpha=0.05)  # numba compiles here
    out = {}

    def reference(_):
        out["ref"] = np.asarray(function(X, y, yhat, X_u, yhat_u, alpha=0.05))

    def ours(_):
        res = CLASSES[name](y, X, yhat, X_u, yhat_u).fit(method="ppi++", use_t=False)
        out["ours"] = np.asarray(res.conf_int(alpha=0.05))

    t_ref = median_time(reference, args.reference_repeats)
    t_ours = median_time(ours, max(args.reference_repeats, 3))
    lower, upper = out["ref"]
    width = upper - lower
    diff = max(np.max(np.abs(out["ours"][:, 0] - lower) / width), np.max(np.abs(out["ours"][:, 1] - upper) / width))
    speedup = t_ref / t_ours
    return (f"| {name} | {M:,} | {t_ref:.2f} | {t_ours:.3f} | {speedup:.0f}x | >= {SPEEDUP_GOALS[name]:g}x "
            f"| {verdict(speedup >= SPEEDUP_GOALS[name])} | {diff:.1e} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--N", type=float, default=1e6, help="unlabeled rows of the regressions (default 1e6)")
    parser.add_argument("--n", type=int, default=10_000, help="labeled rows (default 10,000)")
    parser.add_argument("--N-quantile", type=float, default=1e7, help="unlabeled rows of the median (default 1e7)")
    parser.add_argument("--N-reference", type=float, default=1e6,
                        help="unlabeled rows of the ppi_py comparison (default 1e6, at most --N)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median; default 5)")
    parser.add_argument("--reference-repeats", type=int, default=1, help="timed runs of each ppi_py call (default 1)")
    parser.add_argument("--quick", action="store_true", help="N = 1e5, N-quantile = 1e6, N-reference = 1e5, 3 repeats")
    parser.add_argument("--no-reference", action="store_true", help="skip the comparison with ppi_py")
    parser.add_argument("--no-quantile", action="store_true", help="skip the median")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads set with threadpoolctl when installed (default 1; 0: leave as is)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default) or this process's CPU time, which other processes' load "
                             "affects less (with one BLAS thread)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    CLOCK["clock"] = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.quick:
        args.N, args.N_quantile, args.N_reference, args.repeats = 1e5, 1e6, 1e5, 3
    args.N, args.N_quantile, args.N_reference = int(args.N), int(args.N_quantile), int(args.N_reference)
    rng = np.random.default_rng(args.seed)
    limit, limit_note = blas_limit(args.blas_threads or None)
    threads = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"ppinfer {ppinfer.__version__} ({os.path.dirname(ppinfer.__file__)}), NumPy {np.__version__}, "
        f"SciPy {scipy.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {threads or 'BLAS threads not set'} (BLAS {limit_note}); load average {load}; "
        f"{'CPU' if args.clock == 'cpu' else 'wall'} time, median of {args.repeats} runs.\n",
        flush=True,
    )
    with limit, warnings.catch_warnings():
        warnings.simplefilter("ignore", ppinfer.PPIWarning)
        gram_lines, data = gram_table(args, rng)
        quantile_lines = [] if args.no_quantile else quantile_table(args, rng)
        reference_lines = [] if args.no_reference else reference_table(args, data)
    print()
    print("\n".join(gram_lines))
    for block in (quantile_lines, reference_lines):
        if block:
            print()
            print("\n".join(block))


if __name__ == "__main__":
    main()
