"""The formula's design built without patsy for partitions of plain numeric columns.

A formula whose terms are an intercept and numeric columns used as they are
(``y ~ x1 + x2``) is applied to each partition of a streamed unlabeled sample by
copying the columns (:func:`ppinfer.core.formula.plain_design`); every other
formula goes through patsy. The reference is patsy itself (its design matrix and
dropped rows for the same frame) and the in-memory formula fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest

import ppinfer
from ppinfer.core.formula import FormulaPartitions, plain_columns, plain_design
from ppinfer.core.sources import Partition

from sources_cases import assert_same_results

pytest.importorskip("pyarrow")


def labeled_info(formula: str, frame: pd.DataFrame):
    return patsy.dmatrices(formula, frame, return_type="dataframe")[1].design_info


def frame_of(size: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.normal(size=size), "x1": rng.normal(size=size),
                         "x2": rng.integers(-3, 4, size=size), "x3": rng.normal(size=size).astype(np.float32),
                         "f": rng.normal(size=size)})


@pytest.mark.parametrize("formula, expected", [
    ("y ~ x1 + x2", [None, "x1", "x2"]),
    ("y ~ x2 + x1", [None, "x2", "x1"]),
    ("y ~ 0 + x1", ["x1"]),
    ("y ~ x1 - 1 + x3", ["x1", "x3"]),
    ("y ~ np.log(x1 + 10) + x2", None),
    ("y ~ x1:x3", None),
    ("y ~ x1 * x3", None),
    ("y ~ C(x2)", None),
    ("y ~ I(x1 ** 2)", None),
    ("y ~ Q('x1')", None),
    ("y ~ g", None),  # a string column: categorical
])
def test_plain_columns_only_for_untransformed_numeric_terms(formula, expected):
    frame = frame_of(40).assign(g=lambda d: np.where(d.x1 > 0, "a", "b"))
    assert plain_columns(labeled_info(formula, frame)) == expected


def test_plain_design_equals_patsy():
    """Integers, float32, NaN in two columns (rows dropped), infinite values kept."""
    frame = frame_of(10_000, seed=1)
    frame.loc[[3, 4100, 9999], "x1"] = np.nan
    frame.loc[[4100, 7], "x3"] = np.nan
    frame.loc[11, "x1"] = np.inf
    info = labeled_info("y ~ x1 + x2 + x3", frame.iloc[:100].dropna())
    (reference,) = patsy.build_design_matrices([info], frame, NA_action="drop", return_type="dataframe")
    X, rows = plain_design(frame, plain_columns(info))
    assert X.flags.c_contiguous and X.dtype == np.float64
    np.testing.assert_array_equal(X, reference.to_numpy())
    np.testing.assert_array_equal(rows, reference.index.to_numpy())


def partitions(formula: str, missing: str = "raise") -> FormulaPartitions:
    return FormulaPartitions(formula, frame_of(50), "f", {}, missing)


def run(partition: FormulaPartitions, frame: pd.DataFrame):
    return partition(frame, Partition({}, len(frame), 0, "file part.parquet", 0, 0))


def test_nullable_numbers_are_read_with_their_missing_values():
    frame = pd.DataFrame({"x1": pd.array([1.5, None, 2.0, 3.0], dtype="Float64"),
                          "x2": pd.array([1, 2, None, 3], dtype="Int64"), "f": np.ones(4)})
    arrays, nrows, dropped, _ = run(partitions("y ~ x1 + x2", missing="drop"), frame)
    np.testing.assert_array_equal(arrays["X_unlabeled"], [[1.0, 1.5, 1.0], [1.0, 3.0, 3.0]])
    assert (nrows, dropped) == (2, 2)
    with pytest.raises(ValueError, match=r"2 row\(s\) with missing values .* \(first at row 1 of file part.parquet"):
        run(partitions("y ~ x1 + x2"), frame)


@pytest.mark.parametrize("values, dtype", [(["1.0", "2.5", "3"], "str"), ([True, False, True], "bool"),
                                           (pd.Categorical(["a", "b", "a"]), "category")])
def test_a_column_that_is_not_numeric_in_a_partition_is_named(values, dtype):
    frame = pd.DataFrame({"x1": values, "x2": [1, 2, 3], "f": np.ones(3)})
    with pytest.raises(TypeError, match=rf"column 'x1' of unlabeled is {dtype} in rows 0 to 2 of file "
                                        r"part.parquet, but numeric in data; convert it"):
        run(partitions("y ~ x1 + x2"), frame)


def test_formula_fit_on_parquet_with_missing_values_equals_in_memory(tmp_path):
    """End to end: nullable floats with missing values in a Parquet file, missing='drop'."""
    labeled, unlabeled = frame_of(300, seed=2), frame_of(3_000, seed=3)
    unlabeled["x1"] = unlabeled["x1"].astype("Float64")
    unlabeled.loc[[5, 2000], "x1"] = pd.NA
    unlabeled.to_parquet(tmp_path / "unlabeled.parquet")
    streamed = ppinfer.ols("y ~ x1 + x2 + x3", labeled, str(tmp_path / "unlabeled.parquet"), yhat="f",
                           missing="drop")
    in_memory = ppinfer.ols("y ~ x1 + x2 + x3", labeled, unlabeled.astype({"x1": float}), yhat="f",
                            missing="drop")
    assert streamed.rows_dropped == in_memory.rows_dropped == (0, 2)
    assert_same_results({"ppi++": streamed.fit()}, {"ppi++": in_memory.fit()})


def test_in_memory_formula_with_plain_columns_equals_the_array_interface():
    """An unlabeled data frame in memory: NaN rows dropped (missing='drop') and integer columns, as
    patsy builds them; the fit equals the array interface on patsy's matrices."""
    labeled, unlabeled = frame_of(300, seed=4), frame_of(4_000, seed=5)
    unlabeled.loc[[10, 3000], "x1"] = np.nan
    model = ppinfer.ols("y ~ x1 + x2 + x3", labeled, unlabeled, yhat="f", missing="drop")
    y, X = patsy.dmatrices("y ~ x1 + x2 + x3", labeled, return_type="dataframe")
    (X_unlabeled,) = patsy.build_design_matrices([X.design_info], unlabeled, NA_action="drop",
                                                 return_type="dataframe")
    reference = ppinfer.OLS(y.iloc[:, 0], X, labeled["f"], X_unlabeled, unlabeled["f"].loc[X_unlabeled.index])
    assert model.rows_dropped == (0, 2)
    assert model.param_names == reference.param_names
    assert_same_results({"ppi++": model.fit()}, {"ppi++": reference.fit()})


def test_in_memory_string_column_is_named():
    labeled, unlabeled = frame_of(100, seed=6), frame_of(500, seed=7)
    unlabeled["x1"] = unlabeled["x1"].astype(str)
    with pytest.raises(TypeError, match=r"column 'x1' of unlabeled is (object|str), but numeric in data"):
        ppinfer.ols("y ~ x1 + x2", labeled, unlabeled, yhat="f")
