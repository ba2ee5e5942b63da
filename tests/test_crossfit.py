"""Tests of :func:`ppinfer.crossfit.cross_fit`.

The estimators used here are small numpy classes written for the tests (least
squares, nearest neighbours, a memoriser and classifier stubs), so the core tests
run without scikit-learn; the scikit-learn checks are skipped when it is missing.

Run as a script to print every Monte Carlo figure the tests check::

    python tests/test_crossfit.py
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

import ppinfer
from ppinfer.crossfit import CrossFitPredictions, cross_fit


# -- estimators written for the tests ------------------------------------------------


class LeastSquares:
    """Least squares on the features and, with ``quadratic=True``, their squares and pairwise products."""

    def __init__(self, quadratic: bool = False):
        self.quadratic = quadratic

    def _design(self, features):
        X = np.asarray(features, dtype=float)
        columns = [np.ones(X.shape[0]), X]
        if self.quadratic:
            columns += [X[:, [a]] * X[:, [b]] for a in range(X.shape[1]) for b in range(a, X.shape[1])]
        return np.column_stack(columns)

    def fit(self, features, y):
        self.coef_ = np.linalg.lstsq(self._design(features), np.asarray(y, dtype=float), rcond=None)[0]
        return self

    def predict(self, features):
        return self._design(features) @ self.coef_


class NearestNeighbours:
    """k-nearest-neighbour regression (Euclidean distance, plain average of the k outcomes)."""

    def __init__(self, k: int = 1):
        self.k = k

    def fit(self, features, y):
        self.tree_ = cKDTree(np.asarray(features, dtype=float))
        self.y_ = np.asarray(y, dtype=float)
        return self

    def predict(self, features):
        _, nearest = self.tree_.query(np.asarray(features, dtype=float), k=self.k)
        return self.y_[nearest] if self.k == 1 else self.y_[nearest].mean(axis=1)


class Memoriser:
    """Remembers the row ids (first feature column) it was trained on; predicts 1 for a seen row, else 0."""

    def fit(self, features, y):
        self.seen_ = set(np.asarray(features)[:, 0].astype(int).tolist())
        return self

    def predict(self, features):
        ids = np.asarray(features)[:, 0].astype(int)
        return np.array([1.0 if i in self.seen_ else 0.0 for i in ids])


class Prevalence:
    """A classifier stub: every row gets the training share of each class, in the order of ``classes_``."""

    def __init__(self, reverse: bool = False, with_classes: bool = True):
        self.reverse = reverse
        self.with_classes = with_classes

    def fit(self, features, y):
        y = np.asarray(y)
        classes = np.unique(y)[::-1] if self.reverse else np.unique(y)
        self.share_ = np.array([np.mean(y == c) for c in classes])
        if self.with_classes:
            self.classes_ = classes
        return self

    def predict(self, features):
        return np.full(np.shape(features)[0], float(np.argmax(self.share_)))

    def predict_proba(self, features):
        return np.tile(self.share_, (np.shape(features)[0], 1))


class Broken:
    """Predicts whatever it is told to (NaN, the wrong number of rows), to exercise the output checks."""

    def __init__(self, output: str):
        self.output = output

    def fit(self, features, y):
        return self

    def predict(self, features):
        n = np.shape(features)[0]
        return np.full(n, np.nan) if self.output == "nan" else np.zeros(n + 1)


def regression_data(n=60, N=200, p=2, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, p))
    y = features @ np.arange(1.0, p + 1) + rng.normal(size=n)
    return features, y, rng.normal(size=(N, p))


def direct_least_squares(features, y, features_unlabeled, fold_of):
    """Out-of-fold and fold-share-weighted unlabeled predictions computed here, with np.linalg.lstsq."""
    design = lambda F: np.column_stack([np.ones(len(F)), F])  # noqa: E731
    yhat, average = np.empty(len(y)), np.zeros(len(features_unlabeled))
    for fold in np.unique(fold_of):
        train = fold_of != fold
        coef = np.linalg.lstsq(design(features[train]), y[train], rcond=None)[0]
        yhat[~train] = design(features[~train]) @ coef
        average += np.mean(~train) * (design(features_unlabeled) @ coef)
    return yhat, average


# -- the predictions themselves -------------------------------------------------------


def test_result_unpacks_as_the_two_prediction_arrays():
    features, y, features_unlabeled = regression_data()
    result = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=4, seed=1)
    yhat, yhat_unlabeled = result
    assert isinstance(result, CrossFitPredictions) and len(result) == 2
    assert yhat.shape == (60,) and yhat_unlabeled.shape == (200,)
    assert result.yhat is yhat and result[1] is yhat_unlabeled
    assert result.folds.shape == (60,) and set(result.folds.tolist()) == {0, 1, 2, 3}
    assert len(result.models) == 4 and result.response == "predict"
    np.testing.assert_allclose(result.weights, np.bincount(result.folds) / 60)
    assert "folds=4" in repr(result)


def test_each_labeled_prediction_comes_from_a_model_that_never_saw_the_row():
    n = 53
    ids = np.arange(n, dtype=float)
    features = np.column_stack([ids, np.random.default_rng(0).normal(size=n)])
    unlabeled = np.column_stack([np.arange(n, n + 40, dtype=float), np.zeros(40)])
    result = cross_fit(Memoriser(), features, np.zeros(n), unlabeled, folds=5, seed=3)
    # the memoriser predicts 1 exactly for rows it was trained on: out-of-fold means all zeros
    np.testing.assert_array_equal(result.yhat, np.zeros(n))
    for fold, model in enumerate(result.models):
        assert model.seen_ == set(np.flatnonzero(result.folds != fold).tolist())
    # a model that saw the labeled rows predicts them in-sample: the same estimator, fitted on all rows
    assert np.all(Memoriser().fit(features, np.zeros(n)).predict(features) == 1.0)


def test_predictions_equal_a_direct_computation_of_the_fold_models():
    features, y, features_unlabeled = regression_data(n=63)  # 63 = 5 folds of sizes 13, 13, 13, 12, 12
    result = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=5, seed=7)
    yhat, average = direct_least_squares(features, y, features_unlabeled, result.folds)
    np.testing.assert_allclose(result.yhat, yhat, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.yhat_unlabeled, average, rtol=1e-10, atol=1e-12)
    # with equal folds the weights are 1/K: the plain average of the K models
    features, y, features_unlabeled = regression_data(n=60)
    result = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=5, seed=7)
    plain = np.mean([model.predict(features_unlabeled) for model in result.models], axis=0)
    np.testing.assert_allclose(result.yhat_unlabeled, plain, rtol=1e-12)


def test_fold_disagreement_is_the_spread_of_the_fold_models():
    features, y, features_unlabeled = regression_data(n=60)
    result = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=3, seed=2)
    each = np.array([model.predict(features_unlabeled) for model in result.models])
    expected = np.sqrt(np.mean(np.var(each, axis=0)))  # equal folds: equal weights
    assert result.fold_disagreement == pytest.approx(expected, rel=1e-10)


def test_fold_assignment_is_balanced_and_seeded():
    features, y, features_unlabeled = regression_data(n=62)
    first = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=5, seed=11)
    again = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=5, seed=11)
    other = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=5, seed=12)
    assert sorted(np.bincount(first.folds)) == [12, 12, 12, 13, 13]
    np.testing.assert_array_equal(first.folds, again.folds)
    np.testing.assert_array_equal(first.yhat, again.yhat)
    np.testing.assert_array_equal(first.yhat_unlabeled, again.yhat_unlabeled)
    assert not np.array_equal(first.folds, other.folds)
    assert not np.array_equal(first.yhat, other.yhat)
    # a Generator or SeedSequence works as a seed, and the same state gives the same folds
    from_generator = cross_fit(LeastSquares(), features, y, features_unlabeled, seed=np.random.default_rng(11))
    np.testing.assert_array_equal(from_generator.folds, first.folds)


def test_stratified_folds_spread_every_stratum_evenly():
    rng = np.random.default_rng(4)
    y = (rng.random(101) < 0.12).astype(float)  # a rare outcome: about 12 ones
    features = rng.normal(size=(101, 2))
    result = cross_fit(LeastSquares(), features, y, rng.normal(size=(30, 2)), folds=5, seed=0, stratify=True)
    for value in (0.0, 1.0):
        counts = np.bincount(result.folds[y == value], minlength=5)
        assert counts.max() - counts.min() <= 1
    sizes = np.bincount(result.folds)
    assert sizes.max() - sizes.min() <= 1
    groups = np.repeat(["a", "b", "c"], [50, 30, 21])
    by_group = cross_fit(LeastSquares(), features, y, rng.normal(size=(30, 2)), folds=4, seed=0, stratify=groups)
    for group in "abc":
        counts = np.bincount(by_group.folds[groups == group], minlength=4)
        assert counts.max() - counts.min() <= 1


def test_folds_given_as_labels_keep_each_cluster_in_one_fold():
    features, y, features_unlabeled = regression_data(n=60)
    clusters = np.repeat(np.arange(12), 5)
    result = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=clusters % 3)
    np.testing.assert_array_equal(result.folds, clusters % 3)
    yhat, average = direct_least_squares(features, y, features_unlabeled, clusters % 3)
    np.testing.assert_allclose(result.yhat, yhat, rtol=1e-10)
    np.testing.assert_allclose(result.yhat_unlabeled, average, rtol=1e-10)


def test_the_estimator_passed_in_is_never_fitted():
    features, y, features_unlabeled = regression_data()
    estimator = LeastSquares()
    result = cross_fit(estimator, features, y, features_unlabeled)
    assert not hasattr(estimator, "coef_")
    assert all(model is not estimator for model in result.models)
    assert len({id(model) for model in result.models}) == 5


def test_pandas_in_pandas_out_with_the_index_kept():
    features, y, features_unlabeled = regression_data(n=40, N=30)
    frame = pd.DataFrame(features, columns=["a", "b"], index=pd.Index(np.arange(100, 140), name="unit"))
    unlabeled = pd.DataFrame(features_unlabeled[:, ::-1], columns=["b", "a"], index=[f"u{j}" for j in range(30)])
    outcome = pd.Series(y, index=frame.index, name="income")
    result = cross_fit(LeastSquares(), frame, outcome, unlabeled, folds=4, seed=5)
    assert isinstance(result.yhat, pd.Series) and result.yhat.index.equals(frame.index)
    assert isinstance(result.yhat_unlabeled, pd.Series) and result.yhat_unlabeled.index.equals(unlabeled.index)
    assert isinstance(result.folds, pd.Series) and result.folds.index.equals(frame.index)
    # the unlabeled columns were matched by name: same numbers as the arrays in the same order
    arrays = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=4, seed=5)
    np.testing.assert_allclose(result.yhat.to_numpy(), arrays.yhat)
    np.testing.assert_allclose(result.yhat_unlabeled.to_numpy(), arrays.yhat_unlabeled)
    # the outputs feed a ppinfer model directly
    res = ppinfer.Mean(outcome, result.yhat, result.yhat_unlabeled).fit()
    assert np.isfinite(res.bse.iloc[0])


def test_multi_output_predictions_keep_their_columns():
    features, y, features_unlabeled = regression_data(n=50, N=20)
    outcomes = pd.DataFrame({"y1": y, "y2": -y})
    yhat, yhat_unlabeled = cross_fit(LeastSquares(), features, outcomes, features_unlabeled, folds=3, seed=0)
    assert list(yhat.columns) == ["y1", "y2"] and yhat_unlabeled.shape == (20, 2)
    np.testing.assert_allclose(yhat["y2"], -yhat["y1"], atol=1e-10)


def test_text_features_stay_one_dimensional():
    class Length:
        def fit(self, features, y):
            assert np.ndim(features) == 1
            self.slope_ = np.mean(np.asarray(y) / np.array([len(t) for t in features]))
            return self

        def predict(self, features):
            return self.slope_ * np.array([len(t) for t in features], dtype=float)

    texts = np.array(["a" * k for k in range(1, 21)])
    yhat, yhat_unlabeled = cross_fit(Length(), texts, 2.0 * np.arange(1, 21), np.array(["abc", "abcdef"]), folds=4)
    np.testing.assert_allclose(yhat, 2.0 * np.arange(1, 21))
    np.testing.assert_allclose(yhat_unlabeled, [6.0, 12.0])


def test_sparse_features_are_indexed_by_rows():
    sparse = pytest.importorskip("scipy.sparse")

    class Dense(LeastSquares):
        def fit(self, features, y):
            return super().fit(features.toarray(), y)

        def predict(self, features):
            return super().predict(features.toarray())

    features, y, features_unlabeled = regression_data(n=40, N=10)
    result = cross_fit(Dense(), sparse.csr_matrix(features), y, sparse.csr_matrix(features_unlabeled), seed=1)
    dense = cross_fit(LeastSquares(), features, y, features_unlabeled, seed=1)
    np.testing.assert_allclose(result.yhat, dense.yhat)
    np.testing.assert_allclose(result.yhat_unlabeled, dense.yhat_unlabeled)


# -- classifiers ---------------------------------------------------------------------


def test_probabilities_of_the_positive_class():
    rng = np.random.default_rng(9)
    y = (rng.random(40) < 0.3).astype(float)
    features, unlabeled = rng.normal(size=(40, 1)), rng.normal(size=(7, 1))
    for stub in (Prevalence(), Prevalence(reverse=True), Prevalence(with_classes=False)):
        result = cross_fit(stub, features, y, unlabeled, folds=4, seed=2)
        assert result.response == "predict_proba"  # "auto" with a binary y and predict_proba
        folds = result.folds
        expected = np.array([y[folds != folds[i]].mean() for i in range(40)])
        np.testing.assert_allclose(result.yhat, expected, rtol=1e-12)
        weights = np.bincount(folds) / 40
        shares = np.array([y[folds != k].mean() for k in range(4)])
        np.testing.assert_allclose(result.yhat_unlabeled, np.full(7, weights @ shares), rtol=1e-12)
    hard = cross_fit(Prevalence(), features, y, unlabeled, folds=4, seed=2, response="predict")
    assert hard.response == "predict" and set(np.unique(hard.yhat)) <= {0.0, 1.0}


def test_probabilities_need_a_binary_outcome_and_two_classes_per_fold():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(30, 1))
    with pytest.raises(ValueError, match="binary outcome"):
        cross_fit(Prevalence(), features, rng.integers(0, 3, 30).astype(float), features, response="predict_proba")
    # "auto" with a non-binary outcome falls back to predict
    assert cross_fit(Prevalence(), features, rng.normal(size=30), features).response == "predict"
    rare = np.zeros(30)
    rare[:2] = 1.0
    with pytest.raises(ValueError, match="stratify=True"):
        # both positive rows in fold 0: fold 0's model would be trained on zeros only
        cross_fit(Prevalence(), features, rare, features, folds=np.r_[0, 0, np.arange(28) % 2])
    result = cross_fit(Prevalence(), features, rare, features, folds=2, seed=0, stratify=True)
    assert np.all(result.yhat == pytest.approx(1 / 15))


# -- the variance ppinfer computes from cross-fitted predictions --------------------


def test_mean_with_cross_fitted_predictions_is_the_cross_prediction_estimator():
    """lam = 1: theta+ = mean(f_bar(X~)) + mean(Y - f_oof), var = s2(Y - f_oof)/n + s2(f_bar)/N."""
    features, y, features_unlabeled = regression_data(n=80, N=500, seed=3)
    yhat, yhat_unlabeled = cross_fit(NearestNeighbours(3), features, y, features_unlabeled, seed=0)
    res = ppinfer.Mean(y, yhat, yhat_unlabeled).fit(method="ppi", cov_type="HC0", use_t=False)
    rectifier = y - yhat
    assert res.params.iloc[0] == pytest.approx(yhat_unlabeled.mean() + rectifier.mean(), rel=1e-12)
    variance = rectifier.var() / 80 + yhat_unlabeled.var() / 500  # numpy var: 1/n normalisation
    assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-10)


# -- scikit-learn, when installed ------------------------------------------------------


def test_matches_scikit_learn_cross_val_predict():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    features, y, features_unlabeled = regression_data(n=70)
    result = cross_fit(LinearRegression(), features, y, features_unlabeled, folds=5, seed=4)
    reference = cross_val_predict(LinearRegression(), features, y, cv=PredefinedSplit(result.folds))
    np.testing.assert_allclose(result.yhat, reference, rtol=1e-10)
    labels = (y > 0).astype(int)
    result = cross_fit(LogisticRegression(), features, labels, features_unlabeled, folds=5, seed=4, stratify=True)
    reference = cross_val_predict(
        LogisticRegression(), features, labels, cv=PredefinedSplit(result.folds), method="predict_proba"
    )[:, 1]
    np.testing.assert_allclose(result.yhat, reference, rtol=1e-8)


def test_readme_example_runs_as_written():
    pytest.importorskip("sklearn")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Cross-fitting when the model is trained on the labeled data", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md (cross-fitting)", "exec"), namespace)
    # the example fits OLS of y on x1 (true slope 1) with cross-fitted random-forest predictions
    assert list(namespace["res"].params.index) == ["Intercept", "x1"]
    assert namespace["res"].method == "ppi++"


def test_progress_bar_of_the_folds(capsys):
    features, y, features_unlabeled = regression_data()
    quiet = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=3, seed=1, progress=False)
    assert capsys.readouterr().err == ""
    shown = cross_fit(LeastSquares(), features, y, features_unlabeled, folds=3, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "cross-fitting" in err and "3/3" in err
    np.testing.assert_array_equal(quiet.yhat, shown.yhat)
    # "auto" (the default) is silent where standard error is not a terminal, as under pytest
    cross_fit(LeastSquares(), features, y, features_unlabeled, folds=3, seed=1)
    assert capsys.readouterr().err == ""


def test_package_does_not_import_scikit_learn():
    code = "import sys, ppinfer, ppinfer.crossfit; print('sklearn' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


# -- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"folds": 1}, ValueError, "folds must be between 2"),
        ({"folds": 61}, ValueError, "folds must be between 2"),
        ({"folds": 2.5}, TypeError, "folds must be an integer"),
        ({"folds": True}, TypeError, "folds must be an integer"),
        ({"folds": np.zeros(60)}, ValueError, "at least 2 different folds"),
        ({"folds": np.arange(10)}, ValueError, "one per labeled row"),
        ({"folds": np.arange(60) % 2, "stratify": True}, ValueError, "stratify cannot be combined"),
        ({"stratify": np.arange(10)}, ValueError, "stratify must have one label per labeled row"),
        ({"response": "predict_probas"}, ValueError, "Did you mean 'predict_proba'"),
        ({"fold": 3}, TypeError, "unexpected keyword argument 'fold'"),
        ({"progress": "yes"}, TypeError, "progress must be True, False or 'auto'"),
    ],
)
def test_bad_options(options, error, message):
    features, y, features_unlabeled = regression_data()
    with pytest.raises(error, match=message):
        cross_fit(LeastSquares(), features, y, features_unlabeled, **options)


def test_bad_data():
    features, y, features_unlabeled = regression_data()
    with pytest.raises(ValueError, match="y has 59 rows but features has 60"):
        cross_fit(LeastSquares(), features, y[:-1], features_unlabeled)
    for argument, position in (("features", 0), ("y", 1), ("features_unlabeled", 2)):
        arrays = [features.copy(), y.copy(), features_unlabeled.copy()]
        arrays[position][3] = np.nan
        with pytest.raises(ValueError, match=f"^{argument} has 1 row"):
            cross_fit(LeastSquares(), *arrays)
    with pytest.raises(ValueError, match="features_unlabeled"):
        cross_fit(LeastSquares(), features, y, features_unlabeled[:, :1])
    frame = pd.DataFrame(features, columns=["a", "b"])
    with pytest.raises(ValueError, match="different columns"):
        cross_fit(LeastSquares(), frame, y, pd.DataFrame(features_unlabeled, columns=["a", "c"]))
    with pytest.raises(ValueError, match="different indexes"):
        cross_fit(LeastSquares(), frame, pd.Series(y, index=frame.index + 1), features_unlabeled)
    with pytest.raises(TypeError, match="y is not numeric"):
        cross_fit(LeastSquares(), features, pd.Series(["a"] * 60), features_unlabeled)
    with pytest.raises(ValueError, match="features_unlabeled is empty"):
        cross_fit(LeastSquares(), features, y, np.empty((0, 2)))
    with pytest.raises(ValueError, match="at least 2 labeled rows"):
        cross_fit(LeastSquares(), features[:1], y[:1], features_unlabeled)


def test_bad_estimators():
    features, y, features_unlabeled = regression_data()
    with pytest.raises(TypeError, match="not an instance; pass LeastSquares()"):
        cross_fit(LeastSquares, features, y, features_unlabeled)

    class FitOnly:
        def fit(self, features, y):
            return self

    with pytest.raises(TypeError, match=r"FitOnly\) has no 'predict' method"):
        cross_fit(FitOnly(), features, y, features_unlabeled)
    with pytest.raises(TypeError, match="has no 'predict_proba' method"):
        cross_fit(LeastSquares(), features, (y > 0).astype(float), features_unlabeled, response="predict_proba")
    with pytest.raises(ValueError, match="NaN or infinite predictions"):
        cross_fit(Broken("nan"), features, y, features_unlabeled)
    with pytest.raises(ValueError, match="one prediction"):
        cross_fit(Broken("length"), features, y, features_unlabeled)


# -- Monte Carlo: in-sample against cross-fitted predictions --------------------------
#
# Covariates x1, x2 independent N(0, 1); Y = 1 + x1 + x2 + x2^2 / 2 + e, e ~ N(0, 1).
# Closed-form truth: E[Y] = 1.5, and the population OLS fit of Y on (1, x1) is
# (1.5, 1) because x2 + x2^2 / 2 is independent of x1. The learners see (x1, x2).

NOMINAL, ALPHA = 0.90, 0.10
#: 400 replications: 3.5 MC SE = 0.052 around 0.90; the in-sample 1-NN intervals cover 0.62-0.71
N_LABELED, N_UNLABELED, REPS, FOLDS = 300, 1000, 400, 5
TRUTH = {"mean": np.array([1.5]), "ols": np.array([1.5, 1.0])}
LEARNERS = {"1-NN": NearestNeighbours(1), "5-NN": NearestNeighbours(5), "quadratic": LeastSquares(quadratic=True)}
#: (learner, predictions) pairs the tests check
RUNS = (("1-NN", "in-sample"), ("5-NN", "cross-fit"), ("quadratic", "cross-fit"))
#: printed by the script only: cross-fitted 1-NN (an unstable learner, which the theory leaves out)
#: and in-sample 5-NN (milder overfitting)
REPORT_RUNS = (("1-NN", "cross-fit"), ("5-NN", "in-sample"))


def draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    features = rng.normal(size=(size, 2))
    y = 1.0 + features[:, 0] + features[:, 1] + 0.5 * features[:, 1] ** 2 + rng.normal(size=size)
    return features, y


def predictions(name: str, kind: str, features, y, features_unlabeled, rng):
    estimator = LEARNERS[name]
    if kind == "cross-fit":
        return cross_fit(estimator, features, y, features_unlabeled, folds=FOLDS, seed=rng)
    fitted = estimator.fit(features, y)  # trained on the labeled rows, then asked to predict them
    return fitted.predict(features), fitted.predict(features_unlabeled)


@functools.cache
def replicate(reps: int = REPS, runs: tuple = RUNS, n_unlabeled: int = N_UNLABELED) -> dict:
    """Seeded replications: intervals and variances per (learner, predictions, estimand, method).

    The classical fit is stored under ("classical", "-", estimand, "classical").
    """
    cells: dict = {}

    def store(key, res):
        cell = cells.setdefault(key, {"interval": [], "variance": [], "params": []})
        cell["interval"].append(res.conf_int(ALPHA).to_numpy())
        cell["variance"].append(res.bse.to_numpy() ** 2)
        cell["params"].append(res.params.to_numpy())

    start = time.perf_counter()
    for child in np.random.SeedSequence(20_250_505).spawn(reps):
        rng = np.random.default_rng(child)
        features, y = draw(rng, N_LABELED)
        features_unlabeled, _ = draw(rng, n_unlabeled)
        design = np.column_stack([np.ones(N_LABELED), features[:, 0]])
        design_unlabeled = np.column_stack([np.ones(n_unlabeled), features_unlabeled[:, 0]])
        for position, (name, kind) in enumerate(runs):
            yhat, yhat_unlabeled = predictions(name, kind, features, y, features_unlabeled, rng)
            models = {
                "mean": ppinfer.Mean(y, yhat, yhat_unlabeled),
                "ols": ppinfer.OLS(y, design, yhat, design_unlabeled, yhat_unlabeled),
            }
            for estimand, model in models.items():
                if position == 0:
                    store(("classical", "-", estimand, "classical"), model.fit(method="classical"))
                for method in ("ppi", "ppi++"):
                    store((name, kind, estimand, method), model.fit(method=method))
    cells = {key: {k: np.array(v) for k, v in cell.items()} for key, cell in cells.items()}
    cells["seconds"] = time.perf_counter() - start
    return cells


def coverage(cell: dict, estimand: str) -> np.ndarray:
    interval = cell["interval"]
    return np.mean((interval[:, :, 0] <= TRUTH[estimand]) & (TRUTH[estimand] <= interval[:, :, 1]), axis=0)


def mc_se(reps: int = REPS) -> float:
    return float(np.sqrt(NOMINAL * (1.0 - NOMINAL) / reps))


def width_ratio(cell: dict, reference: dict) -> tuple[np.ndarray, np.ndarray]:
    """Ratio of mean interval widths and its delta-method MC standard error (paired replications)."""
    a = np.diff(cell["interval"], axis=2)[:, :, 0]
    b = np.diff(reference["interval"], axis=2)[:, :, 0]
    ratio = a.mean(axis=0) / b.mean(axis=0)
    return ratio, np.std(a - ratio * b, axis=0, ddof=1) / np.sqrt(a.shape[0]) / b.mean(axis=0)


def expected_width_ratio(estimand: str, n_unlabeled: int = N_UNLABELED) -> np.ndarray:
    """First-order PPI/classical width ratios for the cross-fitted quadratic least-squares learner.

    Returns ``(oracle, learned)``, each with one value per parameter. The oracle
    knows the regression function ``m(x) = 1 + x1 + x2 + x2^2 / 2``
    (``Var m(X) = 2.5``, ``Var Y = 3.5``): its rectifier is the noise e (variance 1).
    Mean: classical ``Var Y / n``, PPI ``1 / n + Var m(X) / N``. OLS of Y on (1, x1):
    classical ``E[x^2 u^2] / n = 2.5 / n`` for both coefficients
    (``u = x2 + (x2^2 - 1) / 2 + e`` is independent of x1), PPI
    ``E[x^2 e^2] / n + 1.5 / N`` (``m(x) - 1.5 - x1`` has variance 1.5).
    The learned model (p = 6 coefficients on m = n (K - 1) / K rows) adds to the
    rectifier's weighted second moment ``E[w(x) (f - m)^2] = tr(G^-1 G_w) / m`` to first
    order, with ``G = E[phi phi']``, ``G_w = E[w phi phi']``, w = 1 for the mean and
    the intercept and ``x1^2`` for the slope; the moments come from Gauss-Hermite
    quadrature (``tr(G^-1 G) = p``). Terms of order ``(p / m)^2`` are left out.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(20)
    x1, x2 = (grid.ravel() for grid in np.meshgrid(nodes, nodes, indexing="ij"))
    mass = np.outer(weights, weights).ravel() / weights.sum() ** 2
    phi = np.column_stack([np.ones_like(x1), x1, x2, x1 * x1, x1 * x2, x2 * x2])
    gram = (phi * mass[:, None]).T @ phi
    m = N_LABELED * (FOLDS - 1) / FOLDS
    if estimand == "mean":
        classical, unlabeled, weighting = np.array([3.5]), 2.5, [np.ones_like(x1)]
    else:
        classical, unlabeled, weighting = np.array([2.5, 2.5]), 1.5, [np.ones_like(x1), x1**2]
    excess = np.array([np.trace(np.linalg.solve(gram, (phi * (mass * w)[:, None]).T @ phi)) / m for w in weighting])
    oracle = np.sqrt((1.0 / N_LABELED + unlabeled / n_unlabeled) / (classical / N_LABELED))
    learned = np.sqrt(((1.0 + excess) / N_LABELED + unlabeled / n_unlabeled) / (classical / N_LABELED))
    return np.array([oracle, learned])


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand", ["mean", "ols"])
@pytest.mark.parametrize("method", ["ppi", "ppi++"])
def test_in_sample_predictions_of_an_overfitting_model_undercover(estimand, method):
    """1-NN trained on the labeled rows predicts them exactly: the rectifier vanishes."""
    cover = coverage(replicate()[("1-NN", "in-sample", estimand, method)], estimand)
    assert np.all(cover < NOMINAL - 3.5 * mc_se()), cover


