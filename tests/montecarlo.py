"""Seeded Monte Carlo replications of the simulated designs, shared by the validity tests.

One replication draws a labeled and an unlabeled sample with
:func:`ppinfer.datasets.simulate`, builds the matching model once and fits every
method on it (the model caches its three M-estimates, so the extra fits are
cheap). For each method it keeps the estimates, their estimated variances, the
two-sided intervals at the nominal level and, for PPI++ with its default
lambda in the biased design, the one-sided intervals and the p-values of the z
test at the true value.
:func:`replicate` caches its result, so every test of one (estimator, design)
cell reads the same replications.

Run as a script to print every figure the tests check (and optionally save them)::

    python tests/montecarlo.py [table.csv]
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ppinfer.datasets import simulate

#: nominal level of every interval (0.90 rather than 0.95: under-coverage shows sooner)
NOMINAL = 0.90
ALPHA = 1.0 - NOMINAL
#: the regressions' estimands; the others (mean, quantile) have one lambda per parameter anyway
REGRESSIONS = ("ols", "logit", "poisson")
ESTIMANDS = ("mean", "quantile", *REGRESSIONS)
#: quantile levels checked: the median and an upper tail level
QUANTILE_LEVELS = (0.5, 0.8)
#: labeled and unlabeled sample sizes, and replications per (estimator, design) cell (3.5 MC SE of
#: a coverage = 0.061; no valid method's coverage is more than 0.047 from 0.90 with these 300, 0.040
#: with 400; naive pooling covers 0-10% with biased predictions)
N_LABELED, N_UNLABELED, REPS = 300, 3000, 300


@dataclass(frozen=True)
class Design:
    """How the simulated predictions relate to the outcome (see ``ppinfer.datasets``)."""

    name: str
    quality: float
    bias: float
    description: str


DESIGNS = {
    "informative": Design("informative", 0.8, 0.0, "unbiased predictions, correlation 0.8 with Y"),
    "biased": Design("biased", 0.8, 0.5, "level shifted by 0.5 sd and slope inflated 1.5 times"),
    "useless": Design("useless", 0.0, 0.0, "predictions independent of Y"),
}


@dataclass(frozen=True)
class Method:
    """A labelled call of ``model.fit``."""

    label: str
    method: str
    lam: object = None
    #: also record one-sided intervals and the z tests at the truth
    one_sided: bool = False

    def fit(self, model, **extra):
        options = {"method": self.method} if self.lam is None else {"method": self.method, "lam": self.lam}
        return model.fit(**options, **extra)


CLASSICAL = Method("classical", "classical")
PPI = Method("ppi", "ppi")
PPI_PLUS_PLUS = Method("ppi++", "ppi++")
PER_COEFFICIENT = Method("ppi++ per-coef", "ppi++", "per-coefficient")
NAIVE = Method("naive", "naive")

#: designs where PPI++'s one-sided intervals and z tests are recorded (the tests check them there)
ONE_SIDED_DESIGNS = ("biased",)
#: designs where naive pooling is fitted: where its failure is checked (it costs a pooled fit)
NAIVE_DESIGNS = ("biased", "useless")


def methods_for(estimand: str, design: str) -> tuple[Method, ...]:
    """The methods fitted to each replication of a cell.

    Per-coefficient tuning only for the regressions (elsewhere there is one
    parameter per lambda anyway); naive pooling only in :data:`NAIVE_DESIGNS`.
    """
    tuned = dataclasses.replace(PPI_PLUS_PLUS, one_sided=design in ONE_SIDED_DESIGNS)
    methods = (CLASSICAL, PPI, tuned) + ((PER_COEFFICIENT,) if estimand in REGRESSIONS else ())
    return methods + ((NAIVE,) if design in NAIVE_DESIGNS else ())


def seed_for(estimand: str, design: str) -> int:
    """A fixed seed per (estimator, design) cell, so that cells are independent."""
    return 20_250_000 + 100 * ESTIMANDS.index(estimand) + list(DESIGNS).index(design)


@dataclass
class Draws:
    """What one method gave on every replication: arrays of shape (reps, p)."""

    params: np.ndarray
    variance: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    #: lower end of the one-sided ``alternative="larger"`` interval, upper end of ``"smaller"``
    lower_larger: np.ndarray | None = None
    upper_smaller: np.ndarray | None = None
    #: p-values of ``res.test(null=truth, alternative=...)``
    pvalues: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class MonteCarlo:
    """Replications of one (estimator, design) cell and the figures computed from them."""

    estimand: str
    design: Design
    truth: pd.Series
    draws: dict[str, Draws]
    reps: int
    #: wall-clock and CPU seconds the replications took
    seconds: float
    cpu_seconds: float

    @property
    def names(self) -> list[str]:
        return list(self.truth.index)

    def mc_se(self, probability: float = NOMINAL) -> float:
        """Monte Carlo standard error of an observed frequency whose true value is ``probability``."""
        return float(np.sqrt(probability * (1.0 - probability) / self.reps))

    def coverage(self, label: str) -> np.ndarray:
        """Fraction of two-sided intervals containing the truth, per parameter."""
        d, truth = self.draws[label], self.truth.to_numpy()
        return np.mean((d.lower <= truth) & (truth <= d.upper), axis=0)

    def one_sided_coverage(self, label: str, alternative: str) -> np.ndarray:
        """Coverage of ``(lower, inf)`` (``"larger"``) or ``(-inf, upper)`` (``"smaller"``)."""
        d, truth = self.draws[label], self.truth.to_numpy()
        if alternative == "larger":
            return np.mean(d.lower_larger <= truth, axis=0)
        return np.mean(truth <= d.upper_smaller, axis=0)

    def rejection_rate(self, label: str, alternative: str, alpha: float = ALPHA) -> np.ndarray:
        """Type I error of the z test of ``theta = truth`` at level ``alpha``, per parameter."""
        return np.mean(self.draws[label].pvalues[alternative] <= alpha, axis=0)

    def mean_width(self, label: str) -> np.ndarray:
        d = self.draws[label]
        return np.mean(d.upper - d.lower, axis=0)

    def width_ratio(self, label: str, reference: str) -> tuple[np.ndarray, np.ndarray]:
        """Ratio of mean widths (``label`` over ``reference``) and its Monte Carlo standard error.

        The two methods are fitted to the same replications, so the delta method
        uses the paired differences ``w_label - ratio * w_reference``.
        """
        a = self.draws[label].upper - self.draws[label].lower
        b = self.draws[reference].upper - self.draws[reference].lower
        ratio = a.mean(axis=0) / b.mean(axis=0)
        se = np.std(a - ratio * b, axis=0, ddof=1) / np.sqrt(self.reps) / b.mean(axis=0)
        return ratio, se

    def variance_ratio(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean estimated variance over the Monte Carlo variance of the estimates, and its SE.

        The SE combines, on the log scale, the error of a sample variance of
        ``reps`` draws, ``sqrt((2 / (reps - 1) + kurtosis / reps))`` with the
        estimates' excess kurtosis estimated from the draws (0 for normal
        estimates), and the error of the mean of the estimated variances.
        """
        d = self.draws[label]
        centred = d.params - d.params.mean(axis=0)
        empirical = np.mean(centred**2, axis=0) * self.reps / (self.reps - 1)
        kurtosis = np.mean(centred**4, axis=0) / np.mean(centred**2, axis=0) ** 2 - 3.0
        mean_estimate = d.variance.mean(axis=0)
        relative_var_empirical = 2.0 / (self.reps - 1) + kurtosis / self.reps
        relative_var_estimate = d.variance.var(axis=0, ddof=1) / self.reps / mean_estimate**2
        ratio = mean_estimate / empirical
        return ratio, ratio * np.sqrt(relative_var_empirical + relative_var_estimate)

    def table(self) -> pd.DataFrame:
        """One row per (method, parameter): every figure the tests look at."""
        rows = []
        for label, d in self.draws.items():
            coverage, width = self.coverage(label), self.mean_width(label)
            ratio, ratio_se = self.variance_ratio(label)
            for k, name in enumerate(self.names):
                row = {
                    "estimator": self.estimand,
                    "design": self.design.name,
                    "method": label,
                    "parameter": name,
                    "coverage": coverage[k],
                    "mc_se": self.mc_se(),
                    "mean_width": width[k],
                    "var_ratio": ratio[k],
                    "var_ratio_se": ratio_se[k],
                }
                if d.lower_larger is not None:
                    row["cover_larger"] = self.one_sided_coverage(label, "larger")[k]
                    row["cover_smaller"] = self.one_sided_coverage(label, "smaller")[k]
                for alternative, p in d.pvalues.items():
                    row[f"reject_{alternative}"] = np.mean(p[:, k] <= ALPHA)
                rows.append(row)
        return pd.DataFrame(rows)


