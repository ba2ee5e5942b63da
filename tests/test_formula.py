"""The formula interface (``ppinfer.ols``, ``ppinfer.logit``, ``ppinfer.poisson``).

References: patsy's own column names, designs built by hand with numpy and passed to
the array interface, and statsmodels' formula fits (``smf.ols`` / ``smf.glm`` with
``cov_type="HC0"``) for the classical method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy.special import expit

import ppinfer

#: statsmodels' HC0 references: the fits compared with them ask for the plain sandwich and z
HC0 = dict(cov_type="HC0", use_t=False)

FORMULA = "y ~ np.log(x) + C(g) + z"
NAMES = ["Intercept", "C(g)[T.b]", "C(g)[T.c]", "np.log(x)", "z"]
ENTRY_POINTS = {"ols": ppinfer.ols, "logit": ppinfer.logit, "poisson": ppinfer.poisson}
ARRAY_MODELS = {"ols": ppinfer.OLS, "logit": ppinfer.Logit, "poisson": ppinfer.Poisson}
GLM_FAMILIES = {"logit": sm.families.Binomial, "poisson": sm.families.Poisson}


def frames(family: str = "ols", *, seed: int = 0, n: int = 160, N: int = 700):
    """Labeled and unlabeled frames with a positive covariate, a 3-level factor and predictions."""
    rng = np.random.default_rng(seed)

    def draw(m: int) -> pd.DataFrame:
        frame = pd.DataFrame(
            {"x": rng.uniform(0.3, 4.0, m), "g": rng.choice(["a", "b", "c"], m), "z": rng.normal(size=m)}
        )
        eta = 0.2 + 0.5 * np.log(frame["x"]) + frame["g"].map({"a": 0.0, "b": 0.4, "c": -0.3}) + 0.3 * frame["z"]
        noise = rng.normal(size=m)
        if family == "ols":
            frame["y"] = eta + rng.normal(size=m)
            frame["yhat"] = 0.8 * frame["y"] + 0.2 + 0.7 * noise
        elif family == "logit":
            frame["y"] = (rng.uniform(size=m) < expit(eta)).astype(float)
            frame["yhat"] = expit(eta + (frame["y"] - 0.5) + 0.5 * noise)
        else:
            frame["y"] = rng.poisson(np.exp(eta)).astype(float)
            frame["yhat"] = np.exp(0.2 + 0.6 * np.log1p(frame["y"]) + 0.3 * noise)
        return frame

    labeled, unlabeled = draw(n), draw(N).drop(columns="y")
    # non-default indexes, different in the two frames
    labeled.index = pd.Index([f"unit{i}" for i in range(n)])
    unlabeled.index = pd.RangeIndex(5000, 5000 + N)
    return labeled, unlabeled


def hand_design(frame: pd.DataFrame) -> np.ndarray:
    """The design of FORMULA built without patsy: treatment coding with reference level 'a'."""
    return np.column_stack(
        [
            np.ones(len(frame)),
            (frame["g"] == "b").to_numpy(float),
            (frame["g"] == "c").to_numpy(float),
            np.log(frame["x"].to_numpy()),
            frame["z"].to_numpy(),
        ]
    )


def assert_same_fit(left, right, rtol=1e-10):
    np.testing.assert_allclose(left.params.to_numpy(), right.params.to_numpy(), rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(left.bse.to_numpy(), right.bse.to_numpy(), rtol=rtol)
    np.testing.assert_allclose(np.asarray(left.lam, dtype=float), np.asarray(right.lam, dtype=float), rtol=rtol)


# --------------------------------------------------------------------------------------
# names and equality with the array interface and statsmodels
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["ols", "logit", "poisson"])
def test_names_come_from_patsy(family):
    labeled, unlabeled = frames(family)
    result = ENTRY_POINTS[family](FORMULA, labeled, unlabeled, yhat="yhat").fit()
    assert result.param_names == NAMES
    assert list(result.params.index) == list(result.bse.index) == list(result.cov_params().columns) == NAMES
    assert "np.log(x)" in str(result.summary()) and "C(g)[T.b]" in str(result.summary())


@pytest.mark.parametrize("method", ["ppi++", "ppi", "classical", "naive"])
@pytest.mark.parametrize("family", ["ols", "logit", "poisson"])
def test_formula_equals_array_interface_on_the_same_design(family, method):
    labeled, unlabeled = frames(family, seed=1)
    by_formula = ENTRY_POINTS[family](FORMULA, labeled, unlabeled, yhat="yhat").fit(method=method)
    by_arrays = ARRAY_MODELS[family](
        labeled["y"].to_numpy(), hand_design(labeled), labeled["yhat"].to_numpy(),
        hand_design(unlabeled), unlabeled["yhat"].to_numpy(),
    ).fit(method=method)
    np.testing.assert_allclose(by_formula.params.to_numpy(), by_arrays.params.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(by_formula.bse.to_numpy(), by_arrays.bse.to_numpy(), rtol=1e-9)
    assert (by_formula.nobs, by_formula.nobs_unlabeled) == (len(labeled), len(unlabeled))


@pytest.mark.parametrize("formula", [FORMULA, "y ~ x + C(g) - 1", "y ~ x * z"])
@pytest.mark.parametrize("family", ["ols", "logit", "poisson"])
def test_classical_equals_statsmodels_formula_fit(family, formula):
    labeled, unlabeled = frames(family, seed=2)
    result = ENTRY_POINTS[family](formula, labeled, unlabeled, yhat="yhat").fit(**HC0, method="classical")
    if family == "ols":
        reference = smf.ols(formula, labeled).fit(cov_type="HC0")
    else:
        reference = smf.glm(formula, labeled, family=GLM_FAMILIES[family]()).fit(cov_type="HC0", tol=1e-13)
    assert result.param_names == list(reference.params.index)
    np.testing.assert_allclose(result.params.to_numpy(), reference.params.to_numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.bse.to_numpy(), reference.bse.to_numpy(), rtol=1e-6)


# --------------------------------------------------------------------------------------
# categorical levels of the unlabeled design
# --------------------------------------------------------------------------------------
def test_unlabeled_levels_in_another_order_give_the_same_columns_and_results():
    labeled, unlabeled = frames(seed=3)
    reference = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat").fit()
    # rows sorted so that 'c' comes first, and a categorical dtype with reversed categories
    reordered = unlabeled.sort_values("g", ascending=False)
    reordered = reordered.assign(g=pd.Categorical(reordered["g"], categories=["c", "b", "a"]))
    result = ppinfer.ols(FORMULA, labeled, reordered, yhat="yhat").fit()
    assert result.param_names == NAMES
    assert_same_fit(result, reference)


def test_labeled_categorical_order_sets_the_reference_level():
    """Categories ordered c, a, b in the labeled data: reference level c, in both designs."""
    labeled, unlabeled = frames(seed=4)
    labeled = labeled.assign(g=pd.Categorical(labeled["g"], categories=["c", "a", "b"]))
    result = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat").fit(**HC0, method="classical")
    reference = smf.ols(FORMULA, labeled).fit(cov_type="HC0")
    assert result.param_names == list(reference.params.index) == ["Intercept", "C(g)[T.a]", "C(g)[T.b]", "np.log(x)", "z"]
    np.testing.assert_allclose(result.params.to_numpy(), reference.params.to_numpy(), rtol=1e-8)

    def design(frame):
        g = frame["g"].astype(str)
        return np.column_stack(
            [np.ones(len(frame)), g == "a", g == "b", np.log(frame["x"]), frame["z"]]
        ).astype(float)

    by_formula = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat").fit(method="ppi")
    by_arrays = ppinfer.OLS(
        labeled["y"].to_numpy(), design(labeled), labeled["yhat"].to_numpy(), design(unlabeled), unlabeled["yhat"].to_numpy()
    ).fit(method="ppi")
    assert_same_fit(by_formula, by_arrays, rtol=1e-9)


def test_unlabeled_frame_missing_a_level_keeps_the_column_and_reports_it():
    """The unlabeled design still has the column C(g)[T.c]; all zero, it cannot be fitted."""
    labeled, unlabeled = frames(seed=5)
    without_c = unlabeled[unlabeled["g"] != "c"]
    with pytest.raises(ValueError, match=r"X_unlabeled.*C\(g\)\[T\.c\]"):
        ppinfer.ols(FORMULA, labeled, without_c, yhat="yhat")


def test_level_unseen_in_labeled_data_is_a_clear_error():
    labeled, unlabeled = frames(seed=6)
    unlabeled.loc[unlabeled.index[:5], "g"] = "d"
    with pytest.raises(ValueError, match=r"unlabeled(?s:.*)'d'"):
        ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat")


# --------------------------------------------------------------------------------------
# predictions: a column name, arrays, a separate unlabeled column
# --------------------------------------------------------------------------------------
def test_yhat_as_column_name_array_series_or_separate_unlabeled_column():
    labeled, unlabeled = frames(seed=7)
    reference = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat").fit()
    as_arrays = ppinfer.ols(
        FORMULA, labeled.drop(columns="yhat"), unlabeled.drop(columns="yhat"),
        yhat=labeled["yhat"].to_numpy(), yhat_unlabeled=unlabeled["yhat"].to_numpy(),
    ).fit()
    as_series = ppinfer.ols(FORMULA, labeled, unlabeled, yhat=labeled["yhat"], yhat_unlabeled=unlabeled["yhat"]).fit()
    as_lists = ppinfer.ols(FORMULA, labeled, unlabeled, yhat=list(labeled["yhat"]), yhat_unlabeled=list(unlabeled["yhat"])).fit()
    separate_names = ppinfer.ols(
        FORMULA, labeled.rename(columns={"yhat": "pred"}), unlabeled.rename(columns={"yhat": "pred_unlabeled"}),
        yhat="pred", yhat_unlabeled="pred_unlabeled",
    ).fit()
    for result in (as_arrays, as_series, as_lists, separate_names):
        assert_same_fit(result, reference, rtol=1e-12)
    # and the predictions really enter: other predictions give another estimate
    shifted = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat", yhat_unlabeled=unlabeled["yhat"].to_numpy() + 1).fit()
    assert not np.allclose(shifted.params.to_numpy(), reference.params.to_numpy())


def test_yhat_array_needs_yhat_unlabeled():
    labeled, unlabeled = frames(seed=8)
    with pytest.raises(ValueError, match="yhat_unlabeled"):
        ppinfer.ols(FORMULA, labeled, unlabeled, yhat=labeled["yhat"].to_numpy())


@pytest.mark.parametrize(
    "yhat, yhat_unlabeled, pattern",
    [
        ("prediction", None, r"^yhat='prediction'.* not .*column.* of data"),
        ("yhat", "prediction", r"^yhat_unlabeled='prediction'.* not .*column.* of unlabeled"),
        (np.zeros(159), "yhat", r"^yhat has 159 (values|rows) but data has 160"),
        ("yhat", np.zeros(10), r"^yhat_unlabeled has 10 (values|rows) but unlabeled has 700"),
    ],
    ids=["missing-column", "missing-unlabeled-column", "short-array", "short-unlabeled-array"],
)
def test_bad_predictions_name_the_argument(yhat, yhat_unlabeled, pattern):
    labeled, unlabeled = frames(seed=9)
    with pytest.raises(ValueError, match=pattern):
        ppinfer.ols(FORMULA, labeled, unlabeled, yhat=yhat, yhat_unlabeled=yhat_unlabeled)


def test_yhat_series_is_aligned_by_index_or_rejected():
    labeled, unlabeled = frames(seed=10)
    reference = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat").fit()
    shuffled = labeled["yhat"].sample(frac=1.0, random_state=0)
    try:
        result = ppinfer.ols(FORMULA, labeled, unlabeled, yhat=shuffled, yhat_unlabeled="yhat").fit()
    except ValueError as error:
        assert "yhat" in str(error) and "index" in str(error)
    else:
        assert_same_fit(result, reference)


def test_duplicate_index_labels_in_data_are_paired_by_position():
    labeled, unlabeled = frames(seed=11)
    reference = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat").fit()
    duplicated = labeled.set_axis(np.repeat(np.arange(len(labeled) // 2), 2))
    assert_same_fit(ppinfer.ols(FORMULA, duplicated, unlabeled, yhat="yhat").fit(), reference, rtol=1e-12)


# --------------------------------------------------------------------------------------
# missing values
# --------------------------------------------------------------------------------------
def with_missing(labeled: pd.DataFrame, unlabeled: pd.DataFrame):
    labeled, unlabeled = labeled.copy(), unlabeled.copy()
    labeled.iloc[[3, 40], labeled.columns.get_loc("x")] = np.nan
    labeled.iloc[7, labeled.columns.get_loc("g")] = None
    labeled.iloc[[11, 40], labeled.columns.get_loc("yhat")] = np.nan
    labeled.iloc[20, labeled.columns.get_loc("y")] = np.nan
    unlabeled.iloc[[0, 5], unlabeled.columns.get_loc("z")] = np.nan
    unlabeled.iloc[[5, 9, 600], unlabeled.columns.get_loc("yhat")] = np.nan
    # a column the formula does not use: its NaN must not drop rows
    labeled["unused"], unlabeled["unused"] = np.nan, np.nan
    return labeled, unlabeled


def test_missing_drop_removes_incomplete_rows_consistently():
    labeled, unlabeled = frames(seed=12)
    dirty_labeled, dirty_unlabeled = with_missing(labeled, unlabeled)
    used = ["y", "x", "g", "z", "yhat"]
    clean_labeled = dirty_labeled.dropna(subset=used)
    clean_unlabeled = dirty_unlabeled.dropna(subset=["x", "g", "z", "yhat"])
    assert (len(labeled) - len(clean_labeled), len(unlabeled) - len(clean_unlabeled)) == (5, 4)
    reference = ppinfer.ols(FORMULA, clean_labeled, clean_unlabeled, yhat="yhat")
    dropped = ppinfer.ols(FORMULA, dirty_labeled, dirty_unlabeled, yhat="yhat", missing="drop")
    for method in ("ppi++", "classical", "naive"):
        assert_same_fit(dropped.fit(method=method), reference.fit(method=method), rtol=1e-12)
    result = dropped.fit()
    assert (result.nobs, result.nobs_unlabeled) == (len(clean_labeled), len(clean_unlabeled))
    # yhat given as arrays with NaN: the same rows go
    as_arrays = ppinfer.ols(
        FORMULA, dirty_labeled.drop(columns="yhat"), dirty_unlabeled.drop(columns="yhat"),
        yhat=dirty_labeled["yhat"].to_numpy(), yhat_unlabeled=dirty_unlabeled["yhat"].to_numpy(), missing="drop",
    ).fit()
    assert_same_fit(as_arrays, reference.fit(), rtol=1e-12)


def test_missing_drop_with_logit_matches_statsmodels_on_complete_rows():
    labeled, unlabeled = frames("logit", seed=13)
    dirty_labeled, dirty_unlabeled = with_missing(labeled, unlabeled)
    result = ppinfer.logit(FORMULA, dirty_labeled, dirty_unlabeled, yhat="yhat", missing="drop").fit(**HC0, method="classical")
    complete = dirty_labeled.dropna(subset=["y", "x", "g", "z", "yhat"])
    reference = smf.glm(FORMULA, complete, family=sm.families.Binomial()).fit(cov_type="HC0", tol=1e-13)
    np.testing.assert_allclose(result.params.to_numpy(), reference.params.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(result.bse.to_numpy(), reference.bse.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "where, column, pattern",
    [
        ("labeled", "x", r"^data has 1 row\(s\) with missing values.*missing='drop'"),
        ("labeled", "g", r"^data has 1 row\(s\) with missing values"),
        ("labeled", "y", r"^data has 1 row\(s\) with missing values"),
        ("labeled", "yhat", r"^yhat has 1 row\(s\) with NaN"),
        ("unlabeled", "z", r"^unlabeled has 1 row\(s\) with missing values"),
        ("unlabeled", "yhat", r"^yhat_unlabeled has 1 row\(s\) with NaN"),
    ],
)
def test_missing_values_raise_by_default(where, column, pattern):
    labeled, unlabeled = frames(seed=14)
    frame = labeled if where == "labeled" else unlabeled
    frame.iloc[4, frame.columns.get_loc(column)] = None if column == "g" else np.nan
    with pytest.raises(ValueError, match=pattern):
        ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat")


def test_infinite_covariate_raises_or_is_dropped():
    labeled, unlabeled = frames(seed=15)
    labeled.iloc[2, labeled.columns.get_loc("z")] = np.inf
    with pytest.raises(ValueError, match=r"^X has 1 row\(s\) with NaN or infinite"):
        ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat")
    assert ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat", missing="drop").fit().nobs == len(labeled) - 1


def test_unused_columns_with_missing_values_are_ignored():
    labeled, unlabeled = frames(seed=16)
    reference = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat").fit()
    result = ppinfer.ols(FORMULA, labeled.assign(note=np.nan), unlabeled.assign(note=np.nan), yhat="yhat").fit()
    assert_same_fit(result, reference, rtol=1e-12)


# --------------------------------------------------------------------------------------
# bad arguments
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", ["ols", "logit", "poisson"])
def test_non_dataframe_data_is_a_type_error(entry):
    labeled, unlabeled = frames(entry, seed=17)
    with pytest.raises(TypeError, match=r"^data must be a pandas DataFrame; got dict"):
        ENTRY_POINTS[entry](FORMULA, labeled.to_dict("list"), unlabeled, yhat="yhat")
    with pytest.raises(TypeError, match=r"^unlabeled must be a pandas DataFrame; got ndarray"):
        ENTRY_POINTS[entry](FORMULA, labeled, unlabeled.to_numpy(), yhat="yhat")


@pytest.mark.parametrize(
    "formula, pattern",
    [
        ("y np.log(x)", r"^formula must be a string like"),
        (None, r"^formula must be a string like"),
        ("y ~ w", r"formula 'y ~ w'.*w"),
        ("g ~ x", r"outcome must be one numeric column"),
    ],
)
def test_bad_formula_is_a_clear_error(formula, pattern):
    labeled, unlabeled = frames(seed=18)
    with pytest.raises(ValueError, match=pattern):
        ppinfer.ols(formula, labeled, unlabeled, yhat="yhat")


def test_variable_absent_from_unlabeled_is_a_clear_error():
    labeled, unlabeled = frames(seed=19)
    with pytest.raises(ValueError, match=r"unlabeled design.*z"):
        ppinfer.ols(FORMULA, labeled, unlabeled.drop(columns="z"), yhat="yhat")


def test_formula_checks_outcome_ranges():
    labeled, unlabeled = frames("logit", seed=20)
    with pytest.raises(ValueError, match=r"^y must contain only 0 and 1"):
        ppinfer.logit("z ~ x", labeled, unlabeled, yhat="yhat")
    labeled, unlabeled = frames("poisson", seed=20)
    with pytest.raises(ValueError, match=r"^y must be non-negative counts"):
        ppinfer.poisson("z ~ x", labeled, unlabeled, yhat="yhat")


def test_missing_option_is_checked():
    labeled, unlabeled = frames(seed=21)
    with pytest.raises(ValueError, match=r"missing='dorp' is not valid; use one of 'raise', 'drop'\. Did you mean 'drop'\?"):
        ppinfer.ols(FORMULA, labeled, unlabeled, yhat="yhat", missing="dorp")
