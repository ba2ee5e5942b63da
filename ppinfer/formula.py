"""Formula entry points: ``ppinfer.ols("y ~ x1 + C(group)", data=..., unlabeled=..., yhat=...)``.

Formulas are parsed by patsy, as in statsmodels. The unlabeled design is built
with the labeled data's design specification, so both share the same columns,
categorical levels and transformations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy

from ._options import choose, reject_unknown_keywords
from .data import MISSING_OPTIONS


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


def _column(
    value, frame: pd.DataFrame, index: pd.Index, rows: pd.Index, argument: str, frame_name: str
) -> pd.Series | pd.DataFrame:
    """Values for the design's rows: column name(s) of ``frame`` or an array over its rows."""
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        missing = [c for c in ([value] if isinstance(value, str) else value) if c not in frame.columns]
        if missing:
            raise ValueError(f"{argument}={value!r}: {missing} not column(s) of {frame_name}.")
        values = frame[value]
    else:
        if isinstance(value, (pd.Series, pd.DataFrame)):
            if len(value) != len(frame):
                raise ValueError(f"{argument} has {len(value)} rows but {frame_name} has {len(frame)}.")
            values = _aligned(value, index, argument, frame_name)
        else:
            array = np.asarray(value)
            values = pd.Series(array, name=argument) if array.ndim == 1 else pd.DataFrame(array)
        if len(values) != len(frame):
            raise ValueError(f"{argument} has {len(values)} rows but {frame_name} has {len(frame)}.")
    return values.iloc[rows.to_numpy()].set_axis(rows)


#: design options passed through to the model: (labeled argument, unlabeled counterpart)
ROW_OPTIONS = (
    ("weights", "weights_unlabeled"),
    ("groups", "groups_unlabeled"),
    ("strata", "strata_unlabeled"),
    ("label_prob", None),
)


