"""Out-of-core fits on one machine: a memory-mapped file and Parquet files.

The unlabeled sample lives on disk, written once to ``--dir`` (default
``/tmp/ppinfer_bench``) and reused by later runs (and by ``bench_dask.py``):

* ``unlabeled.npy``: a float64 NumPy file of N rows and 12 columns (an
  intercept, 10 standard normal covariates, and the prediction), opened as a
  memory map; the model reads a strided column slice of it,
  ``X_unlabeled = mm[:, :11]`` and ``yhat_unlabeled = mm[:, 11]``;
* ``parquet/part-*.parquet``: the same rows and columns (``const``, ``x1`` to
  ``x10``, ``pred``) in several Parquet files of ``--rows-per-file`` rows,
  row groups of ``--row-group`` rows, read with ``ppinfer.read_parquet``:
  ``X_unlabeled = table[["const", "x1", ..., "x10"]]``,
  ``yhat_unlabeled = table["pred"]``.

At the default N = 10^8 each format takes 9.6 GB. The data are the same for any
chunking of the work: row group k is drawn from a generator seeded with
``(seed, k)``. The prediction is a probability (a logistic model's, noisy and
biased), and the labeled sample (n = 10,000 rows, in memory) has a Bernoulli
outcome, so ``OLS`` is a linear probability model and ``Logit`` the logistic
regression of the same data.

For each source (memmap, parquet), page-cache state (cold, warm) and
estimator (``--estimators``, default OLS and Logit, PPI++), one fresh
subprocess builds the model, fits it and computes ``conf_int()``. It reports

* wall time of construction (the validating scan) and of the fit;
* passes over the unlabeled rows: the model's ``unlabeled_passes`` after the
  fit (construction's scan plus the fit's), and the fit's share
  ``res.unlabeled_passes``;
* peak memory above the process's baseline after the labeled sample is loaded:
  the anonymous resident memory (``RssAnon`` of ``/proc/self/status``, sampled
  every 5 ms by a thread), which is what the fit allocates, and the peak
  resident set (``VmHWM``, reset when the baseline is taken by writing 5 to
  ``/proc/self/clear_refs``), which for a memory map also counts the file's
  pages mapped in (page cache, reclaimable, not allocations). (Not
  ``ru_maxrss``: after ``fork`` and ``exec`` it keeps the parent's peak.)

The reference is one sequential pass over the same file in the same cache
state, also in a fresh subprocess: the memory map summed chunk by chunk
(``mm[a:b].sum(axis=0)``, all 12 columns), or every row group of every Parquet
file read with pyarrow (``read_row_group``, all 12 columns) and each column
summed. The table gives time / pass (goal <= 3) and memory (goal < 1 GiB).
(ppinfer reads the Parquet files row group by row group too, and copies each
partition's 11 design columns into one float64 array: the fits' extra cost over
the reference pass.)

Cold runs evict the files from the page cache first: ``sync; echo 1 >
/proc/sys/vm/drop_caches`` when that file is writable (root), else
``posix_fadvise(POSIX_FADV_DONTNEED)`` on each file; ``--evict`` chooses. Only
the first pass of a fit is cold: later passes find what the first one left in
the page cache (all of it when the file fits in memory). Warm runs follow one
untimed pass. The share of the files resident in the page cache just before
each run is shown when ``fincore`` (util-linux) is installed.

Usage (from the repository root)::

    export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
    python benchmarks/bench_scale.py                     # N = 10^8: writes 19.2 GB once
    python benchmarks/bench_scale.py --N 10000000        # N = 10^7 (1.9 GB)
    python benchmarks/bench_scale.py --quick             # N = 10^6, under a minute
    python benchmarks/bench_scale.py --N 10000000 --sources parquet --cache warm --estimators ols

The script prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

P = 10  # covariates besides the intercept
COLUMNS = ["const"] + [f"x{j}" for j in range(1, P + 1)] + ["pred"]
BETA = np.concatenate([[-0.5], np.linspace(0.5, -0.5, P)])
N_LABELED = 10_000
DEFAULT_DIR = "/tmp/ppinfer_bench"
#: rows per generated block (and default Parquet row group)
ROW_GROUP = 1_000_000
#: rows per Parquet file (default)
ROWS_PER_FILE = 5_000_000
FORMAT_VERSION = 1


# -- the data ---------------------------------------------------------------------------------------
def draw_rows(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``size`` rows of (intercept, 10 covariates, prediction) and the logistic model's
    success probabilities (from which labeled outcomes are drawn)."""
    rows = np.empty((size, P + 2))
    rows[:, 0] = 1.0
    rows[:, 1 : P + 1] = rng.standard_normal((size, P))
    eta = rows[:, : P + 1] @ BETA
    prob = 1.0 / (1.0 + np.exp(-eta))
    # the prediction: informative but noisy and biased (shifted linear predictor)
    rows[:, P + 1] = 1.0 / (1.0 + np.exp(-(eta + 0.3 + 0.5 * rng.standard_normal(size))))
    return rows, prob


