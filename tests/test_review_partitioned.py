"""Edge cases of an unlabeled sample read partition by partition, found in review.

Every partitioned model is compared with the same model on NumPy arrays (the
in-memory path), never with a number the partitioned code produced.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ppinfer

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("pyarrow")

pytestmark = pytest.mark.filterwarnings("ignore::ppinfer.PPIWarning")

n, N = 120, 900
rng = np.random.default_rng(0)
F = rng.normal(5, 1, n + N)
Y = F + rng.normal(size=n + N)
XR = rng.uniform(1, 3, n + N)
W = rng.uniform(1, 4, n + N)
SCHOOL = rng.integers(0, 30, n + N).astype(float)
REGION = SCHOOL % 3
L, U = slice(0, n), slice(n, None)


def assert_same(chunked, memory, rtol: float = 1e-9) -> None:
    for method in ("ppi++", "ppi", "classical"):
        a, b = chunked.fit(method=method), memory.fit(method=method)
        for name in ("params", "bse"):
            np.testing.assert_allclose(getattr(a, name).to_numpy(), getattr(b, name).to_numpy(), rtol=rtol,
                                       err_msg=f"{method} {name}")


def linear_model(estimator: str, yhat, x, **design):
    if estimator == "Mean":
        return ppinfer.Mean(Y[L], F[L], yhat, **design)
    if estimator == "Total":
        size = {} if "weights" in design else {"population_size": 1e5}
        return ppinfer.Total(Y[L], F[L], yhat, **size, **design)
    return ppinfer.Ratio(Y[L], XR[L], F[L], x, yhat, **design)


# -- moments.py: a Dask DataFrame with an empty partition ------------------------------------------
@pytest.mark.parametrize(("estimator", "design"), [("Mean", "srs"), ("Mean", "strata clusters weights"),
                                                   ("Total", "strata clusters weights"), ("Ratio", "srs")])
def test_empty_dask_partition(estimator, design):
    """A filtered Dask DataFrame often has empty partitions; the scan's score moments skip them
    (a reshape of 0 rows to (0, -1) raised before)."""
    frame = pd.DataFrame({"f": F[U], "x": XR[U], "w": W[U], "school": SCHOOL[U], "region": REGION[U]})
    keep = np.ones(N, dtype=bool)
    keep[300:600] = False
    filtered = dd.from_pandas(frame, npartitions=3)
    filtered = filtered[filtered["w"].map_partitions(lambda w: pd.Series(keep[w.index], index=w.index))]
    memory = frame[keep]
    assert filtered.map_partitions(len).compute().tolist() == [300, 0, 300]

    def options(table, column):
        if design == "srs":
            return {}
        return {"weights": W[L], "weights_unlabeled": column(table, "w"), "strata": REGION[L],
                "strata_unlabeled": column(table, "region"), "clusters": SCHOOL[L],
                "clusters_unlabeled": column(table, "school")}

    def dask_column(table, name):
        return table[name]

    def numpy_column(table, name):
        return table[name].to_numpy()

    chunked = linear_model(estimator, filtered["f"], filtered["x"], **options(filtered, dask_column))
    reference = linear_model(estimator, memory["f"].to_numpy(), memory["x"].to_numpy(),
                             **options(memory, numpy_column))
    assert_same(chunked, reference)


# -- sources.py: Dask arrays of unknown chunk sizes beside arrays of known ones -------------------------
def test_dask_array_of_unknown_chunks_beside_known_chunks():
    """``DataFrame.to_dask_array()`` has chunks of unknown size: it is paired partition by partition
    with arrays of known chunks (Dask cannot rechunk it), as DataFrame columns are."""
    frame = pd.DataFrame({"f": F[U], "x": XR[U]})
    table = dd.from_pandas(frame, npartitions=3)
    unknown = table["f"].to_dask_array()
    assert np.isnan(unknown.chunks[0]).all()
    chunked = ppinfer.Ratio(Y[L], XR[L], F[L], table["x"].to_dask_array(lengths=True), unknown)
    assert_same(chunked, ppinfer.Ratio(Y[L], XR[L], F[L], XR[U], F[U]))
    # partitions that do not line up are named by ppinfer, not by Dask's rechunking
    with pytest.raises(ValueError, match="partitions"):
        ppinfer.Ratio(Y[L], XR[L], F[L], da.from_array(XR[U], chunks=200), unknown)


# -- validation: rows named by a check after missing="drop" dropped earlier rows -----------------------
def _dropped_then_bad():
    """Predictions with NaN at positions 310 and 320, a negative weight at 350 (dropped rows come first)."""
    f, w = F[U].copy(), W[U].copy()
    f[[310, 320]] = np.nan
    w[350] = -1.0
    return f, w


def test_check_names_the_row_of_the_source_after_drop():
    """The check of a partition's kept rows names the row of the source (row 50 of partition 1,
    position 350), not its position among the kept rows (348)."""
    f, w = _dropped_then_bad()
    with pytest.raises(ValueError, match=r"at row 50 of partition 1 \(position 350 of the sample\)"):
        ppinfer.Mean(Y[L], F[L], da.from_array(f, chunks=300), weights=W[L],
                     weights_unlabeled=da.from_array(w, chunks=300), missing="drop")


def test_check_names_the_row_given_after_drop_in_memory():
    """The same for a sample in memory: the position in the array given."""
    X = np.column_stack([np.ones(n + N), XR])
    X[n + 10, 1] = X[n + 20, 1] = np.nan
    p = 1 / (1 + np.exp(-F))
    p[n + 360] = 1.5
    binary = (Y[L] > 5).astype(float)
    with pytest.raises(ValueError, match=r"first: 1.5 at position 360\)"):
        ppinfer.Logit(binary, X[L], p[L], X[U], p[U], missing="drop")


def test_check_names_the_row_of_the_file_after_the_formula_dropped_rows(tmp_path, monkeypatch):
    """Rows the formula drops (a missing covariate) do not shift the row a later check names."""
    from ppinfer.core import sources

    monkeypatch.setattr(sources, "PARTITION_ROWS", 300)
    x = np.random.default_rng(5).normal(size=n + N)
    table = pd.DataFrame({"x": x, "prob": 1 / (1 + np.exp(-x)), "hit": (Y > 5).astype(float)})
    unlabeled = table.iloc[n:].reset_index(drop=True)
    unlabeled.loc[[310, 320], "x"] = np.nan
    unlabeled.loc[350, "prob"] = 1.5
    unlabeled.to_parquet(tmp_path / "u.parquet")
    with pytest.raises(ValueError, match=r"at row 350 of file u.parquet \(position 350 of the sample\)"):
        ppinfer.logit("hit ~ x", table.iloc[:n], unlabeled=ppinfer.read_parquet(tmp_path), yhat="prob",
                      missing="drop")


# -- moments.py: many strata -----------------------------------------------------------------------------
def test_score_moments_of_many_strata_equal_the_in_memory_sums():
    """The squares of many strata (counties), summed over slices of the rows sorted once, are the
    strata's sums of squares of the in-memory collector (``group_outer``). (Their cost, one sort
    rather than a scan of every row per stratum, is a matter for benchmarks, not tests.)"""
    from ppinfer.designs.base import group_outer
    from ppinfer.designs.moments import GroupMoments

    generator = np.random.default_rng(4)
    m, G = 100_000, 3000
    u, z, codes = generator.normal(size=(m, 2)), generator.uniform(1, 2, m), generator.integers(0, G, m)
    moments = GroupMoments.of(u, z, codes, pd.Index(np.arange(G)), squares=True)
    d = u - z[:, None] * moments.reference
    np.testing.assert_allclose(moments.M, group_outer(d, d, codes, G), rtol=1e-10, atol=1e-10)


# -- moments.py: strata and PSUs sorted across partitions (checked, no bug found) ---------------------------
@pytest.mark.parametrize("estimator", ["Mean", "Total", "Ratio"])
def test_sorted_strata_and_split_psu(estimator):
    """Unlabeled rows sorted by stratum and PSU in partitions of 250 rows: most strata and PSUs lie in one
    partition, some PSUs are split between two; weights, fpc and missing='drop' (NaN predictions)."""
    order = np.argsort(REGION[U] * 100 + SCHOOL[U], kind="stable")
    f, x, w, region, school = (values[U][order] for values in (F, XR, W, REGION, SCHOOL))
    f = f.copy()
    f[[5, 260, 261]] = np.nan

    def design(convert):
        return {"weights": W[L], "weights_unlabeled": convert(w), "strata": REGION[L],
                "strata_unlabeled": convert(region), "clusters": SCHOOL[L], "clusters_unlabeled": convert(school),
                "fpc": np.full(n, 4000.0), "fpc_unlabeled": convert(np.full(N, 4000.0)), "missing": "drop"}

    def dask(values):
        return da.from_array(values, chunks=250)

    chunked = linear_model(estimator, dask(f), dask(x), **design(dask))
    assert_same(chunked, linear_model(estimator, f, x, **design(lambda values: values)))


# -- designs: fpc ranges of a scanned sample matched to strata by label, not by the label's text ------------
@pytest.mark.parametrize("where", ["parquet", "numpy"])
def test_fpc_of_strata_labelled_by_floats_beside_integer_labels(tmp_path, where):
    """Labeled strata 0, 1, 2 and unlabeled strata 0.0, 1.0, 2.0 (a float column) are the same strata; the
    scanned fpc ranges found them by their text ('0.0' is not in ['0', '1', '2'] raised before)."""
    region = REGION[U].astype(int)
    pd.DataFrame({"f": F[U], "region": region.astype(float), "fpc": 5000.0}).to_parquet(tmp_path / "u.parquet")
    table = ppinfer.read_parquet(tmp_path)
    unlabeled_strata = table["region"] if where == "parquet" else region.astype(float)
    labeled = {"strata": REGION[L].astype(int), "fpc": np.full(n, 5000.0)}
    chunked = ppinfer.Mean(Y[L], F[L], table["f"], strata_unlabeled=unlabeled_strata, fpc_unlabeled=table["fpc"],
                           **labeled)
    memory = ppinfer.Mean(Y[L], F[L], F[U], strata_unlabeled=region.astype(float),
                          fpc_unlabeled=np.full(N, 5000.0), **labeled)
    assert chunked.design.stratum_names == memory.design.stratum_names
    assert_same(chunked, memory)


# -- validation: pandas' NA in the object values of a Dask partition --------------------------------------
def test_nullable_boolean_predictions_with_missing_values():
    """A nullable boolean column with NA (pandas' ``boolean`` dtype) is missing values, as in memory, not
    a TypeError ('float() argument must be ... not NAType')."""
    values = pd.Series(F[U] > 5, dtype="boolean")
    values[[5, 700]] = pd.NA
    memory = ppinfer.Mean(Y[L], F[L], values, missing="drop")
    chunked = ppinfer.Mean(Y[L], F[L], dd.from_pandas(values.to_frame("f"), npartitions=3)["f"], missing="drop")
    assert chunked.unlabeled.n_dropped == memory.unlabeled.n_dropped == 2
    assert_same(chunked, memory)
    # the partitions are checked in parallel: either bad one may be named
    with pytest.raises(ValueError, match=r"NaN or infinite value\(s\) in rows 0 to 299 of partition "
                                         r"(0 \(first at row 5 |2 \(first at row 100 )"):
        ppinfer.Mean(Y[L], F[L], dd.from_pandas(values.to_frame("f"), npartitions=3)["f"])


# -- sources: a source without rows --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["memmap", "parquet"])
def test_source_without_rows(tmp_path, kind):
    """A memory map or Parquet file of 0 rows is an empty sample, named as such (as an empty array is),
    not a TypeError ('NoneType' object is not subscriptable: no partition to reduce)."""
    if kind == "memmap":
        np.lib.format.open_memmap(tmp_path / "empty.npy", mode="w+", dtype=np.float32, shape=(0,)).flush()
        empty = np.load(tmp_path / "empty.npy", mmap_mode="r")
    else:
        pd.DataFrame({"f": np.zeros(0)}).to_parquet(tmp_path / "empty.parquet")
        empty = ppinfer.read_parquet(tmp_path)["f"]
    with pytest.raises(ValueError, match="the unlabeled sample is empty: it has no rows"):
        ppinfer.Mean(Y[L], F[L], empty)
