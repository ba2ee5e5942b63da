"""Prediction-powered estimation of means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..core.fitting import Fit, ResponseSums, fit_mean
from ..core.sources import Column, reduce_rows
from ..core.validation import as_variable
from ..designs.base import Design, design_from_keywords
from .base import document_design_keywords, with_design_keywords
from .ppi import PPIModel

__all__ = ["Mean", "Total", "Ratio"]


def weights_key(design) -> str | None:
    """The unlabeled sample's key of the weights the user gave (None without weights)."""
    return "weights_unlabeled" if "weights_unlabeled" in design.options else None


@document_design_keywords
class Mean(PPIModel):
    """Mean of an outcome, or of each column of a multi-column outcome.

    Parameters
    ----------
    y : array-like or pandas object, shape (n,) or (n, k)
        Gold-standard outcomes of the labeled units.
    yhat : array-like, same shape as ``y``
        Predictions for the labeled units. With one outcome column, an (n, K)
        array holds K synthetic draws per unit: their row mean is the prediction,
        and the summary reports the variance gained over a single draw.
    yhat_unlabeled : array-like, shape (N,), (N, k) or (N, K)
        Predictions for the unlabeled units.
    design : ppinfer.Design, optional
        The sampling design as one object (weights, clusters, strata, fpc,
        two-phase labeling), or None for two independent simple random samples.
        Give it or the design keywords below, not both.
    missing : {"raise", "drop"}
        What to do with rows holding NaN or infinite values: raise (default) or
        drop them (from every array of their sample together, design columns
        included).
    [design keywords]

    Notes
    -----
    With ``r = n / N`` and 1/n normalised (co)variances (Angelopoulos et al. 2023;
    Angelopoulos, Duchi & Zrnic 2023), for two simple random samples::

        theta(lam) = lam * mean(yhat_unlabeled) + mean(y - lam * yhat)
        Var        = lam^2 s2(yhat_unlabeled) / N + s2(y - lam * yhat) / n
        lam_hat    = cov(y, yhat) / (s2(yhat) + r s2(yhat_unlabeled)), clipped to [0, 1]

    Each column of a multi-column outcome gets its own tuned lambda. Weighted
    designs use weighted (Hajek) means; the variance is the design's
    (:class:`ppinfer.Design`). The default ``cov_type="HC2"`` scales the labeled
    part by ``n / (n - 1)`` (unbiased variances), and ``use_t=True`` refers the
    statistic to t with ``n - 1`` degrees of freedom (``n - 2`` with a tuned lambda;
    Welch-Satterthwaite with the unlabeled part).

    Examples
    --------
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=200); yhat = y + rng.normal(0.5, 0.5, size=200)
    >>> yhat_unlabeled = rng.normal(size=5000) + rng.normal(0.5, 0.5, size=5000)
    >>> res = ppinfer.Mean(y, yhat, yhat_unlabeled).fit()
    >>> bool(res.conf_int().loc["y", "lower"] < 0 < res.conf_int().loc["y", "upper"])
    True
    """

    _title = "Mean"
    _per_coefficient = True
    _df_params = 1

    @with_design_keywords
    def __init__(self, y: ArrayLike, yhat: ArrayLike, yhat_unlabeled: ArrayLike, *, design: Design | None = None,
                 missing: str = "raise", **design_options: Any):
        outcome = as_variable(y, "y", ndim=2, default_name="y")
        design = design_from_keywords(type(self).__name__, design, design_options)
        self._setup(
            {"y": outcome, "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat")},
            {"yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat")},
            missing=missing,
            design=design,
            accumulators={"sums": ResponseSums("yhat_unlabeled", weights_key(design))},
            linear_scores=("yhat_unlabeled", None),
        )
        if self.labeled.nobs < 2:
            raise ValueError(f"y has {self.labeled.nobs} complete row(s); at least 2 are needed for a variance.")
        self.param_names = outcome.names
        self.endog_name = ", ".join(outcome.names)
        self._warn_design()

    def _fit_blocks(self, blocks, *, start=None, what: str = "fit", evaluate_only: bool = False,
                    predicted: bool = False) -> Fit:
        responses = [response if isinstance(response, Column) else np.asarray(response).reshape(response.shape[0], -1)
                     for _, response, _, _ in blocks]
        prepared, collected = [], []
        for sample, response, weights, factory in blocks:
            scanned = self._scanned_scores(sample, response, weights, factory)
            found = self._prepared(sample, response, weights, "sums")
            if scanned is not None:
                prepared.append(scanned.sums())
            elif found is None:
                prepared.append(None)
            else:
                (total, weight), predictions = found
                prepared.append((np.atleast_1d(predictions(total[None, :])[0]), weight))
            collected.append(None if scanned is None else scanned.collector)
        return fit_mean(
            responses,
            weights=[weights for _, _, weights, _ in blocks],
            collectors=[factory for _, _, _, factory in blocks],
            at=start if evaluate_only else None,
            prepared=prepared,
            collected=collected,
        )

    def _design_rows(self, sample: str, predicted: bool = False):
        return None


