"""Linear hypotheses about the parameters: joint Wald tests and per-constraint t tests.

A hypothesis is a set of linear constraints ``R theta = q`` on the parameter
vector. It can be written as text in statsmodels' syntax (``"x1 = x2, x3 = 0"``),
as a mapping ``{name: value}``, or as arrays. The functions here need only the
estimates, their covariance and the parameter names, so every estimator with a
covariance can use them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from patsy import DesignInfo, PatsyError
from scipy import stats

from .inference import check_alpha
from .options import _suggestion

__all__ = [
    "ContrastResults",
    "WaldTestResults",
    "constraint_text",
    "linear_constraints",
    "null_vector",
    "t_test",
    "wald_test",
]

#: the forms a hypothesis can take (see linear_constraints)
ConstraintLike = Union[str, Sequence[str], Mapping[str, float], tuple, ArrayLike, pd.DataFrame, pd.Series]

#: an unsigned number as patsy's constraint parser reads it (signs are operators)
_NUMBER = re.compile(r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?")
#: characters of the constraint language besides names and numbers
_SYNTAX = set("+-*/=,()")
#: characters that continue a word: a name followed by one is part of an unknown name
_IDENTIFIER = re.compile(r"[\w.]")
#: characters that end an unknown name when quoting it back to the user
_WORD_END = re.compile(r"[\s,=+\-*/]")


# --------------------------------------------------------------------------- constraints


def linear_constraints(
    constraints: ConstraintLike, param_names: Sequence[str], *, independent: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a hypothesis into the matrix form ``R theta = q``.

    Parameters
    ----------
    constraints : str, list of str, mapping, tuple or array-like
        The hypothesis, in one of these forms:

        - a string in statsmodels' syntax: ``"x1 = x2, x3 = 0"`` (comma-separated
          constraints), ``"2*x1 + x2 = 1"``, ``"x1"`` (meaning ``x1 = 0``);
        - a list of such strings;
        - a mapping ``{name: value}``: each named parameter equals its value;
        - a tuple ``(R, q)``: ``R`` of shape ``(J, p)`` (or ``(p,)`` for one
          constraint) and ``q`` a scalar or ``J`` values;
        - an array ``R`` alone (then ``q = 0``); a DataFrame (or Series) ``R`` is
          matched to the parameters by its column (or index) labels, and
          parameters it does not name get coefficient 0.
    param_names : sequence of str
        The ``p`` parameter names, in the order of the parameter vector.
    independent : bool
        Require linearly independent constraints (needed by a joint Wald test).
        Pass False for a set of t tests such as all pairwise differences.

    Returns
    -------
    R : numpy.ndarray, shape (J, p)
    q : numpy.ndarray, shape (J,)

    Raises
    ------
    ValueError
        For an unknown parameter name (with the closest valid one), text that is
        both a parameter name and a number, an ``R`` with the wrong number of
        columns, a row of zeros, non-finite values, or (with ``independent``)
        linearly dependent constraints.

    Notes
    -----
    Text is read with patsy's constraint parser, the one statsmodels uses. Names
    are found first, by longest match, so that any name can be written as it
    is, including ``C(g)[T.b]``, ``np.log(x)``, ``x1:x2``, ``q=0.5`` and names
    that patsy alone misreads, such as ``(Intercept)`` or names made of digits.
    Where a name and a number are equally long matches (a parameter named
    ``"0"``) the text is ambiguous and is refused; use a mapping or arrays.

    Examples
    --------
    >>> R, q = linear_constraints("x1 = x2, 2*x3 = 1", ["Intercept", "x1", "x2", "x3"])
    >>> R
    array([[ 0.,  1., -1.,  0.],
           [ 0.,  0.,  0.,  2.]])
    >>> q
    array([0., 1.])
    >>> linear_constraints({"q=0.5": 1.0}, ["q=0.25", "q=0.5"])
    (array([[0., 1.]]), array([1.]))
    """
    names = _check_names(param_names)
    if isinstance(constraints, str):
        R, q = _parse_text([constraints], names)
    elif isinstance(constraints, Mapping):
        R, q = _from_mapping(constraints, names)
    elif isinstance(constraints, (list, tuple)) and len(constraints) > 0 and all(
        isinstance(item, str) for item in constraints
    ):
        R, q = _parse_text(list(constraints), names)
    elif isinstance(constraints, tuple) and len(constraints) == 2:
        R, q = constraints
    else:
        R, q = constraints, None
    R, q = _check_arrays(R, q, names)
    if independent:
        _check_independent(R, names)
    return R, q


