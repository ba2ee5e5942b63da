"""Planning a prediction-powered study: labeled sample size, power, and the labeling budget.

The variance of a PPI estimate with ``n`` labeled and ``N`` unlabeled units and a
fixed ``lam`` is (Angelopoulos et al. 2023, Science; Angelopoulos, Duchi & Zrnic 2023, PPI++)::

    V(lam) = (s_y^2 - 2 lam c + lam^2 s_f^2) / n + lam^2 s_fu^2 / N

with ``s_y^2`` the variance of the outcome (of its influence function, for a
regression coefficient), ``s_f^2`` and ``s_fu^2`` those of the predictions on
labeled and unlabeled units and ``c`` their covariance with the outcome. PPI++
uses the minimiser ``lam* = c / (s_f^2 + (n / N) s_fu^2)``, clipped to [0, 1]. With
``s_f = s_fu`` and no clipping, writing ``rho`` for the correlation of outcome and
prediction,

    V* = s_y^2 / n * (1 - rho^2 N / (n + N)) = s_y^2 (1 - rho^2) / n + s_y^2 rho^2 / (n + N):

the labeled units pay only for the part of the outcome's variance that the
predictions cannot explain; the part they can explain is estimated from all
``n + N`` units. Planning needs these four moments, from assumptions
(``rho``, ``sd``) or from a pilot study.

A plan is runnable: each sample is at least as large as the estimator accepts,
and a plan that buys predictions is compared with the classical plan, which
spends everything on labels; the better of the two is returned.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

from .._options import choose
from ..regression import RegressionModel
from ..results import ALTERNATIVES, check_alpha
from ._checks import finite_number

__all__ = ["ppi_power", "ppi_sample_size"]

PLAN_METHODS = ("ppi++", "ppi", "classical")

#: the largest labeled sample size searched
MAX_LABELED = 10**8

#: labeled sample sizes examined at once when a cap on the total rows is searched
_CHUNK = 1 << 20


def _pilot_variances(model, k: int) -> tuple[float, float, float, float]:
    """Variances of the pilot's estimates for parameter ``k``: ``(V_Y, C_Yf, V_f, V_fu)``.

    ``V_Y`` is the variance of the labeled-outcome estimate, ``C_Yf`` its
    covariance with the labeled-prediction estimate, ``V_f`` and ``V_fu`` the
    variances of the labeled- and unlabeled-prediction estimates: the model's
    public :meth:`components` with the plain linearization (a quantile's are
    those of its indicators scaled by the squared density, see
    :meth:`ppinfer.Quantile.components`).
    """
    blocks = model.components("CR0" if model.design.clustered else "HC0")
    return tuple(float(block[k, k]) for block in (blocks.var_y, blocks.cov_yf, blocks.var_f, blocks.var_fu))


@dataclass(frozen=True)
class PredictionMoments:
    """Per-unit second moments of outcome and predictions that set the variance.

    Attributes
    ----------
    var_y : float
        Variance of the outcome (of its influence function for a model parameter).
    cov_yf : float
        Covariance of outcome and prediction (of their influence functions).
    var_f, var_fu : float
        Variance of the predictions on labeled and on unlabeled units.
    min_labeled, min_unlabeled : int
        The smallest labeled and unlabeled samples the planned estimator can be
        fitted to with an estimated variance: 2 and 2 for a mean or a quantile
        (a variance needs two rows), ``p + 1`` and ``p + 1`` for a regression with
        ``p`` coefficients (the full-rank check of both designs).
    """

    var_y: float
    cov_yf: float
    var_f: float
    var_fu: float
    min_labeled: int = 2
    min_unlabeled: int = 2

    @property
    def rho(self) -> float:
        """Correlation of outcome and prediction on the labeled units."""
        return self.cov_yf / math.sqrt(self.var_y * self.var_f) if self.var_f > 0 else 0.0

    @classmethod
    def assumed(cls, rho: float, sd: float = 1.0, sd_prediction: float | None = None) -> "PredictionMoments":
        """Moments from an assumed correlation ``rho`` and standard deviations."""
        rho = finite_number(rho, "rho")
        if not -1.0 <= rho <= 1.0:
            raise ValueError(f"rho is a correlation and must lie in [-1, 1]; got {rho!r}.")
        sd = _positive(sd, "sd")
        sd_prediction = sd if sd_prediction is None else _positive(sd_prediction, "sd_prediction")
        return cls(sd**2, rho * sd * sd_prediction, sd_prediction**2, sd_prediction**2)

    @classmethod
    def from_pilot(cls, pilot, parameter: str | None = None) -> "PredictionMoments":
        """Moments estimated from a pilot study.

        ``pilot`` is ``(y, yhat)`` or ``(y, yhat, yhat_unlabeled)`` (arrays, or a
        dict with these keys) for a mean, or a ppinfer model built on the pilot
        data (``Mean``, ``OLS``, ``Logit``, ``Poisson``, ``Quantile``), whose
        influence functions give the moments of ``parameter``.
        """
        if hasattr(pilot, "fit") and hasattr(pilot, "param_names"):
            return cls._from_model(pilot, parameter)
        if isinstance(pilot, Mapping):
            unknown = set(pilot) - {"y", "yhat", "yhat_unlabeled"}
            if unknown or not {"y", "yhat"} <= set(pilot):
                raise ValueError(f"a pilot dict needs keys 'y', 'yhat' and optionally 'yhat_unlabeled'; got {sorted(pilot)}.")
            arrays = [pilot["y"], pilot["yhat"], pilot.get("yhat_unlabeled")]
        elif isinstance(pilot, Sequence) and len(pilot) in (2, 3):
            arrays = list(pilot) + [None] * (3 - len(pilot))
        else:
            raise TypeError(
                "pilot must be (y, yhat), (y, yhat, yhat_unlabeled), a dict with those keys, or a ppinfer model "
                f"fitted to pilot data; got {type(pilot).__name__}."
            )
        if parameter is not None:
            raise ValueError("parameter applies to a pilot model; a pilot of arrays plans a mean.")
        y, yhat = _vector(arrays[0], "pilot y"), _vector(arrays[1], "pilot yhat")
        if y.shape != yhat.shape:
            raise ValueError(f"pilot y and yhat must have the same length; got {y.size} and {yhat.size}.")
        if y.size < 3:
            raise ValueError(f"the pilot needs at least 3 labeled units; got {y.size}.")
        unlabeled = yhat if arrays[2] is None else _vector(arrays[2], "pilot yhat_unlabeled")
        moments = cls(float(np.var(y)), float(np.mean((y - y.mean()) * (yhat - yhat.mean()))),
                      float(np.var(yhat)), float(np.var(unlabeled)))
        if moments.var_y <= 0:
            raise ValueError("the pilot outcomes y are constant; their variance cannot be planned from.")
        return moments

    @classmethod
    def _from_model(cls, model, parameter: str | None) -> "PredictionMoments":
        names = list(model.param_names)
        if parameter is None:
            if len(names) != 1:
                raise ValueError(f"the pilot model has parameters {names}; say which one to plan with parameter=.")
            parameter = names[0]
        if parameter not in names:
            raise ValueError(f"parameter={parameter!r} is not a parameter of the pilot model; use one of {names}.")
        var_y, cov_yf, var_f, var_fu = _pilot_variances(model, names.index(parameter))
        n, N = model.nobs, model.nobs_unlabeled
        # a regression needs more rows than coefficients in each design
        smallest = len(names) + 1 if isinstance(model, RegressionModel) else 2
        return cls(var_y * n, cov_yf * n, var_f * n, var_fu * N, smallest, smallest)

    def variance(self, n, N, method: str = "ppi++"):
        """Variance of the estimate with ``n`` labeled and ``N`` unlabeled units, and its lambda.

        ``n`` and ``N`` may be arrays (broadcast); ``N`` may be ``inf``. With
        ``N = 0`` PPI++ is the classical estimate and PPI is undefined (inf).
        """
        n = np.asarray(n, dtype=float)
        N = np.asarray(N, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(N > 0, n / N, np.inf)
            per_unlabeled = np.where(N > 0, 1.0 / N, np.inf)
            if method == "classical":
                lam = np.zeros(np.broadcast(n, N).shape)
            elif method == "ppi":
                lam = np.ones(np.broadcast(n, N).shape)
            else:
                denominator = self.var_f + share * self.var_fu
                lam = np.where(denominator > 0, np.clip(self.cov_yf / denominator, 0.0, 1.0), 0.0)
            unlabeled_term = np.where(lam > 0, lam**2 * self.var_fu * per_unlabeled, 0.0)
            variance = (self.var_y - 2.0 * lam * self.cov_yf + lam**2 * self.var_f) / n + unlabeled_term
        return variance, lam


@dataclass(frozen=True)
class PPIDesign:
    """A planned prediction-powered study (what :func:`ppi_sample_size` returns).

    Attributes
    ----------
    n, N : int (N may be inf)
        Labeled and unlabeled units.
    method : str
    lam : float
        The lambda the variance assumes (PPI++: the optimal one).
    se : float
        Standard error of the estimate.
    width : float
        Expected width of the two-sided ``1 - alpha`` interval.
    power : float or None
        Power against ``effect`` (None without an effect).
    effective_n : float
        Labeled units a classical analysis would need for the same precision.
    n_classical : int or None
        Labeled units a classical analysis needs for the same target (target modes).
    cost : float or None
        ``n * cost_label + (n + N) * cost_predict`` when costs are given
        (``n * cost_label`` for a classical plan, which buys no predictions).
    moments : PredictionMoments
    note : str or None
        How the plan compares with the classical plan (labeled units only, no
        predictions bought), and why the classical plan was chosen when it was.
    """

    n: int
    N: float
    method: str
    lam: float
    se: float
    width: float
    power: float | None
    effective_n: float
    n_classical: int | None
    cost: float | None
    alpha: float
    effect: float | None
    moments: PredictionMoments
    note: str | None = None

    def __repr__(self) -> str:
        N = "inf" if math.isinf(self.N) else f"{int(self.N)}"
        parts = [f"n={self.n}", f"N={N}", f"method={self.method!r}", f"lam={self.lam:.3f}", f"se={self.se:.4g}",
                 f"width={self.width:.4g}"]
        if self.power is not None:
            parts.append(f"power={self.power:.3f}")
        parts.append(f"effective_n={self.effective_n:.1f}")
        if self.n_classical is not None:
            parts.append(f"n_classical={self.n_classical}")
        if self.cost is not None:
            parts.append(f"cost={self.cost:.6g}")
        if self.note is not None:
            parts.append(f"note={self.note!r}")
        return f"PPIDesign({', '.join(parts)})"


def _positive(value, argument: str) -> float:
    value = finite_number(value, argument)
    if value <= 0:
        raise ValueError(f"{argument} must be positive; got {value!r}.")
    return value


def _vector(values, argument: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{argument} must be one-dimensional; got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{argument} has NaN or infinite values; clean them first.")
    return array


def _unlabeled(N, argument: str = "N", *, allow_none: bool = False) -> float:
    if N is None:
        if allow_none:
            return math.inf
        raise TypeError(f"{argument} (the number of unlabeled units) is required.")
    value = float(N) if not isinstance(N, bool) else math.nan
    if math.isnan(value) or (math.isfinite(value) and (value != int(value) or value < 0)):
        raise ValueError(f"{argument} must be a non-negative whole number or inf; got {N!r}.")
    return value


def _moments(pilot, rho, sd, sd_prediction, parameter) -> PredictionMoments:
    if pilot is not None and rho is not None:
        raise ValueError("give either a pilot or an assumed rho, not both.")
    if pilot is not None:
        if sd is not None or sd_prediction is not None:
            raise ValueError("sd and sd_prediction are estimated from the pilot; do not give them with it.")
        return PredictionMoments.from_pilot(pilot, parameter)
    if rho is None:
        raise TypeError("give a pilot study (pilot=...) or an assumed correlation of predictions and outcome (rho=...).")
    if parameter is not None:
        raise ValueError("parameter applies to a pilot model only.")
    return PredictionMoments.assumed(rho, 1.0 if sd is None else sd, sd_prediction)


def _power(se, effect: float, alpha: float, alternative: str):
    """Power of the z test of theta = theta0 when theta - theta0 = effect."""
    se = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore"):
        shift = abs(effect) / se
    if alternative == "two-sided":
        z = stats.norm.isf(alpha / 2.0)
        return stats.norm.sf(z - shift) + stats.norm.cdf(-z - shift)
    return stats.norm.sf(stats.norm.isf(alpha) - shift)


def _target_variance(width, power, effect, alpha, alternative) -> float:
    """The largest variance meeting the width or power target."""
    if (width is None) == (power is None):
        raise ValueError("give exactly one target: width= (interval width) or power= (with effect=).")
    if width is not None:
        width = _positive(width, "width")
        return (width / (2.0 * stats.norm.isf(alpha / 2.0))) ** 2
    power = finite_number(power, "power")
    if not alpha < power < 1.0:
        raise ValueError(f"power must lie strictly between alpha ({alpha:g}) and 1; got {power!r}.")
    if effect is None:
        raise TypeError("a power target needs effect= (the difference from the null to detect).")
    if alternative != "two-sided":
        se = abs(effect) / (stats.norm.isf(alpha) + stats.norm.isf(1.0 - power))
    else:
        # power falls from 1 towards alpha as the standard error grows
        se = optimize.brentq(lambda s: _power(s, effect, alpha, alternative) - power,
                             abs(effect) * 1e-9, abs(effect) * 1e6, xtol=abs(effect) * 1e-14, rtol=1e-14)
    return se**2


def _fewest_labeled(moments: PredictionMoments, method: str) -> int:
    """The smallest labeled sample a method can be fitted on: one more for PPI++, whose
    tuned lambda uses up a degree of freedom of the labeled sample."""
    return moments.min_labeled + (1 if method == "ppi++" else 0)


def _smallest_n(moments: PredictionMoments, N, method: str, target: float, n_max: int | None = None) -> int | None:
    """Smallest runnable ``n`` with variance at most ``target`` beside ``N`` unlabeled units.

    Without a cap the variance falls with ``n``: doubling, then bisection. With a
    cap ``n_max`` on ``n + N`` the unlabeled units shrink to ``n_max - n`` as ``n``
    grows and a plan with predictions needs ``moments.min_unlabeled`` of them, so
    the sizes up to ``n_max`` are scanned in vectorised chunks; None when none fits.
    """
    low = _fewest_labeled(moments, method)
    if n_max is not None and method != "classical":
        stop = n_max - moments.min_unlabeled
        for first in range(low, stop + 1, _CHUNK):
            sizes = np.arange(first, min(first + _CHUNK, stop + 1), dtype=float)
            unlabeled = np.minimum(N, n_max - sizes)
            ok = (unlabeled >= moments.min_unlabeled) & (moments.variance(sizes, unlabeled, method)[0] <= target)
            if np.any(ok):
                return int(sizes[np.argmax(ok)])
        return None

    def fits(n):
        return moments.variance(n, N, method)[0] <= target

    if fits(low):
        return low if n_max is None or low <= n_max else None
    high = low
    while not fits(high):
        high *= 2
        if high > MAX_LABELED:
            raise ValueError(
                f"the target needs more than {MAX_LABELED} labeled units with N = {N:g} and method {method!r}; "
                "relax it."
            )
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high if n_max is None or high <= n_max else None


def _design(moments, n, N, method, alpha, effect, *, n_classical=None, costs=None, note=None) -> PPIDesign:
    if method == "classical":
        N = 0  # a classical plan buys no predictions
    variance, lam = moments.variance(n, N, method)
    variance, lam = float(variance), float(lam)
    se = math.sqrt(variance)
    cost = None
    if costs is not None:
        cost = _cost(n, N, method, costs)
    return PPIDesign(
        n=int(n), N=int(N) if math.isfinite(N) else N, method=method, lam=lam, se=se, width=2.0 * stats.norm.isf(alpha / 2.0) * se,
        power=None if effect is None else float(_power(se, effect, alpha, "two-sided")),
        effective_n=moments.var_y / variance, n_classical=n_classical, cost=cost, alpha=alpha, effect=effect,
        moments=moments, note=note,
    )


def _cost(n, N, method: str, costs) -> float:
    """``n cl + (n + N) cp``; a classical plan pays for labels only, and free
    predictions cost nothing even for an unlimited number of units."""
    cost_label, cost_predict = costs
    if method == "classical" or cost_predict == 0:
        return float(n * cost_label)
    return float(n * cost_label + (n + N) * cost_predict)


def _unlabeled_cap(sizes, N_available, n_max):
    """Unlabeled units available beside ``sizes`` labeled ones: at most ``n_max - n``."""
    return N_available if n_max is None else np.minimum(N_available, n_max - np.asarray(sizes, dtype=float))


def _cheapest(moments, N_available, method, target, costs, n_max=None) -> tuple[int, float] | None:
    """Runnable ``(n, N)`` meeting the variance target at the least cost, or None.

    ``N`` lies between ``moments.min_unlabeled`` and the units available (at most
    ``N_available`` and ``n_max - n``)."""
    cost_label, cost_predict = costs
    most = N_available if n_max is None else min(N_available, n_max)
    n_low = _smallest_n(moments, most, method, target)
    # PPI++ needs no more labeled units than a classical analysis; PPI (lambda = 1) may need more
    n_high = _smallest_n(moments, 0, "classical", target) if method != "ppi" else 100 * n_low
    n_high = max(n_high, n_low)
    if n_max is not None:
        n_high = min(n_high, n_max - moments.min_unlabeled)
    if n_high < n_low:
        return None
    if n_high - n_low <= 200_000:
        candidates = np.arange(n_low, n_high + 1, dtype=float)
    else:
        candidates = np.unique(np.round(np.geomspace(n_low, n_high, 200_000)))
    available = np.broadcast_to(_unlabeled_cap(candidates, N_available, n_max), candidates.shape)
    enough = (available >= moments.min_unlabeled) & (moments.variance(candidates, available, method)[0] <= target)
    # for each n, the fewest unlabeled units meeting the target (the variance falls with N)
    low = np.zeros_like(candidates)
    high = np.where(np.isfinite(available), available, 1e15)
    for _ in range(64):
        middle = np.floor((low + high) / 2.0)
        ok = moments.variance(candidates, middle, method)[0] <= target
        high = np.where(ok, middle, high)
        low = np.where(ok, low, middle)
        if np.all(high - low <= 1):
            break
    needed = np.maximum(high, moments.min_unlabeled)
    cost = np.where(enough, candidates * cost_label + (candidates + needed) * cost_predict, np.inf)
    best = int(np.argmin(cost))
    if not enough[best]:
        return None
    return int(candidates[best]), float(needed[best])


def _within_budget(moments, N_available, method, budget, costs, n_max=None) -> tuple[int, float] | None:
    """Runnable ``(n, N)`` with the smallest variance costing at most ``budget``, or None."""
    cost_label, cost_predict = costs
    n_top = int(budget // (cost_label + cost_predict))
    if n_max is not None:
        n_top = min(n_top, n_max - moments.min_unlabeled)
    if n_top < _fewest_labeled(moments, method):
        return None
    candidates = np.arange(_fewest_labeled(moments, method), n_top + 1, dtype=float)
    if cost_predict > 0:
        unlabeled = np.floor((budget - candidates * (cost_label + cost_predict)) / cost_predict + 1e-9)
    else:
        unlabeled = np.full_like(candidates, np.inf)
    unlabeled = np.minimum(unlabeled, _unlabeled_cap(candidates, N_available, n_max))
    runnable = unlabeled >= moments.min_unlabeled
    variance = np.where(runnable, moments.variance(candidates, np.maximum(unlabeled, 0.0), method)[0], np.inf)
    best = int(np.argmin(variance))
    if not runnable[best]:
        return None
    return int(candidates[best]), float(unlabeled[best])


def _budget_plan(moments, N_available, method, budget, costs, n_max, alpha, effect) -> PPIDesign:
    """The better of the best split with predictions and the classical plan within ``budget``."""
    cost_label, cost_predict = costs
    n_classical = int(budget // cost_label)
    if n_max is not None:
        n_classical = min(n_classical, n_max)
    classical = None
    if n_classical >= moments.min_labeled:
        classical = _design(moments, n_classical, 0, "classical", alpha, effect, costs=costs)
    split = None if method == "classical" else _within_budget(moments, N_available, method, budget, costs, n_max)
    if split is None:
        if classical is None:
            raise ValueError(
                f"budget {budget:g} does not pay for {moments.min_labeled} labeled units at {cost_label:g} each"
                + ("" if n_max is None else f" within n_max={n_max}") + "."
            )
        if method == "classical":
            return classical
        return dataclasses.replace(classical, note=(
            f"classical: the budget leaves no {method} split with at least {moments.min_unlabeled} unlabeled units"))
    n, N = split
    chosen = _design(moments, n, N, method, alpha, effect, costs=costs)
    if classical is None:
        return dataclasses.replace(chosen, note=f"no classical plan: the budget pays for fewer than {moments.min_labeled} labels")
    if chosen.se < classical.se:
        return dataclasses.replace(chosen, note=f"beats the classical plan (n={classical.n}, se={classical.se:.4g})")
    return dataclasses.replace(classical, note=(
        f"classical: predictions do not pay for themselves; the best {method} split "
        f"(n={chosen.n}, N={_count(chosen.N)}) has se={chosen.se:.4g}"))


def _cost_plan(moments, N_available, method, target, costs, n_max, n_classical, alpha, effect) -> PPIDesign:
    """The cheaper of the cheapest split with predictions and the classical plan meeting ``target``."""
    design = functools.partial(_design, moments, alpha=alpha, effect=effect, n_classical=n_classical, costs=costs)
    classical = design(n_classical, 0, "classical") if n_max is None or n_classical <= n_max else None
    split = None if method == "classical" else _cheapest(moments, N_available, method, target, costs, n_max)
    if split is None:
        if classical is None:
            raise ValueError(
                f"the target needs more than n_max={n_max} rows (classical: {n_classical} labeled units); "
                "relax it or raise n_max."
            )
        if method == "classical":
            return classical
        return dataclasses.replace(classical, note=(
            f"classical: no {method} split with at least {moments.min_unlabeled} unlabeled units fits n_max"))
    chosen = design(*split, method)
    if classical is None:
        return dataclasses.replace(chosen, note=f"the classical plan ({n_classical} labels) exceeds n_max")
    if chosen.cost < classical.cost:
        return dataclasses.replace(chosen, note=f"beats the classical plan (n={classical.n}, cost={classical.cost:.6g})")
    return dataclasses.replace(classical, note=(
        f"classical: cheaper than the best {method} split (n={chosen.n}, N={_count(chosen.N)}, cost={chosen.cost:.6g})"))


def _fixed_unlabeled_plan(moments, N, method, target, n_max, n_classical, alpha, effect) -> PPIDesign:
    """The smallest labeled sample meeting ``target`` beside ``N`` unlabeled units
    (``n_max - n`` when fewer), or the classical plan when it needs fewer labels."""
    design = functools.partial(_design, moments, alpha=alpha, effect=effect, n_classical=n_classical)
    classical_fits = n_max is None or n_classical <= n_max
    if method == "classical":
        if not classical_fits:
            raise ValueError(f"the target needs {n_classical} labeled units, more than n_max={n_max}; relax it.")
        return design(n_classical, 0, method)
    if N < moments.min_unlabeled:
        raise ValueError(
            f"N={_count(N)} unlabeled units are too few: the estimator needs at least {moments.min_unlabeled}; "
            "give more, or plan with method='classical'."
        )
    n = _smallest_n(moments, N, method, target, n_max)
    if n is None and not classical_fits:
        raise ValueError(
            f"the target cannot be met within n_max={n_max} rows (classical: {n_classical} labeled units); "
            "relax it or raise n_max."
        )
    if n is None or (classical_fits and n_classical < n):
        reason = "no runnable split fits n_max" if n is None else f"it needs fewer labels than {method} (n={n})"
        return dataclasses.replace(design(n_classical, 0, "classical"), note=f"classical: {reason}")
    return design(n, float(_unlabeled_cap(n, N, n_max)), method)


def _count(N) -> str:
    return "inf" if math.isinf(N) else f"{int(N)}"


def _n_max(n_max, moments: PredictionMoments) -> int | None:
    if n_max is None:
        return None
    value = finite_number(n_max, "n_max") if not isinstance(n_max, str) else math.nan
    if not value == int(value):  # NaN fails too
        raise ValueError(f"n_max must be a whole number (the most rows, labeled plus unlabeled); got {n_max!r}.")
    if n_max < moments.min_labeled:
        raise ValueError(f"n_max={n_max} is below the {moments.min_labeled} labeled units the estimator needs.")
    return int(n_max)


def _costs(cost_label, cost_predict):
    if cost_label is None and cost_predict is None:
        return None
    if cost_label is None or cost_predict is None:
        raise TypeError("give both cost_label and cost_predict (costs per labeled unit and per prediction).")
    cost_label = _positive(cost_label, "cost_label")
    cost_predict = finite_number(cost_predict, "cost_predict")
    if cost_predict < 0:
        raise ValueError(f"cost_predict must be non-negative; got {cost_predict!r}.")
    return cost_label, cost_predict


def ppi_sample_size(
    *,
    width: float | None = None,
    power: float | None = None,
    effect: float | None = None,
    N: float | None = None,
    rho: float | None = None,
    sd: float | None = None,
    sd_prediction: float | None = None,
    pilot: tuple | Mapping | Any | None = None,
    parameter: str | None = None,
    method: str = "ppi++",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    cost_label: float | None = None,
    cost_predict: float | None = None,
    budget: float | None = None,
    n_max: int | None = None,
) -> PPIDesign:
    """How many labeled units a prediction-powered study needs, or how to split a budget.

    Three questions, by the arguments given:

    * ``N`` and a target (``width``, or ``power`` with ``effect``): the smallest
      labeled sample size ``n`` meeting the target with ``N`` unlabeled units.
    * costs (``cost_label``, ``cost_predict``) and a target: the split ``(n, N)``
      meeting the target at the least cost, with ``N`` at most the ``N`` given
      (the unlabeled units available; unlimited when None).
    * costs and a ``budget``: the split with the narrowest interval (highest
      power) that the budget pays for.

    Every plan can be fitted: each sample is at least as large as the planned
    estimator accepts (see :class:`PredictionMoments`), and a plan with
    predictions is compared with the classical plan (labeled units only, no
    predictions bought). The classical plan is returned when it needs fewer
    labels, costs less for the target, or is more precise for the budget; the
    plan's ``note`` (shown in its repr) says which won and by how much.

    Parameters
    ----------
    width : float, optional
        Target width of the two-sided ``1 - alpha`` confidence interval.
    power : float, optional
        Target power of the level-``alpha`` z test against ``effect``.
    effect : float, optional
        The difference from the null value to detect (same units as the outcome).
        With a width target or a budget it only adds the power to the result.
    N : int or inf
        Unlabeled units (with costs: the most available).
    rho : float, optional
        Assumed correlation of predictions and outcome (of their influence
        functions for a model parameter).
    sd : float, optional
        Assumed standard deviation of the outcome (default 1: ``width`` and
        ``effect`` are then in outcome standard deviations).
    sd_prediction : float, optional
        Standard deviation of the predictions (default ``sd``). Matters only when
        it makes the optimal lambda exceed 1 (clipped) and for ``method="ppi"``.
    pilot : tuple, dict or ppinfer model, optional
        A pilot study instead of ``rho`` and ``sd``: ``(y, yhat)`` or
        ``(y, yhat, yhat_unlabeled)`` for a mean, or a ppinfer model (Mean, OLS,
        Logit, Poisson, Quantile) built on pilot data, whose influence functions
        give the moments of ``parameter``.
    parameter : str, optional
        The pilot model's parameter to plan for (needed when it has several).
    method : {"ppi++", "ppi", "classical"}
    alpha : float
    alternative : {"two-sided", "larger", "smaller"}
        Alternative of the power target.
    cost_label : float, optional
        Cost of measuring one unit's outcome (on top of its prediction).
    cost_predict : float, optional
        Cost of one prediction (every unit, labeled or not, gets one).
    budget : float, optional
        Total to spend: ``n * cost_label + (n + N) * cost_predict <= budget``
        (``n * cost_label`` for the classical plan).
    n_max : int, optional
        The most rows in the study, labeled plus unlabeled (``n + N <= n_max``),
        e.g. the size of the corpus to be partly labeled. With ``N`` given, fewer
        unlabeled units (``n_max - n``) are used when needed.

    Returns
    -------
    PPIDesign
        ``n``, ``N``, the method, the standard error, expected width, power,
        effective sample size, the labeled units a classical analysis would need,
        the cost, and the comparison with the classical plan (``note``).

    Notes
    -----
    The variance model is in :mod:`ppinfer.power.ppi`. For PPI++ it plans with
    lambda tuned to the parameter (for a regression, ``lam="per-coefficient"``;
    the default overall tuning is at most slightly less precise). For a mean with
    ``sd_prediction = sd`` the optimal split under a budget ``B`` has the closed
    form ``n = B sqrt((1 - rho^2) / cl) / D`` and ``n + N = B sqrt(rho^2 / cp) / D``
    with ``cl, cp`` the two costs and ``D = sqrt(cl (1 - rho^2)) + sqrt(cp rho^2)``,
    and variance ``sd^2 D^2 / B`` (Lagrange multipliers on
    ``sd^2 (1 - rho^2) / n + sd^2 rho^2 / (n + N)``). Normal approximations
    throughout: check a plan with :mod:`ppinfer.simulation`.

    Examples
    --------
    >>> from ppinfer.power import ppi_sample_size
    >>> ppi_sample_size(width=0.2, N=10_000, rho=0.8, sd=1.0).n   # classical: 385
    142

    Label some of a corpus of 3,000 units and predict the rest:

    >>> plan = ppi_sample_size(width=0.2, N=float("inf"), n_max=3_000, rho=0.8)
    >>> plan.n, plan.N
    (151, 2849)

    With weak predictions the budget is better spent on labels alone:

    >>> ppi_sample_size(cost_label=1.0, cost_predict=0.1, budget=651, rho=0.1).method
    'classical'
    """
    alpha = check_alpha(alpha)
    method = choose(method, PLAN_METHODS, "method")
    alternative = choose(alternative, ALTERNATIVES, "alternative")
    moments = _moments(pilot, rho, sd, sd_prediction, parameter)
    if effect is not None:
        effect = finite_number(effect, "effect")
        if effect == 0:
            raise ValueError("effect must be nonzero (no test has power against a zero effect).")
    costs = _costs(cost_label, cost_predict)
    n_max = _n_max(n_max, moments)
    if budget is not None:
        if costs is None:
            raise TypeError("a budget needs cost_label and cost_predict.")
        if width is not None or power is not None:
            raise ValueError("give a budget or a target (width or power), not both: a budget buys the best precision.")
        budget = _positive(budget, "budget")
        return _budget_plan(moments, _unlabeled(N, allow_none=True), method, budget, costs, n_max, alpha, effect)
    target = _target_variance(width, power, effect, alpha, alternative)
    n_classical = _smallest_n(moments, 0, "classical", target)
    if costs is not None:
        N_available = _unlabeled(N, allow_none=True)
        return _cost_plan(moments, N_available, method, target, costs, n_max, n_classical, alpha, effect)
    return _fixed_unlabeled_plan(moments, _unlabeled(N), method, target, n_max, n_classical, alpha, effect)


def ppi_power(
    n: int | ArrayLike,
    *,
    N: float,
    effect: float,
    rho: float | None = None,
    sd: float | None = None,
    sd_prediction: float | None = None,
    pilot: tuple | Mapping | Any | None = None,
    parameter: str | None = None,
    method: str = "ppi++",
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> float | np.ndarray:
    """Power of the level-``alpha`` z test with ``n`` labeled and ``N`` unlabeled units.

    Parameters
    ----------
    n : int or array of int
        Labeled sample size(s).
    N : int or inf
        Unlabeled units.
    effect : float
        True difference from the null value (outcome units; ``sd`` units when
        ``sd`` is not given).
    rho, sd, sd_prediction, pilot, parameter, method, alpha
        As in :func:`ppi_sample_size`.
    alternative : {"two-sided", "larger", "smaller"}
        One-sided alternatives assume the effect lies on their side.

    Returns
    -------
    float or ndarray
        ``Phi(|effect| / se - z) + Phi(-|effect| / se - z)`` two-sided (with
        ``z = z_{1 - alpha/2}``), ``Phi(|effect| / se - z_{1 - alpha})`` one-sided,
        ``se`` from the variance model of :mod:`ppinfer.power.ppi`.

    Examples
    --------
    >>> from ppinfer.power import ppi_power
    >>> round(float(ppi_power(100, N=10_000, effect=0.3, rho=0.0)), 3)  # classical: 1.96 - 3 SE
    0.851
    """
    alpha = check_alpha(alpha)
    method = choose(method, PLAN_METHODS, "method")
    alternative = choose(alternative, ALTERNATIVES, "alternative")
    moments = _moments(pilot, rho, sd, sd_prediction, parameter)
    effect = finite_number(effect, "effect")
    sizes = np.asarray(n, dtype=float)
    smallest = _fewest_labeled(moments, method)
    if np.any(~np.isfinite(sizes)) or np.any(sizes < smallest) or np.any(sizes != np.round(sizes)):
        raise ValueError(f"n must hold whole numbers of at least {smallest} (what the estimator needs); got {n!r}.")
    N = _unlabeled(N)
    if method != "classical" and N < moments.min_unlabeled:
        raise ValueError(
            f"N={_count(N)} unlabeled units are too few: the estimator needs at least {moments.min_unlabeled}; "
            "give more, or use method='classical'."
        )
    variance, _ = moments.variance(sizes, N, method)
    result = _power(np.sqrt(variance), effect, alpha, alternative)
    return float(result) if np.ndim(result) == 0 else result