def design_from_formula(
    formula: str,
    data,
    unlabeled,
    yhat,
    yhat_unlabeled=None,
    *,
    missing: str = "raise",
    function: str = "from_formula",
    **options,
) -> dict:
    """Arrays for a regression model from a formula and two data frames.

    ``options`` are the models' row options (``weights``, ``groups``, ``strata``,
    ``label_prob`` and their ``*_unlabeled`` counterparts): column names or arrays
    over the rows of the matching data frame. A column name given for a labeled
    option also supplies its unlabeled counterpart when ``unlabeled`` has that
    column. ``stratum_weights`` is passed on as it is. Returns the keyword arguments of the model's constructor.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula must be a string like 'y ~ x1 + x2'; got {formula!r}.")
    missing = choose(missing, MISSING_OPTIONS, "missing")
    labeled_frame, labeled_index = _frame(data, "data")
    unlabeled_frame, unlabeled_index = _frame(unlabeled, "unlabeled")
    try:
        outcome, design = patsy.dmatrices(formula, labeled_frame, NA_action="drop", return_type="dataframe")
    except patsy.PatsyError as error:
        raise ValueError(f"could not build the design from formula {formula!r} and data: {error}") from None
    if outcome.shape[1] != 1:
        raise ValueError(
            f"the formula's outcome must be one numeric column; patsy expanded it into {list(outcome.columns)}. "
            "Code a binary outcome as 0/1."
        )
    if missing == "raise" and len(design) < len(labeled_frame):
        raise ValueError(_dropped_message(labeled_frame, design.index, "data"))
    try:
        (design_unlabeled,) = patsy.build_design_matrices(
            [design.design_info], unlabeled_frame, NA_action="drop", return_type="dataframe"
        )
    except patsy.PatsyError as error:
        raise ValueError(
            f"could not build the unlabeled design with the labeled data's specification: {error}. "
            "Every variable of the formula's right-hand side must be in unlabeled, with categorical "
            "levels that occur in data."
        ) from None
    if missing == "raise" and len(design_unlabeled) < len(unlabeled_frame):
        raise ValueError(_dropped_message(unlabeled_frame, design_unlabeled.index, "unlabeled"))
    if yhat_unlabeled is None:
        if not isinstance(yhat, str):
            raise ValueError("yhat_unlabeled is required when yhat is not a column name shared by both data frames.")
        yhat_unlabeled = yhat
    arguments = dict(
        y=outcome.iloc[:, 0],
        X=design,
        yhat=_column(yhat, labeled_frame, labeled_index, design.index, "yhat", "data"),
        X_unlabeled=design_unlabeled,
        yhat_unlabeled=_column(yhat_unlabeled, unlabeled_frame, unlabeled_index, design_unlabeled.index, "yhat_unlabeled", "unlabeled"),
        missing=missing,
    )
    for labeled_option, unlabeled_option in ROW_OPTIONS:
        value = options.pop(labeled_option, None)
        other = options.pop(unlabeled_option, None) if unlabeled_option else None
        if value is not None:
            arguments[labeled_option] = _column(
                value, labeled_frame, labeled_index, design.index, labeled_option, "data"
            )
            if other is None and isinstance(value, str) and unlabeled_option and value in unlabeled_frame.columns:
                other = value
        if other is not None:
            arguments[unlabeled_option] = _column(
                other, unlabeled_frame, unlabeled_index, design_unlabeled.index, unlabeled_option, "unlabeled"
            )
    if "stratum_weights" in options:
        arguments["stratum_weights"] = options.pop("stratum_weights")
    accepted = ["missing", "stratum_weights"] + [option for pair in ROW_OPTIONS for option in pair if option]
    reject_unknown_keywords(function, options, accepted)
    return arguments


_FORMULA_DOC = """Prediction-powered {title} from a formula.

    Parameters
    ----------
    formula : str
        Patsy formula, e.g. ``"y ~ x1 + np.log(x2) + C(group)"``. An intercept is
        added unless the formula removes it (``- 1``).
    data : pandas.DataFrame
        Labeled data: the outcome, the right-hand-side variables and (if ``yhat``
        is a column name) the predictions.
    unlabeled : pandas.DataFrame
        Unlabeled data: the right-hand-side variables and the predictions. Its
        design is built with ``data``'s specification (same columns and levels).
    yhat : str or array-like
        Predictions for the labeled rows: a column of ``data`` (and, unless
        ``yhat_unlabeled`` is given, of ``unlabeled``) or one value per row of ``data``.
    yhat_unlabeled : str or array-like, optional
        Predictions for the unlabeled rows, when not the column ``yhat`` of ``unlabeled``.
    missing : {{"raise", "drop"}}
        Rows with missing values: raise (default) or drop them consistently.
    weights, weights_unlabeled, groups, groups_unlabeled, strata, strata_unlabeled, label_prob : str or array-like, optional
        The model's row options (see :class:`{cls}`), as column names or arrays
        over the rows of ``data`` (or ``unlabeled``). A column name given for
        ``weights``, ``groups`` or ``strata`` is also read from ``unlabeled``
        when it has that column.
    stratum_weights : mapping, optional
        Population share of each stratum (see :class:`{cls}`).

    Returns
    -------
    {cls}
        Call ``.fit()`` on it. Parameter names are the formula's terms.
    """


def ols(formula: str, data, unlabeled, yhat, yhat_unlabeled=None, *, missing: str = "raise", **options):
    from .regression import OLS

    return OLS.from_formula(formula, data, unlabeled, yhat, yhat_unlabeled, missing=missing, **options)


def logit(formula: str, data, unlabeled, yhat, yhat_unlabeled=None, *, missing: str = "raise", **options):
    from .regression import Logit

    return Logit.from_formula(formula, data, unlabeled, yhat, yhat_unlabeled, missing=missing, **options)


def poisson(formula: str, data, unlabeled, yhat, yhat_unlabeled=None, *, missing: str = "raise", **options):
    from .regression import Poisson

    return Poisson.from_formula(formula, data, unlabeled, yhat, yhat_unlabeled, missing=missing, **options)


ols.__doc__ = _FORMULA_DOC.format(title="ordinary least squares", cls="ppinfer.OLS")
logit.__doc__ = _FORMULA_DOC.format(title="logistic regression", cls="ppinfer.Logit")
poisson.__doc__ = _FORMULA_DOC.format(title="Poisson regression", cls="ppinfer.Poisson")