def constraint_text(R: np.ndarray, q: np.ndarray, param_names: Sequence[str]) -> list[str]:
    """Write each constraint ``r_k' theta = q_k`` as one line of text.

    Parameters
    ----------
    R : numpy.ndarray, shape (J, p)
        Constraint rows.
    q : numpy.ndarray, shape (J,)
        Constraint values.
    param_names : sequence of str
        The ``p`` parameter names.

    Returns
    -------
    list of str
        One line per row, in the syntax :func:`linear_constraints` reads
        (coefficients shown to 6 significant digits).

    Examples
    --------
    >>> constraint_text(np.array([[1.0, -2.0], [0.0, 0.5]]), np.array([0.5, 0.0]), ["x1", "x2"])
    ['x1 - 2*x2 = 0.5', '0.5*x2 = 0']
    """
    lines = []
    for row, value in zip(R, q):
        terms = []
        for coefficient, name in zip(row, param_names):
            if coefficient == 0:
                continue
            size = "" if abs(coefficient) == 1 else f"{abs(coefficient):.6g}*"
            if terms:
                terms.append(f"{'-' if coefficient < 0 else '+'} {size}{name}")
            else:
                terms.append(f"{'-' if coefficient < 0 else ''}{size}{name}")
        lines.append(f"{' '.join(terms)} = {value + 0.0:.6g}")
    return lines


def _check_names(param_names) -> list[str]:
    if isinstance(param_names, str) or not isinstance(param_names, (Sequence, pd.Index, np.ndarray)):
        raise TypeError(f"param_names must be a sequence of parameter names; got {param_names!r}.")
    names = [str(name) for name in param_names]
    if not names:
        raise ValueError("param_names is empty; there must be at least one parameter.")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"param_names must be unique; repeated: {duplicated}.")
    return names


def _name_list(names: list[str], shown: int = 12) -> str:
    listed = ", ".join(map(repr, names[:shown]))
    return listed + (f", ... ({len(names)} in all)" if len(names) > shown else "")


def _unknown_name(name, names: list[str], argument: str) -> ValueError:
    return ValueError(
        f"{argument}: {name!r} is not a parameter name.{_suggestion(str(name), names)} "
        f"Parameters: {_name_list(names)}."
    )


