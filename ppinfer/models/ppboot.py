"""Prediction-powered bootstrap: valid inference for any statistic of the data (Zrnic 2024).

A statistic ``T`` (a median difference, a ratio of means, a correlation, a Gini
coefficient) is computed three times: on the labeled rows with the measured
values, ``T_Y``; on the labeled rows with the predictions in their place,
``T_f``; on the unlabeled rows with the predictions, ``T_u``. The estimate is

    theta(lam) = T_Y + lam (T_u - T_f),

and its distribution is approximated by resampling both samples (PSUs within
strata, :meth:`~ppinfer.designs.base.BoundDesign.resample`) and recomputing the
three statistics on every replicate. Lambda minimises the variance of the
replicates, as in PPI++ (:class:`~ppinfer.core.covariance.PPIComponents` with
the bootstrap covariances as its blocks). Replicates run in worker processes
(``n_jobs``), each with its own child of one :class:`numpy.random.SeedSequence`,
so results do not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..core.covariance import LambdaRule, PPIComponents, TUNING
from ..core.in_memory import refuse_streamed, refuse_streamed_design
from ..core.inference import BootstrapInference
from ..core.options import choose
from ..core.results import PPIResults
from ..core.validation import Variable, check_predicted, make_sample
from ..designs.base import Design
from .base import Estimator
from .ppi import bootstrap_replicates

__all__ = ["PPBoot", "ppboot"]

INTERVALS = ("percentile", "basic")
#: design options a bootstrap of a user's statistic can honour: how rows were drawn
RESAMPLING_OPTIONS = ("clusters", "clusters_unlabeled", "strata", "strata_unlabeled")
METHOD_LABELS = {"ppi++": "PPI++ (PPBoot)", "ppi": "PPI (PPBoot)", "classical": "Classical (bootstrap)"}


def _estimate(value, what: str, size: int | None = None) -> tuple[np.ndarray, list[str] | None]:
    """A statistic's value as a 1-D float array (and its names, for a pandas Series)."""
    names = [str(k) for k in value.index] if isinstance(value, pd.Series) else None
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"the statistic must return a number or a 1-D array of numbers; on {what} it returned "
            f"{type(value).__name__}."
        ) from None
    if array.ndim > 1:
        raise ValueError(
            f"the statistic must return a number or a 1-D array; on {what} it returned shape {array.shape}."
        )
    array = array.reshape(-1)
    if size is not None and array.size != size:
        raise ValueError(f"the statistic returned {array.size} value(s) on {what} but {size} on the labeled data.")
    return array, names


def _take(values, rows: np.ndarray):
    """Rows of a data frame (with a fresh index) or an array."""
    if isinstance(values, pd.DataFrame):
        part = values.take(rows)
        part.index = pd.RangeIndex(rows.size)
        return part
    return values[rows]


def _seed_key(seed, n_boot: int):
    """What identifies the replicates drawn with ``seed`` (None when they cannot be drawn again)."""
    if seed is None or isinstance(seed, np.random.Generator):
        return None
    try:
        root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    except (TypeError, ValueError):
        raise TypeError(f"seed must be None, an integer, a SeedSequence or a Generator; got {seed!r}.") from None
    return (n_boot, root.entropy, root.spawn_key, root.n_children_spawned)


def _start_method() -> str:
    return multiprocessing.get_start_method()


