"""The one formula parser: patsy designs for the labeled and unlabeled data, and for trials.

``y ~ x1 + C(g)`` is built on the labeled data by patsy (as in statsmodels); the
unlabeled design reuses its specification, so both share columns, categorical
levels and stateful transformations. Predictions, design columns and the
outcome's transformation follow the same rows. Everything a formula can get
wrong quietly is checked here:

* rows patsy drops for missing values are counted (``missing="drop"``) or
  reported (``missing="raise"``);
* a design column (weights, clusters, strata, fpc) named for one data frame
  must exist in the other, unless its ``*_unlabeled`` counterpart is given;
* a transformed outcome (``np.log(y) ~ x``) gets the same transformation
  applied to its predictions (``np.log(yhat)``);
* a categorical level with no labeled rows, or present in one data frame
  only, is named with the fix;
* with predicted variables (``predicted={"y": "y_llm", "x2": "x2_llm"}``) the
  predictions' designs are built by the same specification on the data with
  each measured variable replaced by its prediction column, and every variable
  the formula uses must be measured or predicted in ``unlabeled``.

A trial's formula (:func:`trial_arguments`) has one data frame: its outcome, a
treatment term (a column of arm labels, or a categorical expression whose
``Treatment()`` coding names the control) and baseline covariates; per-row
arguments and the design's columns are read from the same frame.
"""

from __future__ import annotations

import ast
import os
import re

import numpy as np
import pandas as pd
import patsy

from ..designs.base import PAIRED_OPTIONS, Design, design_from_keywords
from .options import choose
from .sources import DaskSource, ParquetSource, ParquetTable, Partition, is_dask, is_dask_frame
from .validation import MISSING_OPTIONS, ChunkedInput, check_predicted


def _frame(value, argument: str) -> tuple[pd.DataFrame, pd.Index]:
    """The data with positional rows, and its original index (to align pandas
    arguments given separately)."""
    if not isinstance(value, pd.DataFrame):
        raise TypeError(f"{argument} must be a pandas DataFrame; got {type(value).__name__}.")
    # positions, not labels, pair rows from here on (labels may repeat)
    return value.reset_index(drop=True), value.index


def _aligned(values: pd.Series | pd.DataFrame, index: pd.Index, argument: str, frame_name: str):
    """A pandas argument in the row order of a frame with ``index``: the same index, or a reordering of it."""
    if values.index.equals(index):
        return values.reset_index(drop=True)
    if index.is_unique and values.index.is_unique and values.index.sort_values().equals(index.sort_values()):
        return values.reindex(index).reset_index(drop=True)
    raise ValueError(
        f"{argument} is a pandas object whose index does not match {frame_name}'s; align it "
        "(or pass a NumPy array, which is paired with the rows by position)."
    )


def _dropped_message(frame: pd.DataFrame, kept: pd.Index, argument: str) -> str:
    dropped = np.setdiff1d(np.arange(len(frame)), kept.to_numpy())
    return (
        f"{argument} has {dropped.size} row(s) with missing values in the formula's variables "
        f"(first at row {dropped[0]}); clean them, or pass missing='drop' to drop incomplete rows."
    )


def column(value, frame: pd.DataFrame, index: pd.Index, rows: pd.Index, argument: str, frame_name: str):
    """Values for the design's rows: column name(s) of ``frame`` or an array over its rows."""
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        missing = [c for c in ([value] if isinstance(value, str) else value) if c not in frame.columns]
        if missing:
            what = "is not a column" if isinstance(value, str) else f"names {missing}, which are not columns"
            raise ValueError(f"{argument}={value!r} {what} of {frame_name}.")
        values = frame[value]
    else:
        if isinstance(value, (pd.Series, pd.DataFrame)):
            if len(value) != len(frame):
                raise ValueError(f"{argument} has {len(value)} values but {frame_name} has {len(frame)} rows.")
            values = _aligned(value, index, argument, frame_name)
        else:
            array = np.asarray(value)
            if array.ndim == 0:
                raise ValueError(f"{argument} must be a column name or one value per row of {frame_name}.")
            values = pd.Series(array, name=argument) if array.ndim == 1 else pd.DataFrame(array)
        if len(values) != len(frame):
            raise ValueError(f"{argument} has {len(values)} values but {frame_name} has {len(frame)} rows.")
    return values.iloc[rows.to_numpy()].set_axis(rows)


