"""The sampling design of the labeled and unlabeled samples, as one object.

A :class:`Design` says how the rows were sampled: weights, primary sampling
units (PSUs, or clusters), strata, finite population corrections, and, for a
two-phase design, the probabilities with which units of the first-phase
sample were chosen for labeling. Every estimator binds it to its validated
rows (a :class:`BoundDesign`), which then owns everything the design decides:
the weights of each fit, the reduction of a large sample's scores to sums by
stratum and PSU, the variance by linearization, the degrees of freedom, the
bootstrap resample and the summary lines.

Two sampling schemes are recognised.

* **Independent samples** (no ``label_prob``): the labeled and the unlabeled
  rows are two samples of one population, each with its own weights, PSUs,
  strata and finite population correction. A PSU label present in both
  samples is one PSU (a school with pupils in both samples): its labeled and
  unlabeled contributions are added before squaring.
* **Two phases** (``label_prob`` given): all labeled and unlabeled rows form the
  first-phase sample, with its design (weights, PSUs, strata, fpc); unit ``i``
  of it was then labeled with known probability ``pi_i`` (a hand-coded
  subsample), as in R's ``survey::twophase``.

Variance by linearization (Binder 1983; Lumley 2010, "Complex Surveys"). With
``z_i`` a row's contribution to ``theta_hat - theta`` (its weighted influence
row divided by the total weight) and ``Z_hj`` the total of PSU ``j`` of
stratum ``h``::

    V = sum_h (1 - f_h) c_h sum_j (Z_hj - mean_j Z_hj) (Z_hj - mean_j Z_hj)'

``f_h`` is the sampling fraction of the stratum (finite population correction)
and ``c_h`` the small-sample factor of ``cov_type``: 1 for ``"HC0"``, ``"HC2"``,
``"HC3"``, ``"CR0"``, ``"CR2"`` (whose corrections act on the contributions
themselves), ``n_h / (n_h - 1)`` for ``"CR1"`` (``n_h`` PSUs in the stratum, as
R's survey package and statsmodels' cluster default without its
``(n - 1) / (n - p)`` term), ``n / (n - p)`` for ``"HC1"``. Independent samples
are combined by adding their variances, each with its own factors. In a
two-phase design the first-phase PSU totals are those of
``z_i = w_i [lam psi^f_i + (R_i / pi_i)(psi^Y_i - lam psi^f_i)] / W``; their
variation includes the labeling (second-phase) variance, so no separate term is
needed unless a finite population correction or labeling strata ask for one
(then the second-phase part ``sum_i (1 - pi_i) r_i r_i'`` of the rectifier rows
``r_i`` is taken out of the corrected first-phase part and added back, centred
within labeling strata if any).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..core.options import reject_unknown_keywords
from ..core.sources import Column
from ..core.validation import (
    ChunkedInput, Sample, Variable, as_cluster_labels, as_variable, check_range, recode_clusters,
)
from ..core.warnings import FewClustersWarning, PPIWarning

__all__ = ["Design", "BoundDesign", "DesignWarning", "design_from_keywords"]


class DesignWarning(PPIWarning):
    """A sampling design was accepted with an assumption the user should check.

    A :class:`~ppinfer.PPIWarning`, so filtering that filters this one too.

    Examples
    --------
    >>> import warnings
    >>> from ppinfer import PPIWarning
    >>> from ppinfer.designs import DesignWarning
    >>> issubclass(DesignWarning, PPIWarning)
    True
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", DesignWarning)   # make design assumptions fatal
    ...     warnings.warn("an assumption", DesignWarning)
    Traceback (most recent call last):
    ...
    ppinfer.designs.base.DesignWarning: an assumption
    """


#: the options of a design, labeled argument -> unlabeled counterpart (None: labeled rows only)
PAIRED_OPTIONS = {
    "weights": "weights_unlabeled",
    "clusters": "clusters_unlabeled",
    "strata": "strata_unlabeled",
    "fpc": "fpc_unlabeled",
    "label_prob": None,
    "label_strata": None,
}
#: options that are not per-row columns
SCALAR_OPTIONS = ("stratum_weights", "nest", "lambda_by_stratum")
#: the estimators' shorthand keywords, with the older names of clusters
KEYWORD_ALIASES = {"groups": "clusters", "groups_unlabeled": "clusters_unlabeled"}
ROW_OPTIONS = tuple(k for pair in PAIRED_OPTIONS.items() for k in pair if k)
KEYWORDS = ROW_OPTIONS + ("groups", "groups_unlabeled", "stratum_weights", "nest")

LABELED, UNLABELED = "labeled", "unlabeled"


class Design:
    """How the labeled and unlabeled rows were sampled.

    Every option is a column name (formula interface: looked up in ``data`` and
    ``unlabeled``) or an array with one value per row of its sample. A column
    name given for a labeled option is read from both data frames; the
    ``*_unlabeled`` options give the unlabeled sample's values when they differ.

    Parameters
    ----------
    weights, weights_unlabeled : str or array-like, optional
        Sampling weights (inverse inclusion probabilities, or any positive
        weights). Weights must be given for both samples or for neither: a
        sample weighted on one side only estimates another population.
    clusters, clusters_unlabeled : str or array-like, optional
        Primary sampling units (cluster labels of any hashable type). A label
        present in both samples is one PSU. Given for one sample only, the
        other sample's units are their own PSUs.
    strata, strata_unlabeled : str or array-like, optional
        Sampling strata (of PSUs). Contributions are centred within strata. A
        stratum needs two PSUs in each sample that has units in it (merge
        strata otherwise). Without weights, the labeled rows are weighted so
        that each stratum counts with its share of the unlabeled sample (or
        ``stratum_weights``): stratified PPI, where strata are labeled at
        different rates (Fisch et al. 2024).
    fpc, fpc_unlabeled : str or array-like, optional
        Finite population correction of each stratum, constant within a
        stratum: its population size (number of PSUs, or of units without
        clusters), or a sampling fraction in [0, 1], as in R's ``svydesign``.
    label_prob : str or array-like, optional
        Two-phase design: every labeled and unlabeled row is in the first-phase
        sample (with the design above) and labeled unit ``i`` was chosen for
        labeling with known probability ``label_prob[i]`` in (0, 1].
    label_strata : str or array-like, optional
        Two-phase design: strata within which the labeled units were drawn by
        simple random sampling (the second-phase variance is centred within
        them). Labeled rows only.
    stratum_weights : mapping, optional
        Population share of each stratum; sets the weights of a stratified
        design (instead of ``weights``).
    nest : bool
        PSU labels are unique only within strata (as R's ``nest=TRUE``).
    lambda_by_stratum : bool
        Tune one lambda per stratum by default (stratified PPI). The estimators'
        ``strata=`` shorthand sets it; ``fit(lam="per-stratum")`` asks for it
        on any design with strata.

    Notes
    -----
    See :mod:`ppinfer.designs.base` for the variance formula. With no option
    given, the design is that of two independent simple random samples, and
    every number equals the i.i.d. one.

    Examples
    --------
    >>> import ppinfer
    >>> design = ppinfer.Design(weights="w", clusters="school", strata="region")
    >>> design
    Design(weights='w', clusters='school', strata='region')
    """

    def __init__(
        self,
        *,
        weights: ArrayLike | str | None = None,
        weights_unlabeled: ArrayLike | str | None = None,
        clusters: ArrayLike | str | None = None,
        clusters_unlabeled: ArrayLike | str | None = None,
        strata: ArrayLike | str | None = None,
        strata_unlabeled: ArrayLike | str | None = None,
        fpc: ArrayLike | str | None = None,
        fpc_unlabeled: ArrayLike | str | None = None,
        label_prob: ArrayLike | str | None = None,
        label_strata: ArrayLike | str | None = None,
        stratum_weights: Mapping[Any, float] | pd.Series | None = None,
        nest: bool = False,
        lambda_by_stratum: bool = False,
    ):
        self.options = {
            key: value
            for key, value in dict(
                weights=weights, weights_unlabeled=weights_unlabeled, clusters=clusters,
                clusters_unlabeled=clusters_unlabeled, strata=strata, strata_unlabeled=strata_unlabeled,
                fpc=fpc, fpc_unlabeled=fpc_unlabeled, label_prob=label_prob, label_strata=label_strata,
            ).items()
            if value is not None
        }
        self.stratum_weights = stratum_weights
        #: the argument name the user gave each option (``groups`` for ``clusters``), for messages
        self.names = {key: key for key in ROW_OPTIONS}
        self.nest = bool(nest)
        self.lambda_by_stratum = bool(lambda_by_stratum)
        if stratum_weights is not None and strata is None and strata_unlabeled is None:
            raise ValueError("stratum_weights needs strata (and strata_unlabeled): the share of each stratum.")
        if stratum_weights is not None and (weights is not None or weights_unlabeled is not None):
            raise ValueError(
                "stratum_weights sets the weights of a stratified design; do not pass weights with it."
            )

    @property
    def two_phase(self) -> bool:
        return "label_prob" in self.options

    def __repr__(self) -> str:
        def show(value):
            if isinstance(value, str):
                return repr(value)
            return f"<{type(value).__name__} of {len(value)}>" if hasattr(value, "__len__") else repr(value)

        parts = [f"{key}={show(value)}" for key, value in self.options.items()]
        if self.stratum_weights is not None:
            parts.append("stratum_weights=...")
        if self.nest:
            parts.append("nest=True")
        if self.lambda_by_stratum:
            parts.append("lambda_by_stratum=True")
        return f"Design({', '.join(parts)})"

    def with_options(self, options: dict) -> "Design":
        """The same design with its row options replaced (the formula interface
        turns column names into arrays)."""
        design = Design(**options, stratum_weights=self.stratum_weights, nest=self.nest,
                        lambda_by_stratum=self.lambda_by_stratum)
        design.names.update(self.names)
        return design

    # -- binding to validated rows -------------------------------------------------------
    def variables(self) -> tuple[dict[str, Variable], dict[str, Variable]]:
        """The design's row variables of each sample, for validation with the data.

        Labels (clusters, strata, label strata) are coded in one space shared by
        both samples; missing labels become NaN so that ``missing="drop"`` drops
        their rows with the data's.
        """
        options, names = self.options, self.names
        for key, value in options.items():
            if isinstance(value, str):
                raise TypeError(
                    f"{names[key]}={value!r} is a column name; column names need the formula interface "
                    "(e.g. ppinfer.ols(formula, data=..., unlabeled=..., design=...)); pass an array here."
                )
        self._check_sides()
        labeled: dict[str, Variable] = {}
        unlabeled: dict[str, Variable] = {}
        for key in ("weights", "fpc"):
            other = PAIRED_OPTIONS[key]
            if key in options:
                labeled[key] = as_variable(options[key], names[key], ndim=1, default_name=key)
            if other in options:
                unlabeled[other] = as_variable(options[other], names[other], ndim=1, default_name=key)
        if "label_prob" in options:
            labeled["label_prob"] = as_variable(options["label_prob"], "label_prob", ndim=1, default_name="label_prob")
        for key in ("clusters", "strata"):
            other = PAIRED_OPTIONS[key]
            if key in options or other in options:
                left, right, _ = as_cluster_labels(options.get(key), options.get(other),
                                                   names.get(key, key), names.get(other, other))
                if left is not None:
                    labeled[names.get(key, key)] = left
                if right is not None:
                    unlabeled[names.get(other, other)] = right
        if "label_strata" in options:
            left, _, _ = as_cluster_labels(options["label_strata"], None, "label_strata", "label_strata_unlabeled")
            labeled["label_strata"] = left
        return labeled, unlabeled

    def _check_sides(self) -> None:
        options, names = self.options, self.names
        two_phase = self.two_phase
        for key, other in (("weights", "weights_unlabeled"), ("strata", "strata_unlabeled")):
            if (key in options) != (other in options):
                given, missing = (key, other) if key in options else (other, key)
                given, missing = names[given], names[missing]
                what = "the weights of the other sample (use ones for an unweighted sample)" if key == "weights" \
                    else "every unit's stratum"
                raise ValueError(
                    f"{given} is given but {missing} is not: give {what}. A design option given for one "
                    "sample only would silently treat the two samples differently."
                )
        if two_phase:
            for key, other in (("clusters", "clusters_unlabeled"), ("fpc", "fpc_unlabeled")):
                if (key in options) != (other in options):
                    given, missing = (key, other) if key in options else (other, key)
                    given, missing = names[given], names[missing]
                    raise ValueError(
                        f"with label_prob (a two-phase design) the first-phase {key} describe every unit: "
                        f"{given} is given but {missing} is not."
                    )

    def scan_plan(self, unlabeled: dict[str, Variable]) -> tuple[list, dict]:
        """Checks and sums the scan of an unlabeled sample read partition by partition needs:
        non-negative weights and their sum and range; the distinct (stratum, PSU) label
        pairs; the range of the fpc in each stratum. (A sample in memory needs none.)"""
        if not any(isinstance(v.values, ChunkedInput) for v in unlabeled.values()):
            return [], {}
        weights, strata, psu = self.unlabeled_keys(unlabeled)
        fpc = "fpc_unlabeled" if "fpc_unlabeled" in unlabeled else None
        checks, sums = [], {}
        if weights:
            checks.append((weights, _NonNegative(weights)))
            sums["design:weights"] = WeightStats(weights)
        if psu:
            sums["design:pairs"] = LabelPairs(strata, psu)
        if fpc:
            sums["design:fpc"] = GroupRange(fpc, strata)
        return checks, sums

    def unlabeled_keys(self, unlabeled: dict[str, Variable]) -> tuple[str | None, str | None, str | None]:
        """The unlabeled sample's keys of the weights, strata and PSU labels (None: not given)."""
        psu = self.names.get("clusters_unlabeled", "clusters_unlabeled")
        return ("weights_unlabeled" if "weights_unlabeled" in unlabeled else None,
                "strata_unlabeled" if "strata_unlabeled" in unlabeled else None,
                psu if psu in unlabeled else None)

    def score_moments(self, unlabeled: dict[str, Variable], response: str, denominator: str | None = None) -> dict:
        """The scan accumulator of a linear fit's score moments (see :mod:`ppinfer.designs.moments`)
        for an unlabeled sample read partition by partition (``{}`` for a sample in memory)."""
        if not any(isinstance(v.values, ChunkedInput) for v in unlabeled.values()):
            return {}
        weights, strata, psu = self.unlabeled_keys(unlabeled)
        from .moments import ScoreMoments  # moments.py builds on this module's sums

        return {"design:scores": ScoreMoments(response, denominator, weights, strata, psu)}

    def bind(self, labeled: Sample, unlabeled: Sample, *, what: str = "the model") -> "BoundDesign":
        """Validate the design against the samples' rows (after missing rows were dropped)."""
        return BoundDesign.build(self, labeled, unlabeled)


def design_from_keywords(function: str, design: "Design | None", keywords: dict) -> "Design":
    """The design of an estimator call: ``design=`` or the shorthand keywords, not both.

    ``groups`` / ``groups_unlabeled`` are the older names of ``clusters`` /
    ``clusters_unlabeled``. The ``strata`` shorthand asks for one lambda per
    stratum by default (stratified PPI, as before designs were objects).

    Parameters
    ----------
    function : str
        The estimator's name, for messages.
    design : Design or None
        The ``design=`` argument.
    keywords : dict
        The design keywords passed (None values are ignored).

    Returns
    -------
    Design

    Raises
    ------
    TypeError
        An unknown keyword (the message suggests near misses) or a ``design``
        that is not a :class:`Design`.
    ValueError
        Both ``design`` and keywords, or an option under both of its names.

    Examples
    --------
    >>> from ppinfer.designs import design_from_keywords
    >>> design_from_keywords("Mean", None, {"strata": "region", "weights": None})
    Design(strata='region', lambda_by_stratum=True)
    >>> design_from_keywords("Mean", None, {"wieghts": [1.0, 2.0]})
    Traceback (most recent call last):
    ...
    TypeError: Mean() got an unexpected keyword argument 'wieghts'. Did you mean 'weights'? ...
    """
    given = {key: value for key, value in keywords.items() if value is not None}
    unknown = {key: value for key, value in given.items() if key not in KEYWORDS}
    reject_unknown_keywords(function, unknown, KEYWORDS + ("design",))
    if design is not None:
        if not isinstance(design, Design):
            raise TypeError(f"design must be a ppinfer.Design; got {type(design).__name__}.")
        if given:
            raise ValueError(
                f"pass the design either as design= or as keywords, not both (got design= and {sorted(given)})."
            )
        return design
    options = {KEYWORD_ALIASES.get(key, key): value for key, value in given.items()}
    for alias, name in KEYWORD_ALIASES.items():
        if alias in given and name in keywords and keywords[name] is not None:
            raise ValueError(f"{alias} and {name} are the same option; pass one of them.")
    strata_given = "strata" in options or "strata_unlabeled" in options
    design = Design(**options, lambda_by_stratum=strata_given)
    if any(key in given for key in KEYWORD_ALIASES):
        design.names.update({name: alias for alias, name in KEYWORD_ALIASES.items()})
    return design


@dataclass(frozen=True)
class ScannedDesign:
    """What the scan of a sample read partition by partition found about its design (coded)."""

    stratum_counts: np.ndarray  # rows per stratum code
    psu_pairs: tuple | None  # (psu codes, stratum codes) of the distinct PSUs, or None
    weight_total: float | None = None
    weight_range: tuple | None = None


@dataclass(frozen=True)
class SampleDesign:
    """One sample's design, aligned with its validated rows.

    ``psu`` and ``strata`` are integer codes in spaces shared by both samples
    (None: each row its own PSU; one stratum). ``fraction`` is the sampling
    fraction of each stratum code in this sample (0 without fpc). For a sample
    read partition by partition, ``weights``, ``psu`` and ``strata`` are
    :class:`~ppinfer.core.sources.Column` handles and ``scanned`` holds the
    counts the design needs; the methods below answer from either.
    """

    nrows: int
    weights: np.ndarray | None
    psu: np.ndarray | None
    strata: np.ndarray | None
    fraction: np.ndarray
    scanned: ScannedDesign | None = None

    def stratum_codes(self) -> np.ndarray:
        return np.zeros(self.nrows, dtype=np.intp) if self.strata is None else self.strata

    def stratum_counts(self, nstrata: int) -> np.ndarray:
        """Rows per stratum code."""
        if self.scanned is not None:
            return self.scanned.stratum_counts
        if self.strata is None:
            return np.array([float(self.nrows)])
        return np.bincount(self.strata, minlength=nstrata).astype(float)

    def unit_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """PSU and stratum codes of the sample's distinct PSUs."""
        if self.scanned is not None:
            return self.scanned.psu_pairs
        return self._distinct_pairs

    @cached_property
    def _distinct_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct (PSU, stratum) pairs of a sample in memory, found once (a sort of its rows)."""
        psu, strata = self.psu.astype(np.int64), self.stratum_codes().astype(np.int64)
        width = int(strata.max()) + 1 if strata.size else 1
        distinct = np.unique(psu * width + strata)
        return (distinct // width).astype(np.intp), (distinct % width).astype(np.intp)

    def present_psu(self, npsu: int) -> np.ndarray:
        """Which PSU codes have rows in this sample."""
        present = np.zeros(npsu, dtype=bool)
        present[self.unit_pairs()[0]] = True
        return present

    def units_per_stratum(self, nstrata: int) -> np.ndarray:
        """PSUs (rows without clusters) per stratum code."""
        if self.psu is None:
            return self.stratum_counts(nstrata)
        psu, strata = self.unit_pairs()
        unique = np.unique(psu * nstrata + strata)
        return np.bincount(unique % nstrata, minlength=nstrata).astype(float)

    def weight_total(self) -> float:
        if self.weights is None:
            return float(self.nrows)
        return self.scanned.weight_total if self.scanned is not None else float(self.weights.sum())

    def weight_range(self) -> tuple[float, float]:
        if self.scanned is not None:
            return self.scanned.weight_range
        return float(self.weights.min()), float(self.weights.max())

    def take(self, rows: np.ndarray, psu: np.ndarray | None) -> "SampleDesign":
        return SampleDesign(
            rows.size,
            None if self.weights is None else self.weights[rows],
            psu,
            None if self.strata is None else self.strata[rows],
            self.fraction,
        )


# -- what the scan of a partitioned sample collects for its design --------------------------------------
@dataclass(frozen=True)
class _NonNegative:
    key: str

    def __call__(self, values: np.ndarray) -> None:
        check_range(values, self.key, low=0.0, high=np.inf, what="non-negative")


class _Stats:
    def __init__(self, total: float, low: float, high: float):
        self.total, self.low, self.high = total, low, high

    def merge(self, other: "_Stats") -> "_Stats":
        return _Stats(self.total + other.total, min(self.low, other.low), max(self.high, other.high))


@dataclass(frozen=True)
class WeightStats:
    """Sum, minimum and maximum of a weights column."""

    key: str

    def __call__(self, arrays) -> _Stats:
        w = arrays[self.key]
        return _Stats(float(w.sum()), float(w.min()), float(w.max())) if w.size else None


class _Pairs:
    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def merge(self, other: "_Pairs") -> "_Pairs":
        return _Pairs(pd.concat([self.frame, other.frame], ignore_index=True).drop_duplicates(ignore_index=True))


@dataclass(frozen=True)
class LabelPairs:
    """The distinct (stratum label, PSU label) pairs of a sample (stratum None: PSU labels)."""

    strata: str | None
    psu: str

    def __call__(self, arrays) -> _Pairs:
        frame = pd.DataFrame({"psu": arrays[self.psu],
                              "stratum": arrays[self.strata] if self.strata else np.zeros(len(arrays[self.psu]))})
        return _Pairs(frame.drop_duplicates(ignore_index=True))


class _Ranges:
    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def merge(self, other: "_Ranges") -> "_Ranges":
        both = pd.concat([self.frame, other.frame])
        return _Ranges(both.groupby(level=0, sort=False).agg({"low": "min", "high": "max"}))


@dataclass(frozen=True)
class GroupRange:
    """Minimum and maximum of a column within each stratum label (one group without strata)."""

    key: str
    strata: str | None

    def __call__(self, arrays) -> _Ranges:
        values = arrays[self.key]
        groups = arrays[self.strata] if self.strata else np.zeros(values.shape[0])
        frame = pd.DataFrame({"low": values, "high": values, "group": groups})
        return _Ranges(frame.groupby("group", sort=False).agg({"low": "min", "high": "max"}))


@dataclass(frozen=True)
class SortedCodes:
    """Codes to their positions in the sorted array of present codes (a compact code space)."""

    present: np.ndarray

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.present, np.asarray(codes, dtype=np.intp))


@dataclass(frozen=True)
class NestedCodes:
    """``stratum * width + psu``: PSU labels unique within strata only (``nest=True``)."""

    width: int

    def __call__(self, psu: np.ndarray, strata: np.ndarray) -> np.ndarray:
        return np.asarray(strata, dtype=np.intp) * self.width + np.asarray(psu, dtype=np.intp)


@dataclass(frozen=True)
class ByCode:
    """A value per code, looked up for each row."""

    table: np.ndarray

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return self.table[codes]


@dataclass
class Contributions:
    """One sample's contributions to an estimate (columns: one or more fits' parameters).

    Exactly one of: ``rows`` (m, q) unit-level contributions of an unclustered
    sample; ``psu`` (npsu, q) PSU totals in the shared PSU code space;
    ``moments`` = (S1 (H, q), S2 (H, q, q), counts (H,)) of an unclustered
    sample's rows reduced by stratum.

    ``centred``: the rows (or PSU totals) were centred within strata before a
    leverage adjustment (HC2, HC3, CR2) scaled them; the sample's own variance
    then takes their outer products as they are (centring the scaled rows again
    would take ``n zbar zbar'`` out of an unbiased variance).
    """

    rows: np.ndarray | None = None
    psu: np.ndarray | None = None
    moments: tuple | None = None
    centred: bool = False

    @property
    def width(self) -> int:
        if self.rows is not None:
            return self.rows.shape[1]
        if self.psu is not None:
            return self.psu.shape[1]
        return self.moments[0].shape[1]


class DesignCollector:
    """Reduces a sample's scores to what the design's variance needs, chunk by chunk.

    Clustered sample: score totals of each PSU and, for the CR2 adjustment, each
    PSU's Hessian (sum of ``c_i x_i x_i'``, or of the rows' Hessians when they
    come as (m, p, p)). Unclustered: per stratum the count, the sum and the sum
    of outer products of the scores.
    """

    def __init__(self, psu, strata, npsu: int, nstrata: int):
        self.psu, self.strata, self.npsu, self.nstrata = psu, strata, npsu, nstrata
        self.totals = self.jacobians = None
        self.s1 = self.s2 = self.counts = None

    def merge(self, other: "DesignCollector") -> "DesignCollector":
        """The sums of both collectors' rows (partitions of one sample)."""
        merged = DesignCollector(None, None, self.npsu, self.nstrata)
        for name in ("totals", "jacobians", "s1", "s2", "counts"):
            a, b = getattr(self, name), getattr(other, name)
            setattr(merged, name, b if a is None else a if b is None else a + b)
        return merged

    def _start_stratum_sums(self, q: int) -> None:
        """Zero sums of ``q`` scores per stratum, before the first chunk of an unclustered sample."""
        if self.s1 is None:
            self.s1 = np.zeros((self.nstrata, q))
            self.s2 = np.zeros((self.nstrata, q, q))
            self.counts = np.zeros(self.nstrata)

    def add_with_ones(self, rows, block, X, curvature):
        """:meth:`add` of the scores ``block[:-1].T``, given above a row of ones: without
        clusters or strata, one symmetric product of the block holds the sum of the scores'
        outer products, their sum and the count (faster than the products of the scores alone)."""
        if self.psu is not None or self.strata is not None:
            self.add(rows, block[:-1].T, X, curvature)
            return
        q = block.shape[0] - 1
        self._start_stratum_sums(q)
        products = block @ block.T
        self.s2[0] += products[:q, :q]
        self.s1[0] += products[:q, q]
        self.counts[0] += products[q, q]

    def add(self, rows, scores, X, curvature):
        q = scores.shape[1]
        if self.psu is not None:
            codes = self.psu[rows]
            if self.totals is None:
                self.totals = np.zeros((self.npsu, q))
                mean = X is None and curvature.ndim == 1
                self.jacobians = np.zeros((self.npsu,)) if mean else np.zeros((self.npsu, q, q))
            self.totals += group_sums(scores, codes, self.npsu)
            if X is None and curvature.ndim == 3:
                self.jacobians += group_sums(curvature.reshape(len(curvature), -1), codes, self.npsu).reshape(-1, q, q)
            elif X is None:
                self.jacobians += np.bincount(codes, weights=curvature, minlength=self.npsu)
            else:
                self.jacobians += group_outer(X * curvature[:, None], X, codes, self.npsu)
            return
        self._start_stratum_sums(q)
        if self.strata is None:
            self.s1[0] += np.ones(scores.shape[0]) @ scores  # a product: faster than a column sum
            self.s2[0] += scores.T @ scores
            self.counts[0] += scores.shape[0]
        else:
            codes = self.strata[rows]
            self.s1 += group_sums(scores, codes, self.nstrata)
            self.s2 += group_outer(scores, scores, codes, self.nstrata)
            self.counts += np.bincount(codes, minlength=self.nstrata)


