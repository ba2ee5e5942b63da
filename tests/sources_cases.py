"""Estimators and designs fitted from an unlabeled sample held elsewhere, shared by the source tests.

:func:`cases` yields, for every estimator and design option that applies to an
unlabeled sample read partition by partition, a function that builds the
model from unlabeled arrays converted by a given function (to Dask arrays,
Parquet columns, a memory map...). The same function with the identity builds
the in-memory reference: the tests check that both give the same numbers.
Every value is a float32 number stored as float64, so that a source holding
float32 values converts them exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import ppinfer

N_LABELED, N_UNLABELED = 240, 3000
METHODS = ("ppi++", "ppi", "classical", "naive")


def _exact(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(float)


def data(seed: int = 3) -> dict:
    """Labeled and unlabeled arrays of every kind the estimators take."""
    rng = np.random.default_rng(seed)
    total = N_LABELED + N_UNLABELED
    X = _exact(np.column_stack([np.ones(total), rng.normal(size=(total, 2))]))
    eta = X @ [0.3, 0.8, -0.5]
    out = {
        "X": X,
        "y": _exact(eta + rng.normal(size=total)),
        "f": _exact(eta + 0.2 + rng.normal(scale=0.6, size=total)),
        "y_binary": (rng.uniform(size=total) < 1 / (1 + np.exp(-eta))).astype(float),
        "f_binary": _exact(np.clip(1 / (1 + np.exp(-eta)) + rng.normal(0, 0.05, total), 0.01, 0.99)),
        "y_count": rng.poisson(np.exp(0.5 * eta)).astype(float),
        "f_count": _exact(np.exp(0.5 * eta) * 1.1),
        "x_ratio": _exact(rng.uniform(1, 3, total)),
        "school": rng.integers(0, 60, total).astype(float),
        "weights": _exact(rng.uniform(1, 4, total)),
        "label_prob": _exact(rng.uniform(0.3, 0.9, total)),
    }
    out["draws"] = _exact(out["f"][:, None] + rng.normal(scale=0.5, size=(total, 3)))
    out["region"] = out["school"] % 3
    return out


#: design options: labeled keyword -> data key (unlabeled keywords get the unlabeled rows)
DESIGNS = {
    "srs": {},
    "weights": {"weights": "weights"},
    "clusters": {"clusters": "school"},
    "strata": {"strata": "region"},
    "nested": {"strata": "region", "clusters": "school3", "weights": "weights", "nest": True},
    "fpc": {"strata": "region", "fpc": "fpc", "weights": "weights"},
    "two-phase": {"label_prob": "label_prob", "clusters": "school"},
    "two-phase fpc": {"label_prob": "label_prob", "strata": "region", "fpc": "fpc_phase"},
}

ESTIMATORS = ("Mean", "Mean draws", "Total", "Ratio", "OLS", "OLS draws", "Logit", "Poisson")


def design_arrays(d: dict, design: str) -> tuple[dict, dict]:
    """Labeled and unlabeled design keyword arrays (unlabeled: NumPy, to be converted)."""
    n = N_LABELED
    columns = dict(d, school3=d["school"] // 3, fpc=np.full(len(d["y"]), 5000.0),
                   fpc_phase=np.full(len(d["y"]), 30000.0))
    labeled, unlabeled = {}, {}
    for key, source in DESIGNS[design].items():
        if key == "nest":
            labeled[key] = source
            continue
        labeled[key] = columns[source][:n]
        if key != "label_prob":
            unlabeled[f"{key}_unlabeled"] = columns[source][n:]
    return labeled, unlabeled


def build(estimator: str, design: str, convert, d: dict | None = None):
    """The model of ``estimator`` and ``design``, with each unlabeled array ``a`` (named by its
    keyword) given as ``convert(keyword, a)``."""
    d = d or data()
    L, U = slice(0, N_LABELED), slice(N_LABELED, None)
    labeled, unlabeled = design_arrays(d, design)
    options = dict(labeled, **{key: convert(key, value) for key, value in unlabeled.items()})

    def u(key, values):
        return convert(key, values[U])

    if estimator == "Mean":
        return ppinfer.Mean(d["y"][L], d["f"][L], u("yhat_unlabeled", d["f"]), **options)
    if estimator == "Mean draws":
        return ppinfer.Mean(d["y"][L], d["draws"][L], u("yhat_unlabeled", d["draws"]), **options)
    if estimator == "Total":
        size = {} if "weights" in options else {"population_size": 1e5}
        if "label_prob" in options and "weights" not in options:
            return None  # a two-phase total needs weights of the first phase
        return ppinfer.Total(d["y"][L], d["f"][L], u("yhat_unlabeled", d["f"]), **size, **options)
    if estimator == "Ratio":
        return ppinfer.Ratio(d["y"][L], d["x_ratio"][L], d["f"][L], u("x_unlabeled", d["x_ratio"]),
                             u("yhat_unlabeled", d["f"]), **options)
    if estimator == "OLS":
        return ppinfer.OLS(d["y"][L], d["X"][L], d["f"][L], u("X_unlabeled", d["X"]), u("yhat_unlabeled", d["f"]),
                           **options)
    if estimator == "OLS draws":
        return ppinfer.OLS(d["y"][L], d["X"][L], d["draws"][L], u("X_unlabeled", d["X"]),
                           u("yhat_unlabeled", d["draws"]), **options)
    if estimator == "Logit":
        return ppinfer.Logit(d["y_binary"][L], d["X"][L], d["f_binary"][L], u("X_unlabeled", d["X"]),
                             u("yhat_unlabeled", d["f_binary"]), **options)
    if estimator == "Poisson":
        return ppinfer.Poisson(d["y_count"][L], d["X"][L], d["f_count"][L], u("X_unlabeled", d["X"]),
                               u("yhat_unlabeled", d["f_count"]), **options)
    raise ValueError(estimator)


def fits(model) -> dict:
    """Every method's results (and a second covariance estimator) of a model."""
    clustered = model.design.clustered
    out = {}
    for method in METHODS:
        for cov_type in (None, "CR1" if clustered else "HC0"):
            out[method, cov_type] = model.fit(method=method, cov_type=cov_type)
    return out


