"""PPI++ on a Dask LocalCluster of this machine: scaling in N and in workers.

The unlabeled sample is the Parquet files of ``bench_scale.py`` (same ``--dir``,
written with the same generator, ``bench_scale.ensure_data``, when missing):
N rows of 10 covariates and a prediction (a probability), in files of 5e6
rows and row groups of 1e6 rows. They are read with
``dask.dataframe.read_parquet(..., split_row_groups=True)``, one partition per
row group (so one partition is 10^6 rows), and given to the formula interface,
``ppinfer.ols("y ~ x1 + ... + x10", labeled, unlabeled=ddf, yhat="pred")``
(``ppinfer.logit`` likewise), with n = 10,000 labeled rows in memory. Each pass
of ppinfer over the unlabeled rows is then one map-reduce on the cluster.

For each number of workers W (``--workers``, default 1 and 2) a
``distributed.LocalCluster(n_workers=W, threads_per_worker=1)`` and a
``Client`` are started (worker processes inherit the environment, so set the
BLAS threads before starting), and for each N (``--N``, default 1e6, 1e7,
1e8) and estimator (``--estimators``, default OLS and Logit) the model is built
and fitted (``fit(method="ppi++")`` and ``conf_int()``). The files are read
once beforehand (warm page cache). Reported:

* construction (the validating scan, itself a pass), fit and total wall time;
* partitions, and passes over the unlabeled rows: ``model.unlabeled_passes``
  after the fit (the scan plus ``res.unlabeled_passes``);
* time per partition per pass: total time / (passes x partitions), which is
  the time per 10^6 rows per pass; ``README.md`` extrapolates from it;
* the exponent a of a power law time ~ N^a (least squares on log-log, over
  the N measured), the speed-up from 1 to 2 workers at each N;
* the in-process out-of-core time for comparison: the same formula fit with
  ``unlabeled=ppinfer.read_parquet(dir)`` and no client (what
  ``bench_scale.py`` measures with the array interface); goal at N = 1e8: the
  cluster within 2x of it (``--no-inprocess`` skips it);
* the fixed cost per task: an OLS fit on a Dask DataFrame of
  ``--probe-partitions`` partitions of 1,000 rows, each drawn on a worker
  (``dask.dataframe.from_map``), time / (passes x partitions): reading and
  arithmetic are negligible there, what is left is the scheduler's and
  ppinfer's cost per partition.

Usage (from the repository root)::

    export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
    python benchmarks/bench_dask.py                          # N = 1e6, 1e7, 1e8; 1 and 2 workers
    python benchmarks/bench_dask.py --N 1e6 1e7 --estimators ols
    python benchmarks/bench_dask.py --quick                  # N = 1e6, OLS, small probe: under a minute

The script prints markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from functools import partial

import numpy as np
from bench_scale import (
    COLUMNS,
    DEFAULT_DIR,
    N_LABELED,
    ROW_GROUP,
    ROWS_PER_FILE,
    ensure_data,
    header,
    labeled_sample,
    one_pass,
    parquet_dir,
)

FORMULA = "y ~ " + " + ".join(COLUMNS[1:-1])


def fit_formula(estimator: str, frame, unlabeled, client=None) -> dict:
    """Build, fit PPI++, take the interval; times and passes. With a ``client``, also the
    seconds the workers spent computing tasks (``distributed.get_task_stream``)."""
    import contextlib

    import ppinfer

    stream = contextlib.nullcontext()
    if client is not None:
        import distributed

        stream = distributed.get_task_stream(client)
    with stream as tasks:
        start = time.perf_counter()
        model = getattr(ppinfer, estimator)(FORMULA, frame, unlabeled=unlabeled, yhat="pred")
        built = time.perf_counter()
        res = model.fit(method="ppi++")
        res.conf_int()
        done = time.perf_counter()
    out = {"construct": built - start, "fit": done - built, "time": done - start,
           "passes": int(model.unlabeled_passes), "fit_passes": int(res.unlabeled_passes),
           "params": np.asarray(res.params, dtype=float)}
    if client is not None:
        out["compute"] = sum(stop["stop"] - stop["start"] for task in tasks.data
                             for stop in task.get("startstops", ()) if stop.get("action") == "compute")
    return out


def median_run(function, repeats: int) -> dict:
    runs = [function() for _ in range(repeats)]
    best = sorted(runs, key=lambda r: r["time"])[len(runs) // 2]
    out = dict(best)
    for key in ("construct", "fit", "time", "compute"):
        if key in best:
            out[key] = statistics.median(r[key] for r in runs)
    return out


def dask_frame(folder: str):
    import dask.dataframe as dd

    return dd.read_parquet(parquet_dir(folder), columns=COLUMNS[1:], split_row_groups=True)


def _probe_partition(index: int, rows: int = 1_000):
    """One small partition of the overhead probe, drawn on the worker (seeded by its index)."""
    import pandas as pd

    values = np.random.default_rng([7, index]).standard_normal((rows, len(COLUMNS) - 2))
    part = pd.DataFrame(values, columns=COLUMNS[1:-1])
    part["pred"] = 1.0 / (1.0 + np.exp(-values[:, 0]))
    return part


def probe(frame, partitions: int, client) -> dict:
    """OLS on a Dask DataFrame of many partitions of 1,000 rows, each drawn on the worker that
    needs it (``dask.dataframe.from_map``, no data in the graph): the time per task per pass
    is then the scheduler's and ppinfer's fixed cost per partition."""
    import dask.dataframe as dd

    ddf = dd.from_map(_probe_partition, range(partitions))
    fit_formula("ols", frame, ddf)  # warm-up
    out = median_run(lambda: fit_formula("ols", frame, ddf, client), 1)
    out["partitions"] = ddf.npartitions
    return out


def power_law(Ns: list[int], times: list[float]) -> float:
    """Least-squares slope of log(time) on log(N)."""
    return float(np.polyfit(np.log(Ns), np.log(times), 1)[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--N", type=float, nargs="+", default=[1e6, 1e7, 1e8], help="unlabeled rows (several)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker processes (default 1 2)")
    parser.add_argument("--estimators", nargs="+", choices=["ols", "logit", "poisson"], default=["ols", "logit"])
    parser.add_argument("--n", type=int, default=N_LABELED, help="labeled rows (default 10,000)")
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"the data of bench_scale.py (default {DEFAULT_DIR})")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the median is reported")
    parser.add_argument("--quick", action="store_true", help="N = 1e6, OLS only, a probe of 50 partitions")
    parser.add_argument("--no-inprocess", action="store_true", help="skip the in-process Parquet comparison")
    parser.add_argument("--probe-partitions", type=int, default=200,
                        help="partitions of the scheduler-overhead probe (0: skip; default 200)")
    parser.add_argument("--plan-bandwidth", type=float, default=200.0,
                        help="read bandwidth per worker (MB/s) assumed by the paper-scale plan (default 200)")
    parser.add_argument("--rows-per-file", type=float, default=ROWS_PER_FILE, help="rows per Parquet file (5e6)")
    parser.add_argument("--row-group", type=float, default=ROW_GROUP, help="rows per row group when written")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.quick:
        args.N, args.estimators = [1e6], ["ols"]
        args.probe_partitions = min(args.probe_partitions, 50)
    Ns = sorted(int(N) for N in args.N)

    import distributed

    import ppinfer

    folders = {N: ensure_data(args.dir, N, formats=("parquet",), seed=args.seed,
                              rows_per_file=int(args.rows_per_file), row_group=int(args.row_group)) for N in Ns}
    _, _, _, frame = labeled_sample(args.n, args.seed)
    print(header(args, f"; n = {args.n:,}; Dask {__import__('dask').__version__}, distributed "
                       f"{distributed.__version__}; wall time, median of {args.repeats} run(s), warm page cache."),
          flush=True)
    print()
    warnings.simplefilter("ignore", ppinfer.PPIWarning)

    rows, probes = [], []
    for W in args.workers:
        cluster = distributed.LocalCluster(n_workers=W, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        with distributed.Client(cluster) as client:
            where = set(client.run(lambda: __import__("ppinfer").__file__).values())
            if where != {ppinfer.__file__}:
                print(f"warning: workers import ppinfer from {where}, this process from {ppinfer.__file__}")
            fit_formula("ols", frame, dask_frame(folders[Ns[0]]))  # warm-up: imports on the workers
            if args.probe_partitions:
                out = probe(frame, args.probe_partitions, client)
                out["workers"] = W
                probes.append(out)
            for N in Ns:
                folder = folders[N]
                one_pass(folder, "parquet")  # warm page cache
                ddf = dask_frame(folder)
                for estimator in args.estimators:
                    out = median_run(partial(fit_formula, estimator, frame, ddf, client), args.repeats)
                    out.update(workers=W, N=N, estimator=estimator, partitions=ddf.npartitions)
                    rows.append(out)
                    print(row_line(out), flush=True)
        cluster.close()

    inprocess = {}
    if not args.no_inprocess:
        for N in Ns:
            one_pass(folders[N], "parquet")
            table = ppinfer.read_parquet(parquet_dir(folders[N]))
            for estimator in args.estimators:
                inprocess[(N, estimator)] = median_run(partial(fit_formula, estimator, frame, table), args.repeats)
                print(f"in-process Parquet, {estimator}, N = {N:,}: {inprocess[(N, estimator)]['time']:.2f} s",
                      flush=True)

    print()
    print(TABLE_HEAD)
    for r in rows:
        print(row_line(r))

    print()
    print("| estimator | workers | exponent a (time ~ N^a) | over N | "
          + " | ".join(f"speed-up 1 -> 2 workers, N = {N:.0e}" for N in Ns) + " |")
    print("|" + "---|" * (4 + len(Ns)))
    for estimator in args.estimators:
        for W in args.workers:
            mine = [r for r in rows if r["estimator"] == estimator and r["workers"] == W]
            a = power_law([r["N"] for r in mine], [r["time"] for r in mine]) if len(mine) > 1 else float("nan")
            speedups = []
            for N in Ns:
                one = [r["time"] for r in rows if r["estimator"] == estimator and r["workers"] == 1 and r["N"] == N]
                two = [r["time"] for r in rows if r["estimator"] == estimator and r["workers"] == 2 and r["N"] == N]
                speedups.append(f"{one[0] / two[0]:.2f}" if one and two and W == 2 else "")
            print(f"| {estimator} | {W} | {a:.2f} | {Ns[0]:.0e} to {Ns[-1]:.0e} | " + " | ".join(speedups) + " |")

    if inprocess:
        print()
        print("| estimator | N | in-process Parquet (s) | passes | "
              + " | ".join(f"Dask, {W} worker(s) (s)" for W in args.workers)
              + " | best Dask / in-process (goal <= 2) |")
        print("|" + "---|" * (5 + len(args.workers)))
        for (N, estimator), ref in inprocess.items():
            times = [next((r["time"] for r in rows if r["estimator"] == estimator and r["workers"] == W
                           and r["N"] == N), float("nan")) for W in args.workers]
            print(f"| {estimator} | {N:.0e} | {ref['time']:.2f} | {ref['passes']} | "
                  + " | ".join(f"{t:.2f}" for t in times) + f" | {min(times) / ref['time']:.2f} |")
            same = [r for r in rows if r["estimator"] == estimator and r["N"] == N]
            if same:
                gap = max(float(np.max(np.abs(r["params"] - ref["params"]))) for r in same)
                if gap > 1e-8:
                    print(f"warning: {estimator} at N = {N:,}: Dask and in-process estimates differ by {gap:.1e}")

    if probes:
        print()
        print("| fixed-cost probe | workers | partitions of 1,000 rows | passes | total (s) "
              "| per partition per pass (ms) | of which computing on a worker (ms) | other (ms) |")
        print("|" + "---|" * 8)
        for p in probes:
            units = p["passes"] * p["partitions"]
            print(f"| OLS | {p['workers']} | {p['partitions']} | {p['passes']} | {p['time']:.2f} "
                  f"| {1e3 * p['time'] / units:.1f} | {1e3 * p['compute'] / units:.1f} "
                  f"| {1e3 * (p['time'] - p['compute'] / p['workers']) / units:.1f} |")

    plan(rows, probes, args.plan_bandwidth)


def plan(rows: list[dict], probes: list[dict], bandwidth: float) -> None:
    """The paper-scale extrapolation (see README.md, "A paper-scale plan").

    From the largest N fitted with one worker (OLS), per partition of 10^6 rows and
    pass: w, the seconds the worker computed (reading included; this part is
    shared among the k workers), and s, the rest of the wall time (scheduler,
    client, waiting; taken as serial, not shrinking with k: pessimistic).
    """
    ones = [r for r in rows if r["workers"] == 1 and r["estimator"] == "ols" and "compute" in r]
    if not ones:
        return
    big = max(ones, key=lambda r: r["N"])
    units = big["passes"] * big["partitions"]
    w = big["compute"] / units
    s = max(0.0, big["time"] - big["compute"]) / units
    print()
    print(f"Paper-scale plan, from OLS on one worker at N = {big['N']:.0e}: per partition of 10^6 rows and pass, "
          f"w = {w:.3f} s computing on the worker, s = {1e3 * s:.0f} ms else (taken as serial).")
    for rows_per_partition in (1e6, 1e7):
        print()
        print("\n".join(plan_table(w, s, bandwidth, rows_per_partition)))


def plan_time(N: float, k: int, P: int, w: float, s: float, rows_per_partition: float = 1e6,
              bandwidth: float | None = None) -> float:
    """Seconds of a fit of N rows with P passes on k workers:

        T = P * (M * s + ceil(M / k) * (w * R / 10^6 + [V / B])),   M = N / R,

    R rows per partition, w and s per 10^6-row partition and pass (``s`` per task,
    whatever its size); V = R * 11 * 8 bytes read at B bytes/s per worker when
    every pass reads from storage (ppinfer keeps no partition between passes).
    """
    import math

    M = N / rows_per_partition
    per_task = w * rows_per_partition / 1e6
    if bandwidth:
        per_task += rows_per_partition * 11 * 8 / 1e6 / bandwidth
    return P * (M * s + math.ceil(M / k) * per_task)


def plan_table(w: float, s: float, bandwidth: float, rows_per_partition: float = 1e6) -> list[str]:
    passes = {"P = 1 (Mean, Total, Ratio: the scan)": 1, "P = 2 (OLS)": 2, "P = 5 (Logit, Poisson)": 5}
    lines = [(f"Partitions of {rows_per_partition:.0e} rows; cells: data in memory / read at {bandwidth:g} MB/s per "
              "worker on every pass."), "",
             "| N | workers k | partitions | " + " | ".join(passes) + " |", "|" + "---|" * (3 + len(passes))]
    for N in (1e9, 1e10):
        for k in (2, 8, 32, 128):
            cells = [f"{duration(plan_time(N, k, P, w, s, rows_per_partition))} / "
                     f"{duration(plan_time(N, k, P, w, s, rows_per_partition, bandwidth))}" for P in passes.values()]
            lines.append(f"| {N:.0e} | {k} | {N / rows_per_partition:,.0f} | " + " | ".join(cells) + " |")
    return lines


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


TABLE_HEAD = (
    "| workers | N | partitions | estimator | construction (s) | fit (s) | total (s) | passes (scan + fit) "
    "| per partition per pass (s) | rows x passes per second | workers busy |\n"
) + "|" + "---|" * 11


def row_line(r: dict) -> str:
    per = r["time"] / (r["passes"] * r["partitions"])
    return (f"| {r['workers']} | {r['N']:.0e} | {r['partitions']} | {r['estimator']} | {r['construct']:.2f} "
            f"| {r['fit']:.2f} | {r['time']:.2f} | {r['passes']} ({r['passes'] - r['fit_passes']} + "
            f"{r['fit_passes']}) | {per:.3f} | {r['N'] * r['passes'] / r['time']:.2e} "
            f"| {r['compute'] / (r['workers'] * r['time']):.0%} |")


if __name__ == "__main__":
    main()