class DesignCollectorFactory:
    """Makes the :class:`DesignCollector` of a sample's rows; ``columns`` are the PSU and
    stratum codes it reads (arrays, or Column handles read partition by partition)."""

    def __init__(self, psu, strata, npsu: int, nstrata: int):
        self.psu, self.strata, self.npsu, self.nstrata = psu, strata, npsu, nstrata
        self.columns = tuple(c for c in (psu, strata) if c is not None)

    def __call__(self, *codes) -> DesignCollector:
        values = iter(codes)
        psu = next(values) if self.psu is not None else None
        strata = next(values) if self.strata is not None else None
        return DesignCollector(psu, strata, self.npsu, self.nstrata)

    def __getstate__(self):
        # the codes reach the collector as arguments: the columns' samples need not travel
        return {**self.__dict__, "psu": self.psu is not None or None, "strata": self.strata is not None or None,
                "columns": ()}


def group_sums(rows: np.ndarray, codes: np.ndarray, ngroups: int) -> np.ndarray:
    """(ngroups, q) sums of ``rows`` (m, q) within integer codes (one group: the column sums)."""
    if ngroups == 1:
        return rows.sum(axis=0)[None]
    return np.stack([np.bincount(codes, weights=rows[:, k], minlength=ngroups) for k in range(rows.shape[1])],
                    axis=1) if rows.shape[1] else np.zeros((ngroups, 0))


