"""The formula interface of :class:`~ppinfer.trials.model.TreatmentEffect` (parsed by :mod:`ppinfer.core.formula`)."""

from __future__ import annotations

from ..designs.base import Design
from .model import TreatmentEffect


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
    clusters=None,
    weights=None,
    design: Design | None = None,
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
    strata, clusters, weights, observed_prob : str or array-like, optional
        Randomisation strata, clusters (units randomised by cluster), unit weights,
        and known observation probabilities of the outcomes: columns of ``data``
        or one value per row.
    design : ppinfer.Design, optional
        The design (``weights``, ``clusters``, ``strata``) as an object, its options
        given as column names of ``data`` or arrays.
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
    return TreatmentEffect.from_formula(
        formula, data, prognostic, propensity, treatment=treatment, treated=treated, control=control, strata=strata,
        clusters=clusters, weights=weights, design=design, observed_prob=observed_prob, family=family,
        lin_variance=lin_variance, missing=missing, cov_type=cov_type,
    )