class PPBoot(Estimator):
    """Prediction-powered bootstrap of any statistic (PPBoot; Zrnic 2024).

    Parameters
    ----------
    statistic : callable
        ``statistic(data)`` returns a number, a 1-D array or a pandas Series
        (whose index names the results) for a data frame shaped like
        ``labeled`` (or an array shaped like it). Write it with the measured
        variables' names: ppinfer calls it on the labeled data, on the labeled
        data with the predictions in place of the measured variables, and on
        the unlabeled data with the predictions under the measured names.
    labeled : pandas.DataFrame or array-like
        Labeled units: measured values and (for a data frame) their predictions.
    unlabeled : pandas.DataFrame or array-like
        Unlabeled units: the predictions (a data frame: the prediction columns
        named in ``predicted``, and any variables measured on every unit; an
        array: the predictions, shaped like ``yhat``).
    predicted : mapping, optional
        For data frames: each measured variable the statistic uses mapped to its
        prediction column, e.g. ``{"y": "y_llm"}``; the prediction columns must
        be in both data frames. Variables not in the mapping are measured on
        every unit (and must be columns of ``unlabeled`` if the statistic uses them).
    yhat : array-like, optional
        For arrays: the labeled units' predictions, shaped like ``labeled``.
    design : ppinfer.Design, optional
        How the rows were drawn: ``clusters`` (resampled whole) and ``strata``
        (resampled within), as column names of the data frames or arrays. Weights
        are not applied to a user's statistic: put them in a column and compute a
        weighted statistic. fpc and two-phase labeling are not supported.

    Notes
    -----
    With ``T_Y``, ``T_f`` and ``T_u`` the statistic on the labeled data, the
    labeled predictions and the unlabeled predictions (Zrnic 2024, "A note on
    the prediction-powered bootstrap")::

        theta(lam) = T_Y + lam (T_u - T_f)

    Each of ``n_boot`` replicates resamples the labeled and the unlabeled rows
    (PSUs with replacement within strata, each sample on its own) and
    recomputes the three statistics. With ``C = Cov*(T_Y, T_f)`` and ``S =
    Var*(T_f) + Var*(T_u)`` over the replicates, the tuned lambda is
    ``C_kk / S_kk`` per coordinate (clipped to [0, 1]), ``tr C / tr S`` overall,
    or ``C S^-1`` as a matrix: the minimisers of the replicates' variance, as
    in PPI++ (Angelopoulos, Duchi & Zrnic 2023). The interval is the
    ``alpha/2`` and ``1 - alpha/2`` quantiles of ``theta*(lam)`` over the
    replicates (``"percentile"``) or those reflected about the estimate
    (``"basic"``: ``2 theta - q_{1 - alpha/2}``, ``2 theta - q_{alpha/2}``). Valid
    whatever the predictions' quality when the statistic is smooth enough for
    the bootstrap (means, ratios, correlations, regression coefficients,
    quantiles of continuous variables); both samples must come from one
    population (labeling at random within strata).

    Examples
    --------
    >>> import numpy as np, pandas as pd, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> def sample(m):
    ...     x = rng.normal(size=m); y = 0.6 * x + rng.normal(size=m)
    ...     return pd.DataFrame({"x": x, "y": y, "y_pred": y + 0.3 + 0.5 * rng.normal(size=m)})
    >>> labeled, unlabeled = sample(300), sample(3000).drop(columns="y")
    >>> correlation = lambda data: data["x"].corr(data["y"])
    >>> res = ppinfer.ppboot(correlation, labeled, unlabeled, predicted={"y": "y_pred"},
    ...                      n_boot=200, seed=1, progress=False)
    >>> lower, upper = res.conf_int().iloc[0]
    >>> bool(lower < 0.6 / np.sqrt(1.36) < upper)
    True
    """

    _title = "PPBoot"
    METHOD_LABELS = METHOD_LABELS

    def __init__(self, statistic: Callable, labeled: pd.DataFrame | ArrayLike, unlabeled: pd.DataFrame | ArrayLike,
                 *, predicted: Mapping[str, str] | None = None, yhat: ArrayLike | None = None,
                 design: Design | None = None):
        if not callable(statistic):
            raise TypeError(f"statistic must be a function of the data; got {type(statistic).__name__}.")
        self.statistic = statistic
        self._cache: dict = {}
        for value, name in ((labeled, "labeled"), (yhat, "yhat"), (unlabeled, "unlabeled")):
            refuse_streamed(value, name, "ppboot", target="a pandas DataFrame or NumPy array", paths=name != "yhat",
                            what="the unlabeled sample" if name == "unlabeled" else "the labeled sample",
                            memory_maps=False)
        if isinstance(design, Design):
            refuse_streamed_design(design.options, design.names, "ppboot")
        frames = isinstance(labeled, pd.DataFrame)
        if frames:
            self._data = self._frames(labeled, unlabeled, predicted, yhat)
        else:
            self._data = self._arrays(labeled, unlabeled, predicted, yhat)
        self._bind(design, (labeled, unlabeled) if frames else None)
        values = [self._evaluate(data, what) for data, what in
                  zip(self._data, ("the labeled data", "the labeled predictions", "the unlabeled predictions"))]
        size = values[0][0].size
        for (array, _), what in zip(values[1:], ("the labeled predictions", "the unlabeled predictions")):
            if array.size != size:
                raise ValueError(
                    f"the statistic returned {array.size} value(s) on {what} but {size} on the labeled data."
                )
        self._values = np.array([array for array, _ in values])
        if not np.all(np.isfinite(self._values)):
            raise ValueError("the statistic is not finite on the data (labeled, labeled predictions or unlabeled).")
        name = getattr(statistic, "__name__", "statistic")
        name = "statistic" if name == "<lambda>" else name
        self.endog_name = name
        self.param_names = values[0][1] or ([name] if size == 1 else [f"{name}{k + 1}" for k in range(size)])

    def _bind(self, design: Design | None, frames: tuple | None) -> None:
        """Check the design (clusters and strata only), read its columns and bind it to the rows."""
        n, N = len(self._data[0]), len(self._data[2])
        design = Design() if design is None else design
        if not isinstance(design, Design):
            raise TypeError(f"design must be a ppinfer.Design; got {type(design).__name__}.")
        unsupported = [design.names.get(key, key) for key in design.options if key not in RESAMPLING_OPTIONS]
        if unsupported or design.stratum_weights is not None:
            raise ValueError(
                f"ppboot resamples clusters within strata; it cannot apply {unsupported or ['stratum_weights']}. "
                "Weights: put them in a column of the data and compute a weighted statistic. fpc and "
                "two-phase labeling (label_prob) are not supported by the bootstrap of a user's statistic."
            )
        if frames is not None:
            from ..core.formula import resolve_design

            labeled, unlabeled = frames
            design = resolve_design(design, (labeled.reset_index(drop=True), unlabeled.reset_index(drop=True)),
                                    (labeled.index, unlabeled.index), (pd.RangeIndex(n), pd.RangeIndex(N)))
        design_labeled, design_unlabeled = design.variables()
        self.labeled = make_sample({"row": Variable(np.arange(n, dtype=float), ["row"]), **design_labeled},
                                   missing="raise", label="labeled")
        self.unlabeled = make_sample({"row": Variable(np.arange(N, dtype=float), ["row"]), **design_unlabeled},
                                     missing="raise", label="unlabeled")
        self.design = design.bind(self.labeled, self.unlabeled)

    def _evaluate(self, data, what: str):
        try:
            value = self.statistic(data)
        except Exception as error:
            raise ValueError(
                f"the statistic failed on {what}: {error!r}. It is called with the measured variables' names "
                "(their predictions in place on the predicted data); variables measured on every unit must be "
                "in both samples."
            ) from error
        return _estimate(value, what)

    # -- data -----------------------------------------------------------------------------
    @staticmethod
    def _frames(labeled: pd.DataFrame, unlabeled, predicted, yhat) -> tuple:
        if not isinstance(unlabeled, pd.DataFrame):
            raise TypeError(f"unlabeled must be a pandas DataFrame like labeled; got {type(unlabeled).__name__}.")
        if yhat is not None:
            raise ValueError(
                "with data frames, name the predictions with predicted= (a mapping from each measured variable to "
                "its prediction column, e.g. predicted={'y': 'y_llm'}); yhat= is for arrays."
            )
        check_predicted(predicted, labeled, unlabeled, names=("labeled", "unlabeled"))
        measured_frame = labeled.reset_index(drop=True)
        predicted_frame, unlabeled_frame = measured_frame.copy(), unlabeled.reset_index(drop=True).copy()
        for measured, prediction in predicted.items():
            predicted_frame[measured] = measured_frame[prediction]
            unlabeled_frame[measured] = unlabeled_frame[prediction]
        return measured_frame, predicted_frame, unlabeled_frame

    @staticmethod
    def _arrays(labeled, unlabeled, predicted, yhat) -> tuple:
        if predicted is not None:
            raise ValueError("predicted= maps columns of data frames; with arrays, give the predictions as yhat=.")
        if yhat is None:
            raise TypeError("yhat (the labeled units' predictions, shaped like labeled) is required with arrays.")
        arrays = []
        for value, name in ((labeled, "labeled"), (yhat, "yhat"), (unlabeled, "unlabeled")):
            try:
                array = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise TypeError(f"{name} must be numeric array-like (or a DataFrame with predicted=).") from None
            if array.ndim not in (1, 2):
                raise ValueError(f"{name} must be one- or two-dimensional; got shape {array.shape}.")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name} has {int((~np.isfinite(array)).sum())} missing or infinite value(s).")
            arrays.append(array)
        if arrays[1].shape != arrays[0].shape:
            raise ValueError(f"yhat has shape {arrays[1].shape} but labeled has {arrays[0].shape}; give one prediction "
                             "per measured value.")
        if arrays[2].shape[1:] != arrays[0].shape[1:]:
            raise ValueError(f"unlabeled has shape {arrays[2].shape}; its rows must be shaped like labeled's "
                             f"{arrays[0].shape[1:]}.")
        return tuple(arrays)

    # -- fitting ----------------------------------------------------------------------------
    def replicates(self, n_boot: int = 1000, *, n_jobs: int = 1, progress="auto", seed=None) -> np.ndarray:
        """The statistics ``(T_Y, T_f, T_u)`` on ``n_boot`` bootstrap resamples: shape (n_boot, 3, k).

        Replicate ``b`` uses the ``b``-th child of ``SeedSequence(seed)``, so the
        result is the same for every ``n_jobs``. Replicates drawn with a given seed
        are kept, so fits with other lambdas or intervals reuse them.
        """
        if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
            raise ValueError(f"n_boot must be an integer >= 2; got {n_boot!r}.")
        key = _seed_key(seed, int(n_boot))
        if key is not None and key in self._cache:
            return self._cache[key]
        if n_jobs != 1 and _start_method() != "fork":
            try:
                pickle.dumps(self)
            except Exception as error:
                raise TypeError(
                    f"n_jobs > 1 sends the statistic and the data to worker processes, which needs them to be "
                    f"picklable here (start method {_start_method()!r}): {error}. Define the statistic with def "
                    "at the top level of a module, or use n_jobs=1."
                ) from None
        out = bootstrap_replicates(self, None, int(n_boot), seed, n_jobs, progress, description="PPBoot")
        bad = ~np.all(np.isfinite(out), axis=(1, 2))
        if bad.any():
            raise ValueError(
                f"the statistic is not finite on {int(bad.sum())} of {int(n_boot)} bootstrap resamples (for "
                "example, a resample without variation); ppboot needs a value on every resample."
            )
        if key is not None:
            self._cache = {key: out}
        return out

    def _replicate(self, rng: np.random.Generator, task=None) -> np.ndarray:
        """``(T_Y, T_f, T_u)`` on one resample of the design: (3, k)."""
        labeled_rows, unlabeled_rows, _ = self.design.resample(rng)
        measured, predicted, unlabeled = self._data
        samples = (_take(measured, labeled_rows), _take(predicted, labeled_rows), _take(unlabeled, unlabeled_rows))
        size = self._values.shape[1]
        return np.array([_estimate(self.statistic(sample), "a bootstrap replicate", size)[0] for sample in samples])

    def fit(self, *, n_boot: int = 1000, lam=None, ci: str = "percentile", n_jobs: int = 1, progress="auto",
            seed=None) -> PPIResults:
        """Bootstrap the statistic and combine the samples with a tuned (or given) lambda.

        Parameters
        ----------
        n_boot : int
            Bootstrap replicates.
        lam : None, float, array-like, "per-coefficient", "overall" or "matrix"
            None (default) tunes one lambda per coordinate of the statistic;
            ``"overall"`` one for all (minimising the sum of the variances);
            ``"matrix"`` a full k x k matrix; a number (or one per coordinate)
            fixes it: 0 is the classical bootstrap of the labeled data, 1 plain PPI.
        ci : {"percentile", "basic"}
            The bootstrap interval.
        n_jobs : int
            Worker processes (-1: one per CPU). Results do not depend on it.
        progress : {"auto", True, False}
            Progress bar (``"auto"``: on a terminal or in a notebook).
        seed : int, SeedSequence or Generator, optional
            Seed of the resampling.

        Returns
        -------
        PPIResults
            Standard errors are the replicates' standard deviations; tests use
            them with normal quantiles; intervals are the bootstrap's.
        """
        ci = choose(ci, INTERVALS, "ci")
        rule = _rule(lam, self._values.shape[1])
        draws = self.replicates(n_boot, n_jobs=n_jobs, progress=progress, seed=seed)
        t_y, t_f, t_u = draws[:, 0], draws[:, 1], draws[:, 2]
        k = t_y.shape[1]
        joint = np.cov(np.hstack([t_y, t_f, t_u]), rowvar=False).reshape(3 * k, 3 * k)
        y, f, u = slice(0, k), slice(k, 2 * k), slice(2 * k, 3 * k)
        components = PPIComponents(joint[y, y], joint[y, f], joint[f, f], joint[u, u])
        lam_value = rule.lambdas(components)
        estimate_y, estimate_f, estimate_u = self._values
        params = estimate_y + rule.correction(lam_value, estimate_u - estimate_f)
        replicates = t_y + rule.correction(lam_value, t_u - t_f)
        inference = BootstrapInference(params, replicates, kind=ci)
        if rule.tuned:
            method = "ppi++"
        else:
            method = "classical" if np.all(rule.fixed == 0) else "ppi" if np.all(rule.fixed == 1) else "ppi++"
        details = [("Intervals", f"{ci} bootstrap ({int(n_boot)})"), *self.design.describe()]
        return self._record(
            method=method,
            params=params,
            inference=inference,
            lam=self._report_lambda(lam_value, rule),
            classical_bse=np.sqrt(np.diag(joint[y, y])),
            details=details,
            title=f"PPBoot ({self.endog_name})",
        )

    def _report_lambda(self, lam: np.ndarray, rule: LambdaRule):
        index = pd.Index(self.param_names)
        if rule.matrix:
            return pd.DataFrame(lam, index=index.rename("coefficient"), columns=index)
        single = lam.size == 1 or (not rule.per_coefficient and np.all(lam == lam[0]))
        return float(lam[0]) if single else pd.Series(lam, index=index, name="lambda")