def _from_mapping(mapping: Mapping, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if not mapping:
        raise ValueError("constraints is an empty mapping; give at least one {name: value}.")
    R = np.zeros((len(mapping), len(names)))
    q = np.zeros(len(mapping))
    for row, (name, value) in enumerate(mapping.items()):
        if str(name) not in names:
            raise _unknown_name(name, names, "constraints")
        R[row, names.index(str(name))] = 1.0
        q[row] = _number(value, f"constraints[{name!r}]")
    return R, q


def _number(value, argument: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{argument} must be a number; got {value!r}.") from None


def _parse_text(strings: list[str], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse constraint strings with patsy, after replacing each name by a placeholder."""
    placeholders = [f"__ppinfer_param_{k}__" for k in range(len(names))]
    design = DesignInfo(placeholders)
    rows, values = [], []
    for string in strings:
        if not string.strip():
            raise ValueError("constraints contains an empty string; write a constraint such as 'x1 = 0'.")
        try:
            constraint = design.linear_constraint(_substitute_names(string, names, placeholders))
        except PatsyError as error:
            message = error.message
            for placeholder, name in zip(placeholders, names):
                message = message.replace(placeholder, name)
            raise ValueError(
                f"constraints: cannot read {string!r}: {message}. Write constraints like "
                f"'x1 = x2, x3 = 0' or '2*x1 + x2 = 1' with the names {_name_list(names)}."
            ) from None
        rows.append(constraint.coefs)
        values.append(constraint.constants.ravel())
    return np.vstack(rows), np.concatenate(values)


def _substitute_names(string: str, names: list[str], placeholders: list[str]) -> str:
    """Replace every parameter name in ``string`` by its placeholder (longest match first).

    patsy tries operators and parentheses before names and names before numbers,
    so on its own it cannot read a name such as ``(Intercept)`` and reads a
    number as a parameter named like that number. Here a name wins over an
    operator, a longer match wins, a name that ties with a number is refused,
    and a name directly followed by a letter or digit is not a match.
    """
    placeholder_of = dict(zip(names, placeholders))
    name_pattern = re.compile("|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)))
    pieces, position = [], 0
    while position < len(string):
        name = name_pattern.match(string, position)
        number = _NUMBER.match(string, position)
        if name and _IDENTIFIER.match(name.group()[-1]) and _IDENTIFIER.match(string, name.end()):
            name = None  # only the start of a longer word, such as "x" in "x3"
        name_length = name.end() - position if name else 0
        number_length = number.end() - position if number else 0
        if name_length and name_length == number_length:
            raise ValueError(
                f"constraints: in {string!r}, {name.group()!r} is both a parameter name and a number. "
                "Give the constraints as a mapping {name: value} or as arrays (R, q) instead."
            )
        if name_length > number_length:
            pieces.append(f" {placeholder_of[name.group()]} ")
            position = name.end()
        elif number_length:
            pieces.append(number.group())
            position = number.end()
        elif string[position] in _SYNTAX or string[position].isspace():
            pieces.append(string[position])
            position += 1
        else:
            raise _unknown_name(_word_at(string, position), names, "constraints")
    return "".join(pieces)


def _word_at(string: str, position: int) -> str:
    """The unknown name that starts at ``position``, for the error message."""
    end = _WORD_END.search(string, position)
    word = string[position : end.start() if end else len(string)]
    while word.endswith(")") and word.count(")") > word.count("("):
        word = word[:-1]
    return word


def _check_arrays(R, q, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``R`` (J, p) and ``q`` (J,), aligning labeled ``R`` to the names."""
    p = len(names)
    if isinstance(R, (pd.DataFrame, pd.Series)):
        R = _align(R, names)
    try:
        R = np.array(R, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            "constraints must be a string, a list of strings, a mapping {name: value}, "
            f"an (R, q) tuple or a matrix R; got {R!r}."
        ) from None
    if R.ndim == 1:
        R = R[np.newaxis, :]
    if R.ndim != 2 or R.shape[0] == 0:
        raise ValueError(f"R must have shape (J, p) with J >= 1 constraints; got shape {R.shape}.")
    if R.shape[1] != p:
        raise ValueError(
            f"R has {R.shape[1]} columns but there are {p} parameters ({_name_list(names)}); "
            "give one column per parameter."
        )
    if not np.all(np.isfinite(R)):
        raise ValueError("R contains NaN or infinite values; every coefficient must be finite.")
    zero_rows = np.flatnonzero(~R.any(axis=1))
    if zero_rows.size:
        raise ValueError(f"R row {zero_rows[0]} is all zeros: it constrains no parameter. Remove it.")
    J = R.shape[0]
    if q is None:
        q = np.zeros(J)
    try:
        q = np.array(q, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"q must be a number or one number per constraint; got {q!r}.") from None
    q = np.full(J, float(q)) if q.ndim == 0 else q.reshape(-1)
    if q.shape != (J,):
        raise ValueError(f"q must be a scalar or have one value per constraint ({J}); got {q.size} values.")
    if not np.all(np.isfinite(q)):
        raise ValueError("q contains NaN or infinite values; every constraint value must be finite.")
    return R, q


def _align(R: pd.DataFrame | pd.Series, names: list[str]) -> np.ndarray:
    """Columns of a DataFrame (index of a Series) matched to the names; unlabeled ones by position."""
    labels = R.columns if isinstance(R, pd.DataFrame) else R.index
    if isinstance(labels, pd.RangeIndex):
        return R.to_numpy()
    unknown = [label for label in labels if str(label) not in names]
    if unknown:
        raise _unknown_name(unknown[0], names, "R")
    if labels.has_duplicates:
        raise ValueError(f"R names a parameter twice: {sorted(set(labels[labels.duplicated()]))}.")
    R = R.rename(str, axis=1 if isinstance(R, pd.DataFrame) else 0)
    if isinstance(R, pd.DataFrame):
        return R.reindex(columns=names, fill_value=0.0).to_numpy()
    return R.reindex(names, fill_value=0.0).to_numpy()


def _check_independent(R: np.ndarray, names: list[str]) -> None:
    rank = np.linalg.matrix_rank(R)
    if rank == R.shape[0]:
        return
    # the first row that the rows above it already imply
    first = next(k for k in range(R.shape[0]) if np.linalg.matrix_rank(R[: k + 1]) <= k)
    lines = constraint_text(R, np.zeros(R.shape[0]), names)
    raise ValueError(
        f"The {R.shape[0]} constraints are linearly dependent (rank {rank}): constraint {first} "
        f"({lines[first].rsplit(' = ', 1)[0]}) is a combination of the ones before it. "
        "Remove the redundant constraints."
    )


# --------------------------------------------------------------------------- null values


def null_vector(
    null: float | Sequence[float] | Mapping[str, float] | pd.Series, param_names: Sequence[str]
) -> np.ndarray:
    """One null value per parameter, for single-parameter tests.

    Parameters
    ----------
    null : float, sequence, pandas.Series or mapping
        A number for every parameter; one number per parameter; or a Series or
        mapping ``{name: value}`` naming some parameters (the others keep 0).
    param_names : sequence of str
        The parameter names, in order.

    Returns
    -------
    numpy.ndarray, shape (p,)

    Examples
    --------
    >>> null_vector({"x1": 0.5}, ["Intercept", "x1", "x2"])
    array([0. , 0.5, 0. ])
    >>> null_vector(1, ["a", "b"])
    array([1., 1.])
    """
    names = _check_names(param_names)
    p = len(names)
    if isinstance(null, pd.Series):
        if null.index.has_duplicates:
            raise ValueError(f"null is a Series with repeated labels {sorted(set(null.index[null.index.duplicated()]))}.")
        null = null.to_dict()
    if isinstance(null, Mapping):
        values = np.zeros(p)
        for name, value in null.items():
            if str(name) not in names:
                raise _unknown_name(name, names, "null")
            values[names.index(str(name))] = _number(value, f"null[{name!r}]")
    else:
        try:
            values = np.array(null, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"null must be a number, one number per parameter, or a mapping {{name: value}}; got {null!r}."
            ) from None
        if values.ndim == 0:
            values = np.full(p, float(values))
        if values.shape != (p,):
            raise ValueError(
                f"null must be a scalar, a mapping {{name: value}} or have one value per parameter ({p}); "
                f"got shape {values.shape}."
            )
    if not np.all(np.isfinite(values)):
        raise ValueError("null contains NaN or infinite values; null values must be finite.")
    return values


# --------------------------------------------------------------------------- tests


@dataclass(frozen=True, repr=False)
class WaldTestResults:
    """A joint Wald test of ``R theta = q`` (read-only).

    Attributes
    ----------
    statistic : float
        ``W`` for the chi2 form, ``W / J`` for the F form.
    df_num : int
        Number of constraints ``J``.
    df_denom : float or None
        Denominator degrees of freedom of the F form; None for chi2.
    pvalue : float
    distribution : {"chi2", "F"}
    constraints : tuple of str
        The constraints, one per line of text.
    """

    statistic: float
    df_num: int
    df_denom: float | None
    pvalue: float
    distribution: str
    constraints: tuple[str, ...]

    def summary_frame(self) -> pd.DataFrame:
        """One row: statistic, df_num, df_denom, pvalue and distribution, labeled by the constraints."""
        return pd.DataFrame(
            {
                "statistic": [self.statistic],
                "df_num": [self.df_num],
                "df_denom": [np.nan if self.df_denom is None else self.df_denom],
                "pvalue": [self.pvalue],
                "distribution": [self.distribution],
            },
            index=pd.Index([", ".join(self.constraints)], name="constraints"),
        )

    def _statistic_text(self) -> str:
        if self.distribution == "F":
            return f"F({self.df_num}, {self.df_denom:g}) = {self.statistic:.4g}"
        return f"chi2({self.df_num}) = {self.statistic:.4g}"

    def __repr__(self) -> str:
        return f"<WaldTestResults: {self._statistic_text()}, p-value = {self.pvalue:.4g}>"

    def __str__(self) -> str:
        plural = "s" if self.df_num > 1 else ""
        lines = [f"Wald test ({self.distribution}) of {self.df_num} constraint{plural}:"]
        lines += [f"    {constraint}" for constraint in self.constraints]
        lines.append(f"{self._statistic_text()}, p-value = {self.pvalue:.4g}")
        return "\n".join(lines)


@dataclass(frozen=True, repr=False, eq=False)
class ContrastResults:
    """t (or z) tests of ``R theta = q``, one per constraint (read-only).

    Attributes
    ----------
    effect : numpy.ndarray
        The estimates ``R theta_hat``.
    sd : numpy.ndarray
        Their standard errors.
    statistic : numpy.ndarray
        ``(R theta_hat - q) / sd``.
    pvalue : numpy.ndarray
        Two-sided p-values.
    df_denom : float, numpy.ndarray or None
        Degrees of freedom of the t distribution (one or one per row); None for
        the normal distribution.
    distribution : {"t", "norm"}
    names : tuple of str
        The constraints as text, one per row.
    """

    effect: np.ndarray
    sd: np.ndarray
    statistic: np.ndarray
    pvalue: np.ndarray
    df_denom: float | np.ndarray | None
    distribution: str
    names: tuple[str, ...]

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Two-sided ``1 - alpha`` intervals for ``R theta``: columns ``lower`` and ``upper``."""
        alpha = check_alpha(alpha)
        if self.distribution == "t":
            critical = stats.t.isf(alpha / 2.0, self.df_denom)
        else:
            critical = stats.norm.isf(alpha / 2.0)
        half = critical * self.sd
        return pd.DataFrame(
            {"lower": self.effect - half, "upper": self.effect + half}, index=pd.Index(self.names, name="constraint")
        )

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """One row per constraint: coef, std err, t (or z), P>|t| (or P>|z|), lower, upper."""
        letter = "t" if self.distribution == "t" else "z"
        frame = pd.DataFrame(
            {"coef": self.effect, "std err": self.sd, letter: self.statistic, f"P>|{letter}|": self.pvalue},
            index=pd.Index(self.names, name="constraint"),
        )
        return frame.join(self.conf_int(alpha))

    def __repr__(self) -> str:
        rows = ", ".join(f"{name}: p={p:.4g}" for name, p in zip(self.names, self.pvalue))
        return f"<ContrastResults ({self.distribution}) {rows}>"

    def __str__(self) -> str:
        title = "t tests" if self.distribution == "t" else "z tests"
        return f"{title} of linear constraints\n" + self.summary_frame().to_string(float_format=lambda v: f"{v:.4g}")


def wald_test(
    params: ArrayLike | pd.Series,
    cov: ArrayLike | pd.DataFrame,
    R: ArrayLike,
    q: float | ArrayLike | None = None,
    *,
    df: float | None = None,
    use_f: bool = False,
    param_names: Sequence[str] | None = None,
) -> WaldTestResults:
    """Joint Wald test of the linear hypothesis ``R theta = q``.

    Parameters
    ----------
    params : array-like or pandas.Series, shape (p,)
        Estimates.
    cov : array-like or pandas.DataFrame, shape (p, p)
        Their covariance. NaN entries (covariances a model does not estimate)
        are allowed where the constraints do not need them.
    R : array-like, shape (J, p) or (p,)
        Linearly independent constraint rows (see :func:`linear_constraints`).
    q : float or array-like, shape (J,), optional
        Constraint values; 0 by default.
    df : float, optional
        Denominator degrees of freedom of the F form (such as the residual
        degrees of freedom). Required when ``use_f`` is True.
    use_f : bool
        Report ``W / J`` against F(J, df) instead of ``W`` against chi2(J).
    param_names : sequence of str, optional
        Names used to write the constraints as text; by default the index of a
        ``params`` Series, else ``theta[0]``, ``theta[1]``, ...

    Returns
    -------
    WaldTestResults

    Notes
    -----
    .. math::

        W = (R\\hat\\theta - q)^\\top (R V R^\\top)^{-1} (R\\hat\\theta - q)

    is asymptotically chi2 with ``J`` degrees of freedom under the null when
    ``V`` estimates the covariance of ``theta_hat`` consistently (Wald 1943;
    e.g. Greene, *Econometric Analysis*, 2018, sec. 5.4). The F form
    ``W / J ~ F(J, df)`` is the usual small-sample refinement; it is exact
    for OLS with homoskedastic normal errors and the classical covariance, and
    equals statsmodels' ``wald_test(..., use_f=True)``.

    Examples
    --------
    >>> result = wald_test([1.0, 0.5], [[0.04, 0.0], [0.0, 0.01]], [[0.0, 1.0]], [0.0],
    ...                    param_names=["Intercept", "x"])
    >>> result.statistic, result.df_num
    (25.0, 1)
    >>> result
    <WaldTestResults: chi2(1) = 25, p-value = 5.733e-07>
    """
    if not isinstance(use_f, (bool, np.bool_)):
        raise TypeError(f"use_f must be True or False; got {use_f!r}.")
    params, cov, names = _check_estimates(params, cov, param_names)
    R, q = _check_arrays(R, q, names)
    _check_independent(R, names)
    text = constraint_text(R, q, names)
    covariance = _constraint_covariance(cov, R, names, text, joint=True)
    if np.linalg.matrix_rank(covariance, hermitian=True) < R.shape[0]:
        raise ValueError(
            "The covariance of the constraints, R cov R', is singular, so the Wald statistic is "
            "undefined: cov is not positive definite in the directions that R tests."
        )
    difference = R @ params - q
    wald = float(difference @ np.linalg.solve(covariance, difference))
    J = R.shape[0]
    if use_f:
        if df is None:
            raise ValueError("use_f=True needs df, the denominator degrees of freedom (e.g. the residual df).")
        df = _check_df(df, scalar=True)
        statistic = wald / J
        return WaldTestResults(statistic, J, df, float(stats.f.sf(statistic, J, df)), "F", tuple(text))
    return WaldTestResults(wald, J, None, float(stats.chi2.sf(wald, J)), "chi2", tuple(text))


def t_test(
    params: ArrayLike | pd.Series,
    cov: ArrayLike | pd.DataFrame,
    R: ArrayLike,
    q: float | ArrayLike | None = None,
    *,
    df: float | Sequence[float] | None = None,
    param_names: Sequence[str] | None = None,
) -> ContrastResults:
    """t (or z) test of each linear constraint ``r_k' theta = q_k`` separately.

    Parameters
    ----------
    params : array-like or pandas.Series, shape (p,)
        Estimates.
    cov : array-like or pandas.DataFrame, shape (p, p)
        Their covariance. NaN entries are allowed where no row needs them, so a
        row that involves one parameter only always works.
    R : array-like, shape (J, p) or (p,)
        Constraint rows; they need not be linearly independent.
    q : float or array-like, shape (J,), optional
        Constraint values; 0 by default.
    df : float or array-like, shape (J,), optional
        Degrees of freedom of the t distribution, one for all rows or one per
        row. By default the normal distribution is used.
    param_names : sequence of str, optional
        Names used to write the constraints as text (the row labels); by default
        the index of a ``params`` Series, else ``theta[0]``, ``theta[1]``, ...

    Returns
    -------
    ContrastResults

    Notes
    -----
    For row ``r_k``: estimate ``r_k' theta_hat``, standard error
    ``sqrt(r_k' V r_k)``, statistic ``(r_k' theta_hat - q_k) / se`` against
    t(df) or N(0, 1), and interval ``r_k' theta_hat -/+ c * se`` with ``c``
    the matching ``1 - alpha/2`` quantile. These equal statsmodels'
    ``t_test`` (e.g. Greene, *Econometric Analysis*, 2018, sec. 5.3).

    Examples
    --------
    >>> result = t_test([1.0, 0.5], [[0.04, 0.0], [0.0, 0.01]], [[1.0, -1.0]],
    ...                 param_names=["a", "b"])
    >>> result.summary_frame().round(4)  # doctest: +NORMALIZE_WHITESPACE
                coef  std err       z   P>|z|   lower   upper
    constraint
    a - b = 0    0.5   0.2236  2.2361  0.0253  0.0617  0.9383
    """
    params, cov, names = _check_estimates(params, cov, param_names)
    R, q = _check_arrays(R, q, names)
    text = constraint_text(R, q, names)
    variance = _constraint_covariance(cov, R, names, text, joint=False)
    if np.any(variance <= 0):
        row = int(np.flatnonzero(variance <= 0)[0])
        raise ValueError(
            f"The standard error of constraint {text[row]!r} is zero or negative "
            f"(variance {variance[row]:.3g}); cov is not positive definite in that direction."
        )
    effect = R @ params
    sd = np.sqrt(variance)
    statistic = (effect - q) / sd
    if df is None:
        pvalue, distribution = 2.0 * stats.norm.sf(np.abs(statistic)), "norm"
    else:
        df = _check_df(df, scalar=False, rows=R.shape[0])
        pvalue, distribution = 2.0 * stats.t.sf(np.abs(statistic), df), "t"
    arrays = [_read_only(array) for array in (effect, sd, statistic, pvalue)]
    df = _read_only(df) if isinstance(df, np.ndarray) else df
    return ContrastResults(*arrays, df, distribution, tuple(text))


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _check_df(df, *, scalar: bool, rows: int = 1):
    """Degrees of freedom: a positive number, or (when not ``scalar``) one per row."""
    try:
        values = np.array(df, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"df must be a positive number; got {df!r}.") from None
    if values.ndim > 0 and (scalar or values.shape != (rows,)):
        shape = "a single number" if scalar else f"a number or one number per constraint ({rows})"
        raise ValueError(f"df must be {shape}; got shape {values.shape}.")
    if np.any(np.isnan(values)) or np.any(values <= 0):
        raise ValueError(f"df must be positive (degrees of freedom); got {df!r}.")
    return float(values) if values.ndim == 0 else values


def _check_estimates(params, cov, param_names) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate the estimates and covariance; return arrays and names."""
    if param_names is None and isinstance(params, pd.Series):
        param_names = params.index
    try:
        params = np.array(params, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"params must be a vector of numbers; got {params!r}.") from None
    if params.ndim != 1 or params.size == 0:
        raise ValueError(f"params must be one-dimensional with at least one entry; got shape {params.shape}.")
    p = params.size
    names = _check_names([f"theta[{k}]" for k in range(p)] if param_names is None else param_names)
    if len(names) != p:
        raise ValueError(f"param_names has {len(names)} names but params has {p} entries.")
    if not np.all(np.isfinite(params)):
        raise ValueError("params contains NaN or infinite values; the estimates must be finite.")
    if isinstance(cov, pd.DataFrame):
        labels = [str(label) for label in cov.index], [str(label) for label in cov.columns]
        if not isinstance(cov.index, pd.RangeIndex) and labels != (names, names):
            if set(labels[0]) != set(names) or set(labels[1]) != set(names):
                raise ValueError(
                    f"cov is labeled {_name_list(labels[1])} but the parameters are {_name_list(names)}."
                )
            cov = cov.set_axis(labels[0], axis=0).set_axis(labels[1], axis=1).loc[names, names]
    try:
        cov = np.array(cov, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"cov must be a matrix of numbers; got {cov!r}.") from None
    if cov.shape != (p, p):
        raise ValueError(f"cov must have shape ({p}, {p}), one row and column per parameter; got {cov.shape}.")
    if np.any(np.isinf(cov)):
        raise ValueError("cov contains infinite values.")
    if not np.allclose(cov, cov.T, equal_nan=True, rtol=1e-10, atol=0.0):
        raise ValueError("cov must be symmetric.")
    return params, cov, names


def _constraint_covariance(
    cov: np.ndarray, R: np.ndarray, names: list[str], text: list[str], *, joint: bool
) -> np.ndarray:
    """``R cov R'`` (``joint``) or its diagonal, refusing to use NaN (unestimated) entries.

    A joint test needs the covariances of every pair of parameters that any
    constraint involves; a single row needs only those of its own parameters.
    """
    missing = np.isnan(cov)
    if missing.any():
        used = R != 0
        supports, labels = ([used.any(axis=0)], [", ".join(text)]) if joint else (used, text)
        for support, label in zip(supports, labels):
            needed = np.argwhere(np.outer(support, support) & missing)
            if needed.size:
                i, j = needed[0]
                what = f"variance of {names[i]!r}" if i == j else f"covariance of {names[i]!r} and {names[j]!r}"
                raise ValueError(
                    f"cov has no estimate (NaN) of the {what}, which the constraint {label!r} needs. "
                    "Test the parameters whose covariance is missing one at a time (t_test), or refit "
                    "with a covariance that covers them jointly."
                )
        cov = np.where(missing, 0.0, cov)
    if joint:
        return R @ cov @ R.T
    return np.einsum("ki,ij,kj->k", R, cov, R)