def labeled_sample(n: int = N_LABELED, seed: int = 2026):
    """The labeled sample in memory: ``(y, X, yhat)`` arrays and the same as a DataFrame
    (columns ``x1``..``x10``, ``pred``, ``y``) for the formula interface."""
    import pandas as pd

    rng = np.random.default_rng([seed, 1 << 40])  # a stream no unlabeled block uses
    rows, prob = draw_rows(n, rng)
    y = (rng.random(n) < prob).astype(float)
    frame = pd.DataFrame(rows[:, 1:], columns=COLUMNS[1:])
    frame["y"] = y
    return y, rows[:, : P + 1].copy(), rows[:, P + 1].copy(), frame


def data_dir(root: str, N: int, seed: int, row_group: int = ROW_GROUP, rows_per_file: int = ROWS_PER_FILE) -> str:
    """The folder of one data set (non-default layouts get their own)."""
    tag = (f"N{N}_seed{seed}" + ("" if row_group == ROW_GROUP else f"_rg{row_group}")
           + ("" if rows_per_file == ROWS_PER_FILE else f"_file{rows_per_file}"))
    return os.path.join(root, tag)


def memmap_path(folder: str) -> str:
    return os.path.join(folder, "unlabeled.npy")


def parquet_dir(folder: str) -> str:
    return os.path.join(folder, "parquet")


def parquet_files(folder: str) -> list[str]:
    where = parquet_dir(folder)
    return sorted(os.path.join(where, f) for f in os.listdir(where) if f.endswith(".parquet"))


def _done(folder: str, fmt: str) -> str:
    return os.path.join(folder, f"{fmt}.done")