def _referenced_columns(code: str, frame: pd.DataFrame) -> list[str]:
    """Columns of ``frame`` that a patsy factor's Python code refers to."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        return [name for name in frame.columns if isinstance(name, str) and name in code]
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= set(re.findall(r"Q\(['\"](.+?)['\"]\)", code))
    return [name for name in frame.columns if name in names]


class OutcomeTransform:
    """The formula's left-hand side as a function of its outcome column, applied to predictions."""

    def __init__(self, outcome_info: patsy.DesignInfo, frame: pd.DataFrame):
        factors = [factor for term in outcome_info.terms for factor in term.factors]
        self.info = outcome_info
        self.code = factors[0].name() if len(factors) == 1 else outcome_info.column_names[0]
        referenced = _referenced_columns(self.code, frame) if len(factors) == 1 else []
        self.column = referenced[0] if len(referenced) == 1 else None
        self.identity = self.column is not None and self.code in (self.column, f"Q({self.column!r})",
                                                                    f'Q("{self.column}")')
        if len(factors) != 1 or len(referenced) != 1:
            self.error = (
                f"the formula's outcome {self.code!r} is a function of {len(referenced)} columns "
                f"{referenced}; ppinfer applies the outcome's transformation to the predictions only when it "
                "involves one column. Compute the outcome and its prediction as columns of data and unlabeled "
                "and use them in the formula."
            )
        else:
            self.error = None

    def __call__(self, values: pd.Series | pd.DataFrame, argument: str):
        """The predictions on the outcome's scale (each column of draws transformed alike)."""
        if self.identity:
            return values
        if self.error:
            raise ValueError(self.error)
        frame = values.to_frame() if isinstance(values, pd.Series) else values
        out = {}
        for name in frame.columns:
            data = pd.DataFrame({self.column: frame[name].to_numpy(dtype=float)}, index=frame.index)
            with np.errstate(all="ignore"):
                (built,) = patsy.build_design_matrices([self.info], data, NA_action=patsy.NAAction(NA_types=[]),
                                                       return_type="dataframe")
            out[name] = built.iloc[:, 0].to_numpy()
        transformed = pd.DataFrame(out, index=frame.index)
        raw_finite = np.isfinite(frame.to_numpy(dtype=float))
        bad = raw_finite & ~np.isfinite(transformed.to_numpy())
        if bad.any():
            raise ValueError(
                f"{argument}: applying the outcome's transformation {self.code!r} to the predictions gives "
                f"{int(bad.sum())} non-finite value(s) (first at row {int(np.argwhere(bad)[0][0])}). ppinfer "
                "transforms the predictions like the outcome; give predictions on the outcome column's original "
                "scale that the transformation accepts."
            )
        return transformed.iloc[:, 0].rename(argument) if isinstance(values, pd.Series) else transformed


_LEVEL = re.compile(r"^(?P<factor>.+?)\[(?:T\.)?(?P<level>.+)\]$")


def _check_levels(X: pd.DataFrame, X_unlabeled: pd.DataFrame | None) -> None:
    """Name the categorical level behind an all-zero column of either design."""
    for frame, where in ((X, "data"), (X_unlabeled, "unlabeled")):
        if frame is not None:
            check_zero_columns([name for name in frame.columns if not np.any(frame[name].to_numpy() != 0)], where)


def check_zero_columns(zero: list[str], where: str) -> None:
    """Raise naming the categorical level behind an all-zero design column of ``where``
    (``"data"`` or ``"unlabeled"``), if any is a level's column."""
    for name in zero:
        match = _LEVEL.match(str(name))
        if not match:
            continue
        factor, level = match.group("factor"), match.group("level")
        if where == "data":
            raise ValueError(
                f"level {level!r} of {factor} has no rows in data (column {name!r} is all zero), so its "
                f"coefficient cannot be estimated. If it is an unused pandas category, drop it "
                f"(Series.cat.remove_unused_categories()); otherwise merge the level with another."
            )
        raise ValueError(
            f"level {level!r} of {factor} occurs in data but not in unlabeled: X_unlabeled, the unlabeled "
            f"design, has the all-zero column {name!r}, so the fit of the unlabeled predictions is "
            "singular. Merge the "
            "level with another, or drop its rows from data."
        )


