"""Cross-fitting: predictions from a model trained on the labeled sample itself.

PPI assumes the predictions come from a model fitted on other data. When the only
outcomes available are the labeled sample's, training the model on them and
predicting the same rows gives in-sample predictions: they fit the outcomes too
well, the rectifier ``y - yhat`` looks small, and PPI intervals are far too
narrow. :func:`cross_fit` produces the predictions of *cross-prediction*
(Zrnic & Candes 2024): K models, each trained with one fold of the labeled rows
held out; every labeled row is predicted by the model that did not see it, and
every unlabeled row by the average of the K models. The two arrays go straight
into :class:`~ppinfer.Mean`, :class:`~ppinfer.OLS`, :class:`~ppinfer.Logit` or
:class:`~ppinfer.Poisson`, whose PPI and PPI++ variances are then the
cross-prediction variances (see :func:`cross_fit`, Notes).

Any object with scikit-learn's ``fit``/``predict`` (or ``predict_proba``) methods
works; scikit-learn itself is never imported.
"""

from __future__ import annotations

import copy
import operator
import sys
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ._options import choose, reject_unknown_keywords
from ._progress import check_progress, progress as progress_bar
from .data import as_variable

__all__ = ["CrossFitPredictions", "cross_fit"]

RESPONSES = {
    "auto": "auto",
    "predict": "predict",
    "predict_proba": "predict_proba",
    "proba": "predict_proba",
}


class _PredictionPair(NamedTuple):
    yhat: Any
    yhat_unlabeled: Any


class CrossFitPredictions(_PredictionPair):
    """Cross-fitted predictions; unpacks as ``yhat, yhat_unlabeled``.

    Attributes
    ----------
    yhat : ndarray or pandas object, shape (n,) or (n, k)
        Out-of-fold prediction of each labeled row.
    yhat_unlabeled : ndarray or pandas object, shape (N,) or (N, k)
        Prediction of each unlabeled row: the fold models' predictions averaged
        with weights ``weights``.
    folds : ndarray or pandas.Series of int, shape (n,)
        Fold (0 to K - 1) of each labeled row; its model never saw the row.
    models : list
        The K fitted fold models; model ``k`` was trained without fold ``k``.
    weights : ndarray, shape (K,)
        ``n_k / n``, the share of labeled rows in each fold (``1 / K`` for equal folds).
    response : str
        ``"predict"`` or ``"predict_proba"`` (probability of the larger outcome value).
    fold_disagreement : float or ndarray
        Root mean square, over the unlabeled rows, of the fold models' weighted
        spread around their average, in outcome units (per column). Compare it
        with the standard deviation of ``yhat_unlabeled``: a large ratio means
        the learner is unstable, the case the theory of cross-prediction leaves out.

    Examples
    --------
    With a learner that predicts the average outcome of its training rows, each
    labeled row gets the other fold's average and each unlabeled row the mean of
    the two fold averages:

    >>> import numpy as np, ppinfer
    >>> class Average:
    ...     def fit(self, X, y):
    ...         self.value = float(np.mean(y))
    ...         return self
    ...     def predict(self, X):
    ...         return np.full(len(X), self.value)
    >>> rng = np.random.default_rng(0)
    >>> pred = ppinfer.cross_fit(Average(), rng.normal(size=(10, 1)), np.arange(10.0),
    ...                          rng.normal(size=(4, 1)), folds=2, seed=0, progress=False)
    >>> pred
    CrossFitPredictions(yhat: 10, yhat_unlabeled: 4, folds=2, response='predict')
    >>> pred.folds
    array([1, 1, 0, 0, 0, 1, 1, 1, 0, 0])
    >>> pred.yhat.round(1)
    array([5.2, 5.2, 3.8, 3.8, 3.8, 5.2, 5.2, 5.2, 3.8, 3.8])
    >>> pred.weights, pred.yhat_unlabeled.round(1)
    (array([0.5, 0.5]), array([4.5, 4.5, 4.5, 4.5]))
    >>> yhat, yhat_unlabeled = pred          # unpacks like a tuple
    """

    def __new__(cls, yhat: ArrayLike, yhat_unlabeled: ArrayLike, *, folds: ArrayLike | None = None,
                models: list | None = None, weights: np.ndarray | None = None, response: str | None = None,
                fold_disagreement: float | np.ndarray | None = None):
        self = super().__new__(cls, yhat, yhat_unlabeled)
        self.folds = folds
        self.models = models
        self.weights = weights
        self.response = response
        self.fold_disagreement = fold_disagreement
        return self

    def __repr__(self) -> str:
        shape = lambda values: "x".join(map(str, np.shape(values)))  # noqa: E731
        k = 0 if self.models is None else len(self.models)
        return (
            f"CrossFitPredictions(yhat: {shape(self.yhat)}, yhat_unlabeled: {shape(self.yhat_unlabeled)}, "
            f"folds={k}, response={self.response!r})"
        )