def ensure_data(root: str = DEFAULT_DIR, N: int = 100_000_000, *, formats=("memmap", "parquet"), seed: int = 2026,
                rows_per_file: int = ROWS_PER_FILE, row_group: int = ROW_GROUP, compression: str = "snappy",
                verbose: bool = True) -> str:
    """Write the unlabeled sample of N rows in the given formats under ``root`` unless a
    complete copy is there already; return its folder.

    A format is complete when its ``<format>.done`` marker exists (written last, with
    the generator's settings); a partial copy from an interrupted run is rewritten.
    Row group k (``row_group`` rows) is drawn with the seed ``(seed, k)``, so the memory
    map and the Parquet files hold the same values.
    """
    folder = data_dir(root, N, seed, row_group, rows_per_file)
    os.makedirs(folder, exist_ok=True)
    settings = {"N": N, "seed": seed, "row_group": row_group, "version": FORMAT_VERSION}
    todo = []
    for fmt in formats:
        marker = _done(folder, fmt)
        if os.path.exists(marker):
            with open(marker) as f:
                if {k: v for k, v in json.load(f).items() if k in settings} == settings:
                    continue
        todo.append(fmt)
    if not todo:
        return folder
    need = N * (P + 2) * 8 * len(todo)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise SystemExit(f"writing {todo} for N = {N:,} needs about {need / 1e9:.1f} GB; {free / 1e9:.1f} GB free.")
    if verbose:
        print(f"writing {' and '.join(todo)} of N = {N:,} rows to {folder} ({need / 1e9:.1f} GB) ...", flush=True)
    start = time.perf_counter()

    mm = None
    if "memmap" in todo:
        tmp = memmap_path(folder) + ".partial"
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(N, P + 2))
    writer, files, file_rows = None, [], 0
    if "parquet" in todo:
        import pyarrow as pa
        import pyarrow.parquet as pq

        shutil.rmtree(parquet_dir(folder), ignore_errors=True)
        os.makedirs(parquet_dir(folder))
        schema = pa.schema([(name, pa.float64()) for name in COLUMNS])

    for block, begin in enumerate(range(0, N, row_group)):
        end = min(begin + row_group, N)
        rows, _ = draw_rows(end - begin, np.random.default_rng([seed, block]))
        if mm is not None:
            mm[begin:end] = rows
        if "parquet" in todo:
            if writer is None or file_rows >= rows_per_file:
                if writer is not None:
                    writer.close()
                files.append(os.path.join(parquet_dir(folder), f"part-{len(files):04d}.parquet"))
                writer = pq.ParquetWriter(files[-1] + ".partial", schema, compression=compression)
                file_rows = 0
            table = pa.Table.from_arrays([pa.array(np.ascontiguousarray(rows[:, j])) for j in range(P + 2)],
                                         schema=schema)
            writer.write_table(table, row_group_size=row_group)
            file_rows += end - begin
        if verbose and block % 10 == 9:
            print(f"  {end:,} rows, {time.perf_counter() - start:.0f} s", flush=True)
    if mm is not None:
        mm.flush()
        del mm
        os.replace(memmap_path(folder) + ".partial", memmap_path(folder))
    if writer is not None:
        writer.close()
        for path in files:
            os.replace(path + ".partial", path)
    os.sync()
    for fmt in todo:
        with open(_done(folder, fmt), "w") as f:
            json.dump({**settings, "rows_per_file": rows_per_file, "compression": compression,
                       "seconds": round(time.perf_counter() - start, 1)}, f)
    if verbose:
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def source_files(folder: str, source: str) -> list[str]:
    return [memmap_path(folder)] if source == "memmap" else parquet_files(folder)


# -- the page cache ---------------------------------------------------------------------------------
def eviction_method(choice: str) -> str:
    if choice != "auto":
        return choice
    return "drop_caches" if os.access("/proc/sys/vm/drop_caches", os.W_OK) else "fadvise"


def evict(paths: list[str], method: str) -> None:
    """Remove the files' pages from the page cache (``drop_caches``: every clean page)."""
    os.sync()
    if method == "drop_caches":
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_share(paths: list[str]) -> float | None:
    """Share of the files' bytes in the page cache (``fincore``), or None without it."""
    if shutil.which("fincore") is None:
        return None
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", *paths],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    res = size = 0
    for line in out.split("\n"):
        if line.strip():
            r, s = line.split()
            res, size = res + int(r), size + int(s)
    return res / size if size else None