def _labeled_design(formula: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The outcome and design of the labeled data (patsy, rows with missing values dropped)."""
    try:
        outcome, X = patsy.dmatrices(formula, frame, NA_action="drop", return_type="dataframe")
    except patsy.PatsyError as error:
        raise ValueError(f"could not build the design from formula {formula!r} and data: {error}") from None
    if outcome.shape[1] != 1:
        raise ValueError(
            f"the formula's outcome must be one numeric column; patsy expanded it into {list(outcome.columns)}. "
            "Code a binary outcome as 0/1."
        )
    return outcome, X


def resolve_design(
    design: Design, frames: tuple[pd.DataFrame, pd.DataFrame], indexes: tuple[pd.Index, pd.Index],
    rows: tuple[pd.Index, pd.Index],
) -> Design:
    """The design with column names replaced by the values of the design's rows.

    A column name given for a labeled option is also read from ``unlabeled``
    (and must be there, unless the ``*_unlabeled`` option is given): a design
    column present in one data frame only would treat the samples differently.
    """
    options, names = dict(design.options), design.names
    resolved = {}
    for key, other in PAIRED_OPTIONS.items():
        value = options.get(key)
        value_other = options.get(other) if other else None
        if value is not None:
            resolved[key] = column(value, frames[0], indexes[0], rows[0], names.get(key, key), "data")
            if other and value_other is None and isinstance(value, str):
                if value not in frames[1].columns:
                    name = names.get(key, key)
                    raise ValueError(
                        f"{name}={value!r} is a column of data but not of unlabeled: give the unlabeled rows' "
                        f"{name} too (a column {value!r} in unlabeled, or {name}_unlabeled=...). A design column "
                        "present in one sample only would silently treat the samples differently."
                    )
                value_other = value
        if other and value_other is not None:
            resolved[other] = column(value_other, frames[1], indexes[1], rows[1], names.get(other, other), "unlabeled")
    return design.with_options(resolved)


def _substituted(frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """The data with each measured variable replaced by its prediction."""
    out = frame.copy(deep=False)
    for measured, prediction in mapping.items():
        out[measured] = frame[prediction]
    return out


def _predicted_designs(outcome, X, mapping: dict[str, str], frames, missing: str) -> dict:
    """The designs of the predictions' fits from the measured fit's specification, and the rows kept."""
    infos = [outcome.design_info, X.design_info]
    used = _formula_columns(infos, frames[0])
    absent = [name for name in used if name not in frames[1].columns and name not in mapping]
    if absent:
        raise ValueError(
            f"{absent} used by the formula are not columns of unlabeled: map each to its prediction column "
            f"in predicted= (e.g. predicted={{{absent[0]!r}: {absent[0] + '_pred'!r}}})."
        )
    built = []
    for frame, name in zip(frames, ("data", "unlabeled")):
        try:
            built.append(patsy.build_design_matrices(infos, _substituted(frame, mapping), NA_action="drop",
                                                     return_type="dataframe"))
        except patsy.PatsyError as error:
            raise ValueError(
                f"could not build the design of {name} with the predicted variables {mapping} and the "
                f"measured data's specification: {error}. Every categorical level a prediction takes must "
                "occur among the measured values of data (merge rare levels, or drop those rows)."
            ) from None
    (yhat, X_predicted), (yhat_unlabeled, X_unlabeled) = built
    rows = X.index.intersection(X_predicted.index)
    if missing == "raise":
        for kept, frame, name in ((X.index, frames[0], "data"), (X_predicted.index, frames[0], "data"),
                                  (X_unlabeled.index, frames[1], "unlabeled")):
            if len(kept) < len(frame):
                raise ValueError(_dropped_message(frame, kept, name))
    for values, name, source in ((yhat, "yhat", "data"), (yhat_unlabeled, "yhat_unlabeled", "unlabeled")):
        bad = ~np.isfinite(values.iloc[:, 0].to_numpy())
        if bad.any():
            raise ValueError(
                f"the formula's outcome {outcome.columns[0]!r} evaluated on the predictions of {source} gives "
                f"{int(bad.sum())} non-finite value(s); give predictions that its transformation accepts."
            )
    kept_X = X.loc[rows]
    kept_X.design_info = X.design_info  # the specification travels with the design (for predict)
    arguments = dict(y=outcome.iloc[:, 0].loc[rows], X=kept_X, yhat=yhat.iloc[:, 0].loc[rows],
                     X_unlabeled=X_unlabeled, yhat_unlabeled=yhat_unlabeled.iloc[:, 0])
    right_hand = _formula_columns([X.design_info], frames[0])
    if any(name in mapping for name in right_hand):
        arguments["X_predicted"] = X_predicted.loc[rows]
    return arguments


def _formula_columns(infos: list[patsy.DesignInfo], frame: pd.DataFrame) -> list[str]:
    """Columns of ``frame`` that the designs' factors refer to."""
    names = []
    for info in infos:
        for term in info.terms:
            for factor in term.factors:
                names += [name for name in _referenced_columns(factor.name(), frame) if name not in names]
    return names


def model_arguments(
    formula: str,
    data,
    unlabeled,
    yhat=None,
    yhat_unlabeled=None,
    *,
    predicted=None,
    missing: str = "raise",
    function: str = "from_formula",
    design: Design | None = None,
    unlabeled_columns: dict[str, str] | None = None,
    **keywords,
) -> tuple[dict, tuple[int, int]]:
    """Arguments of a regression model's constructor from a formula and two data frames.

    Returns the keyword arguments and the number of rows dropped by the
    formula's missing-value handling in each data frame. ``predicted`` maps
    measured variables to prediction columns (instead of ``yhat``).
    ``unlabeled_columns`` maps further keywords to column names of ``unlabeled``
    (a GLM's ``offset_unlabeled``): their values for the unlabeled design's rows
    are returned under those keywords (read with each partition when
    ``unlabeled`` is read partition by partition).
    """
    unlabeled_columns = dict(unlabeled_columns or {})
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula must be a string like 'y ~ x1 + x2'; got {formula!r}.")
    missing = choose(missing, MISSING_OPTIONS, "missing")
    spec = design_from_keywords(function, design, keywords)
    labeled_frame, labeled_index = _frame(data, "data")
    outcome, X = _labeled_design(formula, labeled_frame)
    if predicted is not None:
        if yhat is not None or yhat_unlabeled is not None:
            raise ValueError(
                "pass either yhat= or predicted=, not both: with predicted variables, map the outcome to its "
                "prediction column in predicted (e.g. predicted={'y': 'y_llm', 'x2': 'x2_llm'})."
            )
        if is_partitioned_table(unlabeled):
            raise TypeError(
                "predicted= (predicted covariates) needs the unlabeled data in memory as a pandas DataFrame; "
                "with a Dask DataFrame or Parquet files give yhat= (the outcome's prediction column) only."
            )
        unlabeled_frame, unlabeled_index = _frame(unlabeled, "unlabeled")
        frames, indexes = (labeled_frame, unlabeled_frame), (labeled_index, unlabeled_index)
        used = _formula_columns([outcome.design_info, X.design_info], labeled_frame)
        mapping = check_predicted(predicted, frames[0], frames[1], used=used, example="{'y': 'y_llm', 'x2': 'x2_llm'}")
        arguments = _predicted_designs(outcome, X, mapping, frames, missing)
        _check_levels(arguments["X"], arguments["X_unlabeled"])
        rows = (arguments["X"].index, arguments["X_unlabeled"].index)
        arguments.update(missing=missing, design=resolve_design(spec, frames, indexes, rows))
        for key, name in unlabeled_columns.items():
            arguments[key] = column(name, frames[1], indexes[1], rows[1], key, "unlabeled")
        return arguments, (len(labeled_frame) - len(rows[0]), len(unlabeled_frame) - len(rows[1]))
    if yhat is None:
        raise ValueError(
            "give yhat= (the predictions of the outcome) or predicted= (a mapping from each measured "
            "variable to its prediction column, e.g. predicted={'y': 'y_llm', 'x2': 'x2_llm'})."
        )
    if missing == "raise" and len(X) < len(labeled_frame):
        raise ValueError(_dropped_message(labeled_frame, X.index, "data"))
    if is_partitioned_table(unlabeled):
        return _partitioned_arguments(formula, (labeled_frame, labeled_index), outcome, X, unlabeled, yhat,
                                      yhat_unlabeled, missing, spec, unlabeled_columns)
    unlabeled_frame, unlabeled_index = _frame(unlabeled, "unlabeled")
    X_unlabeled = _unlabeled_design(X.design_info, unlabeled_frame)
    if missing == "raise" and len(X_unlabeled) < len(unlabeled_frame):
        raise ValueError(_dropped_message(unlabeled_frame, X_unlabeled.index, "unlabeled"))
    _check_levels(X, X_unlabeled)
    if yhat_unlabeled is None:
        if not isinstance(yhat, str) and not (isinstance(yhat, list) and all(isinstance(v, str) for v in yhat)):
            raise ValueError("yhat_unlabeled is required when yhat is not a column name shared by both data frames.")
        yhat_unlabeled = yhat
    transform = OutcomeTransform(outcome.design_info, labeled_frame)
    predictions = column(yhat, labeled_frame, labeled_index, X.index, "yhat", "data")
    predictions_unlabeled = column(
        yhat_unlabeled, unlabeled_frame, unlabeled_index, X_unlabeled.index, "yhat_unlabeled", "unlabeled"
    )
    arguments = dict(
        y=outcome.iloc[:, 0],
        X=X,
        yhat=transform(predictions, "yhat"),
        X_unlabeled=X_unlabeled,
        yhat_unlabeled=transform(predictions_unlabeled, "yhat_unlabeled"),
        missing=missing,
        design=resolve_design(spec, (labeled_frame, unlabeled_frame), (labeled_index, unlabeled_index),
                              (X.index, X_unlabeled.index)),
    )
    for key, name in unlabeled_columns.items():
        arguments[key] = column(name, unlabeled_frame, unlabeled_index, X_unlabeled.index, key, "unlabeled")
    dropped = (len(labeled_frame) - len(X), len(unlabeled_frame) - len(X_unlabeled))
    return arguments, dropped


def _unlabeled_design(info, frame: pd.DataFrame) -> pd.DataFrame:
    """The labeled design's specification applied to the unlabeled frame (rows with a missing
    value dropped): the columns copied for a design of plain numeric columns
    (:func:`plain_columns`), else patsy's matrix."""
    copied = _copied_design(plain_columns(info), frame)
    if copied is not None:
        values, rows = copied
        return pd.DataFrame(values, index=frame.index[rows], columns=info.column_names, copy=False)
    try:
        (X_unlabeled,) = patsy.build_design_matrices([info], frame, NA_action="drop", return_type="dataframe")
    except patsy.PatsyError as error:
        raise ValueError(
            f"could not build the unlabeled design with the labeled data's specification: {error}. "
            "Every variable of the formula's right-hand side must be in unlabeled, and every categorical "
            "level in unlabeled must occur in data (merge rare levels, or drop those rows)."
        ) from None
    return X_unlabeled


# -- an unlabeled sample read partition by partition ------------------------------------------------
def is_partitioned_table(value) -> bool:
    """A Dask DataFrame, Parquet files (a path, a list of paths, a :class:`ParquetTable`)."""
    if isinstance(value, ParquetTable) or (is_dask_frame(value)):
        return True
    if isinstance(value, (str, os.PathLike)):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, (str, os.PathLike)) for v in value)


