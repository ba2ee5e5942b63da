"""The median of an unlabeled sample read from Parquet files, partition by partition.

Reuses the Parquet files that ``bench_scale.py`` writes (``--dir``, default
``/tmp/ppinfer_bench/N<N>_seed2026/parquet``; run ``bench_scale.py --N <N>
--sources parquet`` first) and reads only their prediction column ``pred``.
The labeled sample (n = ``--n`` rows, in memory) takes its predictions from
the first rows of the first file and its outcomes are those predictions plus
normal noise (sd 0.05), so that the predictions are informative.

For each N it reports, in a fresh subprocess each:

* the quantile fit (``Quantile(..., q=0.5).fit()`` and ``conf_int()``, PPI++)
  on ``ppinfer.read_parquet(dir)["pred"]``: wall time, passes over the
  unlabeled rows (the validating scan plus the search's counting passes), and
  peak anonymous memory above the baseline after the labeled sample is built;
* one sequential pass over the same column (every row group read with pyarrow
  and summed), and the ratio of the two;
* with ``--in-memory`` (N <= 10^7 advised): the same fit on the column loaded
  into a NumPy array, its time, and whether the two give the same estimate and
  interval (to 1e-10).

``--method`` picks the fit's method (default PPI++; ``naive`` pools the outcomes with
the unlabeled predictions). ``--design`` picks the sampling design: ``srs`` (independent simple random
samples, the default); ``two-phase``, the labeled units a random subsample of
the phase-one sample (``label_prob = n / (n + N)``), so the all-units fit holds
the labeled rows too; ``clusters``, PSUs of 1,000 consecutive unlabeled rows
and of 10 labeled rows (independent samples; CR2); ``shared-clusters``, PSUs of 1,000 consecutive unlabeled
rows with the labeled units spread over the same PSUs (an in-memory
``clusters_unlabeled`` array beside the streamed predictions, CR2 intervals).

Usage (from the repository root)::

    export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
    python benchmarks/bench_quantile_scale.py --N 1e7 --in-memory
    python benchmarks/bench_quantile_scale.py --N 1e8
    python benchmarks/bench_quantile_scale.py --N 1e7 --in-memory --design two-phase
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def anon_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Peak anonymous resident memory (KiB) above the level at start, sampled every 5 ms."""

    def __init__(self):
        self.base, self.peak, self._stop = anon_kib(), 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, anon_kib() - self.base)
            time.sleep(0.005)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, anon_kib() - self.base) / 1024.0


def labeled_sample(folder: str, n: int, seed: int = 1):
    import numpy as np
    import pyarrow.parquet as pq

    first = min(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".parquet"))
    pred = pq.ParquetFile(first).read_row_group(0, columns=["pred"]).column("pred").to_numpy()[:n]
    rng = np.random.default_rng(seed)
    return pred + rng.normal(scale=0.05, size=pred.size), pred