def _rule(lam, k: int) -> LambdaRule:
    if isinstance(lam, str) and choose(lam, TUNING, "lam") == "per-stratum":
        raise ValueError("ppboot tunes lambda on the whole statistic; lam='per-stratum' is for the models.")
    return LambdaRule.parse("ppi++", lam, nparams=k, per_coefficient=True, by_stratum=False, has_strata=False)


def ppboot(
    statistic: Callable,
    labeled: pd.DataFrame | ArrayLike,
    unlabeled: pd.DataFrame | ArrayLike,
    *,
    predicted: Mapping[str, str] | None = None,
    yhat: ArrayLike | None = None,
    n_boot: int = 1000,
    lam: float | None = None,
    ci: str = "percentile",
    design: Design | None = None,
    n_jobs: int = 1,
    progress: bool | str = "auto",
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
) -> PPIResults:
    """Prediction-powered bootstrap of any statistic; see :class:`PPBoot` (and its ``fit``).

    Examples
    --------
    A ratio of means, with predictions of the numerator only:

    >>> import numpy as np, pandas as pd, ppinfer
    >>> rng = np.random.default_rng(2)
    >>> def sample(m):
    ...     cost = rng.gamma(2.0, 1.0, m); spend = 3.0 * cost + rng.normal(size=m)
    ...     return pd.DataFrame({"cost": cost, "spend": spend, "spend_llm": 0.8 * spend + rng.normal(size=m)})
    >>> labeled, unlabeled = sample(200), sample(2000).drop(columns="spend")
    >>> ratio = lambda d: d["spend"].mean() / d["cost"].mean()
    >>> res = ppinfer.ppboot(ratio, labeled, unlabeled, predicted={"spend": "spend_llm"}, n_boot=300,
    ...                      seed=0, progress=False)
    >>> bool(res.conf_int().iloc[0, 0] < 3.0 < res.conf_int().iloc[0, 1])
    True
    """
    model = PPBoot(statistic, labeled, unlabeled, predicted=predicted, yhat=yhat, design=design)
    return model.fit(n_boot=n_boot, lam=lam, ci=ci, n_jobs=n_jobs, progress=progress, seed=seed)