# -- input handling -----------------------------------------------------------------


def _check_estimator(estimator, method: str) -> None:
    """Raise a TypeError unless ``estimator`` is an instance with ``fit`` and ``method``."""
    if isinstance(estimator, type):
        raise TypeError(
            f"estimator is the class {estimator.__name__}, not an instance; pass {estimator.__name__}() "
            "(with its options) instead."
        )
    missing = [name for name in dict.fromkeys(("fit", method)) if not callable(getattr(estimator, name, None))]
    if missing:
        raise TypeError(
            f"estimator ({type(estimator).__name__}) has no {' or '.join(map(repr, missing))} method; "
            "cross_fit needs an object with scikit-learn's fit(features, y) and predict(features) "
            "(or predict_proba(features) for response='predict_proba')."
        )


def _fresh_copy(estimator):
    """An unfitted copy: ``sklearn.base.clone`` for scikit-learn style objects, else a deep copy.

    scikit-learn is used only if it is already imported (it is, whenever the
    estimator comes from it); ppinfer never imports it.
    """
    base = sys.modules.get("sklearn.base")
    if base is not None and callable(getattr(estimator, "get_params", None)):
        return base.clone(estimator)
    return copy.deepcopy(estimator)


def _as_rows(value, argument: str):
    """Features as a row-indexable object, their number of rows and their pandas index (or None)."""
    if value is None:
        raise TypeError(f"{argument} is required; got None.")
    if isinstance(value, pd.Series) and pd.api.types.is_numeric_dtype(value):
        value = value.to_frame()  # one numeric feature: estimators want a column; text stays 1-D
    if isinstance(value, (pd.DataFrame, pd.Series)):
        frame = value.to_frame() if isinstance(value, pd.Series) else value
        bad = frame.isna().to_numpy().any(axis=1)
        numeric = frame.select_dtypes(include=["number", "bool"])
        if numeric.shape[1]:
            bad |= ~np.isfinite(numeric.to_numpy(dtype=float, na_value=0.0)).all(axis=1)
        _raise_if_missing(bad, argument)
        return value, value.shape[0], value.index
    if callable(getattr(value, "tocsr", None)):  # a scipy sparse matrix: its stored values only
        value = value.tocsr()
        if not np.all(np.isfinite(value.data)):
            raise ValueError(f"{argument} has NaN or infinite entries; clean them before cross-fitting.")
        return value, value.shape[0], None
    array = np.asarray(value)
    if array.ndim == 0:
        raise ValueError(f"{argument} must have one row per unit; got a scalar.")
    if array.shape[0] == 0:
        return array, 0, None
    if array.ndim == 1 and array.dtype.kind in "biuf":
        array = array[:, None]  # one numeric feature as a column; text (strings) stays 1-D
    if array.dtype.kind in "biufc":
        bad = ~np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
    else:
        bad = pd.isna(array.reshape(array.shape[0], -1)).any(axis=1)
    _raise_if_missing(bad, argument)
    return array, array.shape[0], None


def _raise_if_missing(bad: np.ndarray, argument: str) -> None:
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{argument} has {int(bad.sum())} row(s) with NaN or infinite values (first at position {first}); "
            "drop or impute them before cross-fitting (drop a labeled row from features and y together)."
        )


def _take(rows, positions: np.ndarray):
    return rows.iloc[positions] if isinstance(rows, (pd.DataFrame, pd.Series)) else rows[positions]