def _allocate(method: Method, reps: int, p: int) -> Draws:
    """Arrays for one method's draws (one-sided intervals and tests if the method asks)."""
    empty = functools.partial(np.full, (reps, p), np.nan)
    draws = Draws(empty(), empty(), empty(), empty())
    if method.one_sided:
        draws.lower_larger, draws.upper_smaller = empty(), empty()
        draws.pvalues = {alternative: empty() for alternative in ("two-sided", "larger", "smaller")}
    return draws


def replicate(
    estimand: str,
    design: str,
    *,
    reps: int = REPS,
    n: int = N_LABELED,
    N: int = N_UNLABELED,
    seed: int | None = None,
) -> MonteCarlo:
    """Run ``reps`` seeded replications of one (estimator, design) cell (cached).

    Parameters
    ----------
    estimand : one of :data:`ESTIMANDS`
    design : a key of :data:`DESIGNS`
    reps, n, N : int
        Replications, labeled and unlabeled sample sizes.
    seed : int, optional
        Root of ``np.random.SeedSequence(seed).spawn(reps)``; defaults to :func:`seed_for`.

    Returns
    -------
    MonteCarlo
    """
    # one cache key per distinct run, however the arguments were spelled
    return _replicate(estimand, design, reps, n, N, seed_for(estimand, design) if seed is None else seed)