@document_design_keywords
class Total(Mean):
    """Population total of an outcome (Horvitz-Thompson), or of each column.

    Parameters
    ----------
    y : array-like or pandas object, shape (n,) or (n, k)
        Gold-standard outcomes of the labeled units.
    yhat : array-like, same shape as ``y``
        Predictions for the labeled units (an (n, K) array: K synthetic draws per
        unit, as in :class:`Mean`).
    yhat_unlabeled : array-like, shape (N,), (N, k) or (N, K)
        Predictions for the unlabeled units.
    population_size : float, optional
        The number of units in the population, when the samples have no weights:
        each labeled row then weighs ``population_size / n`` and each unlabeled
        row ``population_size / N`` (two simple random samples). Otherwise the
        weights of each sample must expand it to the population (sampling
        weights: inverse inclusion probabilities).
    design : ppinfer.Design, optional
        The sampling design as one object (weights, clusters, strata, fpc,
        two-phase labeling), or None for two independent simple random samples.
        Give it or the design keywords below, not both.
    missing : {"raise", "drop"}
        What to do with rows holding NaN or infinite values: raise (default) or
        drop them (from every array of their sample together, design columns
        included).
    [design keywords]

    Notes
    -----
    ``T(lam) = sum_lab w y + lam (sum_unl w yhat_unlabeled - sum_lab w yhat)``
    (``w / pi`` on the labeled rows of a two-phase design, whose prediction total
    runs over all units). Each row contributes ``w_i v_i`` (not centred: the
    totals of a Horvitz-Thompson estimator), and the design centres them within
    strata, as R's ``svytotal``. ``HC2``'s leverage of a row is ``w_i / sum w``.

    Examples
    --------
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(1)
    >>> y = rng.normal(10, 2, 200); yhat = y + rng.normal(0, 1, 200)
    >>> yhat_unlabeled = rng.normal(10, 2, 4000) + rng.normal(0, 1, 4000)
    >>> res = ppinfer.Total(y, yhat, yhat_unlabeled, population_size=100_000).fit()
    >>> bool(9e5 < res.params.iloc[0] < 1.1e6)
    True
    """

    _title = "Total"

    @with_design_keywords
    def __init__(self, y: ArrayLike, yhat: ArrayLike, yhat_unlabeled: ArrayLike, *,
                 population_size: float | None = None, design: Design | None = None, missing: str = "raise",
                 **design_options: Any):
        design = design_from_keywords("Total", design, design_options)
        self._population_size = None
        if population_size is not None:
            size = float(population_size)
            if not np.isfinite(size) or size <= 0:
                raise ValueError(f"population_size must be a positive number; got {population_size!r}.")
            if "weights" in design.options or "weights_unlabeled" in design.options:
                raise ValueError("give the samples' weights or population_size, not both.")
            self._population_size = size
        super().__init__(y, yhat, yhat_unlabeled, design=design, missing=missing)
        if self._population_size is None and self.design.labeled.weights is None:
            raise ValueError(
                "a total needs weights that expand each sample to the population (weights= and "
                "weights_unlabeled=, sampling weights) or population_size=."
            )
        self.param_names = [f"total({name})" for name in self.param_names]

    def _expansion(self, weights, rows: int) -> np.ndarray | None:
        if self._population_size is None:
            return weights
        return np.full(rows, self._population_size / rows) if weights is None else weights

    def _fit_blocks(self, blocks, *, start=None, what: str = "fit", evaluate_only: bool = False,
                    predicted: bool = False) -> Fit:
        """Totals ``sum w v`` over the blocks; collectors receive ``w v / W`` with Hessian weights
        ``w / W^2`` and the bread ``W I``, so that contributions are ``w v`` and leverages ``w / W``."""
        totals, weight, parts = None, 0.0, []
        for sample, response, weights, factory in blocks:
            rows = response.shape[0]
            scale = None if self._population_size is None or weights is not None else self._population_size / rows
            scanned = self._scanned_scores(sample, response, weights, factory)
            if scanned is not None:
                scanned = scanned.scaled(1.0 if scale is None else scale)
                part, part_weight = scanned.sums()
            else:
                part, part_weight = reduce_rows(_ExpandedSums(scale), response, weights)
            totals = part if totals is None else totals + part
            weight += part_weight
            parts.append((response, weights, scale, factory, scanned))
        params = totals if not evaluate_only else np.asarray(start, dtype=float)
        collected = []
        for response, weights, scale, factory, scanned in parts:
            collector = None
            if factory is not None and scanned is not None:
                # the scores w v / W (the totals' rows are not centred) with Hessian weights w / W^2
                collector = scanned.collector(np.zeros_like(params), 1.0 / weight)
            elif factory is not None:
                collector = reduce_rows(_TotalScores(scale, weight, factory), response, weights,
                                        *getattr(factory, "columns", ()))
            collected.append(collector)
        k = params.shape[0]
        return Fit(params, np.eye(k) * weight, sum(part[0].shape[0] for part in parts), tuple(collected))

    def _fitted_values(self, fit: Fit, predicted: bool = False) -> np.ndarray:
        weights = self._expansion(self.design.fit_weights("labeled"), self.nobs)
        total = self.nobs if weights is None else weights.sum()
        return fit.params[None, :] / total


