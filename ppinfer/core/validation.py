"""Input handling: arrays or pandas objects in, validated float arrays and names out.

Every model validates its data here, once, at construction. Each check raises a
``ValueError`` (wrong values or shapes) or ``TypeError`` (wrong kinds of object)
that names the argument at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg

from .options import choose

MISSING_OPTIONS = ("raise", "drop")


@dataclass(frozen=True)
class Variable:
    """A validated numeric input: its values, column names and (pandas) row index."""

    values: np.ndarray
    names: list[str]
    index: pd.Index | None = None

    @property
    def nrows(self) -> int:
        return self.values.shape[0]


def as_variable(value, argument: str, *, ndim: int, default_name: str) -> Variable:
    """Convert an array-like or pandas object into a float :class:`Variable`.

    ``ndim=1`` accepts a vector (or a one-column matrix); ``ndim=2`` accepts a
    vector (one column) or a matrix. Default column names are ``default_name``
    for a single column and ``default_name1..k`` otherwise, as statsmodels does.
    """
    if value is None:
        raise TypeError(f"{argument} is required; got None.")
    index = value.index if isinstance(value, (pd.Series, pd.DataFrame)) else None
    if isinstance(value, pd.DataFrame):
        names = [str(c) for c in value.columns]
        for column in value.columns:
            if not (
                pd.api.types.is_numeric_dtype(value[column]) or pd.api.types.is_bool_dtype(value[column])
            ):
                raise TypeError(
                    f"{argument} column {str(column)!r} is not numeric (dtype {value[column].dtype}); "
                    "encode it, or use the formula interface, which expands categorical columns."
                )
        array = value.to_numpy(dtype=float, na_value=np.nan)
    elif isinstance(value, pd.Series):
        names = [str(value.name)] if value.name is not None else None
        if not (pd.api.types.is_numeric_dtype(value) or pd.api.types.is_bool_dtype(value)):
            raise TypeError(f"{argument} is not numeric (dtype {value.dtype}).")
        array = value.to_numpy(dtype=float, na_value=np.nan)
    else:
        names = None
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{argument} must be numeric array-like; could not convert it ({error}).") from None
    if array.ndim == 0:
        raise ValueError(f"{argument} must be an array with one value per row; got a scalar.")
    if array.ndim > 2:
        raise ValueError(f"{argument} must be one- or two-dimensional; got shape {array.shape}.")
    if ndim == 1:
        if array.ndim == 2:
            if array.shape[1] != 1:
                raise ValueError(f"{argument} must be one-dimensional; got shape {array.shape}.")
            array = array[:, 0]
    elif array.ndim == 1:
        array = array[:, None]
    ncols = 1 if array.ndim == 1 else array.shape[1]
    if names is None:
        names = [default_name] if ncols == 1 else [f"{default_name}{k + 1}" for k in range(ncols)]
    return Variable(np.ascontiguousarray(array), names, index)


@dataclass(frozen=True)
class Sample:
    """Validated arrays of one sample (labeled or unlabeled), all with the same rows."""

    variables: dict[str, Variable]
    n_dropped: int = 0
    kept: np.ndarray | None = field(default=None, repr=False)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.variables[key].values

    def __contains__(self, key: str) -> bool:
        return key in self.variables

    def names(self, key: str) -> list[str]:
        return self.variables[key].names

    @property
    def nobs(self) -> int:
        return next(iter(self.variables.values())).nrows

    def take(self, rows: np.ndarray) -> "Sample":
        """The sample restricted to (or resampled at) integer positions ``rows``."""
        return Sample({name: Variable(v.values[rows], v.names) for name, v in self.variables.items()})


def make_sample(variables: Mapping[str, Variable], *, missing: str, label: str) -> Sample:
    """Check that ``variables`` describe the same rows, then handle missing values.

    Lengths must agree; pandas inputs must share one index (positions are used,
    so a different index would silently pair the wrong rows). Rows with NaN or
    infinite values raise (``missing="raise"``) or are dropped from every array
    at once (``missing="drop"``), so that arrays such as cluster ids stay aligned.
    """
    missing = choose(missing, MISSING_OPTIONS, "missing")
    items = list(variables.items())
    first_name, first = items[0]
    for name, variable in items[1:]:
        if variable.nrows != first.nrows:
            raise ValueError(
                f"{name} has {variable.nrows} rows but {first_name} has {first.nrows}; "
                f"the {label} arrays must have one row per {label} unit."
            )
    indexed = [(name, v.index) for name, v in items if v.index is not None]
    for name, index in indexed[1:]:
        if not index.equals(indexed[0][1]):
            raise ValueError(
                f"{name} and {indexed[0][0]} are pandas objects with different indexes; "
                "align them (or pass NumPy arrays, which are paired by position)."
            )
    if first.nrows == 0:
        raise ValueError(f"{first_name} is empty: the {label} sample needs at least one row.")
    finite = np.ones(first.nrows, dtype=bool)
    for name, variable in items:
        row_ok = np.isfinite(variable.values)
        if row_ok.ndim == 2:
            row_ok = row_ok.all(axis=1)
        if missing == "raise" and not row_ok.all():
            bad = np.flatnonzero(~row_ok)
            raise ValueError(
                f"{name} has {bad.size} row(s) with NaN or infinite values (first at position {bad[0]}); "
                "clean them, or pass missing='drop' to drop incomplete rows from every array."
            )
        finite &= row_ok
    if finite.all():
        return Sample(dict(variables))
    if not finite.any():
        raise ValueError(f"every {label} row has a NaN or infinite value; nothing is left after dropping.")
    kept = {
        name: Variable(
            np.ascontiguousarray(v.values[finite]), v.names, None if v.index is None else v.index[finite]
        )
        for name, v in items
    }
    return Sample(kept, n_dropped=int((~finite).sum()), kept=finite)


def match_columns(X: Variable, X_unlabeled: Variable, argument: str = "X_unlabeled") -> Variable:
    """Return ``X_unlabeled`` (named ``argument`` in messages) with the columns of ``X``, or raise if they differ.

    Two pandas designs are matched by column name (and reordered if needed);
    otherwise the designs must have the same number of columns.
    """
    if X.index is not None and X_unlabeled.index is not None:
        missing = [c for c in X.names if c not in X_unlabeled.names]
        extra = [c for c in X_unlabeled.names if c not in X.names]
        if missing or extra or len(X.names) != len(X_unlabeled.names):
            raise ValueError(
                f"X and {argument} have different columns: "
                f"missing from {argument} {missing}, not in X {extra}."
            )
        if X_unlabeled.names != X.names:
            order = [X_unlabeled.names.index(c) for c in X.names]
            return Variable(np.ascontiguousarray(X_unlabeled.values[:, order]), X.names, X_unlabeled.index)
    elif X.values.shape[1] != X_unlabeled.values.shape[1]:
        raise ValueError(
            f"X has {X.values.shape[1]} columns but {argument} has {X_unlabeled.values.shape[1]}; "
            "both designs must have the same columns."
        )
    return Variable(X_unlabeled.values, X.names, X_unlabeled.index)


def check_full_rank(X: np.ndarray, names: Sequence[str], argument: str) -> None:
    """Raise if the design has too few rows or linearly dependent columns.

    Works from the Gram matrix, accumulated by chunks, so a design with millions
    of rows costs one pass. A pivoted QR of its square root names the columns
    that are combinations of the others.
    """
    nrows, ncols = X.shape
    if nrows <= ncols:
        raise ValueError(
            f"{argument} has {nrows} rows and {ncols} columns; at least {ncols + 1} rows are needed "
            "to estimate the coefficients and their standard errors."
        )
    gram = np.zeros((ncols, ncols))
    for start in range(0, nrows, 1 << 15):
        block = X[start : start + (1 << 15)]
        gram += block.T @ block
    scale = np.sqrt(np.diag(gram))
    if np.any(scale == 0):
        zero = [names[k] for k in np.flatnonzero(scale == 0)]
        raise ValueError(f"{argument} has all-zero column(s) {zero}; the design is singular.")
    eigenvalues, eigenvectors = np.linalg.eigh(gram / np.outer(scale, scale))
    root = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * eigenvectors.T
    _, r, pivots = scipy.linalg.qr(root, pivoting=True)
    diagonal = np.abs(np.diag(r))
    rank = int((diagonal > diagonal[0] * 1e-7).sum())
    if rank < ncols:
        dependent = [names[k] for k in pivots[rank:]]
        raise ValueError(
            f"{argument} is rank deficient (rank {rank} < {ncols} columns): column(s) {dependent} are "
            "linear combinations of the others (collinear design). Drop them."
        )



def check_predicted(predicted, labeled: pd.DataFrame, unlabeled: pd.DataFrame, *,
                    names: tuple[str, str] = ("data", "unlabeled"), used: Sequence[str] | None = None,
                    example: str = "{'y': 'y_llm'}") -> dict[str, str]:
    """The ``predicted`` mapping (measured column -> prediction column), checked: each measured
    column is one of ``labeled`` (and of ``used``, the variables a formula reads), each
    prediction column is in both data frames and is not itself a measured column."""
    if not isinstance(predicted, Mapping) or not predicted:
        raise TypeError(
            "predicted must map each measured column to its prediction column (a non-empty mapping), "
            f"e.g. predicted={example}; got {predicted!r}."
        )
    for measured, prediction in predicted.items():
        if not isinstance(measured, str) or not isinstance(prediction, str):
            raise TypeError(f"predicted maps column names to column names; got {measured!r}: {prediction!r}.")
        if measured not in labeled.columns:
            raise ValueError(f"predicted maps {measured!r}, which is not a column of {names[0]} (the measured values).")
        if used is not None and measured not in used:
            raise ValueError(
                f"predicted maps {measured!r}, which the formula does not use; the formula's variables are {list(used)}."
            )
        for frame, name in zip((labeled, unlabeled), names):
            if prediction not in frame.columns:
                raise ValueError(
                    f"predicted[{measured!r}] = {prediction!r} is not a column of {name}: the prediction of "
                    f"{measured!r} is needed for every row of both data frames."
                )
        if prediction in predicted or prediction == measured:
            raise ValueError(f"predicted: the prediction column {prediction!r} is itself a measured column.")
    return dict(predicted)


def check_range(values: np.ndarray, argument: str, *, low: float, high: float, what: str) -> None:
    """Raise if any value lies outside [low, high]."""
    bad = (values < low) | (values > high)
    if bad.any():
        first = np.flatnonzero(bad.ravel())[0]
        raise ValueError(
            f"{argument} must be {what}; found {int(bad.sum())} value(s) outside "
            f"(first: {values.ravel()[first]!r} at position {first})."
        )


def check_binary(values: np.ndarray, argument: str) -> None:
    """Raise unless every value is 0 or 1."""
    bad = (values != 0) & (values != 1)
    if bad.any():
        first = np.flatnonzero(bad.ravel())[0]
        raise ValueError(
            f"{argument} must contain only 0 and 1; found {int(bad.sum())} other value(s) "
            f"(first: {values.ravel()[first]!r} at position {first})."
        )


def _labels(value, argument: str) -> pd.Series:
    if isinstance(value, pd.DataFrame):
        if value.shape[1] != 1:
            raise ValueError(f"{argument} must be one column of labels; got {value.shape[1]} columns.")
        value = value.iloc[:, 0]
    if isinstance(value, pd.Series):
        return value
    array = np.asarray(value, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"{argument} must be one-dimensional (one label per row); got shape {array.shape}.")
    return pd.Series(array)


def as_cluster_labels(
    labeled, unlabeled, argument: str = "groups", argument_unlabeled: str = "groups_unlabeled"
) -> tuple[Variable | None, Variable | None, np.ndarray]:
    """Labels of any hashable type, coded in one space shared by both samples.

    A cluster with units in both samples keeps one code, so its labeled and
    unlabeled contributions can be combined. Missing labels become NaN (raised
    on, or dropped with their row, by :func:`make_sample`). Either input may be
    None. Also returns the distinct labels, indexed by code.
    """
    given = [(name, value) for name, value in ((argument, labeled), (argument_unlabeled, unlabeled)) if value is not None]
    series = {name: _labels(value, name) for name, value in given}
    codes, uniques = pd.factorize(pd.concat([s.reset_index(drop=True) for s in series.values()], ignore_index=True))
    codes = np.where(codes < 0, np.nan, codes.astype(float))
    out, start = {}, 0
    for name, value in given:
        stop = start + len(series[name])
        index = value.index if isinstance(value, (pd.Series, pd.DataFrame)) else None
        out[name] = Variable(codes[start:stop], [name], index)
        start = stop
    return out.get(argument), out.get(argument_unlabeled), np.asarray(uniques, dtype=object)


def recode_clusters(*codes: np.ndarray | None) -> tuple[list[np.ndarray | None], int, np.ndarray]:
    """Integer codes ``0..G-1`` over the clusters present in any of the arrays,
    their number, and the original code of each."""
    present = [c for c in codes if c is not None]
    if not present:
        return [None] * len(codes), 0, np.array([], dtype=np.intp)
    unique, inverse = np.unique(np.concatenate(present), return_inverse=True)
    out, start = [], 0
    for c in codes:
        if c is None:
            out.append(None)
            continue
        out.append(inverse[start : start + c.shape[0]].astype(np.intp))
        start += c.shape[0]
    return out, int(unique.size), unique.astype(np.intp)