def group_outer(a: np.ndarray, b: np.ndarray, codes: np.ndarray, ngroups: int) -> np.ndarray:
    """(ngroups, p, q) sums of ``a_i b_i'`` within integer codes (rows sorted once)."""
    out = np.zeros((ngroups, a.shape[1], b.shape[1]))
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1], True])
    if bounds.size - 1 > 64:
        # many groups: one vectorised reduction of the row outer products
        products = np.einsum("ij,ik->ijk", a[order], b[order])
        out[sorted_codes[bounds[:-1]]] = np.add.reduceat(products, bounds[:-1], axis=0)
        return out
    a, b = a[order], b[order]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        out[sorted_codes[start]] = a[start:stop].T @ b[start:stop]
    return out


def _value_ranges(values: np.ndarray, strata: np.ndarray, nstrata: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest value within each stratum code (NaN for strata without rows)."""
    low, high = np.full(nstrata, np.inf), np.full(nstrata, -np.inf)
    np.minimum.at(low, strata, values)
    np.maximum.at(high, strata, values)
    empty = ~np.isfinite(low)
    low[empty], high[empty] = np.nan, np.nan
    return low, high


def _fraction(low: np.ndarray, high: np.ndarray, units: np.ndarray, argument: str) -> np.ndarray:
    """Sampling fraction per stratum code from an fpc column's range within each stratum
    (population size or fraction) and the number of sampled units there."""
    fraction = np.zeros(low.shape[0])
    for h in np.flatnonzero(~np.isnan(low)):
        if low[h] != high[h]:
            raise ValueError(
                f"{argument} must be constant within each stratum; stratum {h} has values from {low[h]:g} to {high[h]:g}."
            )
        value, count = float(low[h]), units[h]
        if value < 0:
            raise ValueError(f"{argument} must be a population size (> 1) or a sampling fraction in [0, 1]; got {value}.")
        if value <= 1.0:
            fraction[h] = value
        else:
            if value < count:
                raise ValueError(
                    f"{argument} gives a population of {value:g} sampling units for a stratum with {count:g} "
                    "sampled units: the population size cannot be below the sample size."
                )
            fraction[h] = count / value
    return fraction


@dataclass
class BoundDesign:
    """A :class:`Design` validated against a model's rows.

    Built by :meth:`Design.bind` when a model is created (the model's ``design``
    attribute): the options as integer codes aligned with the validated rows,
    the numbers of PSUs and strata, and the stratum shares.

    Examples
    --------
    Forty schools (PSUs) in two regions (strata):

    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=120); yhat = y + rng.normal(size=120)
    >>> school = np.repeat(np.arange(40), 3); school_unlabeled = rng.integers(0, 40, 1000)
    >>> model = ppinfer.Mean(y, yhat, rng.normal(size=1000),
    ...                      clusters=school, clusters_unlabeled=school_unlabeled,
    ...                      strata=school % 2, strata_unlabeled=school_unlabeled % 2)
    >>> design = model.design
    >>> design.npsu, design.nstrata, design.stratum_names, design.two_phase
    (40, 2, ['0', '1'], False)
    """

    labeled: SampleDesign
    unlabeled: SampleDesign
    two_phase: bool
    label_prob: np.ndarray | None
    label_strata: np.ndarray | None
    npsu: int
    psu_strata: np.ndarray  # (npsu,) stratum code of each PSU
    nstrata: int
    stratum_names: list[str]
    lambda_by_stratum: bool
    stratum_shares: pd.Series | None = None
    weights_derived: bool = False
    has_strata: bool = False
    has_fpc: bool = False
    spec: Design | None = field(default=None, repr=False)
    #: the rows grouped by resampling unit (computed on the first bootstrap resample)
    _resampling: tuple | None = field(default=None, repr=False)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def build(cls, spec: Design, labeled: Sample, unlabeled: Sample) -> "BoundDesign":
        n, N = labeled.nobs, unlabeled.nobs
        two_phase = spec.two_phase

        def get(sample: Sample, key: str):
            return sample[key] if key in sample else None

        weights = get(labeled, "weights"), get(unlabeled, "weights_unlabeled")
        for values, key, sample in zip(weights, ("weights", "weights_unlabeled"), (labeled, unlabeled)):
            if isinstance(values, Column):
                stats = sample.summary["design:weights"]  # negative weights were raised on by the scan
                if not stats.total > 0:
                    raise ValueError(f"{key} must have a positive sum.")
            elif values is not None:
                if np.any(values < 0):
                    raise ValueError(f"{key} must be non-negative; found {int((values < 0).sum())} negative value(s).")
                if not values.sum() > 0:
                    raise ValueError(f"{key} must have a positive sum.")
        label_prob = get(labeled, "label_prob")
        if label_prob is not None and (np.any(label_prob <= 0) or np.any(label_prob > 1)):
            raise ValueError("label_prob must lie in (0, 1]: each labeled unit's probability of being labeled.")
        scanned = unlabeled.partitioned

        # strata: shared codes; names for the summary and lambdas
        strata_l, strata_u = get(labeled, "strata"), get(unlabeled, "strata_unlabeled")
        has_strata = strata_l is not None
        stratum_names = ["all"]
        counts_u = np.array([float(N)])
        if has_strata and scanned:
            tally, labels = unlabeled.labels["strata_unlabeled"]
            raw_l = strata_l.astype(np.intp)
            seen_u = labels.get_indexer(tally.uniques)
            present = np.unique(np.concatenate([raw_l, seen_u]))
            codes_l, nstrata = np.searchsorted(present, raw_l), present.size
            codes_u = strata_u.map(SortedCodes(present), strata_u.shape)
            stratum_names = [str(labels[k]) for k in present]
            counts_u = np.zeros(nstrata)
            counts_u[np.searchsorted(present, seen_u)] = tally.counts
        elif has_strata:
            (codes_l, codes_u), nstrata, original = recode_clusters(strata_l.astype(np.intp), strata_u.astype(np.intp))
            labels = spec_labels(spec, "strata", "strata_unlabeled")
            stratum_names = [str(labels[k]) for k in original] if labels is not None else [str(k) for k in original]
        else:
            codes_l = codes_u = None
            nstrata = 1

        # PSUs: shared codes, nested in strata
        names = spec.names
        key_u = names.get("clusters_unlabeled", "clusters_unlabeled")
        psu_l = get(labeled, names.get("clusters", "clusters"))
        psu_u = get(unlabeled, key_u)
        pairs_u = None
        if psu_l is not None or psu_u is not None:
            raw_l = None if psu_l is None else psu_l.astype(np.intp)
            if isinstance(psu_u, Column):
                # the unlabeled PSUs are known by their distinct (stratum, PSU) pairs from the scan
                frame = unlabeled.summary["design:pairs"].frame
                pair_psu = unlabeled.labels[key_u][1].get_indexer(frame["psu"].to_numpy())
                pair_strata = np.zeros(len(frame), dtype=np.intp)
                if has_strata:
                    pair_strata = np.searchsorted(present, labels.get_indexer(frame["stratum"].to_numpy()))
                raw_u = pair_psu
            else:
                raw_u = None if psu_u is None else psu_u.astype(np.intp)
            width = 0
            if spec.nest and has_strata:
                # a PSU label is unique within its stratum only: key on (stratum, label)
                width = int(max(c.max() for c in (raw_l, raw_u) if c is not None)) + 1
                raw_l = None if raw_l is None else codes_l * width + raw_l
                raw_u = None if raw_u is None else (pair_strata if scanned else codes_u) * width + raw_u
            (pl, pu), npsu, _ = recode_clusters(raw_l, raw_u)
            if isinstance(psu_u, Column):
                codes = np.unique(np.concatenate([c for c in (raw_l, raw_u) if c is not None]))
                column = psu_u.combine(codes_u, NestedCodes(width), psu_u.shape) if width else psu_u
                pairs_u = (pu, pair_strata)
                pu = column.map(SortedCodes(codes), psu_u.shape)
        else:
            pl = pu = None
            npsu = 0
        psu_strata = np.zeros(npsu, dtype=np.intp)
        if npsu and has_strata:
            seen = np.full(npsu, -1, dtype=np.intp)
            for codes, strata in ((pl, codes_l), pairs_u if pairs_u is not None else (pu, codes_u)):
                if codes is None:
                    continue
                for_psu = np.full(npsu, -1, dtype=np.intp)
                for_psu[codes] = strata
                # a PSU in two strata: its rows disagree
                clash = np.zeros(npsu, dtype=bool)
                np.logical_or.at(clash, codes, for_psu[codes] != strata)
                clash |= (seen >= 0) & (for_psu >= 0) & (seen != for_psu)
                if clash.any():
                    raise ValueError(
                        "clusters must be nested in strata: some cluster label occurs in more than one stratum. "
                        "If cluster labels are reused across strata, pass nest=True."
                    )
                seen = np.where(for_psu >= 0, for_psu, seen)
            psu_strata = np.maximum(seen, 0)

        labeled_design = SampleDesign(n, weights[0], pl, codes_l, np.zeros(nstrata))
        summary = None
        if scanned:
            stats = unlabeled.summary.get("design:weights")
            summary = ScannedDesign(counts_u, pairs_u, None if stats is None else stats.total,
                                    None if stats is None else (stats.low, stats.high))
        unlabeled_design = SampleDesign(N, weights[1], pu, codes_u, np.zeros(nstrata), summary)

        bound = cls(
            labeled=labeled_design,
            unlabeled=unlabeled_design,
            two_phase=two_phase,
            label_prob=label_prob,
            label_strata=None if get(labeled, "label_strata") is None else
            recode_clusters(get(labeled, "label_strata").astype(np.intp))[0][0],
            npsu=npsu,
            psu_strata=psu_strata,
            nstrata=nstrata,
            stratum_names=stratum_names,
            lambda_by_stratum=spec.lambda_by_stratum and has_strata,
            has_strata=has_strata,
            spec=spec,
        )
        fpc_u = get(unlabeled, "fpc_unlabeled")
        bound._set_fpc(get(labeled, "fpc"), unlabeled.summary["design:fpc"] if isinstance(fpc_u, Column) else fpc_u)
        if has_strata and weights[0] is None and not two_phase:
            bound._derive_stratum_weights(spec.stratum_weights)
        bound._check_strata()
        return bound

    def _set_fpc(self, fpc_l, fpc_u) -> None:
        """Sampling fractions from the fpc columns (``fpc_u``: an array, or for a scanned
        sample the range of its values within each stratum label)."""
        if fpc_l is None and fpc_u is None:
            return
        self.has_fpc = True
        if self.two_phase:
            ranges = [_value_ranges(values, design.stratum_codes(), self.nstrata) if not isinstance(values, _Ranges)
                      else self._coded_ranges(values) for values, design in ((fpc_l, self.labeled),
                                                                             (fpc_u, self.unlabeled))]
            low = np.fmin(ranges[0][0], ranges[1][0])
            high = np.fmax(ranges[0][1], ranges[1][1])
            fraction = _fraction(low, high, self.psu_counts("all"), "fpc")
            self.labeled = replace(self.labeled, fraction=fraction)
            self.unlabeled = replace(self.unlabeled, fraction=fraction)
            return
        for sample, values, key in ((LABELED, fpc_l, "fpc"), (UNLABELED, fpc_u, "fpc_unlabeled")):
            if values is None:
                continue
            design = self.sample(sample)
            low, high = self._coded_ranges(values) if isinstance(values, _Ranges) else \
                _value_ranges(values, design.stratum_codes(), self.nstrata)
            fraction = _fraction(low, high, design.units_per_stratum(self.nstrata), key)
            setattr(self, sample, replace(design, fraction=fraction))

    def _coded_ranges(self, ranges: "_Ranges") -> tuple[np.ndarray, np.ndarray]:
        """Per stratum code the range of a scanned column (collected by stratum label)."""
        low, high = np.full(self.nstrata, np.nan), np.full(self.nstrata, np.nan)
        frame = ranges.frame
        if self.has_strata:
            # coded as the scanned rows' labels are (a label's text may differ from its stratum's name: 0.0, 0)
            strata = self.unlabeled.strata
            codes = np.asarray(strata.of({strata.key: frame.index.to_numpy()}), dtype=np.intp)
        else:
            codes = [0] * len(frame)
        low[codes], high[codes] = frame["low"].to_numpy(dtype=float), frame["high"].to_numpy(dtype=float)
        return low, high

    def _units(self, rows: np.ndarray, both: bool) -> np.ndarray:
        """PSU of each row of both samples stacked (rows without PSUs: their own code)."""
        n = self.labeled.nrows
        codes = []
        for design, offset in ((self.labeled, 0), (self.unlabeled, n)):
            if design.psu is None:
                codes.append(self.npsu + offset + np.arange(design.nrows))
            else:
                codes.append(design.psu)
        return np.concatenate(codes)[rows]

    def _derive_stratum_weights(self, stratum_weights) -> None:
        """Stratified PPI: each stratum counts with its population share; units within a
        stratum with equal weights (the labeled sample reweighted to the population)."""
        counts = self.labeled.stratum_counts(self.nstrata)
        counts_u = self.unlabeled.stratum_counts(self.nstrata)
        names = self.stratum_names
        thin = [names[k] for k in range(self.nstrata) if counts[k] < 2 or counts_u[k] < 1]
        if thin:
            raise ValueError(f"strata {thin} need at least 2 labeled and 1 unlabeled unit each.")
        if stratum_weights is None:
            shares = counts_u / counts_u.sum()
        else:
            given = stratum_weights if isinstance(stratum_weights, pd.Series) else pd.Series(stratum_weights, dtype=float)
            given.index = given.index.map(str)
            missing = [name for name in names if name not in given.index]
            unknown = [str(name) for name in given.index if name not in set(names)]
            if missing or unknown:
                raise ValueError(
                    f"stratum_weights must give a weight to each stratum of the data and to no other: "
                    f"missing {missing}, strata without units {unknown}."
                )
            shares = given.reindex(names).to_numpy(dtype=float)
            if not np.all(np.isfinite(shares)) or np.any(shares < 0) or not shares.sum() > 0:
                raise ValueError("stratum_weights must be finite, non-negative and have a positive sum.")
            shares = shares / shares.sum()
        self.stratum_shares = pd.Series(shares, index=names, name="stratum_weight")
        n, N = self.labeled.nrows, self.unlabeled.nrows
        self.labeled = replace(self.labeled, weights=(shares / counts * n)[self.labeled.strata])
        per_unit = shares / np.maximum(counts_u, 1.0) * N
        strata_u = self.unlabeled.strata
        if isinstance(strata_u, Column):
            scanned = replace(self.unlabeled.scanned, weight_total=float(per_unit @ counts_u),
                              weight_range=(float(per_unit[counts_u > 0].min()), float(per_unit[counts_u > 0].max())))
            self.unlabeled = replace(self.unlabeled, weights=strata_u.map(ByCode(per_unit), strata_u.shape),
                                     scanned=scanned)
        else:
            self.unlabeled = replace(self.unlabeled, weights=per_unit[strata_u])
        self.weights_derived = True

    def _check_strata(self) -> None:
        """Every stratum with units in a sample needs two PSUs there (unless sampled whole)."""
        if not (self.has_strata or self.clustered):
            return  # two simple random samples: the models check their sizes
        names = self.spec.names if self.spec is not None else {}
        for sample in self._variance_samples():
            counts = self.psu_counts(sample)
            fraction = self._fraction(sample)
            lonely = [self.stratum_names[h] for h in range(self.nstrata) if counts[h] == 1 and fraction[h] < 1]
            if lonely:
                what = "PSU (cluster)" if self._clustered(sample) else "unit"
                where = "first-phase" if sample == "all" else sample
                if self.has_strata:
                    raise ValueError(
                        f"strata: stratum(s) {lonely} have a single {what} in the {where} sample, so their "
                        "variance cannot be estimated; merge each with a similar stratum."
                    )
                key = "clusters_unlabeled" if sample == UNLABELED else "clusters"
                raise ValueError(
                    f"{names.get(key, key)} has fewer than 2 clusters in the {where} sample; cluster-robust "
                    "variances need at least 2 (and are unreliable with fewer than about 30)."
                )

    # -- what models ask -----------------------------------------------------------------
    def sample(self, name: str) -> SampleDesign:
        return self.labeled if name == LABELED else self.unlabeled

    @property
    def clustered(self) -> bool:
        return self.labeled.psu is not None or self.unlabeled.psu is not None

    def _clustered(self, sample: str) -> bool:
        if sample == "all":
            return self.clustered
        return self.sample(sample).psu is not None

    @property
    def spans(self) -> bool:
        """Some PSU holds units of both (independent) samples."""
        if self.two_phase or self.labeled.psu is None or self.unlabeled.psu is None:
            return False
        return bool(np.any(self.labeled.present_psu(self.npsu) & self.unlabeled.present_psu(self.npsu)))

    @property
    def combined(self) -> bool:
        """Both samples' contributions enter one design (two phases, or shared PSUs)."""
        return self.two_phase or self.spans

    @property
    def iid(self) -> bool:
        """Two simple random samples: no weights, PSUs, strata, fpc or labeling phase."""
        return not (self.clustered or self.has_strata or self.has_fpc or self.two_phase
                    or self.labeled.weights is not None or self.unlabeled.weights is not None)

    def fit_weights(self, sample: str) -> np.ndarray | None:
        """Row weights of the fits of one sample's own rows (labeled rows: divided by
        their labeling probability in a two-phase design)."""
        design = self.sample(sample)
        if sample == LABELED and self.two_phase:
            inverse = 1.0 / self.label_prob
            return inverse if design.weights is None else design.weights * inverse
        return design.weights

    def phase_one_weights(self, sample: str) -> np.ndarray | None:
        """First-phase weights (the weights of a fit over all units)."""
        return self.sample(sample).weights

    def collector(self, sample: str):
        """A factory of :class:`DesignCollector` for the rows of ``sample``."""
        design = self.sample(sample)
        return DesignCollectorFactory(design.psu, design.strata, self.npsu, self.nstrata)

    def _variance_samples(self) -> list[str]:
        return ["all"] if self.two_phase else [LABELED, UNLABELED]

    def psu_counts(self, sample: str) -> np.ndarray:
        """PSUs (units without clusters) per stratum code with rows of ``sample`` ("all": both)."""
        if sample != "all":
            return self.sample(sample).units_per_stratum(self.nstrata)
        if not self.clustered:
            return self.labeled.stratum_counts(self.nstrata) + self.unlabeled.stratum_counts(self.nstrata)
        pairs = [design.unit_pairs() for design in (self.labeled, self.unlabeled) if design.psu is not None]
        psu = np.concatenate([p[0] for p in pairs])
        strata = np.concatenate([p[1] for p in pairs])
        unique = np.unique(psu * self.nstrata + strata)
        counts = np.bincount(unique % self.nstrata, minlength=self.nstrata).astype(float)
        for design in (self.labeled, self.unlabeled):
            if design.psu is None:
                counts += design.stratum_counts(self.nstrata)
        return counts

    def _fraction(self, sample: str) -> np.ndarray:
        return self.labeled.fraction if sample in ("all", LABELED) else self.unlabeled.fraction

    def factors(self, sample: str, cov_type: str, nparams: int) -> np.ndarray:
        """``(1 - f_h) c_h`` per stratum code for the rows of ``sample``."""
        base = 1.0 - self._fraction(sample)
        if cov_type == "CR1":
            counts = self.psu_counts(sample)
            with np.errstate(divide="ignore", invalid="ignore"):
                small = np.where(counts > 1, counts / (counts - 1.0), 1.0)
            return base * small
        if cov_type == "HC1":
            rows = self.labeled.nrows if sample in ("all", LABELED) else self.unlabeled.nrows
            return base * (rows / (rows - nparams) if rows > nparams else np.inf)
        return base

    # -- variance by linearization ----------------------------------------------------------
    def variance(
        self,
        parts: dict[str, Contributions],
        *,
        cov_type: str,
        nparams: int,
        by_stratum: bool = False,
        phase_two: np.ndarray | None = None,
        pooled: bool = False,
    ) -> np.ndarray:
        """Design variance of the sum of the samples' contributions.

        ``parts`` maps ``"labeled"`` / ``"unlabeled"`` to :class:`Contributions`
        of the same width q (a sample may be left out: it contributes nothing).
        Returns (q, q), or (nstrata, q, q) with ``by_stratum``. ``phase_two`` (n, q)
        are the labeled rows' second-phase (rectifier) contributions of a
        two-phase design, used when an fpc or labeling strata call for the
        separate second-phase term. ``pooled`` treats the samples' rows as one
        sample (a fit pooling both samples, such as naive pooling).
        """
        width = next(iter(parts.values())).width
        out = np.zeros((self.nstrata, width, width))
        if self.combined or pooled:
            factors = {s: self.factors("all" if self.two_phase else s, cov_type, nparams) for s in parts}
            self._combined_variance(parts, factors, out)
            if self.two_phase and phase_two is not None and (self.has_fpc or self.label_strata is not None):
                out += self._phase_two_correction(phase_two, cov_type, nparams)
        else:
            for sample, part in parts.items():
                factor = self.factors(sample, cov_type, nparams)
                out += factor[:, None, None] * self._centred(sample, part)
        return out if by_stratum else out.sum(axis=0)

    def _centred(self, sample: str, part: Contributions) -> np.ndarray:
        """Per stratum ``sum_j (Z_hj - Zbar_h)(Z_hj - Zbar_h)'`` of one sample's contributions."""
        design = self.sample(sample)
        H = self.nstrata
        if design.psu is not None:
            totals = part.psu if part.psu is not None else group_sums(part.rows, design.psu, self.npsu)
            present = design.present_psu(self.npsu)
            if part.centred:
                kept = totals[present]
                return group_outer(kept, kept, self.psu_strata[present], H)
            return _psu_moments(totals[present], self.psu_strata[present], H)
        s1, s2, counts = self._row_moments(sample, part)
        if part.centred and part.moments is None:
            return s2
        return s2 - np.einsum("hi,hj->hij", s1, s1) / np.maximum(counts, 1.0)[:, None, None]

    def _row_moments(self, sample: str, part: Contributions) -> tuple:
        """Per stratum the sum, the sum of outer products and the count of an unclustered
        sample's contributions (as given, or from its rows)."""
        if part.moments is not None:
            return part.moments
        H = self.nstrata
        strata = self.sample(sample).stratum_codes()
        s1 = group_sums(part.rows, strata, H)
        s2 = group_outer(part.rows, part.rows, strata, H) if H > 1 else (part.rows.T @ part.rows)[None]
        return s1, s2, np.bincount(strata, minlength=H).astype(float)

    def centre_within_strata(self, sample: str, values: np.ndarray, psu: bool = False) -> np.ndarray:
        """``values`` (a sample's rows, or PSU totals in the shared code space) less their
        stratum means (over the sample's PSUs for totals)."""
        H = self.nstrata
        if psu:
            present = self.sample(sample).present_psu(self.npsu)
            strata = self.psu_strata
            counts = np.bincount(strata[present], minlength=H).astype(float)
            means = group_sums(values[present], strata[present], H) / np.maximum(counts, 1.0)[:, None]
            return np.where(present[:, None], values - means[strata], values)
        strata = self.sample(sample).stratum_codes()
        counts = np.bincount(strata, minlength=H).astype(float)
        means = group_sums(values, strata, H) / np.maximum(counts, 1.0)[:, None]
        return values - means[strata]

    def _combined_variance(self, parts, factors, out) -> None:
        """One design over the given samples: PSU totals added across samples (each part
        scaled by the square root of its sample's factor), then centred within strata
        together with the rows of unclustered samples (their units are their own PSUs)."""
        H, width = self.nstrata, out.shape[1]
        s1, s2, counts = np.zeros((H, width)), np.zeros_like(out), np.zeros(H)
        totals, present = None, np.zeros(self.npsu, dtype=bool)
        for sample, part in parts.items():
            design = self.sample(sample)
            root = np.sqrt(factors[sample])
            if design.psu is not None:
                psu = part.psu if part.psu is not None else group_sums(part.rows, design.psu, self.npsu)
                scaled = psu * root[self.psu_strata][:, None]
                totals = scaled if totals is None else totals + scaled
                present |= design.present_psu(self.npsu)
                continue
            a, b, c = self._row_moments(sample, part)
            s1 += root[:, None] * a
            s2 += (root**2)[:, None, None] * b
            counts += c
        if totals is not None:
            strata = self.psu_strata[present]
            kept = totals[present]
            s1 += group_sums(kept, strata, H)
            s2 += group_outer(kept, kept, strata, H)
            counts += np.bincount(strata, minlength=H)
        out += s2 - np.einsum("hi,hj->hij", s1, s1) / np.maximum(counts, 1.0)[:, None, None]

    def _phase_two_correction(self, rows: np.ndarray, cov_type: str, nparams: int) -> np.ndarray:
        """``S - sum_h (1 - f_h) c_h P_h``: the second-phase variance ``P`` (Poisson labeling,
        ``sum (1 - pi) r r'``) is reduced by the first-phase correction in the main term;
        put back the second-phase variance ``S`` of the labeling design itself."""
        H = self.nstrata
        keep = (1.0 - self.label_prob)[:, None]
        strata = self.labeled.stratum_codes()
        poisson = group_outer(rows * keep, rows, strata, H)
        factor = self.factors("all", cov_type, nparams)
        out = -factor[:, None, None] * poisson
        if self.label_strata is None:
            return out + poisson
        # simple random sampling within labeling strata: centred within them
        K = int(self.label_strata.max()) + 1
        sizes = np.bincount(self.label_strata, minlength=K).astype(float)
        means = group_sums(rows, self.label_strata, K) / np.maximum(sizes, 1.0)[:, None]
        centred = rows - means[self.label_strata]
        small = np.where(sizes > 1, sizes / np.maximum(sizes - 1.0, 1.0), 1.0)[self.label_strata]
        stratified = group_outer(centred * (keep * small[:, None]), centred, strata, H)
        return out + stratified

    # -- degrees of freedom ------------------------------------------------------------------
    def residual_df(self, sample: str, nparams: int) -> float:
        """Degrees of freedom of a sample's variance: PSUs minus strata (clustered), or
        rows minus strata minus (parameters - 1) (unclustered)."""
        design = self.labeled if sample in ("all", LABELED) else self.sample(sample)
        present = int((design.stratum_counts(self.nstrata) > 0).sum())
        if design.psu is None:
            return float(design.nrows - present - nparams + 1)
        return float(design.present_psu(self.npsu).sum() - present)

    # -- summary and bootstrap ----------------------------------------------------------------
    def describe(self) -> list[tuple[str, str]]:
        """Lines for the summary: what the design is."""
        lines = []
        if self.two_phase:
            pi = self.label_prob
            lines.append(("Design", "two-phase (known label prob.)"))
            lines.append(("Label prob.", f"{pi.min():.3g} to {pi.max():.3g}"))
        elif self.weights_derived:
            lines.append(("Design", f"stratified ({self.nstrata} strata)"))
        if self.has_strata and not self.weights_derived:
            lines.append(("Strata", str(self.nstrata)))
        if self.clustered:
            counts = []
            for design in (self.labeled, self.unlabeled):
                counts.append("-" if design.psu is None else str(int(design.present_psu(self.npsu).sum())))
            text = " / ".join(counts)
            if self.spans:
                shared = self.labeled.present_psu(self.npsu) & self.unlabeled.present_psu(self.npsu)
                text += f" ({int(shared.sum())} shared)"
            lines.append(("PSUs (lab / unl)", text))
        designs = [self.labeled, self.unlabeled]
        if any(d.weights is not None for d in designs) and not self.weights_derived:
            shown = []
            for design in designs:
                low, high = design.weight_range() if design.weights is not None else (1.0, 1.0)
                shown.append("1" if design.weights is None else (f"{low:.3g}" if low == high else f"{low:.3g}-{high:.3g}"))
            lines.append(("Weights (lab / unl)", " / ".join(shown)))
        if self.has_fpc:
            lines.append(("Finite pop. corr.", "yes"))
        return lines

    def take(self, labeled_rows: np.ndarray, unlabeled_rows: np.ndarray, psu: tuple) -> "BoundDesign":
        """The design restricted to (or resampled at) row positions, with new PSU codes."""
        npsu = 0
        present = [p for p in psu if p is not None]
        if present:
            npsu = int(max(p.max() for p in present if p.size)) + 1 if any(p.size for p in present) else 0
        return replace(
            self,
            _resampling=None,
            labeled=self.labeled.take(labeled_rows, psu[0]),
            unlabeled=self.unlabeled.take(unlabeled_rows, psu[1]),
            label_prob=None if self.label_prob is None else self.label_prob[labeled_rows],
            label_strata=None if self.label_strata is None else self.label_strata[labeled_rows],
            npsu=npsu,
            psu_strata=self._resampled_psu_strata(labeled_rows, unlabeled_rows, psu, npsu),
        )

    def _resampled_psu_strata(self, labeled_rows, unlabeled_rows, psu, npsu) -> np.ndarray:
        out = np.zeros(npsu, dtype=np.intp)
        for design, rows, codes in ((self.labeled, labeled_rows, psu[0]), (self.unlabeled, unlabeled_rows, psu[1])):
            if codes is not None and codes.size:
                out[codes] = design.stratum_codes()[rows]
        return out

    def resample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, "BoundDesign"]:
        """A bootstrap replicate: PSUs (units without clusters) drawn with replacement
        within strata, each sample on its own (both together in a two-phase design, and
        PSUs holding units of both samples together); every draw is a new PSU."""
        n, N = self.labeled.nrows, self.unlabeled.nrows
        if self._resampling is None:
            units = self._units(np.arange(n + N), both=True)
            strata = np.concatenate([self.labeled.stratum_codes(), self.unlabeled.stratum_codes()])
            if self.two_phase:
                # one first-phase sample: its PSUs drawn together within strata
                key = strata
            elif self.spans:
                # whole PSUs of the joint design; PSUs holding labeled units apart from the others
                has_labeled = np.zeros(units.max() + 1, dtype=bool)
                has_labeled[units[:n]] = True
                key = strata * 2 + (~has_labeled[units]).astype(np.intp)
            else:
                key = strata * 2 + np.r_[np.zeros(n, dtype=np.intp), np.ones(N, dtype=np.intp)]
            self._resampling = _unit_blocks(units, key)
        chosen_rows, new_codes = _draw_units(self._resampling, rng)
        labeled_mask = chosen_rows < n
        labeled_rows, unlabeled_rows = chosen_rows[labeled_mask], chosen_rows[~labeled_mask] - n
        codes_l, codes_u = new_codes[labeled_mask], new_codes[~labeled_mask]
        psu = (codes_l if self.labeled.psu is not None else None,
               codes_u if self.unlabeled.psu is not None else None)
        if any(p is not None for p in psu):
            kept = [p for p in psu if p is not None]
            (recoded), _, _ = recode_clusters(*kept)
            recoded = iter(recoded)
            psu = tuple(next(recoded) if p is not None else None for p in psu)
        return labeled_rows, unlabeled_rows, self.take(labeled_rows, unlabeled_rows, psu)