def assert_same_results(actual: dict, expected: dict, rtol: float = 1e-10) -> None:
    """Estimates, standard errors, lambdas and degrees of freedom agree to ``rtol``."""
    for key, reference in expected.items():
        result = actual[key]
        for name in ("params", "bse"):
            a, b = getattr(result, name).to_numpy(), getattr(reference, name).to_numpy()
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max(), err_msg=f"{key} {name}")
        lam_a, lam_b = result.lam, reference.lam
        if isinstance(lam_b, (pd.Series, pd.DataFrame)):
            pd.testing.assert_frame_equal(pd.DataFrame(lam_a), pd.DataFrame(lam_b), rtol=rtol, atol=rtol)
        elif lam_b is not None:
            np.testing.assert_allclose(lam_a, lam_b, rtol=rtol, atol=rtol)
        if reference.df is not None:
            np.testing.assert_allclose(result.df.to_numpy(), reference.df.to_numpy(), rtol=rtol)


def unlabeled_frame(d: dict) -> pd.DataFrame:
    """Every unlabeled column of :func:`build`'s models as one table."""
    U = slice(N_LABELED, None)
    frame = {f"x{k}": d["X"][U, k] for k in range(d["X"].shape[1])}
    frame.update({f"draw{k}": d["draws"][U, k] for k in range(d["draws"].shape[1])})
    for key in ("f", "f_binary", "f_count", "x_ratio", "school", "region", "weights"):
        frame[key] = d[key][U]
    frame["school3"] = frame["school"] // 3
    frame["fpc"] = np.full(N_UNLABELED, 5000.0)
    frame["fpc_phase"] = np.full(N_UNLABELED, 30000.0)
    return pd.DataFrame(frame)


class ColumnsOf:
    """Converts an unlabeled array into the columns of a table (a Parquet table) holding the
    same values: ``ColumnsOf(frame, table)(key, array)``."""

    def __init__(self, frame: pd.DataFrame, table):
        self.frame, self.table = frame, table

    def _column(self, values: np.ndarray) -> str:
        for name in self.frame.columns:
            if np.array_equal(self.frame[name].to_numpy(), values):
                return name
        raise KeyError("no column holds these values")

    def __call__(self, key: str, values: np.ndarray):
        if values.ndim == 1:
            return self.table[self._column(values)]
        return self.table[[self._column(values[:, k]) for k in range(values.shape[1])]]


def formula_frames(rows: int, seed: int = 5):
    """Labeled (300 rows) and unlabeled data frames for the formula interface: a categorical
    column, clusters, weights, a log-normal outcome with biased predictions, and a binary
    outcome with its predicted probabilities."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"x": rng.normal(size=rows), "g": rng.choice(["a", "b", "c"], rows),
                          "school": rng.integers(0, 40, rows), "w": rng.uniform(1, 3, rows)})
    table["y"] = np.exp(0.3 * table["x"] + (table["g"] == "b") + rng.normal(scale=0.3, size=rows))
    table["pred"] = table["y"] * np.exp(rng.normal(0.1, 0.2, rows))
    table["hit"] = (table["y"] > 1.5).astype(float)
    table["prob"] = 1 / (1 + np.exp(-(table["pred"] - 1.5)))
    return table.iloc[:300].reset_index(drop=True), table.iloc[300:].reset_index(drop=True)


def parquet_columns(folder, d: dict) -> "ColumnsOf":
    """The unlabeled columns of ``d`` written to two Parquet files in ``folder`` (row groups of 500
    rows), as the array arguments of :class:`ColumnsOf`."""
    frame = unlabeled_frame(d)
    frame.iloc[:1300].to_parquet(folder / "part-0.parquet", row_group_size=500)
    frame.iloc[1300:].to_parquet(folder / "part-1.parquet", row_group_size=500)
    return ColumnsOf(frame, ppinfer.read_parquet(folder))