def design_options(design: str, n: int, N: int) -> dict:
    """The keywords of ``--design`` (the unlabeled PSUs as an in-memory array)."""
    import numpy as np

    if design == "two-phase":
        return {"label_prob": np.full(n, n / (n + N))}
    if design == "clusters":
        npsu = max(N // 1000, 1)
        return {"clusters": npsu + np.arange(n) // 10, "clusters_unlabeled": np.arange(N) // 1000}
    if design == "shared-clusters":
        npsu = max(N // 1000, 1)
        return {"clusters": np.random.default_rng(2).integers(0, npsu, size=n),
                "clusters_unlabeled": np.arange(N) // 1000}
    return {}


def run_fit(folder: str, n: int, in_memory: bool, design: str = "srs", method: str = "ppi++") -> dict:
    import numpy as np

    import ppinfer

    y, f = labeled_sample(folder, n)
    table = ppinfer.read_parquet(folder)
    import pyarrow.parquet as pq

    N = sum(pq.ParquetFile(path).metadata.num_rows for path in table.paths)
    options = design_options(design, n, N)
    out = {}
    memory = PeakMemory()
    start = time.perf_counter()
    model = ppinfer.Quantile(y, f, table["pred"], q=0.5, **options)
    result = model.fit(method=method)
    interval = result.conf_int().to_numpy()
    out["seconds"] = time.perf_counter() - start
    out["peak_mib"] = memory.stop()
    out["passes"] = model.unlabeled_passes
    out["estimate"], out["interval"] = float(result.params.iloc[0]), interval.ravel().tolist()
    if in_memory:
        values = np.concatenate([pq.read_table(path, columns=["pred"]).column("pred").to_numpy()
                                 for path in table.paths])
        start = time.perf_counter()
        reference = ppinfer.Quantile(y, f, values, q=0.5, **options).fit(method=method)
        expected = reference.conf_int().to_numpy()
        out["in_memory_seconds"] = time.perf_counter() - start
        out["same"] = bool(np.allclose(interval, expected, rtol=0, atol=1e-10)
                           and abs(result.params.iloc[0] - reference.params.iloc[0]) <= 1e-10)
    return out


def run_pass(folder: str) -> dict:
    import pyarrow.parquet as pq

    start = time.perf_counter()
    total = 0.0
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".parquet"):
            continue
        handle = pq.ParquetFile(os.path.join(folder, name))
        for group in range(handle.num_row_groups):
            total += float(handle.read_row_group(group, columns=["pred"]).column("pred").to_numpy().sum())
    return {"seconds": time.perf_counter() - start, "total": total}


def child(arguments) -> None:
    if arguments.child == "fit":
        result = run_fit(arguments.folder, arguments.n, arguments.in_memory, arguments.design, arguments.method)
    else:
        result = run_pass(arguments.folder)
    print(json.dumps(result))


def fresh(kind: str, folder: str, n: int, in_memory: bool, design: str = "srs", method: str = "ppi++") -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", kind, "--folder", folder, "--n", str(n),
               "--design", design, "--method", method]
    if in_memory:
        command.append("--in-memory")
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--N", type=float, nargs="+", default=[1e7])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dir", default="/tmp/ppinfer_bench")
    parser.add_argument("--in-memory", action="store_true")
    parser.add_argument("--design", choices=["srs", "two-phase", "clusters", "shared-clusters"], default="srs")
    parser.add_argument("--method", choices=["ppi++", "ppi", "classical", "naive"], default="ppi++")
    parser.add_argument("--child", choices=["fit", "pass"])
    parser.add_argument("--folder")
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments)
        return
    print(f"# load {os.getloadavg()[0]:.2f}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
          f"design {arguments.design}; method {arguments.method}")
    print("| N | fit (s) | one pass (s) | fit / pass | passes | peak memory (MiB) | in memory (s) | same |")
    print("|---|---|---|---|---|---|---|---|")
    for N in arguments.N:
        folder = os.path.join(arguments.dir, f"N{int(N)}_seed2026", "parquet")
        if not os.path.isdir(folder):
            sys.exit(f"no Parquet files at {folder}: run benchmarks/bench_scale.py --N {N:g} --sources parquet")
        fresh("pass", folder, arguments.n, False)  # warm the page cache
        reference = fresh("pass", folder, arguments.n, False)
        fit = fresh("fit", folder, arguments.n, arguments.in_memory, arguments.design, arguments.method)
        memory = f"{fit['in_memory_seconds']:.2f}" if "in_memory_seconds" in fit else ""
        print(f"| {int(N):,} | {fit['seconds']:.2f} | {reference['seconds']:.2f} | "
              f"{fit['seconds'] / reference['seconds']:.1f} | {fit['passes']} | {fit['peak_mib']:.0f} | "
              f"{memory} | {fit.get('same', '')} |")


if __name__ == "__main__":
    main()
