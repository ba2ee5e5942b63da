"""Class proportions of a shifted sample from a classifier's confusion matrix (label shift).

Under label shift the class proportions differ between the labeled and the
unlabeled population but a classifier errs in the same way in both:
``P(yhat | y)`` is shared. The confusion matrix estimated on the labeled sample
then turns the predicted-label frequencies of the unlabeled sample into its class
proportions (Angelopoulos et al. 2023, Science, distribution-shift application;
Lipton, Wang & Smola 2018, black-box shift estimation).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ._options import choose, reject_unknown_keywords
from .core.in_memory import refuse_streamed
from .core.sources import DaskSource, MemorySource, ParquetColumns, ParquetSource, ParquetTable, is_dask, is_dask_frame
from .core.validation import LabelTally, is_chunked
from .core.warnings import PPIWarning
from .results import PPIResults, WaldInference

__all__ = ["LabelShift"]

METHODS = {"ppi": "ppi", "label-shift": "ppi", "label_shift": "ppi", "naive": "naive"}

#: pseudo-count per cell of the frequencies at which multinomial variances are evaluated
PSEUDO_COUNT = 0.5


def multinomial_covariance(counts: np.ndarray) -> np.ndarray:
    """Covariance ``(diag(f) - f f') / m`` of the frequencies of ``counts`` (k,) over ``m`` units,
    evaluated at the smoothed frequencies ``f = (counts + 1/2) / (m + k/2)``."""
    m, k = counts.sum(), counts.size
    smoothed = (counts + PSEUDO_COUNT) / (m + k * PSEUDO_COUNT)
    return (np.diag(smoothed) - np.outer(smoothed, smoothed)) / m


class ProportionInference(WaldInference):
    """Wald intervals for proportions, intersected with [0, 1].

    A proportion lies in [0, 1], so the part of an interval inside [0, 1] covers
    it whenever the interval does. An interval wholly outside [0, 1] (possible
    only when the estimate is) has an empty intersection: it is reported as NaN,
    with a warning, since the data then contradict the model at that level.
    Standard errors and tests are those of the Wald inference.
    """

    def __init__(self, params: np.ndarray, covariance: np.ndarray, names: list[str]):
        super().__init__(params, covariance)
        self.names = names

    def interval(self, alpha, alternative):
        lower, upper = super().interval(alpha, alternative)
        empty = (upper < 0.0) | (lower > 1.0)
        if np.any(empty):
            warnings.warn(
                f"the intervals of {[n for n, e in zip(self.names, empty) if e]} lie wholly outside [0, 1]: the data "
                "contradict the label-shift model (P(yhat | y) the same in both samples) at this level; they are "
                "reported as NaN.",
                PPIWarning,
                stacklevel=3,
            )
        lower, upper = np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)
        return np.where(empty, np.nan, lower), np.where(empty, np.nan, upper)


def _labels(values, argument: str) -> tuple[np.ndarray, str | None]:
    """One-dimensional labels (numbers, strings or any hashable objects), and the pandas name if any."""
    if values is None:
        raise TypeError(f"{argument} is required; got None.")
    name = values.name if isinstance(values, pd.Series) else None
    array = values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{argument} must hold one class label per unit (one-dimensional); got shape {array.shape}.")
    if array.size == 0:
        raise ValueError(f"{argument} is empty.")
    # integer, boolean and fixed-width string arrays cannot hold missing values
    missing = pd.isna(array) if array.dtype.kind in "fcmMO" else np.zeros(0, dtype=bool)
    if missing.any():
        raise ValueError(
            f"{argument} has {int(missing.sum())} missing label(s) (first at position {int(np.argmax(missing))}); "
            "drop those units first."
        )
    return array, None if name is None else str(name)


@dataclass(frozen=True)
class _LabelCounts:
    """Distinct labels of a partition with their counts, and its missing labels (mergeable,
    in row order: ``first`` names the first missing label of the sample)."""

    tally: LabelTally
    missing: int = 0
    first: str | None = None

    def merge(self, other: "_LabelCounts") -> "_LabelCounts":
        return _LabelCounts(self.tally.merge(other.tally), self.missing + other.missing,
                            self.first if self.first is not None else other.first)


@dataclass(frozen=True)
class _CountLabels:
    """A partition's :class:`_LabelCounts` (run on Dask workers too)."""

    argument: str

    def __call__(self, partition) -> _LabelCounts:
        values = partition["labels"]
        if not isinstance(values, np.ndarray):
            values = np.asarray(values, dtype=object)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise ValueError(f"{self.argument} must hold one class label per unit (one column); {partition.describe()} "
                             f"has shape {values.shape}.")
        missing = pd.isna(values) if values.dtype.kind in "fcmMO" else np.zeros(values.shape[0], dtype=bool)
        if missing.any():
            return _LabelCounts(LabelTally.of(values[~missing]), int(missing.sum()),
                                partition.where(int(np.argmax(missing))))
        return _LabelCounts(LabelTally.of(values))


def _streamed_labels(values, argument: str) -> _LabelCounts | None:
    """The labels' counts in one pass over their source, for labels whose rows stay there (Dask,
    Parquet columns, a memory map of non-float64 values); None for labels in memory."""
    if isinstance(values, ParquetTable):
        raise TypeError(f"{argument} is a Parquet table: select its column of labels, e.g. table['yhat'].")
    if not is_chunked(values):
        return None
    if isinstance(values, ParquetColumns):
        if len(values.names) != 1:
            raise ValueError(f"{argument} must hold one class label per unit (one column); got columns {values.names}.")
        source = ParquetSource(values.table.paths, {"labels": list(values.names)})
    elif is_dask(values):
        if is_dask_frame(values) and len(values.columns) != 1:
            raise ValueError(f"{argument} must hold one class label per unit (one column); got columns "
                             f"{list(values.columns)}.")
        if hasattr(values, "chunks") and (values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1)):
            raise ValueError(f"{argument} must hold one class label per unit (one-dimensional); got shape "
                             f"{values.shape}.")
        source = DaskSource({"labels": values})
    else:  # a memory map of non-float64 values
        if values.ndim != 1 and not (values.ndim == 2 and values.shape[1] == 1):
            raise ValueError(f"{argument} must hold one class label per unit (one-dimensional); got shape "
                             f"{values.shape}.")
        source = MemorySource({"labels": values})
    counts = source.reduce(_CountLabels(argument))  # None: a source without partitions (no rows)
    if counts is not None and counts.missing:
        raise ValueError(f"{argument} has {counts.missing} missing label(s) (first at {counts.first}); drop those "
                         "units first.")
    if counts is None or counts.tally.counts.sum() == 0:
        raise ValueError(f"{argument} is empty.")
    return counts