@document_design_keywords
class Ratio(Mean):
    """Ratio of two means (or totals), ``R = sum w y / sum w x``, with ``x`` known for every unit.

    Parameters
    ----------
    y : array-like, shape (n,)
        Gold-standard outcomes of the labeled units (the numerator variable).
    x : array-like, shape (n,)
        The denominator variable of the labeled units (observed, not predicted).
    yhat : array-like, shape (n,)
        Predictions of ``y`` for the labeled units.
    x_unlabeled, yhat_unlabeled : array-like, shape (N,)
        The denominator variable and the predictions of the unlabeled units.
    design : ppinfer.Design, optional
        The sampling design as one object (weights, clusters, strata, fpc,
        two-phase labeling), or None for two independent simple random samples.
        Give it or the design keywords below, not both.
    missing : {"raise", "drop"}
        What to do with rows holding NaN or infinite values: raise (default) or
        drop them (from every array of their sample together, design columns
        included).
    [design keywords]

    Notes
    -----
    The estimating function ``w_i (v_i - R x_i)`` gives ``R = sum w v / sum w x``
    with each row contributing ``w_i (v_i - R x_i) / sum w x`` (R's ``svyratio``
    linearization), and PPI combines the three ratio fits:
    ``R(lam) = R(y) + lam (R_unlabeled(yhat) - R(yhat))``. ``HC2``'s leverage of
    a row is ``w_i x_i / sum w x``.

    Examples
    --------
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(2)
    >>> x = rng.uniform(1, 3, 3200); y = 2 * x + rng.normal(0, 1, 3200)
    >>> yhat = y + rng.normal(0.3, 0.5, 3200)
    >>> res = ppinfer.Ratio(y[:200], x[:200], yhat[:200], x[200:], yhat[200:]).fit()
    >>> bool(1.8 < res.params.iloc[0] < 2.2)
    True
    """

    _title = "Ratio"

    @with_design_keywords
    def __init__(self, y: ArrayLike, x: ArrayLike, yhat: ArrayLike, x_unlabeled: ArrayLike,
                 yhat_unlabeled: ArrayLike, *, design: Design | None = None, missing: str = "raise",
                 **design_options: Any):
        outcome = as_variable(y, "y", ndim=1, default_name="y")
        denominator = as_variable(x, "x", ndim=1, default_name="x")
        self._setup(
            {"y": outcome, "x": denominator, "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat")},
            {
                "x_unlabeled": as_variable(x_unlabeled, "x_unlabeled", ndim=1, default_name="x"),
                "yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat"),
            },
            missing=missing,
            design=design_from_keywords("Ratio", design, design_options),
            accumulators={"x_sum": _Sum("x_unlabeled")},
            linear_scores=("yhat_unlabeled", "x_unlabeled"),
        )
        if self.labeled.nobs < 2:
            raise ValueError(f"y has {self.labeled.nobs} complete row(s); at least 2 are needed for a variance.")
        for sample, key in ((self.labeled, "x"), (self.unlabeled, "x_unlabeled")):
            total = sample.summary["x_sum"] if sample.partitioned else sample[key].sum()
            if not np.abs(total) > 0:
                raise ValueError(f"{key} sums to 0: the ratio's denominator must not vanish.")
        self.param_names = [f"{outcome.names[0]}/{denominator.names[0]}"]
        self.endog_name = outcome.names[0]
        self._warn_design()

    def _denominator(self, sample: str):
        return self.labeled["x"] if sample == "labeled" else self.unlabeled.column("x_unlabeled")

    def _fit_blocks(self, blocks, *, start=None, what: str = "fit", evaluate_only: bool = False,
                    predicted: bool = False) -> Fit:
        numerator = denominator = 0.0
        parts = []
        for sample, response, weights, factory in blocks:
            x = self._denominator(sample)
            scanned = self._scanned_scores(sample, response, weights, factory)
            if scanned is not None:
                top, bottom = scanned.sums()
                top = float(top[0])
            else:
                top, bottom = reduce_rows(_RatioSums(), response, x, weights)
            numerator += top
            denominator += bottom
            parts.append((response, x, weights, factory, scanned))
        if denominator == 0:
            raise ValueError(f"{what}: the weighted denominator sums to 0.")
        ratio = numerator / denominator if not evaluate_only else float(np.asarray(start).ravel()[0])
        collected = []
        for response, x, weights, factory, scanned in parts:
            collector = None
            if factory is not None and scanned is not None:
                collector = scanned.collector(np.array([ratio]))
            elif factory is not None:
                collector = reduce_rows(_RatioScores(ratio, factory), response, x, weights,
                                        *getattr(factory, "columns", ()))
            collected.append(collector)
        return Fit(np.array([ratio]), np.array([[1.0 / denominator]]), sum(p[0].shape[0] for p in parts),
                   tuple(collected))

    def _fitted_values(self, fit: Fit, predicted: bool = False) -> np.ndarray:
        return (fit.params[0] * self.labeled["x"])[:, None]