@pytest.mark.montecarlo
@pytest.mark.parametrize("learner", ["5-NN", "quadratic"])
@pytest.mark.parametrize("estimand", ["mean", "ols"])
@pytest.mark.parametrize("method", ["ppi", "ppi++"])
def test_cross_fitted_predictions_cover(learner, estimand, method):
    cover = coverage(replicate()[(learner, "cross-fit", estimand, method)], estimand)
    assert np.all(np.abs(cover - NOMINAL) <= 3.5 * mc_se()), cover


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand", ["mean", "ols"])
def test_classical_covers(estimand):
    """The reference the others are read against (and a check of the design's closed-form truth)."""
    cover = coverage(replicate()[("classical", "-", estimand, "classical")], estimand)
    assert np.all(np.abs(cover - NOMINAL) <= 3.5 * mc_se()), cover


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand", ["mean", "ols"])
def test_cross_fitting_a_good_model_narrows_the_intervals(estimand):
    """PPI with the cross-fitted quadratic model: narrower than classical, as narrow as theory says.

    Bounds: no narrower than with the true regression function (the oracle), and no
    wider than the first-order width of the learned model plus 0.02 for the terms of
    order (p / m)^2 that formula leaves out (p / m = 6 / 240).
    """
    cells = replicate()
    classical = cells[("classical", "-", estimand, "classical")]
    ratio, se = width_ratio(cells[("quadratic", "cross-fit", estimand, "ppi")], classical)
    oracle, learned = expected_width_ratio(estimand)
    assert np.all(ratio >= oracle - 3.5 * se), (ratio, oracle)
    assert np.all(ratio <= learned + 0.02 + 3.5 * se), (ratio, learned)
    assert np.all(ratio + 3.5 * se < 1.0)
    tuned, tuned_se = width_ratio(cells[("quadratic", "cross-fit", estimand, "ppi++")], classical)
    assert np.all(tuned <= ratio + 3.5 * tuned_se), (tuned, ratio)


