"""The design of a trial: weights, clusters (the units of randomisation) and strata.

A trial takes its design as a :class:`ppinfer.Design` (or the keywords
``weights``, ``clusters``, ``strata``). Unlike a survey design it describes one
sample, the randomised units, and its strata and clusters are those of the
*randomisation*:

* ``clusters``: units randomised by cluster (schools, practices, villages); each
  cluster lies in one arm. The variance of every method is built from the
  clusters' totals of the units' influence rows.
* ``strata``: randomisation strata (permuted blocks within strata); with
  clusters, clusters are randomised within strata and must be nested in them.
* ``weights``: unit weights (a weighted average treatment effect; for instance
  ``1 / cluster size`` for the average over clusters).

:func:`trial_design` checks the options, :func:`design_variables` turns them
into validated columns (missing values drop with the trial's rows) and
:meth:`TrialDesign.bind` codes them against the trial's rows and arms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.validation import Sample, Variable, as_cluster_labels, as_variable
from ..designs.base import Design, design_from_keywords, group_sums
from .arms import Arms

#: the design options that apply to a trial
TRIAL_OPTIONS = ("weights", "clusters", "strata")


def trial_design(function: str, design: Design | None, **keywords) -> Design:
    """The design of a trial from ``design=`` or the keywords, with options that do not apply refused."""
    spec = design_from_keywords(function, design, keywords)
    other = [spec.names.get(key, key) for key in spec.options if key not in TRIAL_OPTIONS]
    if other or spec.stratum_weights is not None:
        shown = other + (["stratum_weights"] if spec.stratum_weights is not None else [])
        raise ValueError(
            f"{function}: the design option(s) {shown} do not apply to a randomised trial, whose units form one "
            "sample; a trial's design takes weights, clusters (the units of randomisation) and strata "
            "(randomisation strata)."
        )
    return spec


def _name(value, default: str) -> str:
    """The column name of a pandas argument, else ``default``."""
    if isinstance(value, pd.Series) and value.name is not None:
        return str(value.name)
    if isinstance(value, pd.DataFrame) and value.shape[1] == 1:
        return str(value.columns[0])
    return default


@dataclass(frozen=True)
class DesignColumns:
    """The design's columns as variables for :func:`~ppinfer.core.validation.make_sample`, with
    the labels behind the codes of clusters and strata and the strata's display name."""

    variables: dict[str, Variable]
    labels: dict[str, list]
    strata_name: str | None


def design_variables(spec: Design) -> DesignColumns:
    """Validated columns of a trial design (labels coded, missing labels NaN)."""
    variables, labels = {}, {}
    for key, value in spec.options.items():
        if isinstance(value, str):
            raise TypeError(
                f"{key}={value!r} is a column name; column names need the formula interface "
                "(ppinfer.treatment_effect(formula, data, ...)); pass an array here."
            )
        if key == "weights":
            variables[key] = as_variable(value, key, ndim=1, default_name=key)
            continue
        coded, _, uniques = as_cluster_labels(value, None, key, f"{key}_unlabeled")
        variables[key] = coded
        labels[key] = pd.Index(uniques).tolist()
    strata_name = _name(spec.options["strata"], "strata") if "strata" in spec.options else None
    return DesignColumns(variables, labels, strata_name)