# -- row functions of the totals and ratios (partition by partition for a partitioned sample) -----------
@dataclass(frozen=True)
class _Sum:
    key: str

    def __call__(self, arrays) -> float:
        return float(arrays[self.key].sum())


def _as_matrix(values: np.ndarray) -> np.ndarray:
    return values.reshape(values.shape[0], -1)


@dataclass(frozen=True)
class _ExpandedSums:
    """``sum w v`` and ``sum w`` with the expansion weights (``scale`` per row without weights)."""

    scale: float | None

    def __call__(self, values, weights):
        values = _as_matrix(values)
        if weights is None:
            scale = 1.0 if self.scale is None else self.scale
            return scale * values.sum(axis=0), scale * values.shape[0]
        return weights @ values, float(weights.sum())


@dataclass(frozen=True)
class _TotalScores:
    """Collector input of a total: ``w v / W`` with Hessian weights ``w / W^2``."""

    scale: float | None
    weight: float
    factory: object

    def __call__(self, values, weights, *columns):
        values = _as_matrix(values)
        if weights is None:
            weights = np.full(values.shape[0], 1.0 if self.scale is None else self.scale)
        collector = self.factory(*columns)
        collector.add(slice(0, values.shape[0]), values * (weights / self.weight)[:, None], None,
                      weights / self.weight**2)
        return collector


@dataclass(frozen=True)
class _RatioSums:
    def __call__(self, values, x, weights):
        v = values.reshape(values.shape[0])
        if weights is None:
            return float(v.sum()), float(x.sum())
        return float(weights @ v), float(weights @ x)


@dataclass(frozen=True)
class _RatioScores:
    ratio: float
    factory: object

    def __call__(self, values, x, weights, *columns):
        v = values.reshape(values.shape[0])
        w = np.ones(v.shape[0]) if weights is None else weights
        collector = self.factory(*columns)
        collector.add(slice(0, v.shape[0]), (w * (v - self.ratio * x))[:, None], None, w * x)
        return collector