def _matching_columns(features, features_unlabeled):
    """``features_unlabeled`` with the columns of ``features``, or raise."""
    if isinstance(features, pd.DataFrame) and isinstance(features_unlabeled, pd.DataFrame):
        missing = [c for c in features.columns if c not in features_unlabeled.columns]
        extra = [c for c in features_unlabeled.columns if c not in features.columns]
        if missing or extra:
            raise ValueError(
                "features and features_unlabeled have different columns: "
                f"missing from features_unlabeled {missing}, not in features {extra}."
            )
        return features_unlabeled[list(features.columns)]
    if features.shape[1:] != features_unlabeled.shape[1:]:
        raise ValueError(
            f"features has rows of shape {features.shape[1:]} but features_unlabeled {features_unlabeled.shape[1:]}; "
            "both must hold the same features."
        )
    return features_unlabeled


def _fold_ids(folds, n: int, strata: np.ndarray | None, seed) -> np.ndarray:
    """Fold of each labeled row: given by the user, or random, balanced (and within strata)."""
    if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool):
        if isinstance(folds, (float, str, bool)) or folds is None:
            raise TypeError(f"folds must be an integer or one fold label per labeled row; got {folds!r}.")
        labels = np.asarray(folds)
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"folds given as labels must have one per labeled row ({n}); got shape {labels.shape}.")
        if pd.isna(labels).any():
            raise ValueError("folds has missing labels; give every labeled row a fold.")
        if strata is not None:
            raise ValueError("stratify cannot be combined with folds given as labels; the folds are already set.")
        codes, uniques = pd.factorize(labels, sort=True)
        if len(uniques) < 2:
            raise ValueError("folds given as labels must name at least 2 different folds.")
        return codes.astype(np.intp)
    k = operator.index(folds)
    if not 2 <= k <= n:
        raise ValueError(f"folds must be between 2 and the number of labeled rows ({n}); got {k}.")
    order = np.random.default_rng(seed).permutation(n)
    if strata is not None:
        # rows grouped by stratum, in random order within it: dealing them out in turn
        # spreads every stratum evenly over the folds and keeps the fold sizes within one
        order = order[np.argsort(strata[order], kind="stable")]
    ids = np.empty(n, dtype=np.intp)
    ids[order] = np.arange(n) % k
    return ids


def _strata(stratify, y: np.ndarray, n: int) -> np.ndarray | None:
    if stratify is None or stratify is False:
        return None
    if stratify is True:
        if y.ndim != 1:
            raise ValueError("stratify=True stratifies by y, which needs a one-dimensional y; pass the strata.")
        labels = y
    else:
        labels = stratify.to_numpy() if isinstance(stratify, (pd.Series, pd.Index)) else np.asarray(stratify)
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"stratify must have one label per labeled row ({n}); got shape {labels.shape}.")
    if pd.isna(labels).any():
        raise ValueError("stratify has missing labels.")
    return pd.factorize(labels, sort=True)[0]


# -- predictions --------------------------------------------------------------------


def _predictions(model, rows, response: str, positive, fold: int, argument: str) -> np.ndarray:
    """One fold model's predictions for ``rows`` as a float array (probabilities of ``positive``)."""
    raw = model.predict_proba(rows) if response == "predict_proba" else model.predict(rows)
    try:
        values = np.asarray(raw.to_numpy() if isinstance(raw, (pd.Series, pd.DataFrame)) else raw, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"the model of fold {fold} returned non-numeric {response}() output for {argument}; "
            "ppinfer needs numeric predictions (use predict_proba for a classifier's labels)."
        ) from None
    nrows = rows.shape[0]
    if response == "predict_proba" and values.ndim == 2:
        classes = getattr(model, "classes_", None)
        if classes is not None and len(classes) == values.shape[1]:
            match = np.flatnonzero(np.asarray(classes) == positive)
            values = values[:, match[0]] if match.size else np.zeros(nrows)
        elif values.shape[1] == 2:
            values = values[:, 1]
        else:
            raise ValueError(
                f"predict_proba of fold {fold} returned {values.shape[1]} columns and the model has no "
                "classes_ to say which is the positive class; expected 2 columns for a binary outcome."
            )
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 0 or values.shape[0] != nrows or values.ndim > 2:
        raise ValueError(
            f"the model of fold {fold} returned {response}() output of shape {values.shape} for {nrows} rows of "
            f"{argument}; expected one prediction (or one row of predictions) per row."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"the model of fold {fold} returned NaN or infinite predictions for {argument}.")
    return values