@functools.cache
def _replicate(estimand: str, design: str, reps: int, n: int, N: int, seed: int) -> MonteCarlo:
    spec = DESIGNS[design]
    methods = methods_for(estimand, design)
    start, cpu_start = time.perf_counter(), time.process_time()
    truth, draws = None, None
    for r, child in enumerate(np.random.SeedSequence(seed).spawn(reps)):
        data = simulate(
            estimand, n, N, quality=spec.quality, bias=spec.bias, q=list(QUANTILE_LEVELS),
            seed=np.random.default_rng(child),
        )
        if truth is None:
            truth, p = data.truth, len(data.truth)
            draws = {m.label: _allocate(m, reps, p) for m in methods}
        model = data.model()
        for method in methods:
            res, d = method.fit(model), draws[method.label]
            d.params[r], d.variance[r] = res.params.to_numpy(), res.bse.to_numpy() ** 2
            # columns (lower, upper) by position: selecting them by name in pandas took 7% of the time
            d.lower[r], d.upper[r] = res.conf_int(ALPHA).to_numpy().T
            if method.one_sided:
                d.lower_larger[r] = res.conf_int(ALPHA, alternative="larger").to_numpy()[:, 0]
                d.upper_smaller[r] = res.conf_int(ALPHA, alternative="smaller").to_numpy()[:, 1]
                for alternative, p_values in d.pvalues.items():
                    p_values[r] = res.test(null=truth, alternative=alternative)["pvalue"].to_numpy()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return MonteCarlo(estimand, spec, truth, draws, reps, wall, cpu)


def full_table(reps: int = REPS) -> pd.DataFrame:
    """Every cell's table, one after the other (what the tests check, for the report)."""
    return pd.concat(
        [replicate(e, d, reps=reps).table() for e in ESTIMANDS for d in DESIGNS], ignore_index=True
    )


if __name__ == "__main__":
    import sys

    pd.set_option("display.width", 250, "display.max_rows", 500, "display.max_columns", 30)
    for estimand in ESTIMANDS:
        for design in DESIGNS:
            mc = replicate(estimand, design)
            print(f"\n== {estimand} / {design} ({DESIGNS[design].description}): {mc.reps} reps, "
                  f"{mc.seconds:.1f} s wall, {mc.cpu_seconds:.1f} s CPU")
            print(mc.table().drop(columns=["estimator", "design"]).round(4).to_string(index=False))
    if len(sys.argv) > 1:
        full_table().to_csv(sys.argv[1], index=False)