# -- what runs in the child process -----------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class AnonPeak:
    """Peak of the process's anonymous resident memory (kB), sampled by a thread."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, _status_kb("RssAnon"), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _status_kb("RssAnon"))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kb("RssAnon"))


def one_pass(folder: str, source: str, batch_rows: int = 1 << 20) -> np.ndarray:
    """One sequential pass over the file(s): the sums of all 12 columns (the memory map
    ``batch_rows`` rows at a time; the Parquet files one row group at a time)."""
    if source == "memmap":
        mm = np.load(memmap_path(folder), mmap_mode="r")
        total = np.zeros(mm.shape[1])
        for begin in range(0, mm.shape[0], batch_rows):
            total += mm[begin : begin + batch_rows].sum(axis=0)
        return total
    import pyarrow.parquet as pq

    total = np.zeros(len(COLUMNS))
    for path in parquet_files(folder):
        file = pq.ParquetFile(path)
        for group in range(file.num_row_groups):
            table = file.read_row_group(group, columns=COLUMNS)
            for j, column in enumerate(table.columns):
                total[j] += column.to_numpy().sum()
            del table
    return total


def fit_once(folder: str, source: str, estimator: str, labeled) -> dict:
    """Build the model on the on-disk sample, fit PPI++, take the interval; times and passes."""
    import ppinfer

    y, X, yhat, _ = labeled
    if source == "memmap":
        mm = np.load(memmap_path(folder), mmap_mode="r")
        X_unlabeled, yhat_unlabeled = mm[:, : P + 1], mm[:, P + 1]
    else:
        table = ppinfer.read_parquet(parquet_dir(folder))
        X_unlabeled, yhat_unlabeled = table[COLUMNS[: P + 1]], table["pred"]
    start = time.perf_counter()
    if estimator == "mean":
        model = ppinfer.Mean(y, yhat, yhat_unlabeled)
    else:
        cls = {"ols": ppinfer.OLS, "logit": ppinfer.Logit, "poisson": ppinfer.Poisson}[estimator]
        model = cls(y, X, yhat, X_unlabeled, yhat_unlabeled)
    built = time.perf_counter()
    res = model.fit(method="ppi++")
    res.conf_int()
    done = time.perf_counter()
    return {"construct": built - start, "fit": done - built, "time": done - start,
            "passes": int(model.unlabeled_passes), "fit_passes": int(res.unlabeled_passes),
            "params": [float(v) for v in np.asarray(res.params)]}


def reset_peak_rss() -> bool:
    """Reset the process's peak resident set (``VmHWM``) to its current size (Linux:
    ``5`` written to ``/proc/self/clear_refs``); False where that fails."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _touch_parquet(folder: str) -> None:
    """Read a few values of the first Parquet file: pyarrow's first-read costs (thread
    pools, allocator) are paid before the timing, for the pass and the fits alike."""
    import pyarrow.parquet as pq

    pq.ParquetFile(parquet_files(folder)[0]).read_row_group(0, columns=["const"]).column(0).to_numpy().sum()


def child(task: dict) -> dict:
    """Run one measurement (``task["what"]`` is "pass" or an estimator) in this process."""
    import gc

    labeled = labeled_sample(task["n"], task["seed"])
    if task["what"] != "pass":
        import ppinfer  # noqa: F401  (imports are part of the baseline, not of the fit)
    if task["source"] == "parquet":
        _touch_parquet(task["folder"])
    gc.collect()
    reset = reset_peak_rss()
    base_rss, base_anon = _status_kb("VmRSS"), _status_kb("RssAnon")
    with AnonPeak() as anon:
        if task["what"] == "pass":
            start = time.perf_counter()
            one_pass(task["folder"], task["source"])
            out = {"time": time.perf_counter() - start}
        else:
            out = fit_once(task["folder"], task["source"], task["what"], labeled)
    out["anon_mib"] = (anon.peak - base_anon) / 1024
    out["rss_mib"] = (_status_kb("VmHWM") - base_rss) / 1024
    out["peak_reset"] = reset
    return out


