"""The formula interface of :class:`~ppinfer.trials.model.TreatmentEffect`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy

from .model import TreatmentEffect


def _parse(formula: str, data) -> tuple[pd.DataFrame, patsy.ModelDesc]:
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula must be a string like 'y ~ arm + age'; got {formula!r}.")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame; got {type(data).__name__}.")
    try:
        description = patsy.ModelDesc.from_formula(formula)
    except patsy.PatsyError as error:
        raise ValueError(f"could not parse formula {formula!r}: {error}") from None
    return data.reset_index(drop=True), description


def _build(terms, frame: pd.DataFrame, formula: str, argument: str, intercept: bool = True):
    """Design columns of ``terms`` and patsy's ``DesignInfo``; rows patsy drops for
    missing values come back as NaN."""
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
    full, info = _build([term], frame, formula, "the treatment", intercept=False)
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
        coded, _ = _build([term], frame, formula, "the treatment")
        listed = {str(column).split("[T.", 1)[1][:-1] for column in coded.columns if "[T." in str(column)}
        reference = [level for level in levels if str(level) not in listed]
        control = reference[0] if len(reference) == 1 else None
    return labels, control


def _column(value, frame: pd.DataFrame, argument: str):
    """A column of ``data`` named by ``value``, or ``value`` aligned with the rows."""
    if isinstance(value, str):
        if value not in frame.columns:
            raise ValueError(f"{argument}={value!r} is not a column of data.")
        return frame[value]
    if value is None or np.ndim(value) == 0:
        return value
    values = value.reset_index(drop=True) if isinstance(value, pd.Series) else np.asarray(value)
    if len(values) != len(frame):
        raise ValueError(f"{argument} has {len(values)} values but data has {len(frame)} rows.")
    return values if isinstance(values, pd.Series) else pd.Series(values, index=frame.index, name=argument)


def treatment_effect(
    formula: str,
    data,
    prognostic=None,
    propensity=None,
    *,
    treatment: str | None = None,
    treated=None,
    control=None,
    strata=None,
    observed_prob=None,
    family: str | None = None,
    lin_variance: str = "superpopulation",
    missing: str = "raise",
    cov_type: str | None = None,
) -> TreatmentEffect:
    """A :class:`TreatmentEffect` from a formula, ``"outcome ~ arm + covariates"``.

    Parameters
    ----------
    formula : str
        Patsy formula. The left-hand side is the outcome. On the right, the
        treatment term is the first term (or the term named by ``treatment``): a
        column of arm labels (``arm``), or a categorical expression such as
        ``C(group, Treatment("placebo"))``, whose reference level is then the
        control. Every other term is a baseline covariate of ``X``, expanded by
        patsy as in statsmodels (categoricals get reference coding). The
        formula's intercept is ignored: the methods add their own.
    data : pandas.DataFrame
        The trial, one row per randomised unit.
    prognostic : str or array-like, optional
        The prognostic score: a column of ``data`` or one value per row.
    propensity : float, str or array-like, optional
        Known randomisation probability of the treated arm: a number, a column of
        ``data`` or one value per row.
    treatment : str, optional
        Name of the treatment term when it is not the first one.
    treated, control : optional
        Labels of the treated and control arms; needed unless the arm is 0/1 or
        boolean (see :class:`TreatmentEffect`).
    strata, observed_prob : str or array-like, optional
        Randomisation strata, and known observation probabilities of the
        outcomes: columns of ``data`` or one value per row.
    family, lin_variance, missing, cov_type
        As in :class:`TreatmentEffect`. Rows with a missing value in a right-hand
        side variable raise or are dropped; a missing outcome with a prognostic
        score makes the unit one whose outcome is predicted.

    Returns
    -------
    TreatmentEffect

    Examples
    --------
    >>> import numpy as np, pandas as pd, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> trial = pd.DataFrame({"arm": rng.permutation(np.repeat(["placebo", "active"], 50)),
    ...                       "age": rng.normal(60, 8, 100)})
    >>> trial["y"] = 1.0 * (trial["arm"] == "active") + 0.05 * trial["age"] + rng.normal(size=100)
    >>> te = ppinfer.treatment_effect("y ~ arm + age", data=trial, treated="active")
    >>> res = te.fit(method="ancova")
    >>> res.params.index.tolist()
    ['active - placebo']
    """
    frame, description = _parse(formula, data)
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
    outcome, _ = _build(description.lhs_termlist, frame, formula, "the outcome")
    if outcome.shape[1] != 1:
        raise ValueError(
            f"the formula's outcome must be one numeric column; patsy expanded it into {list(outcome.columns)}."
        )
    labels, coded_control = _arm_labels(treatment_term, frame, formula)
    if control is None and treated is None:
        control = coded_control
    covariates = _build(covariate_terms, frame, formula, "the covariates")[0] if covariate_terms else None
    return TreatmentEffect(
        outcome.iloc[:, 0],
        labels,
        X=covariates,
        prognostic=_column(prognostic, frame, "prognostic"),
        propensity=_column(propensity, frame, "propensity"),
        treated=treated,
        control=control,
        strata=_column(strata, frame, "strata"),
        observed_prob=_column(observed_prob, frame, "observed_prob"),
        family=family,
        lin_variance=lin_variance,
        missing=missing,
        cov_type=cov_type,
    )