def _class_order(arrays: list[np.ndarray]) -> list:
    """The classes seen, sorted when their labels can be compared, else in order of appearance."""
    seen = pd.unique(np.concatenate([np.asarray(a, dtype=object) for a in arrays]))
    try:
        return sorted(seen)
    except TypeError:
        return list(seen)


class LabelShift:
    """Class proportions of an unlabeled sample under label shift.

    Parameters
    ----------
    y : array-like of class labels, shape (n,)
        True classes of the labeled units (strings, integers, any hashable labels).
    yhat : array-like, shape (n,)
        The classifier's predicted classes for the labeled units.
    yhat_unlabeled : array-like, shape (N,)
        Predicted classes for the unlabeled units, drawn from the shifted population.
        It may be read partition by partition (a Dask array or Series, a column of
        :func:`ppinfer.read_parquet`, a memory map): only the count of each
        predicted class is needed, taken in one pass.
    classes : sequence, optional
        The classes, in the order of the results. Default: every label seen in the
        three arrays, sorted. Every label in the data must be one of them.

    Notes
    -----
    Label shift: ``P(yhat = a | y = b)`` is the same in both populations while the
    class proportions ``P(y = b)`` differ. With ``K[a, b] = P(yhat = a | y = b)`` and
    ``q = K p`` the predicted-label frequencies of the unlabeled population, its
    class proportions are ``p = K^{-1} q`` (Angelopoulos et al. 2023, Science,
    distribution-shift application; Lipton, Wang & Smola 2018). Estimates:
    ``K_hat[:, b]`` the frequencies of the predictions among the ``n_b`` labeled
    units of class ``b``, ``q_hat`` the predicted-label frequencies of the ``N``
    unlabeled units, ``p_hat = K_hat^{-1} q_hat``.

    Variance (delta method). Since ``q = K p``,
    ``p_hat - p ~ K^{-1} (q_hat - q) - K^{-1} (K_hat - K) p``: the unlabeled unit
    ``j`` has influence ``K^{-1} (e(yhat_j) - q)`` and the labeled unit ``i`` of class
    ``b`` has influence ``-(n p_b / n_b) K^{-1} (e(yhat_i) - K[:, b])``, ``e(a)`` the
    indicator vector of class ``a``. The two samples are independent, so

        Cov(p_hat) = K^{-1} [ (diag(q) - q q') / N
                              + sum_b p_b^2 (diag(K_b) - K_b K_b') / n_b ] K^{-T}.

    The first term is the multinomial sampling error of the predicted labels,
    the second that of each column ``K_b`` of the confusion matrix. It is
    estimated with ``K_hat^{-1}`` and ``p_hat``, and with the multinomial
    variances evaluated at frequencies smoothed by half a count per cell,
    ``(counts + 1/2) / (n_b + k/2)`` (the Jeffreys posterior mean): a classifier
    that never confuses two classes in the labeled sample would otherwise get a
    zero variance for a rate it has not measured, and rare-class intervals
    under-covered (0.70 at nominal 0.90 for a class of 2%, with 95% accuracy
    and 50 labels per class; 0.85 smoothed). The point estimate is not
    smoothed. The estimates sum to 1 and the covariance is singular along the
    vector of ones. Intervals are Wald intervals per class intersected with
    [0, 1]. With a poor classifier the plug-in ``p_hat_b^2`` overstates the
    variance at small ``n``: the intervals are then conservative.

    ppi-python's ``ppi_distribution_label_shift_ci`` has the same point estimate
    but a conservative finite-sample interval (binomial and DKW bounds on the
    columns of ``K_hat`` and on ``q_hat``, added); this one is asymptotic and
    narrower (0.2 to 0.3 times as wide with an 85%-accurate classifier).

    An estimate outside [0, 1] (sampling noise when a proportion is near 0 or 1,
    or a sign that the label-shift assumption fails) is reported as it is, so
    the estimates still sum to 1 and stay asymptotically unbiased, with a
    ``PPIWarning``; only the intervals are cut to [0, 1] (NaN, with a warning,
    when an interval lies wholly outside: the data then contradict the model).

    ``method="naive"`` takes the predicted-label frequencies ``q_hat`` as the
    proportions, with multinomial standard errors: biased unless the classifier
    is perfect, shown as the baseline that fails under shift.

    Examples
    --------
    >>> import numpy as np
    >>> from ppinfer.label_shift import LabelShift
    >>> y = np.repeat(["cat", "dog"], [50, 50])
    >>> yhat = np.repeat(["cat", "dog", "cat", "dog"], [40, 10, 5, 45])   # 80% and 90% right
    >>> yhat_unlabeled = np.repeat(["cat", "dog"], [350, 650])
    >>> results = LabelShift(y, yhat, yhat_unlabeled).fit()
    >>> results.params.round(4).tolist()                  # K^-1 q: (0.35 - 0.1) / 0.7, ...
    [0.3571, 0.6429]
    >>> results.conf_int().round(3).loc["cat"].tolist()
    [0.251, 0.463]
    """

    _title = "Label shift (class proportions)"

    def __init__(self, y: ArrayLike, yhat: ArrayLike, yhat_unlabeled: ArrayLike, classes: Sequence | None = None):
        for values, argument in ((y, "y"), (yhat, "yhat")):
            refuse_streamed(values, argument, "LabelShift", target="a NumPy array or pandas Series", memory_maps=False)
        y, name = _labels(y, "y")
        yhat, _ = _labels(yhat, "yhat")
        if y.size != yhat.size:
            raise ValueError(f"y has {y.size} units but yhat has {yhat.size}; give one prediction per labeled unit.")
        # labels read partition by partition: only their counts are needed, from one pass
        streamed = _streamed_labels(yhat_unlabeled, "yhat_unlabeled")
        if streamed is None:
            yhat_unlabeled, _ = _labels(yhat_unlabeled, "yhat_unlabeled")
            unlabeled_labels, unlabeled_counts = yhat_unlabeled, None
        else:
            unlabeled_labels = np.asarray(streamed.tally.uniques, dtype=object)
            unlabeled_counts = streamed.tally.counts.astype(np.int64)
        N = yhat_unlabeled.size if streamed is None else int(unlabeled_counts.sum())
        if N < 2:
            raise ValueError(f"yhat_unlabeled has {N} unit; at least 2 are needed for a variance.")
        if classes is None:
            classes = _class_order([y, yhat, unlabeled_labels])
        else:
            classes = [c.item() if isinstance(c, np.generic) else c for c in classes]
            if len(classes) < 2:
                raise ValueError(f"classes must name at least 2 classes; got {classes}.")
        if len({str(c) for c in classes}) < len(classes):
            raise ValueError(f"classes must name each class once (as text too, since results are indexed by it); got {classes}.")
        if len(classes) < 2:
            raise ValueError(f"the data hold a single class ({classes[0]!r}); there are no proportions to estimate.")
        index = pd.Index(classes)
        codes = {}
        for argument, values in (("y", y), ("yhat", yhat), ("yhat_unlabeled", unlabeled_labels)):
            code = index.get_indexer(values)
            if np.any(code < 0):
                unknown = pd.unique(np.asarray(values[code < 0], dtype=object)).tolist()[:5]
                raise ValueError(f"{argument} has labels {unknown} that are not among classes={classes}; add them.")
            codes[argument] = code
        self.classes = classes
        self.param_names = [str(c) for c in classes]
        self.endog_name = name or "y"
        self.nobs, self.nobs_unlabeled = y.size, N
        k = len(classes)
        # counts[a, b]: labeled units of class b predicted as a
        self._counts = np.bincount(codes["yhat"] * k + codes["y"], minlength=k * k).reshape(k, k)
        if unlabeled_counts is None:
            self._predicted_unlabeled = np.bincount(codes["yhat_unlabeled"], minlength=k)
        else:  # the distinct labels and their counts
            self._predicted_unlabeled = np.bincount(codes["yhat_unlabeled"], weights=unlabeled_counts,
                                                    minlength=k).round().astype(np.int64)
        self._check_identified()
        self._confusion = self._counts / self._counts.sum(axis=0)

    def _check_identified(self) -> None:
        per_class = self._counts.sum(axis=0)
        unseen = [self.classes[b] for b in np.flatnonzero(per_class == 0)]
        if unseen:
            raise ValueError(
                f"class(es) {unseen} have no labeled units (y never takes them), so P(yhat | y) cannot be "
                "estimated for them; label units of those classes, or merge them with another class."
            )
        never_predicted = [self.classes[a] for a in np.flatnonzero(self._counts.sum(axis=1) == 0)]
        if never_predicted:
            raise ValueError(
                f"class(es) {never_predicted} are never predicted in the labeled sample, so the confusion matrix "
                "P(yhat | y) is singular and the proportions are not identified; merge each with the class it "
                "is taken for, or label more units."
            )
        rank = np.linalg.matrix_rank(self._counts / self._counts.sum(axis=0))
        if rank < len(self.classes):
            raise ValueError(
                f"the confusion matrix P(yhat | y) estimated from the labeled sample is singular (rank {rank} "
                f"of {len(self.classes)}): the predictions cannot tell some classes apart, so their proportions "
                "are not identified; merge classes the classifier confuses, or label more units."
            )

    @property
    def confusion_matrix(self) -> pd.DataFrame:
        """Estimated ``P(yhat = row | y = column)`` from the labeled sample; columns sum to 1."""
        names = pd.Index(self.param_names)
        return pd.DataFrame(
            self._confusion,
            index=names.rename("yhat"),
            columns=names.rename("y"),
        )

    def fit(self, *, method: str = "ppi", **unknown) -> PPIResults:
        """Estimate the unlabeled sample's class proportions.

        Parameters
        ----------
        method : {"ppi", "naive"}
            ``"ppi"`` (default, alias ``"label-shift"``): ``K_hat^{-1} q_hat`` with
            the delta-method covariance of the class docstring. ``"naive"``: the
            predicted-label frequencies, invalid under shift, kept as a baseline.

        Returns
        -------
        PPIResults
            Intervals come from ``conf_int(alpha)`` (intersected with [0, 1]),
            the joint covariance from ``cov_params()``.
        """
        if "alpha" in unknown:
            raise TypeError("fit() takes no alpha: give it to the results, conf_int(alpha) or summary(alpha).")
        reject_unknown_keywords("fit", unknown, ("method",))
        method = choose(method, METHODS, "method")
        N = self.nobs_unlabeled
        predicted = self._predicted_unlabeled / N
        multinomial = multinomial_covariance(self._predicted_unlabeled)
        confusion = self._confusion
        details = [("Classes", str(len(self.classes))), ("Fewest labels", str(int(self._counts.sum(axis=0).min())))]
        notes = []
        if method == "naive":
            params, covariance = predicted, multinomial
        else:
            inverse = np.linalg.inv(confusion)
            params = inverse @ predicted
            # sum_b p_b^2 (diag(K_b) - K_b K_b') / n_b
            columns = sum(value**2 * multinomial_covariance(column) for value, column in zip(params, self._counts.T))
            covariance = inverse @ (multinomial + columns) @ inverse.T
            details.append(("Cond. number", f"{np.linalg.cond(confusion):.3g}"))
            outside = [name for name, value in zip(self.param_names, params) if not 0.0 <= value <= 1.0]
            if outside:
                message = (
                    f"the estimated proportions of {outside} lie outside [0, 1]; they are reported unconstrained "
                    "(sampling noise near 0 or 1, or a sign that P(yhat | y) differs between the samples) and "
                    "their intervals are cut to [0, 1]."
                )
                warnings.warn(message, PPIWarning, stacklevel=2)
                notes.append(message)
        names = pd.Index(self.param_names)
        return PPIResults(
            params=pd.Series(params, index=names, name="params"),
            inference=ProportionInference(params, covariance, self.param_names),
            method=method,
            lam=None,
            nobs=self.nobs,
            nobs_unlabeled=N,
            # no labeled units come from the shifted population: no classical estimate to compare with
            classical_bse=np.full(len(names), np.nan),
            title=self._title,
            dep_variable=self.endog_name,
            details=details,
            notes=notes,
        )

    def __repr__(self) -> str:
        return f"LabelShift(classes={self.classes!r}, n={self.nobs}, N={self.nobs_unlabeled})"
