"""Simulated labeled/unlabeled datasets with known truth and controllable predictions.

Used by the demonstration (``ppinfer demo``), the tests and the simulation
studies. Predictions are built from the outcome so that their quality and their
bias are set directly:

    yhat = m + s * [ (1 + bias) * (quality * Z + sqrt(1 - quality^2) * U) + bias ]

with ``Z = (Y - m) / s`` the standardised outcome (``m``, ``s`` its population mean
and standard deviation) and ``U`` independent standard normal noise. ``quality`` is
then the population correlation of ``yhat`` and ``Y``; ``bias`` shifts the
predictions' level by ``bias * s`` and inflates their slope by ``1 + bias``.
For a binary outcome the prediction is clipped to [0, 1], for a count to
[0, inf), as a model's output would be.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from ._options import choose

__all__ = ["ESTIMANDS", "SimulatedData", "predictions", "simulate"]

ESTIMANDS = ("mean", "quantile", "ols", "logit", "poisson")

#: coefficients of (Intercept, x1, x2, ...) in each simulated model
COEFFICIENTS = {
    "mean": np.array([1.0, 1.0, 0.5]),
    "quantile": np.array([1.0, 1.0, 0.5]),
    "ols": np.array([1.0, 1.0, 0.5]),
    "logit": np.array([-0.5, 1.0, 0.5]),
    "poisson": np.array([0.5, 0.4, -0.3]),
}


@dataclass(frozen=True)
class SimulatedData:
    """A simulated prediction-powered dataset.

    Attributes
    ----------
    estimand : str
    labeled : DataFrame
        Columns ``y``, ``Intercept``, ``x1``, ``x2``, ... and ``yhat``.
    unlabeled : DataFrame
        Columns ``Intercept``, ``x1``, ``x2``, ... and ``yhat``.
    truth : pandas.Series
        The population value of each parameter the matching model estimates.
    q : float or list
        Quantile level(s) (quantile estimand only).

    Examples
    --------
    >>> from ppinfer.datasets import simulate
    >>> data = simulate("logit", n=200, N=2000, seed=0)
    >>> data.labeled.columns.tolist(), data.unlabeled.columns.tolist()
    (['y', 'Intercept', 'x1', 'x2', 'yhat'], ['Intercept', 'x1', 'x2', 'yhat'])
    >>> data.truth.to_dict()
    {'Intercept': -0.5, 'x1': 1.0, 'x2': 0.5}
    >>> data.model()          # the matching estimator on these data
    <ppinfer.Logit 'y' (n=200, N=2000): Intercept, x1, x2>
    """

    estimand: str
    labeled: pd.DataFrame
    unlabeled: pd.DataFrame
    truth: pd.Series
    q: object = 0.5

    @property
    def covariates(self) -> list[str]:
        return [c for c in self.labeled.columns if c not in ("y", "yhat")]

    def model(self, **options):
        """The matching ppinfer model on these data (array interface)."""
        from .mean import Mean
        from .quantile import Quantile
        from .regression import OLS, Logit, Poisson

        lab, unl = self.labeled, self.unlabeled
        if self.estimand == "mean":
            return Mean(lab["y"], lab["yhat"], unl["yhat"], **options)
        if self.estimand == "quantile":
            return Quantile(lab["y"], lab["yhat"], unl["yhat"], q=self.q, **options)
        cls = {"ols": OLS, "logit": Logit, "poisson": Poisson}[self.estimand]
        X, Xu = lab[self.covariates], unl[self.covariates]
        return cls(lab["y"], X, lab["yhat"], Xu, unl["yhat"], **options)


def _outcome(estimand: str, eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if estimand == "logit":
        return (rng.random(eta.shape) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    if estimand == "poisson":
        return rng.poisson(np.exp(eta)).astype(float)
    return eta + rng.normal(size=eta.shape)


@functools.lru_cache(maxsize=64)
def _population_moments(estimand: str, beta: tuple[float, ...]) -> tuple[float, float]:
    """Population mean and standard deviation of Y (cached: simulation studies call it often).

    The linear predictor is ``N(b0, |b1|^2)``: closed forms for continuous and
    Poisson outcomes, Gauss-Hermite quadrature for the binary one.
    """
    beta = np.asarray(beta)
    center, spread2 = beta[0], float(np.sum(beta[1:] ** 2))
    if estimand in ("mean", "quantile", "ols"):
        return center, float(np.sqrt(1.0 + spread2))
    if estimand == "poisson":
        first = np.exp(center + spread2 / 2.0)
        second = np.exp(2.0 * center + 2.0 * spread2)
        return float(first), float(np.sqrt(first + second - first**2))
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    probability = float(np.sum(weights * special.expit(center + np.sqrt(spread2) * nodes)) / np.sqrt(2 * np.pi))
    return probability, float(np.sqrt(probability * (1.0 - probability)))


def predictions(
    y: np.ndarray, quality: float, bias: float, rng: np.random.Generator, *, mean: float, sd: float
) -> np.ndarray:
    """Predictions of ``y`` with population correlation ``quality`` and the given bias.

    Parameters
    ----------
    y : ndarray
        Outcomes.
    quality : float in [0, 1]
        Correlation of the predictions with ``y`` (for a ``y`` with mean ``mean``
        and standard deviation ``sd``).
    bias : float
        Level shift, in standard deviations of ``y``, and slope inflation
        ``1 + bias`` (see the module's formula).
    rng : numpy.random.Generator
        Draws the noise.
    mean, sd : float
        The outcome's population mean and standard deviation.

    Returns
    -------
    ndarray, shape of ``y``

    Examples
    --------
    >>> import numpy as np
    >>> from ppinfer.datasets import predictions
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=100_000)
    >>> yhat = predictions(y, 0.8, 0.5, rng, mean=0.0, sd=1.0)
    >>> round(float(np.corrcoef(y, yhat)[0, 1]), 2), round(float(yhat.mean()), 1), round(float(yhat.std()), 1)
    (0.8, 0.5, 1.5)
    """
    z = (y - mean) / sd
    noise = rng.normal(size=y.shape)
    return mean + sd * ((1.0 + bias) * (quality * z + np.sqrt(1.0 - quality**2) * noise) + bias)


def simulate(
    estimand: str,
    n: int = 500,
    N: int = 20_000,
    *,
    quality: float = 0.8,
    bias: float = 0.5,
    n_covariates: int = 2,
    q: float | list[float] = 0.5,
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
) -> SimulatedData:
    """Draw a labeled and an unlabeled sample from one population.

    Parameters
    ----------
    estimand : {"mean", "quantile", "ols", "logit", "poisson"}
        Outcome model: continuous ``Y = x'beta + N(0, 1)`` (mean, quantile, OLS),
        binary with logit link, or Poisson counts with log link; ``x`` standard
        normal.
    n, N : int
        Labeled and unlabeled sample sizes.
    quality : float in [0, 1]
        Correlation of the predictions with the outcome (before clipping).
    bias : float
        Level shift (in outcome standard deviations) and slope inflation.
    n_covariates : int
        Number of covariates ``x1..xk`` (the first two have the coefficients in
        ``COEFFICIENTS``, later ones 0.2).
    q : float or list
        Quantile level(s) whose truth to report (quantile estimand).
    seed : int, SeedSequence or Generator
        Random numbers of the draw.

    Returns
    -------
    SimulatedData

    Examples
    --------
    >>> from ppinfer.datasets import simulate
    >>> data = simulate("mean", n=300, N=3000, quality=0.9, bias=0.5, seed=1)
    >>> len(data.labeled), len(data.unlabeled), data.truth.to_dict()
    (300, 3000, {'y': 1.0})
    >>> res = data.model().fit()
    >>> bool(res.conf_int().loc["y", "lower"] < 1.0 < res.conf_int().loc["y", "upper"])
    True
    """
    estimand = choose(estimand, ESTIMANDS, "estimand")
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"quality must lie in [0, 1]; got {quality!r}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    base = COEFFICIENTS[estimand]
    beta = np.concatenate([base[: n_covariates + 1], np.full(max(n_covariates - 2, 0), 0.2)])
    mean, sd = _population_moments(estimand, tuple(float(b) for b in beta))
    names = ["Intercept"] + [f"x{k + 1}" for k in range(n_covariates)]

    def draw(size: int) -> pd.DataFrame:
        X = np.column_stack([np.ones(size), rng.normal(size=(size, n_covariates))])
        y = _outcome(estimand, X @ beta, rng)
        yhat = predictions(y, quality, bias, rng, mean=mean, sd=sd)
        if estimand == "logit":
            yhat = np.clip(yhat, 0.0, 1.0)
        elif estimand == "poisson":
            yhat = np.maximum(yhat, 0.0)
        frame = pd.DataFrame(X, columns=names)
        frame.insert(0, "y", y)
        frame["yhat"] = yhat
        return frame

    labeled, unlabeled = draw(n), draw(N).drop(columns="y")
    if estimand == "mean":
        truth = pd.Series([mean], index=["y"])
    elif estimand == "quantile":
        levels = np.atleast_1d(q).astype(float)
        truth = pd.Series(mean + sd * stats.norm.ppf(levels), index=[f"q={v:g}" for v in levels])
    else:
        truth = pd.Series(beta, index=names)
    return SimulatedData(estimand, labeled, unlabeled, truth, q)