class FormulaPartitions:
    """Builds a partition's variables from a piece of the unlabeled data (the labeled
    design's specification applied to it, as patsy does for a whole frame).

    ``design_columns`` maps keywords to the columns read as they are (the
    design's, a GLM's offsets).

    patsy's specifications do not pickle; sent to a Dask worker, this object
    carries the formula and the labeled data's columns it uses and rebuilds the
    specification there, with the same levels and transformations' state.
    """

    def __init__(self, formula: str, labeled: pd.DataFrame, predictions, design_columns: dict[str, str],
                 missing: str):
        self.formula, self.labeled = formula, labeled
        self.predictions, self.design_columns, self.missing = predictions, dict(design_columns), missing
        self._build()

    def _build(self) -> None:
        outcome, X = _labeled_design(self.formula, self.labeled)
        self.info = X.design_info
        self.outcome = OutcomeTransform(outcome.design_info, self.labeled)
        self.plain = plain_columns(self.info)

    def __getstate__(self):
        return {key: value for key, value in self.__dict__.items() if key not in ("info", "outcome", "plain")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._build()

    def __call__(self, frame: pd.DataFrame, partition: Partition):
        frame = frame.reset_index(drop=True)
        X, rows = self._design(frame, partition)
        dropped = len(frame) - rows.size
        if dropped and self.missing == "raise":
            first = int(np.setdiff1d(np.arange(len(frame)), rows)[0])
            raise ValueError(
                f"unlabeled has {dropped} row(s) with missing values in the formula's variables in "
                f"{partition.describe()} (first at {partition.where(first)}); clean them, or pass missing='drop' "
                "to drop incomplete rows."
            )
        predictions = frame[self.predictions].iloc[rows]
        arrays = {"X_unlabeled": X,
                  "yhat_unlabeled": self.outcome(predictions, "yhat_unlabeled").to_numpy(dtype=float)}
        for key, name in self.design_columns.items():
            arrays[key] = frame[name].to_numpy()[rows]
        return arrays, rows.size, dropped, rows if dropped else None

    def _design(self, frame: pd.DataFrame, partition: Partition) -> tuple[np.ndarray, np.ndarray]:
        """The partition's design matrix (C-ordered float64) and the positions of its complete rows."""
        copied = _copied_design(self.plain, frame, f" in {partition.describe()}")
        if copied is not None:
            return copied
        try:
            (X,) = patsy.build_design_matrices([self.info], frame, NA_action="drop", return_type="dataframe")
        except patsy.PatsyError as error:
            raise ValueError(
                f"could not build the unlabeled design of {partition.describe()} with the labeled data's "
                f"specification: {error}. Every categorical level in unlabeled must occur in data (merge rare "
                "levels, or drop those rows)."
            ) from None
        return np.ascontiguousarray(X.to_numpy(dtype=float)), X.index.to_numpy()


def plain_columns(info) -> list[str | None] | None:
    """The variables of a design made of an intercept and numeric columns used as they are
    (``y ~ x1 + x2``), in the design's column order (None: the intercept); None when a term
    transforms, interacts or is categorical (patsy then builds the design)."""
    names: list[str | None] = []
    for term in info.terms:
        if not term.factors:
            names.append(None)
            continue
        factor = term.factors[0]
        code = getattr(factor, "code", None)
        described = info.factor_infos[factor]
        if (len(term.factors) != 1 or described.type != "numerical" or described.num_columns != 1
                or not isinstance(code, str) or not code.isidentifier()):
            return None
        names.append(code)
    return names if len(names) == len(info.column_names) else None


def _copied_design(plain: list[str | None] | None, frame: pd.DataFrame,
                   where: str = "") -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`plain_design` of ``frame`` when the design is made of plain numeric columns
    (``plain``, from :func:`plain_columns`) that ``frame`` holds as numbers; None when patsy
    must build it. A column that is not numbers in ``frame`` (``where`` says which rows)
    raises a TypeError naming it."""
    if plain is None:
        return None
    kinds = {name: _kind(frame, name) for name in plain if name is not None}
    for name, kind in kinds.items():
        if kind == "other":
            raise TypeError(
                f"column {name!r} of unlabeled is {frame[name].dtype}{where}, but numeric in data; convert it to "
                "numbers (e.g. pandas.to_numeric) before fitting."
            )
    return None if "patsy" in kinds.values() else plain_design(frame, plain)


def _kind(frame: pd.DataFrame, name: str) -> str:
    """How a variable of :func:`plain_columns` is read from a partition: "numbers" (NumPy
    integers or floats, or pandas' nullable ones, their missing values as NaN), "patsy" (a
    name that is not a column: patsy evaluates it) or "other" (strings, booleans, categories:
    not the numbers the labeled data held)."""
    if name not in frame.columns:
        return "patsy"
    dtype = frame[name].dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return "numbers"
    return "other"


def _float_column(series: pd.Series) -> np.ndarray:
    """A numeric column as float64 values (pandas' missing values as NaN, as patsy reads them)."""
    if isinstance(series.dtype, np.dtype):
        return series.to_numpy()
    return series.to_numpy(dtype=float, na_value=np.nan)


def plain_design(frame: pd.DataFrame, names: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """What patsy builds for :func:`plain_columns` (rows with a NaN dropped, as its
    ``NA_action="drop"``; infinite values are kept for the validating scan to name), copied
    column by column into a Fortran-ordered float64 array (one contiguous copy per column;
    the fits read it as it is)."""
    columns = [None if name is None else _float_column(frame[name]) for name in names]
    m = len(frame)
    X = np.empty((m, len(names)), order="F")
    for j, column in enumerate(columns):
        X[:, j] = 1.0 if column is None else column
    missing = np.isnan(X).any(axis=1)
    if not missing.any():
        return X, np.arange(m)
    rows = np.flatnonzero(~missing)
    return X[rows], rows


def partitioned_columns(unlabeled) -> list[str]:
    """The column names of a data frame read partition by partition (:func:`is_partitioned_table`)."""
    if is_dask(unlabeled):
        return [str(c) for c in unlabeled.columns]
    return (unlabeled if isinstance(unlabeled, ParquetTable) else ParquetTable(unlabeled)).columns


def _partitioned_arguments(formula, labeled, outcome, X, unlabeled, yhat, yhat_unlabeled, missing, spec,
                           unlabeled_columns=None):
    """Arguments of a model whose unlabeled data frame is read partition by partition;
    ``unlabeled_columns`` (keyword -> column name) are read with each partition as they are."""
    labeled_frame, labeled_index = labeled
    columns = partitioned_columns(unlabeled)
    if not is_dask(unlabeled) and not isinstance(unlabeled, ParquetTable):
        unlabeled = ParquetTable(unlabeled)
    if yhat_unlabeled is None:
        yhat_unlabeled = yhat
    names = [yhat_unlabeled] if isinstance(yhat_unlabeled, str) else yhat_unlabeled
    if not (isinstance(names, list) and names and all(isinstance(v, str) for v in names)):
        raise TypeError(
            "yhat_unlabeled must be column name(s) of unlabeled when unlabeled is a Dask DataFrame or Parquet "
            "files (arrays cannot be paired with its rows)."
        )
    # design columns: labeled values from data, unlabeled ones by name from the partitions
    options, keys = dict(spec.options), spec.names
    resolved, design_columns = {}, {}
    for key, other in PAIRED_OPTIONS.items():
        value = options.get(key)
        value_other = options.get(other) if other else None
        if value is not None:
            resolved[key] = column(value, labeled_frame, labeled_index, X.index, keys.get(key, key), "data")
            if other and value_other is None and isinstance(value, str):
                value_other = value
        if other and value_other is not None:
            if not isinstance(value_other, str):
                raise TypeError(
                    f"{keys.get(other, other)} must be a column name of unlabeled when unlabeled is a Dask "
                    "DataFrame or Parquet files."
                )
            design_columns[other] = value_other
    read_columns = {**design_columns, **(unlabeled_columns or {})}
    meta = pd.DataFrame(columns=columns)
    referenced = {name for term in X.design_info.terms for factor in term.factors
                  for name in _referenced_columns(factor.name(), meta)}
    needed = list(dict.fromkeys([c for c in columns if c in referenced] + names + list(read_columns.values())))
    absent = [c for c in needed if c not in columns]
    if absent:
        raise ValueError(f"column(s) {absent} are not in unlabeled; it has {columns}.")
    used = {name for info in (outcome.design_info, X.design_info) for term in info.terms for factor in term.factors
            for name in _referenced_columns(factor.name(), labeled_frame)}
    labeled_columns = [c for c in labeled_frame.columns if c in used]
    partitions = FormulaPartitions(formula, labeled_frame[labeled_columns], names[0] if len(names) == 1 else names,
                                   read_columns, missing)
    if is_dask(unlabeled):
        source = DaskSource({"frame": unlabeled[needed]}, transform=partitions)
    else:
        source = ParquetSource(unlabeled.paths, transform=partitions, read=needed)

    def handle(key: str, ncols):
        return ChunkedInput(None, ncols, key, source=source, key=key)

    for other in design_columns:
        resolved[other] = handle(other, None)
    width = len(X.design_info.column_names)
    arguments = dict(
        y=outcome.iloc[:, 0],
        X=X,
        yhat=partitions.outcome(column(yhat, labeled_frame, labeled_index, X.index, "yhat", "data"), "yhat"),
        X_unlabeled=handle("X_unlabeled", width),
        yhat_unlabeled=handle("yhat_unlabeled", None if len(names) == 1 else len(names)),
        missing=missing,
        design=spec.with_options(resolved),
    )
    arguments.update({key: handle(key, None) for key in unlabeled_columns or {}})
    _check_levels(X, None)
    return arguments, (len(labeled_frame) - len(X), 0)


# -- trials: one data frame, a treatment term, covariates ---------------------------------------
def _build_terms(terms, frame: pd.DataFrame, formula: str, argument: str, intercept: bool = True):
    """Design columns of ``terms`` and patsy's ``DesignInfo``; rows patsy drops for
    missing values come back as NaN (the model drops or raises on them with its other columns)."""
    try:
        matrix = patsy.dmatrix(
            patsy.ModelDesc([], [patsy.INTERCEPT, *terms] if intercept else list(terms)), frame,
            NA_action="drop", return_type="dataframe",
        )
    except patsy.PatsyError as error:
        raise ValueError(f"could not build {argument} from formula {formula!r}: {error}") from None
    info = matrix.design_info
    matrix = matrix.reindex(frame.index)
    return (matrix.drop(columns="Intercept") if intercept else matrix), info


def _arm_labels(term, frame: pd.DataFrame, formula: str) -> tuple[pd.Series, object]:
    """Each row's arm label for the treatment term, and the control arm a Treatment() coding names.

    A plain column gives its values. An expression (``C(group)``,
    ``C(group, Treatment('placebo'))``, ``I(dose > 0)``) is evaluated by patsy: a
    categorical gives its levels, a numeric expression its values.
    """
    name = term.name()
    if len(term.factors) == 1 and term.factors[0].name() in frame.columns:
        return frame[term.factors[0].name()].rename(name), None
    full, info = _build_terms([term], frame, formula, "the treatment", intercept=False)
    factor_info = next(iter(info.factor_infos.values())) if len(term.factors) == 1 else None
    if factor_info is None or factor_info.type != "categorical":
        if full.shape[1] != 1:
            raise ValueError(
                f"the treatment term {name!r} expands into {full.shape[1]} columns {list(full.columns)}; it must "
                "be one variable of arm labels (a column of data, or C(column))."
            )
        return full.iloc[:, 0].rename(name), None
    levels = list(factor_info.categories)
    values = full.to_numpy()
    known = ~np.isnan(values).any(axis=1)
    labels = pd.Series([levels[k] if ok else None for k, ok in zip(values.argmax(axis=1), known)],
                       index=frame.index, name=name, dtype=object)
    control = None
    if "Treatment(" in term.factors[0].name():
        coded, _ = _build_terms([term], frame, formula, "the treatment")
        listed = {str(column).split("[T.", 1)[1][:-1] for column in coded.columns if "[T." in str(column)}
        reference = [level for level in levels if str(level) not in listed]
        control = reference[0] if len(reference) == 1 else None
    return labels, control


def trial_arguments(
    formula: str, data, *, treatment: str | None = None, columns: dict | None = None, design: Design | None = None,
) -> tuple[dict, object]:
    """Arguments of a trial's constructor from ``"outcome ~ arm + covariates"`` and one data frame.

    The treatment term is the first term of the right-hand side (or the term named
    ``treatment``); every other term is a baseline covariate, expanded by patsy; the
    formula's intercept is ignored. ``columns`` (name -> column name, array, number or
    None) and the design's options are read from ``data`` or aligned with its rows.

    Returns the keyword arguments ``y``, ``treatment``, ``X``, the ``columns`` and
    ``design``, and the control arm named by a ``Treatment()`` coding (or None).
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula must be a string like 'y ~ arm + age'; got {formula!r}.")
    frame, index = _frame(data, "data")
    try:
        description = patsy.ModelDesc.from_formula(formula)
    except patsy.PatsyError as error:
        raise ValueError(f"could not parse formula {formula!r}: {error}") from None
    terms = [term for term in description.rhs_termlist if term != patsy.INTERCEPT]
    if not terms:
        raise ValueError(f"formula {formula!r} has no treatment term on its right-hand side.")
    names = [term.name() for term in terms]
    if treatment is None:
        treatment_term = terms[0]
    elif treatment in names:
        treatment_term = terms[names.index(treatment)]
    else:
        raise ValueError(f"treatment={treatment!r} is not a term of the formula; its terms are {names}.")
    covariate_terms = [term for term in terms if term != treatment_term]
    outcome, _ = _build_terms(description.lhs_termlist, frame, formula, "the outcome")
    if outcome.shape[1] != 1:
        raise ValueError(
            f"the formula's outcome must be one numeric column; patsy expanded it into {list(outcome.columns)}."
        )
    labels, coded_control = _arm_labels(treatment_term, frame, formula)
    covariates = _build_terms(covariate_terms, frame, formula, "the covariates")[0] if covariate_terms else None

    def read(value, argument: str):
        if value is None or (np.ndim(value) == 0 and not isinstance(value, str)):
            return value  # absent, or one number for every row
        return column(value, frame, index, frame.index, argument, "data")

    arguments = dict(y=outcome.iloc[:, 0], treatment=labels, X=covariates)
    arguments.update({name: read(value, name) for name, value in (columns or {}).items()})
    if design is not None:
        resolved = {key: read(value, design.names.get(key, key)) for key, value in design.options.items()}
        arguments["design"] = design.with_options(resolved)
    return arguments, coded_control