def _unit_blocks(units: np.ndarray, key: np.ndarray):
    """Rows grouped by unit within keys: the row order, each unit's first and last row,
    and the units' ranges per key (everything a resample needs, computed once)."""
    order = np.lexsort((units, key))
    units_sorted, key_sorted = units[order], key[order]
    starts = np.flatnonzero(np.r_[True, (units_sorted[1:] != units_sorted[:-1]) | (key_sorted[1:] != key_sorted[:-1])])
    stops = np.r_[starts[1:], units_sorted.size]
    unit_key = key_sorted[starts]
    key_bounds = np.flatnonzero(np.r_[True, unit_key[1:] != unit_key[:-1], True])
    return order, starts, stops, key_bounds


def _draw_units(blocks, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of units drawn with replacement within each key (as many draws as units),
    and a new unit code per draw."""
    order, starts, stops, key_bounds = blocks
    counts = np.diff(key_bounds)
    first = np.repeat(key_bounds[:-1], counts)
    drawn = first + np.floor(rng.random(first.size) * np.repeat(counts, counts)).astype(np.intp)
    sizes = stops[drawn] - starts[drawn]
    within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    rows = order[np.repeat(starts[drawn], sizes) + within]
    return rows, np.repeat(np.arange(drawn.size), sizes)


def _psu_moments(totals: np.ndarray, strata: np.ndarray, H: int) -> np.ndarray:
    """Per stratum ``sum_j (T_j - Tbar)(T_j - Tbar)'`` of PSU totals (rows of ``totals``)."""
    counts = np.bincount(strata, minlength=H).astype(float)
    sums = group_sums(totals, strata, H)
    outer = group_outer(totals, totals, strata, H)
    return outer - np.einsum("hi,hj->hij", sums, sums) / np.maximum(counts, 1.0)[:, None, None]


def spec_labels(spec: Design, key: str, other: str):
    """The distinct labels of a design option, in code order (for names in the summary)."""
    values = [spec.options.get(key), spec.options.get(other)]
    given = [v for v in values if v is not None]
    if not given:
        return None
    _, _, labels = as_cluster_labels(values[0], values[1], key, other)
    return labels


def warn_few_clusters(design: BoundDesign, cov_type: str) -> None:
    """FewClustersWarning when the labeled sample has fewer than 30 PSUs or very unequal ones."""
    if design.labeled.psu is None:
        return
    sizes = np.bincount(design.labeled.psu)
    sizes = sizes[sizes > 0]
    G = sizes.size
    spread = sizes.max() / max(np.median(sizes), 1)
    if G < 30 or spread > 10:
        reason = f"{G} clusters" if G < 30 else f"cluster sizes from {sizes.min()} to {sizes.max()}"
        advice = "" if cov_type == "CR2" else " Prefer cov_type='CR2'."
        warnings.warn(
            f"the labeled sample has {reason}: cluster-robust standard errors can be too small.{advice}",
            FewClustersWarning,
            stacklevel=4,
        )