def _choose_response(response: str, estimator, y: np.ndarray) -> tuple[str, Any]:
    """The prediction method to call and, for probabilities, the positive outcome value."""
    values = np.unique(y) if y.ndim == 1 else None
    binary = values is not None and len(values) == 2
    if response == "auto":
        response = "predict_proba" if binary and callable(getattr(estimator, "predict_proba", None)) else "predict"
    if response == "predict_proba" and not binary:
        found = "a multi-column y" if values is None else f"{len(values)} distinct value(s)"
        raise ValueError(
            f"response='predict_proba' needs a binary outcome (two distinct values in y); found {found}. "
            "For several classes, cross-fit one binary model per class (one against the rest)."
        )
    return response, (values.max() if response == "predict_proba" else None)


def _output(values: np.ndarray, index, names: list[str], pandas: bool):
    if not pandas:
        return values
    if values.ndim == 1:
        return pd.Series(values, index=index, name="yhat")
    columns = names if len(names) == values.shape[1] else [f"yhat{k + 1}" for k in range(values.shape[1])]
    return pd.DataFrame(values, index=index, columns=columns)


def cross_fit(
    estimator: Any,
    features: ArrayLike,
    y: ArrayLike,
    features_unlabeled: ArrayLike,
    *,
    folds: int | ArrayLike = 5,
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
    response: str = "auto",
    stratify: bool | ArrayLike | None = None,
    progress: bool | str = "auto",
    **unknown,
) -> CrossFitPredictions:
    """Out-of-fold predictions for the labeled rows, fold-averaged ones for the unlabeled rows.

    Use it when the prediction model is trained on the labeled sample itself; pass
    the result to a ppinfer model in place of in-sample predictions.

    Parameters
    ----------
    estimator : object with ``fit`` and ``predict`` (or ``predict_proba``)
        Any scikit-learn style estimator (a pipeline, a classifier, your own
        class). It is copied per fold (``sklearn.base.clone`` for scikit-learn
        objects, ``copy.deepcopy`` otherwise) and never fitted itself.
    features : array-like, DataFrame or sparse matrix, shape (n, ...)
        What the estimator learns from, for the labeled rows. It may hold more
        than the regression design ``X`` (any covariate, text embedding, ...).
    y : array-like or pandas object, shape (n,) or (n, k)
        The labeled outcomes.
    features_unlabeled : same kind as ``features``, shape (N, ...)
        The features of the unlabeled rows (same columns, matched by name for DataFrames).
    folds : int or array-like, default 5
        Number of folds K, between 2 and n; or one fold label per labeled row (for
        instance a cluster id, so that a cluster never straddles training and prediction).
    seed : int, SeedSequence, Generator or None
        Seeds the random fold assignment only. An estimator with randomness of its
        own (forests, boosting) needs its own ``random_state`` for reproducible predictions.
    response : {"auto", "predict", "predict_proba"}
        ``"predict_proba"`` predicts the probability of the larger of the two outcome
        values (1 for a 0/1 outcome), what :class:`~ppinfer.Logit` and a prevalence
        :class:`~ppinfer.Mean` need. ``"auto"`` (default) uses it when y has two
        distinct values and the estimator has ``predict_proba``, else ``predict``.
    stratify : None, True or array-like, shape (n,)
        Balance the folds within strata: True stratifies by y (keeps both classes of a
        rare binary outcome in every training set), or give one stratum label per row.
    progress : {"auto", True, False}
        A progress bar of the folds on standard error (tqdm's when installed):
        ``"auto"`` shows it on a terminal or in a notebook only, True always,
        False never.

    Returns
    -------
    CrossFitPredictions
        Unpacks as ``yhat, yhat_unlabeled``; also carries ``folds``, ``models``,
        ``weights`` and ``fold_disagreement``. pandas inputs give pandas outputs
        with the inputs' row index (the labeled index from ``features``, or ``y``).

    Raises
    ------
    TypeError
        The estimator lacks ``fit``/``predict`` (or is a class, not an instance); an
        input is not numeric where it must be; an unknown keyword.
    ValueError
        Lengths that disagree, NaN or infinite values, ``folds`` outside [2, n],
        ``predict_proba`` for an outcome that is not binary, a training fold holding
        a single class.

    Notes
    -----
    The labeled rows are split into K folds ``I_1..I_K`` of sizes ``n_k``; model ``f_k``
    is trained on all labeled rows outside ``I_k``. With ``w_k = n_k / n``::

        yhat_i           = f_k(x_i)                  for i in I_k   (out of fold)
        yhat_unlabeled_j = sum_k w_k f_k(x~_j)                      (fold average)

    Passed to :class:`~ppinfer.Mean` with ``lam = 1`` this is the cross-prediction
    estimator of Zrnic & Candes (2024, PNAS 121, e2322083121),
    ``theta+ = mean_j yhat_unlabeled_j + mean_i (y_i - yhat_i)``, and the variance
    ppinfer computes from these arrays, ``s2(y - yhat) / n + s2(yhat_unlabeled) / N``,
    is the variance of their confidence interval: out-of-fold rectifiers on the
    labeled rows, fold-averaged predictions on the unlabeled rows. Nothing else is
    needed, for these reasons:

    * Unbiasedness. Given the fitted models, the labeled term has expectation
      ``sum_k w_k E f_k(X)`` and the unlabeled term the same, because the weights are
      the fold shares (equal weights ``1/K`` would leave a bias of order ``1/n`` when
      K does not divide n). The fitted models enter only through centred terms.
    * Variance. The rectifiers of different folds are dependent (each model is
      trained on the other folds' rows). Zrnic & Candes show that the variance
      above is nevertheless asymptotically valid under a stability condition:
      the fold models converge, as n grows, to a common limit ``f_bar`` (any limit,
      not necessarily the regression function). Then the estimator behaves like
      PPI with the fixed model ``f_bar`` and its CLT and variance follow.
      ``fold_disagreement`` measures how far the fold models are from agreeing.
    * Regression. OLS, logistic and Poisson scores ``x (v - mu(x'b))`` are linear
      in the response ``v``, so fitting the fold-averaged predictions on the
      unlabeled rows is the same as averaging the K models' losses there, as the
      paper's M-estimation form does; ppinfer's plug-in variance with these
      arrays is the same argument as for the mean.
    * Power tuning. ``theta(lam) = theta_classical + lam * D`` with
      ``D = mean(yhat_unlabeled) - mean(yhat)``, which has conditional mean zero and
      is ``O_p(n^-1/2)``; under the same stability the tuned ``lam_hat`` converges,
      so ``(lam_hat - lam*) D`` is negligible and PPI++ keeps its guarantee and its
      "never worse than classical" property (asymptotically, as for a fixed model).

    In-sample predictions break this: ``y - yhat`` is shrunk (zero for a model
    that interpolates), so the estimate leans on the unlabeled predictions while its
    variance believes the rectifier is nearly free of noise.

    Simulation (``python tests/test_crossfit.py``: n = 300, N = 1000, K = 5, nominal
    0.90, 500 replications): PPI and PPI++ intervals for a mean and OLS coefficients
    covered 0.60-0.72 with in-sample 1-nearest-neighbour predictions, and 0.87-0.92
    with cross-fitted 5-nearest-neighbour or quadratic least-squares predictions.
    Cross-fitted 1-nearest-neighbour, an unstable learner, covered 0.87-0.91 (0.87-0.90
    with N = 3000 and 1000 replications), slightly below nominal.

    Quantiles are not covered: the paper's quantile estimator averages the K
    models' CDFs on the unlabeled rows, ``sum_k w_k 1{f_k(x~) <= t}``, not the CDF of
    the averaged prediction, so :class:`~ppinfer.Quantile` with these arrays
    estimates a slightly different CDF unless the fold models agree.

    Examples
    --------
    Any object with ``fit`` and ``predict`` works; here a small least-squares
    learner (a scikit-learn estimator such as
    ``RandomForestRegressor(random_state=0)`` is used the same way):

    >>> import numpy as np, ppinfer
    >>> class LeastSquares:
    ...     def fit(self, X, y):
    ...         self.coef_ = np.linalg.lstsq(np.column_stack([np.ones(len(X)), X]), y, rcond=None)[0]
    ...         return self
    ...     def predict(self, X):
    ...         return np.column_stack([np.ones(len(X)), X]) @ self.coef_
    >>> rng = np.random.default_rng(0)
    >>> features = rng.normal(size=(3300, 3))
    >>> y = features @ [1.0, 0.5, -0.5] + rng.normal(size=3300)
    >>> yhat, yhat_unlabeled = ppinfer.cross_fit(LeastSquares(), features[:300], y[:300], features[300:],
    ...                                          seed=0, progress=False)
    >>> model = ppinfer.Mean(y[:300], yhat, yhat_unlabeled)
    >>> (model.fit().bse / model.fit(method="classical").bse).round(2).to_dict()
    {'y': 0.68}
    """
    reject_unknown_keywords("cross_fit", unknown, ("folds", "seed", "response", "stratify", "progress"))
    response = choose(response, RESPONSES, "response")
    progress = check_progress(progress)
    _check_estimator(estimator, "predict_proba" if response == "predict_proba" else "fit")
    outcome = as_variable(y, "y", ndim=2, default_name="y")
    y_values = outcome.values[:, 0] if outcome.values.shape[1] == 1 else outcome.values
    rows, n, index = _as_rows(features, "features")
    rows_unlabeled, N, index_unlabeled = _as_rows(features_unlabeled, "features_unlabeled")
    rows_unlabeled = _matching_columns(rows, rows_unlabeled)
    if outcome.nrows != n:
        raise ValueError(f"y has {outcome.nrows} rows but features has {n}; give one outcome per labeled row.")
    if index is not None and outcome.index is not None and not index.equals(outcome.index):
        raise ValueError(
            "features and y are pandas objects with different indexes; align them "
            "(or pass NumPy arrays, which are paired by position)."
        )
    _raise_if_missing(~np.isfinite(outcome.values).all(axis=1), "y")
    if n < 2:
        raise ValueError(f"features has {n} row(s); cross-fitting needs at least 2 labeled rows.")
    if N == 0:
        raise ValueError("features_unlabeled is empty: the unlabeled sample needs at least one row.")
    response, positive = _choose_response(response, estimator, y_values)
    _check_estimator(estimator, response)
    fold_of = _fold_ids(folds, n, _strata(stratify, y_values, n), seed)
    k = int(fold_of.max()) + 1
    weights = np.bincount(fold_of, minlength=k) / n

    yhat = None
    total = square = 0.0
    models = []
    with progress_bar(range(k), enabled=progress, description="cross-fitting", unit="folds") as bar:
        for fold in bar:
            held_out = np.flatnonzero(fold_of == fold)
            train = np.flatnonzero(fold_of != fold)
            if response == "predict_proba" and np.unique(y_values[train]).size < 2:
                raise ValueError(
                    f"the training rows of fold {fold} hold a single outcome value, so a classifier cannot be "
                    "fitted; pass stratify=True (or fewer folds)."
                )
            model = _fresh_copy(estimator)
            model.fit(_take(rows, train), y_values[train])
            models.append(model)
            predicted = _predictions(model, _take(rows, held_out), response, positive, fold, "features")
            if yhat is None:
                yhat = np.empty((n, *predicted.shape[1:]))
            yhat[held_out] = predicted
            predicted = _predictions(model, rows_unlabeled, response, positive, fold, "features_unlabeled")
            total = total + weights[fold] * predicted
            square = square + weights[fold] * predicted**2
    average = np.asarray(total)
    if average.shape[1:] != yhat.shape[1:]:
        raise ValueError(
            f"the fold models predict shape {yhat.shape[1:]} per labeled row but {average.shape[1:]} per "
            "unlabeled row; the estimator must predict the same outputs for both."
        )
    spread = np.sqrt(np.mean(np.clip(square - average**2, 0.0, None), axis=0))

    pandas = index is not None or outcome.index is not None or index_unlabeled is not None
    labeled_index = index if index is not None else outcome.index
    if pandas and labeled_index is None:
        labeled_index = pd.RangeIndex(n)
    if pandas and index_unlabeled is None:
        index_unlabeled = pd.RangeIndex(N)
    return CrossFitPredictions(
        _output(yhat, labeled_index, outcome.names, pandas),
        _output(average, index_unlabeled, outcome.names, pandas),
        folds=pd.Series(fold_of, index=labeled_index, name="fold") if pandas else fold_of,
        models=models,
        weights=weights,
        response=response,
        fold_disagreement=float(spread) if spread.ndim == 0 else spread,
    )
