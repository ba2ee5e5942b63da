"""Timing and memory of prediction-powered quantiles at N = 10^7.

Default sizes: n = 10,000 labeled rows and N = 10,000,000 unlabeled predictions,
informative but biased predictions (the data of ``bench_core.py``), the median.

Four times are measured separately with ``time.perf_counter`` (or the
process's CPU time with ``--clock cpu``), each the median of ``--repeats`` runs:

* construction: ``Quantile(y, yhat, yhat_unlabeled, q=...)``, which validates the data;
* fit classical, fit PPI, fit PPI++: ``model.fit(method=...)`` followed by
  ``conf_int()``, each on a freshly constructed model, so that the sort of the
  unlabeled predictions (done once per model, on the first fit that needs
  them) is part of every PPI and PPI++ time.

Peak memory is the growth of traced allocations (``tracemalloc``) during one
extra construction and PPI++ fit, above the memory already held by the inputs.

Run single-threaded for stable numbers::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_quantile.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_quantile.py --N 1000000 --q 0.25 0.5 0.9
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_quantile.py --profile    # cProfile of one PPI++ fit

The script prints a markdown table.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import time

import numpy as np
import scipy
from bench_core import CLOCKS, peak_memory_mb, scalar_data

import ppinfer

METHODS = ("classical", "ppi", "ppi++")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="labeled rows (default 10,000)")
    parser.add_argument("--N", type=int, default=10_000_000, help="unlabeled rows (default 10^7)")
    parser.add_argument("--q", type=float, nargs="+", default=[0.5], help="quantile level(s) (default 0.5)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the median is reported")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall-clock time (default) or the process's CPU time")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one PPI++ fit and stop")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]
    data = scalar_data(args.n, args.N, np.random.default_rng(args.seed))

    def build():
        return ppinfer.Quantile(*data, q=args.q)

    if args.profile:
        model = build()
        profiler = cProfile.Profile(clock)
        profiler.runcall(lambda: model.fit().conf_int())
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return {}

    threads = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ)
    print(
        f"ppinfer {ppinfer.__version__}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs"
        f"{', ' + threads if threads else ''}; {args.clock} time, median of {args.repeats} runs.\n"
    )
    build().fit(method="classical")  # warm-up: imports, first-call overheads
    constructions, fits = [], {method: [] for method in METHODS}
    for _ in range(args.repeats):
        for method in METHODS:
            start = clock()
            model = build()
            built = clock()
            model.fit(method=method).conf_int()
            fits[method].append(clock() - built)
            constructions.append(built - start)
            del model
    row = {"construct": statistics.median(constructions)}
    row.update({method: statistics.median(times) for method, times in fits.items()})
    row["memory"] = float("nan") if args.no_memory else peak_memory_mb(build, "ppi++")
    levels = ", ".join(f"{q:g}" for q in args.q)
    print("| sizes | q | construction (s) | fit classical (s) | fit PPI (s) | fit PPI++ (s) | peak memory, PPI++ (MB) |")
    print("|" + "---|" * 7)
    print(
        f"| n = {args.n:,}, N = {args.N:,} | {levels} | {row['construct']:.3f} | {row['classical']:.3f} "
        f"| {row['ppi']:.3f} | {row['ppi++']:.3f} | {row['memory']:.0f} |"
    )
    return row


if __name__ == "__main__":
    main()