def run_child(task: dict) -> dict:
    """Run ``task`` in a fresh Python process (same interpreter and environment)."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(task)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1],
                "stderr": proc.stderr}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the parent -------------------------------------------------------------------------------------
def header(args, extra: str = "") -> str:
    import ppinfer

    threads = ", ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"ppinfer {ppinfer.__version__} ({os.path.dirname(ppinfer.__file__)}), NumPy {np.__version__}, "
            f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs"
            f"{', ' + threads if threads else ', BLAS threads not set'}; load average {load}{extra}")


def fmt(value, spec: str, missing: str = "") -> str:
    return missing if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def markdown(rows: list[dict]) -> str:
    lines = [
        ("| source | cache | estimator | N | construction (s) | fit (s) | total (s) | passes (scan + fit) "
         "| one pass (s) | total / pass (goal <= 3) | peak anon. memory (MiB, goal < 1024) "
         "| peak RSS incl. mapped file (MiB) | resident before |"),
        "|" + "---|" * 13,
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['source']} | {r['cache']} | {r['what']} | {r['N']:.0e} | failed: {r['error']} "
                         + "| " * 8 + "|")
            continue
        is_pass = r["what"] == "pass"
        ratio = r["time"] / r["pass"] if not is_pass and r.get("pass") else None
        passes = "" if is_pass else f"{r['passes']} ({r['passes'] - r['fit_passes']} + {r['fit_passes']})"
        lines.append(
            f"| {r['source']} | {r['cache']} | {'one pass' if is_pass else r['what']} | {r['N']:.0e} "
            f"| {fmt(r.get('construct'), '.2f')} | {fmt(r.get('fit'), '.2f')} | {r['time']:.2f} | {passes} "
            f"| {fmt(r.get('pass'), '.2f')} | {fmt(ratio, '.2f')} | {r['anon_mib']:.0f} | {r['rss_mib']:.0f} "
            f"| {fmt(r.get('resident'), '.0%', 'n/a')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--N", type=float, default=1e8, help="unlabeled rows (default 1e8: 9.6 GB per format)")
    parser.add_argument("--quick", action="store_true", help="N = 1e6 (well under a minute once written)")
    parser.add_argument("--n", type=int, default=N_LABELED, help="labeled rows (default 10,000)")
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"where the data are written (default {DEFAULT_DIR})")
    parser.add_argument("--sources", nargs="+", choices=["memmap", "parquet"], default=["memmap", "parquet"])
    parser.add_argument("--estimators", nargs="+", choices=["ols", "logit", "poisson", "mean"],
                        default=["ols", "logit"])
    parser.add_argument("--cache", nargs="+", choices=["cold", "warm"], default=["cold", "warm"])
    parser.add_argument("--evict", choices=["auto", "drop_caches", "fadvise"], default="auto",
                        help="how cold runs empty the page cache (auto: drop_caches when writable)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the median is reported")
    parser.add_argument("--rows-per-file", type=float, default=ROWS_PER_FILE, help="rows per Parquet file (5e6)")
    parser.add_argument("--row-group", type=float, default=ROW_GROUP, help="rows per Parquet row group (1e6)")
    parser.add_argument("--compression", default="snappy", help="Parquet compression (default snappy)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return []
    N = int(1e6 if args.quick else args.N)
    folder = ensure_data(args.dir, N, formats=tuple(args.sources), seed=args.seed,
                         rows_per_file=int(args.rows_per_file), row_group=int(args.row_group),
                         compression=args.compression)
    method = eviction_method(args.evict)
    sizes = {s: sum(os.path.getsize(p) for p in source_files(folder, s)) for s in args.sources}
    print(header(args, f"; n = {args.n:,}, N = {N:,}; data in {folder} ("
                 + ", ".join(f"{s} {b / 1e9:.2f} GB" for s, b in sizes.items())
                 + f"); cold runs evicted by {method}; wall time, median of {args.repeats} run(s)."), flush=True)
    print(f"{len(parquet_files(folder)) if 'parquet' in args.sources else 0} Parquet file(s)\n", flush=True)

    rows = []
    for source in args.sources:
        paths = source_files(folder, source)
        for cache in args.cache:
            if cache == "warm":
                one_pass(folder, source)  # untimed: load the files into the page cache
            pass_time = None
            for what in ["pass", *args.estimators]:
                runs = []
                for _ in range(args.repeats):
                    if cache == "cold":
                        evict(paths, method)
                    resident = resident_share(paths)
                    out = run_child({"what": what, "source": source, "folder": folder, "n": args.n,
                                     "seed": args.seed})
                    out["resident"] = resident
                    runs.append(out)
                    if "error" in out:
                        print(out["stderr"], file=sys.stderr)
                        break
                good = [r for r in runs if "error" not in r]
                row = {"source": source, "cache": cache, "what": what, "N": N}
                if not good:
                    row.update(runs[-1])
                else:
                    best = sorted(good, key=lambda r: r["time"])[len(good) // 2]
                    row.update(best)
                    for key in ("time", "construct", "fit"):
                        if key in best:
                            row[key] = statistics.median(r[key] for r in good)
                    if what == "pass":
                        pass_time = row["time"]
                    row["pass"] = pass_time
                rows.append(row)
                print(markdown([row]).splitlines()[-1], flush=True)
    print()
    print(markdown(rows))
    fitted = [r for r in rows if r["what"] != "pass" and "params" in r]
    for estimator in args.estimators:
        sets = [np.array(r["params"]) for r in fitted if r["what"] == estimator]
        if len(sets) > 1:
            spread = max(float(np.max(np.abs(s - sets[0]))) for s in sets)
            print(f"\n{estimator}: largest difference of estimates between runs and sources {spread:.1e}")
    return rows


if __name__ == "__main__":
    main()
