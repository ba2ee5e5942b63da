"""Bad input: each is a ValueError or TypeError whose message names the argument at fault.

Also the documented fallbacks: ``missing="drop"`` (checked against fits on data cleaned
by hand), constant predictions (lambda 0 with a PPIWarning, equal to the classical fit),
and reordered DataFrame columns (matched by name).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import ppinfer

REGRESSIONS = {"OLS": ppinfer.OLS, "Logit": ppinfer.Logit, "Poisson": ppinfer.Poisson}
ALL_MODELS = ("Mean", "Quantile", "OLS", "Logit", "Poisson")
N_LABELED, N_UNLABELED = 60, 240


def arguments(model: str, seed: int = 0, n: int = N_LABELED, N: int = N_UNLABELED) -> dict:
    """Valid constructor arguments for ``model`` (NumPy arrays)."""
    rng = np.random.default_rng(seed)
    if model in ("Mean", "Quantile"):
        y = rng.normal(1.0, 1.0, n + N)
        yhat = y + rng.normal(0.2, 0.7, n + N)
        return dict(y=y[:n], yhat=yhat[:n], yhat_unlabeled=yhat[n:])
    X = np.column_stack([np.ones(n + N), rng.normal(size=n + N), rng.uniform(-1, 1, n + N)])
    eta = X @ np.array([0.2, 0.6, -0.4])
    if model == "OLS":
        y = eta + rng.normal(size=n + N)
        yhat = 0.8 * y + rng.normal(0.1, 0.6, n + N)
    elif model == "Logit":
        y = (rng.uniform(size=n + N) < 1 / (1 + np.exp(-eta))).astype(float)
        yhat = 1 / (1 + np.exp(-(eta + (y - 0.5) + rng.normal(0.0, 0.5, n + N))))
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
        yhat = np.exp(0.1 + 0.6 * np.log1p(y) + rng.normal(0.0, 0.3, n + N))
    return dict(y=y[:n], X=X[:n], yhat=yhat[:n], X_unlabeled=X[n:], yhat_unlabeled=yhat[n:])


def build(model: str, **kwargs):
    constructor = {"Mean": ppinfer.Mean, "Quantile": ppinfer.Quantile, **REGRESSIONS}[model]
    return constructor(**kwargs)


def labeled_keys(model):
    return ["y", "yhat"] + (["X"] if model in REGRESSIONS else [])


def unlabeled_keys(model):
    return ["yhat_unlabeled"] + (["X_unlabeled"] if model in REGRESSIONS else [])


def argument_cases(models=ALL_MODELS):
    return [(model, key) for model in models for key in labeled_keys(model) + unlabeled_keys(model)]


def assert_same_fit(left, right, rtol=1e-12):
    np.testing.assert_allclose(left.params.to_numpy(), right.params.to_numpy(), rtol=rtol, atol=1e-14)
    np.testing.assert_allclose(left.bse.to_numpy(), right.bse.to_numpy(), rtol=rtol)


# --------------------------------------------------------------------------------------
# missing and non-finite values
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("model, key", argument_cases())
def test_non_finite_values_raise_naming_the_argument(model, key, value):
    kwargs = arguments(model)
    array = kwargs[key].copy()
    array[5] = value  # a row of a 2-D design, or one value of a vector
    kwargs[key] = array
    with pytest.raises(ValueError, match=rf"^{key} has 1 row\(s\) with NaN or infinite values \(first at position 5\).*missing='drop'"):
        build(model, **kwargs)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_missing_drop_removes_rows_from_every_array_of_the_sample(model):
    kwargs = arguments(model, seed=1)
    bad_labeled = {key: rows for key, rows in zip(labeled_keys(model), ([3, 10], [10, 17], [25]))}
    bad_unlabeled = {key: rows for key, rows in zip(unlabeled_keys(model), ([0, 100], [100, 239]))}
    dirty = {key: value.copy() for key, value in kwargs.items()}
    for key, rows in {**bad_labeled, **bad_unlabeled}.items():
        dirty[key][rows] = np.nan if key != "yhat" else np.inf
    drop_labeled = sorted({row for rows in bad_labeled.values() for row in rows})
    drop_unlabeled = sorted({row for rows in bad_unlabeled.values() for row in rows})
    clean = {
        key: np.delete(value, drop_labeled if key in labeled_keys(model) else drop_unlabeled, axis=0)
        for key, value in kwargs.items()
    }
    dropped = build(model, **dirty, missing="drop")
    reference = build(model, **clean)
    for method in ("ppi++", "ppi", "classical", "naive"):
        assert_same_fit(dropped.fit(method=method), reference.fit(method=method))
    result = dropped.fit()
    assert (result.nobs, result.nobs_unlabeled) == (N_LABELED - len(drop_labeled), N_UNLABELED - len(drop_unlabeled))
    summary = " ".join(str(result.summary()).split())
    assert f"Rows dropped: {len(drop_labeled)} + {len(drop_unlabeled)}" in summary


def test_missing_drop_with_pandas_inputs():
    kwargs = arguments("OLS", seed=2)
    index = pd.Index([f"id{i}" for i in range(N_LABELED)])
    y = pd.Series(kwargs["y"], index=index, name="y")
    X = pd.DataFrame(kwargs["X"], index=index, columns=["const", "a", "b"])
    yhat = pd.Series(kwargs["yhat"], index=index)
    y.iloc[4], X.iloc[9, 1] = np.nan, np.nan
    Xu = pd.DataFrame(kwargs["X_unlabeled"], columns=["const", "a", "b"])
    result = ppinfer.OLS(y, X, yhat, Xu, kwargs["yhat_unlabeled"], missing="drop").fit()
    keep = ~(y.isna() | X.isna().any(axis=1))
    reference = ppinfer.OLS(y[keep], X[keep], yhat[keep], Xu, kwargs["yhat_unlabeled"]).fit()
    assert_same_fit(result, reference)
    assert result.nobs == N_LABELED - 2


@pytest.mark.parametrize("model", ["Mean", "OLS"])
def test_nothing_left_after_dropping(model):
    kwargs = arguments(model)
    kwargs["yhat"] = np.full_like(kwargs["yhat"], np.nan)
    with pytest.raises(ValueError, match=r"every labeled row has a NaN or infinite value"):
        build(model, **kwargs, missing="drop")


@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("bad, hint", [("omit", None), ("dropna", "drop"), ("Raise ", None), (None, None)])
def test_missing_option_lists_valid_values(model, bad, hint):
    if bad == "Raise ":  # case and surrounding spaces are forgiven
        build(model, **arguments(model), missing=bad)
        return
    expected = rf"^missing={re.escape(repr(bad))} is not valid; use one of 'raise', 'drop'\."
    if hint:
        expected += rf" Did you mean '{hint}'\?"
    with pytest.raises(ValueError, match=expected):
        build(model, **arguments(model), missing=bad)


# --------------------------------------------------------------------------------------
# shapes, lengths, indexes, columns
# --------------------------------------------------------------------------------------
# Mean's and Quantile's unlabeled sample is one array: nothing to mismatch there
@pytest.mark.parametrize("model, key", [case for case in argument_cases() if case[1] != "yhat_unlabeled" or case[0] in REGRESSIONS])
def test_mismatched_lengths_name_both_arrays(model, key):
    kwargs = arguments(model)
    kwargs[key] = kwargs[key][:-1]
    sample = "labeled" if key in labeled_keys(model) else "unlabeled"
    with pytest.raises(ValueError, match=rf"has \d+ rows but .* has \d+; the {sample} arrays must have one row per {sample} unit") as raised:
        build(model, **kwargs)
    message = str(raised.value)
    assert re.search(rf"\b{key}\b has {len(kwargs[key])}\b|\b{key} has {len(kwargs[key])};", message), message


@pytest.mark.parametrize("model", ["Mean", "Quantile", "OLS"])
def test_pandas_inputs_with_different_indexes(model):
    kwargs = arguments(model)
    n = N_LABELED
    kwargs["y"] = pd.Series(kwargs["y"], index=pd.RangeIndex(n))
    kwargs["yhat"] = pd.Series(kwargs["yhat"], index=pd.RangeIndex(1, n + 1))
    with pytest.raises(ValueError, match=r"yhat and y are pandas objects with different indexes"):
        build(model, **kwargs)
    # same labels in another order are still different: rows are paired by position
    kwargs["yhat"] = pd.Series(kwargs["yhat"].to_numpy(), index=pd.RangeIndex(n)[::-1])
    with pytest.raises(ValueError, match=r"different indexes"):
        build(model, **kwargs)


def test_unlabeled_pandas_inputs_with_different_indexes():
    kwargs = arguments("OLS")
    kwargs["X_unlabeled"] = pd.DataFrame(kwargs["X_unlabeled"], columns=["x1", "x2", "x3"])
    kwargs["yhat_unlabeled"] = pd.Series(kwargs["yhat_unlabeled"], index=np.arange(N_UNLABELED) + 10)
    with pytest.raises(ValueError, match=r"yhat_unlabeled and X_unlabeled are pandas objects with different indexes"):
        ppinfer.OLS(**kwargs)


def test_arrays_and_pandas_objects_mix_by_position():
    kwargs = arguments("OLS")
    reference = ppinfer.OLS(**kwargs).fit()
    mixed = dict(kwargs, y=pd.Series(kwargs["y"], index=np.arange(N_LABELED) * 2))
    assert_same_fit(ppinfer.OLS(**mixed).fit(), reference)


def test_x_and_x_unlabeled_with_different_column_names():
    kwargs = arguments("OLS")
    kwargs["X"] = pd.DataFrame(kwargs["X"], columns=["const", "age", "dose"])
    kwargs["X_unlabeled"] = pd.DataFrame(kwargs["X_unlabeled"], columns=["const", "age", "weight"])
    with pytest.raises(ValueError, match=r"X and X_unlabeled have different columns: missing from X_unlabeled \['dose'\], not in X \['weight'\]"):
        ppinfer.OLS(**kwargs)
    kwargs["X_unlabeled"] = kwargs["X_unlabeled"][["const", "age"]]
    with pytest.raises(ValueError, match=r"missing from X_unlabeled \['dose'\]"):
        ppinfer.OLS(**kwargs)


def test_x_and_x_unlabeled_with_different_column_counts():
    kwargs = arguments("OLS")
    kwargs["X_unlabeled"] = kwargs["X_unlabeled"][:, :2]
    with pytest.raises(ValueError, match=r"X has 3 columns but X_unlabeled has 2"):
        ppinfer.OLS(**kwargs)


@pytest.mark.parametrize("model", list(REGRESSIONS))
def test_x_unlabeled_columns_in_another_order_are_matched_by_name(model):
    kwargs = arguments(model, seed=3)
    kwargs["X"] = pd.DataFrame(kwargs["X"], columns=["const", "age", "dose"])
    kwargs["X_unlabeled"] = pd.DataFrame(kwargs["X_unlabeled"], columns=["const", "age", "dose"])
    reference = build(model, **kwargs)
    shuffled = dict(kwargs, X_unlabeled=kwargs["X_unlabeled"][["dose", "const", "age"]])
    result = build(model, **shuffled)
    for method in ("ppi++", "naive"):
        assert_same_fit(result.fit(method=method), reference.fit(method=method))
    assert result.fit().param_names == ["const", "age", "dose"]


@pytest.mark.parametrize(
    "key, value, error, pattern",
    [
        ("y", None, TypeError, r"^y is required; got None"),
        ("yhat_unlabeled", None, TypeError, r"^yhat_unlabeled is required; got None"),
        ("y", 3.0, ValueError, r"^y must be an array with one value per row; got a scalar"),
        ("y", np.zeros((N_LABELED, 2, 2)), ValueError, r"^y must be one- or two-dimensional"),
        ("y", np.zeros((N_LABELED, 2)), ValueError, r"^y must be one-dimensional; got shape \(60, 2\)"),
        # two prediction columns are two synthetic draws: both samples need them
        ("yhat", np.zeros((N_LABELED, 2)), ValueError, r"^yhat has 2 column\(s\) but yhat_unlabeled has 1"),
        ("yhat_unlabeled", np.array([]), ValueError, r"^yhat_unlabeled has 0 rows but X_unlabeled has 240"),
    ],
    ids=["y-none", "yhat_unlabeled-none", "scalar", "3d", "y-2d", "yhat-2d", "empty"],
)
def test_bad_shapes_for_regressions(key, value, error, pattern):
    kwargs = arguments("OLS")
    kwargs[key] = value
    with pytest.raises(error, match=pattern):
        ppinfer.OLS(**kwargs)


@pytest.mark.parametrize("model", ["Mean", "Quantile"])
def test_empty_samples(model):
    kwargs = arguments(model)
    with pytest.raises(ValueError, match=r"^yhat_unlabeled is empty: the unlabeled sample needs at least one row"):
        build(model, **dict(kwargs, yhat_unlabeled=np.array([])))
    with pytest.raises(ValueError, match=r"^y is empty"):
        build(model, **dict(kwargs, y=np.array([]), yhat=np.array([])))
    with pytest.raises(ValueError, match=r"^y has 1 complete row\(s\); at least 2 are needed"):
        build(model, **dict(kwargs, y=kwargs["y"][:1], yhat=kwargs["yhat"][:1]))


# --------------------------------------------------------------------------------------
# non-numeric data
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, make",
    [
        ("y", lambda n: ["a"] * n),
        ("y", lambda n: pd.Series(["a"] * n)),
        ("yhat", lambda n: pd.Series(pd.Categorical(["a", "b"] * (n // 2)))),
        ("X", lambda n: pd.DataFrame({"const": np.ones(n), "group": ["a", "b"] * (n // 2)})),
        ("X", lambda n: pd.DataFrame({"const": np.ones(n), "group": pd.Categorical(["a", "b"] * (n // 2))})),
        ("X", lambda n: np.array([[object()]] * n)),
    ],
    ids=["list-of-str", "str-series", "categorical-series", "str-column", "categorical-column", "object-array"],
)
def test_non_numeric_data_is_a_type_error(key, make):
    kwargs = arguments("OLS")
    kwargs[key] = make(N_LABELED)
    if key == "X":
        kwargs["X_unlabeled"] = make(N_UNLABELED) if not isinstance(kwargs[key], np.ndarray) else kwargs["X_unlabeled"][:, :1]
    with pytest.raises(TypeError, match=rf"^{key}\b.*(not numeric|numeric array-like)"):
        ppinfer.OLS(**kwargs)


def test_non_numeric_unlabeled_column_names_x_unlabeled():
    kwargs = arguments("OLS")
    kwargs["X"] = pd.DataFrame(kwargs["X"], columns=["const", "a", "b"])
    kwargs["X_unlabeled"] = pd.DataFrame(kwargs["X_unlabeled"], columns=["const", "a", "b"]).assign(b="text")
    with pytest.raises(TypeError, match=r"^X_unlabeled column 'b' is not numeric"):
        ppinfer.OLS(**kwargs)


def test_boolean_outcomes_are_numbers():
    kwargs = arguments("Logit", seed=4)
    reference = ppinfer.Logit(**kwargs).fit()
    assert_same_fit(ppinfer.Logit(**dict(kwargs, y=kwargs["y"].astype(bool))).fit(), reference)


# --------------------------------------------------------------------------------------
# value ranges of outcomes and predictions
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model, key, value, pattern",
    [
        ("Logit", "y", 2.0, r"^y must contain only 0 and 1; found 1 other value\(s\) \(first: .*2\.0.* at position 7\)"),
        ("Logit", "y", 0.5, r"^y must contain only 0 and 1"),
        ("Logit", "yhat", 1.2, r"^yhat must be probabilities in \[0, 1\]; found 1 value\(s\) outside"),
        ("Logit", "yhat", -0.01, r"^yhat must be probabilities in \[0, 1\]"),
        ("Logit", "yhat_unlabeled", 1.5, r"^yhat_unlabeled must be probabilities in \[0, 1\]"),
        ("Poisson", "y", -1.0, r"^y must be non-negative counts; found 1 value\(s\) outside"),
        ("Poisson", "yhat", -0.5, r"^yhat must be non-negative"),
        ("Poisson", "yhat_unlabeled", -2.0, r"^yhat_unlabeled must be non-negative"),
    ],
)
def test_out_of_range_outcomes_and_predictions(model, key, value, pattern):
    kwargs = arguments(model)
    kwargs[key] = kwargs[key].copy()
    kwargs[key][7] = value
    with pytest.raises(ValueError, match=pattern):
        build(model, **kwargs)


def test_logit_accepts_predictions_at_the_ends_of_the_range():
    kwargs = arguments("Logit", seed=5)
    kwargs["yhat"] = kwargs["yhat"].copy()
    kwargs["yhat"][:3] = [0.0, 1.0, 0.0]
    assert np.all(np.isfinite(ppinfer.Logit(**kwargs).fit().params))


# --------------------------------------------------------------------------------------
# designs that cannot be fitted
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", list(REGRESSIONS))
def test_fewer_labeled_rows_than_parameters(model):
    kwargs = arguments(model, n=3)
    with pytest.raises(ValueError, match=r"^X has 3 rows and 3 columns; at least 4 rows are needed"):
        build(model, **kwargs)


def test_fewer_unlabeled_rows_than_parameters():
    kwargs = arguments("OLS", N=2)
    with pytest.raises(ValueError, match=r"^X_unlabeled has 2 rows and 3 columns"):
        ppinfer.OLS(**kwargs)


def dependent_columns(message: str) -> list[str]:
    return re.findall(r"'([^']+)'", message.split("column(s)")[1].split("are linear")[0])


@pytest.mark.parametrize("model", list(REGRESSIONS))
@pytest.mark.parametrize("sample", ["X", "X_unlabeled"])
def test_collinear_design_names_the_dependent_column(model, sample):
    kwargs = arguments(model)
    columns = ["const", "age", "dose", "age_in_months"]
    for key in ("X", "X_unlabeled"):
        extra = 12 * kwargs[key][:, 1] if key == sample else np.random.default_rng(9).normal(size=len(kwargs[key]))
        kwargs[key] = pd.DataFrame(np.column_stack([kwargs[key], extra]), columns=columns)
    with pytest.raises(ValueError, match=rf"^{sample} is rank deficient \(rank 3 < 4 columns\)") as raised:
        build(model, **kwargs)
    named = dependent_columns(str(raised.value))
    assert len(named) == 1 and named[0] in ("age", "age_in_months")


def test_collinear_through_the_intercept():
    kwargs = arguments("OLS")
    X = pd.DataFrame(kwargs["X"], columns=["const", "a", "b"])
    X["a_plus_one"] = X["a"] + 1.0
    kwargs["X"], kwargs["X_unlabeled"] = X, pd.DataFrame(kwargs["X_unlabeled"], columns=["const", "a", "b"]).assign(
        a_plus_one=lambda frame: frame["a"] + 1.0
    )
    with pytest.raises(ValueError, match=r"^X is rank deficient") as raised:
        ppinfer.OLS(**kwargs)
    assert dependent_columns(str(raised.value))[0] in ("const", "a", "a_plus_one")


@pytest.mark.parametrize("sample", ["X", "X_unlabeled"])
def test_all_zero_column(sample):
    kwargs = arguments("OLS")
    kwargs[sample] = pd.DataFrame(kwargs[sample], columns=["const", "a", "b"]).assign(b=0.0)
    other = "X_unlabeled" if sample == "X" else "X"
    kwargs[other] = pd.DataFrame(kwargs[other], columns=["const", "a", "b"])
    with pytest.raises(ValueError, match=rf"^{sample} has all-zero column\(s\) \['b'\]"):
        ppinfer.OLS(**kwargs)


@pytest.mark.parametrize("which", ["y", "yhat"])
def test_perfectly_separated_logistic_data_is_an_error(which):
    kwargs = arguments("Logit", seed=6)
    separated = (kwargs["X"][:, 1] > 0).astype(float)
    kwargs[which] = separated
    with pytest.raises(ValueError, match=rf"^the fit of {which}\b.*separation"):
        ppinfer.Logit(**kwargs).fit(method="classical" if which == "y" else "ppi")


def test_quasi_separated_logistic_data_is_an_error():
    kwargs = arguments("Logit", seed=7)
    x = kwargs["X"][:, 1]
    y = (x > 0).astype(float)
    y[np.argsort(np.abs(x))[:4]] = 1.0  # ties at the boundary: quasi-complete separation
    kwargs["y"] = y
    with pytest.raises(ValueError, match=r"separation"):
        ppinfer.Logit(**kwargs).fit(method="classical")


# --------------------------------------------------------------------------------------
# predictions that carry no information: lambda falls back to 0
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model, tuning", [(model, None) for model in ALL_MODELS] + [(model, "per-coefficient") for model in REGRESSIONS]
)
def test_constant_predictions_fall_back_to_classical(model, tuning):
    kwargs = arguments(model, seed=8)
    constant = {"Logit": 0.3, "Poisson": 1.5}.get(model, 0.7)
    kwargs["yhat"] = np.full(N_LABELED, constant)
    kwargs["yhat_unlabeled"] = np.full(N_UNLABELED, constant)
    fitted = build(model, **kwargs)
    with pytest.warns(ppinfer.PPIWarning, match=r"lambda set to 0"):
        result = fitted.fit(lam=tuning)
    np.testing.assert_array_equal(np.atleast_1d(np.asarray(result.lam, dtype=float)), 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        classical = fitted.fit(method="classical")
    assert_same_fit(result, classical)


def test_predictions_that_are_a_function_of_the_design_fall_back_to_classical():
    kwargs = arguments("OLS", seed=9)
    kwargs["yhat"] = kwargs["X"] @ np.array([0.1, 1.0, 2.0])
    kwargs["yhat_unlabeled"] = kwargs["X_unlabeled"] @ np.array([0.1, 1.0, 2.0])
    model = ppinfer.OLS(**kwargs)
    with pytest.warns(ppinfer.PPIWarning):
        result = model.fit()
    assert result.lam == 0.0
    assert_same_fit(result, model.fit(method="classical"))


# --------------------------------------------------------------------------------------
# quantile levels
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("q", [0, 1, -0.2, 1.5, np.nan, [0.5, 1.0], [0.2, -0.1]])
def test_quantile_level_outside_unit_interval(q):
    with pytest.raises(ValueError, match=r"^q must lie strictly between 0 and 1"):
        ppinfer.Quantile(**arguments("Quantile"), q=q)


@pytest.mark.parametrize("q", [[], [[0.5, 0.6]]])
def test_quantile_level_empty_or_nested(q):
    with pytest.raises(ValueError, match=r"^q must be a number or a non-empty list of numbers"):
        ppinfer.Quantile(**arguments("Quantile"), q=q)


def test_non_numeric_quantile_level_names_q():
    with pytest.raises((TypeError, ValueError), match=r"^q\b"):
        ppinfer.Quantile(**arguments("Quantile"), q="median")


# --------------------------------------------------------------------------------------
# fit options
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("bad, hint", [("ppi+", "ppi++"), ("clasical", "classical"), ("bayes", None), (None, None)])
def test_unknown_method_lists_valid_ones_and_suggests(model, bad, hint):
    expected = rf"^method={re.escape(repr(bad))} is not valid; use one of 'ppi\+\+', 'ppi', 'classical', 'naive'\."
    if hint:
        expected += rf" Did you mean '{re.escape(hint)}'\?"
    else:
        expected += "$"
    with pytest.raises(ValueError, match=expected):
        build(model, **arguments(model)).fit(method=bad)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_unknown_keyword_to_fit_is_a_type_error(model):
    with pytest.raises(
        TypeError,
        match=r"^fit\(\) got an unexpected keyword argument 'lamda'\. Did you mean 'lam'\? Accepted keywords: method, lam\b",
    ):
        build(model, **arguments(model)).fit(lamda=0.5)
    with pytest.raises(TypeError, match=r"'cov_typ'.*Accepted keywords: method, lam\b"):
        build(model, **arguments(model)).fit(cov_typ="HC1")


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        ppinfer.Mean(**arguments("Mean")).fit("ppi")
    with pytest.raises(TypeError):
        ppinfer.Mean(*arguments("Mean").values(), "drop")


@pytest.mark.parametrize("model", ["Mean", "OLS", "Quantile"])
@pytest.mark.parametrize("method", ["classical", "ppi", "naive"])
def test_lambda_with_a_method_that_fixes_it(model, method):
    with pytest.raises(ValueError, match=rf"^lam=0\.5 conflicts with method='{method}'.*method='ppi\+\+'"):
        build(model, **arguments(model)).fit(method=method, lam=0.5)


@pytest.mark.parametrize(
    "lam, error, pattern",
    [
        ([0.5, 0.5], ValueError, r"^lam must be a number or have one value per parameter \(3\); got shape \(2,\)"),
        ([[0.5, 0.5, 0.5]], ValueError, r"^lam must be a number or have one value per parameter"),
        (np.nan, ValueError, r"^lam must be finite"),
        ([0.5, np.inf, 0.5], ValueError, r"^lam must be finite"),
        ("auto", ValueError, r"^lam='auto' is not valid; use one of 'per-coefficient', 'overall'"),
        ("per-coeficient", ValueError, r"Did you mean 'per-coefficient'\?"),
        ({"a": 1}, TypeError, r"^lam must be None, 'per-coefficient', a number or one number per parameter"),
        (object(), TypeError, r"^lam must be None"),
    ],
    ids=["short", "2d", "nan", "inf", "unknown-rule", "misspelled-rule", "dict", "object"],
)
def test_bad_lambda(lam, error, pattern):
    with pytest.raises(error, match=pattern):
        ppinfer.OLS(**arguments("OLS")).fit(lam=lam)


def test_lambda_rules_accept_aliases():
    model = ppinfer.OLS(**arguments("OLS"))
    pd.testing.assert_series_equal(model.fit(lam="per_coefficient").lam, model.fit(lam="Per-Coefficient").lam)
    assert model.fit(lam="overall").lam == model.fit().lam


# --------------------------------------------------------------------------------------
# Mean: one prediction column per outcome column
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape_yhat, shape_unlabeled, pattern",
    [
        ((N_LABELED, 1), (N_UNLABELED, 1), r"^yhat has 1 column\(s\) but y has 2"),
        ((N_LABELED, 3), (N_UNLABELED, 3), r"^yhat has 3 column\(s\) but y has 2"),
        ((N_LABELED, 2), (N_UNLABELED, 1), r"^yhat has 2 column\(s\) but yhat_unlabeled has 1"),
        ((N_LABELED, 2), (N_UNLABELED, 3), r"^yhat has 2 column\(s\) but yhat_unlabeled has 3"),
    ],
)
def test_mean_prediction_columns_must_match_outcome_columns(shape_yhat, shape_unlabeled, pattern):
    rng = np.random.default_rng(10)
    with pytest.raises(ValueError, match=pattern):
        ppinfer.Mean(rng.normal(size=(N_LABELED, 2)), rng.normal(size=shape_yhat), rng.normal(size=shape_unlabeled))


@pytest.mark.parametrize("model", ["mean", "quantile", "ols"])
def test_constant_outcome_warns_of_degenerate_inference(model):
    rng = np.random.default_rng(8)
    y, f, fu = np.ones(40), rng.normal(size=40), rng.normal(size=100)
    X, Xu = np.column_stack([np.ones(40), rng.normal(size=40)]), np.column_stack([np.ones(100), rng.normal(size=100)])
    build = {
        "mean": lambda: ppinfer.Mean(y, f, fu),
        "quantile": lambda: ppinfer.Quantile(y, f, fu),
        "ols": lambda: ppinfer.OLS(y, X, f, Xu, fu),
    }[model]
    with pytest.warns(ppinfer.PPIWarning, match="y is constant"):
        build()


@pytest.mark.parametrize("labeled, unlabeled, shared", [
    # one integer dtype: coded as given, exactly (ids above 2**53 stay distinct)
    (np.array([2**60, 2**60 + 1]), np.array([2**60 + 1, 2**60 + 2]), 1),
    # integers beside floats: labels compare as values (3 and 3.0 are one cluster)
    (np.array([3, 4]), np.array([3.0, 5.0]), 1),
    # strings beside integers: never the same label
    (np.array(["3", "4"]), np.array([3, 4]), 0),
])
def test_cluster_labels_shared_by_the_samples(labeled, unlabeled, shared):
    from ppinfer.core.validation import as_cluster_labels

    left, right, uniques = as_cluster_labels(labeled, unlabeled, "clusters", "clusters_unlabeled")
    assert uniques.size == 4 - shared
    assert len(set(left.values) & set(right.values)) == shared
    assert len(set(left.values)) == len(set(right.values)) == 2