def report(reps: int = REPS, n_unlabeled: int = N_UNLABELED) -> pd.DataFrame:
    """Every figure of every run, and the closed-form width ratios of the quadratic learner."""
    cells = replicate(reps, RUNS + REPORT_RUNS, n_unlabeled)
    classical = {e: cells[("classical", "-", e, "classical")] for e in TRUTH}
    rows = []
    for key, cell in cells.items():
        if key == "seconds":
            continue
        name, kind, estimand, method = key
        ratio, ratio_se = width_ratio(cell, classical[estimand])
        # estimated variance over the Monte Carlo variance of the estimates: 1 when the variance is right
        variance_ratio = cell["variance"].mean(axis=0) / cell["params"].var(axis=0, ddof=1)
        bias = cell["params"].mean(axis=0) - TRUTH[estimand]
        for k, value in enumerate(coverage(cell, estimand)):
            rows.append({
                "learner": name, "predictions": kind, "estimand": estimand, "method": method,
                "parameter": ["Intercept", "x1"][k] if estimand == "ols" else "mean",
                "coverage": value, "mc_se": mc_se(reps), "width_vs_classical": ratio[k],
                "ratio_se": ratio_se[k], "bias": bias[k], "var_ratio": variance_ratio[k],
            })
    print(f"{reps} replications, n = {N_LABELED}, N = {n_unlabeled}, K = {FOLDS}: {cells['seconds']:.1f} s")
    for estimand in TRUTH:
        oracle, learned = expected_width_ratio(estimand, n_unlabeled).round(4)
        print(f"{estimand}: PPI/classical width, quadratic learner: oracle {oracle}, first-order learned {learned}")
    return pd.DataFrame(rows)


if __name__ == "__main__":
    # python tests/test_crossfit.py [reps [N]]
    pd.set_option("display.width", 200, "display.max_rows", 200)
    arguments = [int(value) for value in sys.argv[1:3]]
    print(report(*arguments).round(4).to_string(index=False))