@dataclass(frozen=True)
class TrialDesign:
    """A trial design bound to the trial's validated rows.

    Attributes
    ----------
    weights : (n,) array or None
    clusters : (n,) int array or None
        Cluster codes ``0..G-1``.
    strata : (n,) int array or None
        Codes ``0..H-1`` of the strata present.
    stratum_labels : list
        The label of each stratum code (``[]`` without strata).
    strata_name : str or None
        The strata's column name, for the summary.
    cluster_arms : Arms or None
        Each cluster's arm: the arms of the units of randomisation.
    cluster_strata : (G,) int array or None
        Each cluster's stratum.
    """

    weights: np.ndarray | None
    clusters: np.ndarray | None
    strata: np.ndarray | None
    stratum_labels: list
    strata_name: str | None
    cluster_arms: Arms | None = None
    cluster_strata: np.ndarray | None = None

    @classmethod
    def bind(cls, spec: Design, columns: DesignColumns, sample: Sample, arms: Arms) -> "TrialDesign":
        """Code the design's columns of ``sample`` (after its missing rows were dropped) and
        check them against the arms."""
        weights = sample["weights"] if "weights" in sample else None
        if weights is not None:
            _check_weights(weights, arms)
        strata = None
        stratum_labels: list = []
        if "strata" in sample:
            present, strata = np.unique(sample["strata"].astype(np.intp), return_inverse=True)
            stratum_labels = [columns.labels["strata"][k] for k in present]
        if "clusters" not in sample:
            return cls(weights, None, strata, stratum_labels, columns.strata_name)
        original = sample["clusters"].astype(np.intp)
        raw = original
        if spec.nest and strata is not None:
            # a cluster label is unique within its stratum only: key on (stratum, label)
            raw = strata * (int(original.max()) + 1) + original
        _, clusters = np.unique(raw, return_inverse=True)
        labels = columns.labels["clusters"]
        cluster_arms = _cluster_arms(clusters, arms, lambda unit: labels[int(original[unit])])
        cluster_strata = None
        if strata is not None:
            cluster_strata = _cluster_strata(clusters, strata)
        return cls(weights, clusters, strata, stratum_labels, columns.strata_name, cluster_arms, cluster_strata)

    # -- what the trial asks ----------------------------------------------------------------
    @property
    def clustered(self) -> bool:
        return self.clusters is not None

    @property
    def nclusters(self) -> int:
        return 0 if self.clusters is None else int(self.clusters.max()) + 1

    def unit_arms(self, arms: Arms) -> Arms:
        """The arms of the units of randomisation: the clusters', or the units' own."""
        return arms if self.cluster_arms is None else self.cluster_arms

    def unit_strata(self) -> np.ndarray | None:
        """The strata of the units of randomisation."""
        return self.strata if self.clusters is None else self.cluster_strata

    def cluster_rows(self, rows: np.ndarray) -> np.ndarray:
        """Influence rows of the clusters: ``T_g G / n`` with ``T_g`` the cluster's total of the
        units' rows (n, J), so that the clusters' rows have the units' mean-of-rows scale
        (``sum_g t_g t_g' / G^2 = sum_g T_g T_g' / n^2``)."""
        G = self.nclusters
        return group_sums(rows, self.clusters, G) * (G / rows.shape[0])

    def describe(self) -> list[tuple[str, str]]:
        """Summary lines of the clusters and weights (the strata have their own line)."""
        lines = []
        if self.clustered:
            sizes = np.bincount(self.clusters)
            per_arm = np.bincount(self.cluster_arms.codes, minlength=self.cluster_arms.count)
            by_arm = ", ".join(f"{name} {count}" for name, count in zip(self.cluster_arms.names, per_arm))
            lines.append(("Clusters", f"{self.nclusters} ({by_arm})"))
            lines.append(("Cluster sizes", f"{sizes.min()} to {sizes.max()}"))
        if self.weights is not None:
            w = self.weights
            lines.append(("Weights", f"{w.min():.3g}" if np.ptp(w) == 0 else f"{w.min():.3g} to {w.max():.3g}"))
        return lines


def _check_weights(weights: np.ndarray, arms: Arms) -> None:
    if np.any(weights < 0):
        raise ValueError(f"weights must be non-negative; found {int((weights < 0).sum())} negative value(s).")
    totals = np.bincount(arms.codes, weights=weights, minlength=arms.count)
    empty = [name for name, total in zip(arms.names, totals) if not total > 0]
    if empty:
        raise ValueError(f"weights: arm(s) {empty} have zero total weight; each arm needs positive weights.")


def _cluster_arms(clusters: np.ndarray, arms: Arms, label_of) -> Arms:
    """Each cluster's arm; every cluster must lie in one arm (it is the unit of randomisation)."""
    G = int(clusters.max()) + 1
    arm_of = np.full(G, -1, dtype=np.intp)
    arm_of[clusters] = arms.codes
    split = np.zeros(G, dtype=bool)
    np.logical_or.at(split, clusters, arm_of[clusters] != arms.codes)
    if split.any():
        first = int(np.flatnonzero(split)[0])
        unit = int(np.flatnonzero(clusters == first)[0])
        label = label_of(unit)
        in_arms = sorted({arms.names[a] for a in arms.codes[clusters == first]})
        raise ValueError(
            f"clusters: cluster {label!r} has units in arms {in_arms}, but clusters are the units of "
            "randomisation, each assigned to one arm. For an individually randomised trial with centres or "
            "sites, pass them as strata."
        )
    counts = np.bincount(arm_of, minlength=arms.count)
    thin = [name for name, count in zip(arms.names, counts) if count < 2]
    if thin:
        raise ValueError(
            f"clusters: arm(s) {thin} have fewer than 2 clusters; a cluster-randomised trial needs at least 2 "
            "clusters per arm to estimate its variance (and about 10 per arm for reliable intervals)."
        )
    return Arms(arms.labels, arm_of, arms.binary_coded)


def _cluster_strata(clusters: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Each cluster's stratum; clusters must be nested in strata."""
    G = int(clusters.max()) + 1
    stratum_of = np.zeros(G, dtype=np.intp)
    stratum_of[clusters] = strata
    if np.any(stratum_of[clusters] != strata):
        raise ValueError(
            "clusters must be nested in strata (clusters are randomised within strata): some cluster has units "
            "in more than one stratum. If cluster labels are reused across strata, pass nest=True in the Design."
        )
    return stratum_of
