"""The unlabeled sample read from its source: Parquet files, memory maps, NumPy arrays.

Every estimator and design option gives the same numbers (to 1e-10) whether
the unlabeled rows are in memory or read in batches from Parquet files or a
memory map; the in-memory numbers themselves are checked against statsmodels,
closed forms and hand computations elsewhere, and here once more from
Parquet against statsmodels. Bad values are reported with the file (or
partition) and row that hold them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import ppinfer
from ppinfer.core import sources
from ppinfer.core.families import Binomial, Poisson
from ppinfer.core.fitting import NEWTON_DECREASE_BOUND, fit_glm
from ppinfer.core.validation import ChunkedSample

from sources_cases import (
    DESIGNS, ESTIMATORS, N_LABELED, assert_same_results, parquet_columns, build, data, fits, formula_frames,
)

pytest.importorskip("pyarrow")

pytestmark = pytest.mark.filterwarnings("ignore::ppinfer.PPIWarning")

DATA = data()
L, U = slice(0, N_LABELED), slice(N_LABELED, None)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """The unlabeled columns in two Parquet files (row groups of 500 rows)."""
    return parquet_columns(tmp_path_factory.mktemp("unlabeled"), DATA)


@pytest.fixture
def small_batches(monkeypatch):
    """Batches (partitions) of 700 rows: several per file, not aligned with the row groups."""
    monkeypatch.setattr(sources, "PARTITION_ROWS", 700)


_REFERENCE: dict = {}


def reference(estimator: str, design: str) -> dict:
    """The in-memory fits (computed once per case)."""
    key = (estimator, design)
    if key not in _REFERENCE:
        model = build(estimator, design, lambda _, values: values, DATA)
        _REFERENCE[key] = None if model is None else fits(model)
    return _REFERENCE[key]


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_parquet_equals_in_memory(table, small_batches, estimator, design):
    expected = reference(estimator, design)
    if expected is None:
        pytest.skip("not an estimator of this design")
    model = build(estimator, design, table, DATA)
    assert isinstance(model.unlabeled, ChunkedSample)
    assert_same_results(fits(model), expected)


@pytest.mark.parametrize("design", ["srs", "nested", "two-phase"])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_float32_memory_map_read_in_partitions(tmp_path, small_batches, estimator, design):
    """A memory map of float32 values is converted partition by partition, never copied whole."""
    def mapped(key, values):
        path = tmp_path / f"{key}.npy"
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=values.shape)
        array[:] = values
        array.flush()
        return np.load(path, mmap_mode="r")

    expected = reference(estimator, design)
    if expected is None:
        pytest.skip("not an estimator of this design")
    model = build(estimator, design, mapped, DATA)
    assert isinstance(model.unlabeled, ChunkedSample)
    assert_same_results(fits(model), expected)


def test_strided_float64_memory_map_is_used_in_place(tmp_path):
    """A column slice of a wider float64 file is read chunk by chunk where it lies: no copy."""
    wide = np.lib.format.open_memmap(tmp_path / "wide.npy", mode="w+", dtype=float, shape=(len(DATA["y"]) - N_LABELED, 6))
    wide[:, :3] = DATA["X"][U]
    wide[:, 4] = DATA["f"][U]
    wide.flush()
    stored = np.load(tmp_path / "wide.npy", mmap_mode="r")
    model = ppinfer.OLS(DATA["y"][L], DATA["X"][L], DATA["f"][L], stored[:, :3], stored[:, 4])
    assert np.shares_memory(model.unlabeled["X_unlabeled"], stored)
    assert np.shares_memory(model.unlabeled["yhat_unlabeled"], stored)
    assert_same_results(fits(model), reference("OLS", "srs"))


def _strided(tmp_path):
    """A converter that stores each unlabeled array in the first columns of a wider float64
    file and gives back that column slice of its memory map (rows a stride apart)."""
    made = iter(range(100))

    def convert(key, values):
        values = np.asarray(values, dtype=float)
        width = 1 if values.ndim == 1 else values.shape[1]
        path = tmp_path / f"{key}{next(made)}.npy"
        wide = np.lib.format.open_memmap(path, mode="w+", dtype=float, shape=(values.shape[0], width + 3))
        wide[:, :width] = values.reshape(values.shape[0], width)
        wide[:, width:] = -1.0
        wide.flush()
        stored = np.load(path, mmap_mode="r")
        return stored[:, 0] if values.ndim == 1 else stored[:, :width]

    return convert


@pytest.mark.parametrize("design", ["srs", "clusters", "weights"])
@pytest.mark.parametrize("estimator", ["OLS", "Logit", "Poisson"])
def test_strided_memory_maps_of_every_design_array_give_the_in_memory_results(tmp_path, estimator, design):
    """Every unlabeled array a column slice of a wider file: the chunks go to BLAS and the checks
    where they lie (not copied), and the fits equal the in-memory ones."""
    model = build(estimator, design, _strided(tmp_path), DATA)
    assert not model.unlabeled["X_unlabeled"].flags.c_contiguous
    assert_same_results(fits(model), reference(estimator, design))


@pytest.mark.parametrize("design", ["srs", "clusters"])
@pytest.mark.parametrize("estimator", ["OLS", "Logit", "Poisson"])
def test_column_ordered_arrays_are_used_in_place(estimator, design):
    """A Fortran-ordered design (what a pandas frame's values often are) is not copied, and the
    fits equal those of the row-ordered arrays."""
    kept = {}

    def by_columns(key, values):
        kept[key] = np.asfortranarray(values) if np.ndim(values) == 2 else values
        return kept[key]

    model = build(estimator, design, by_columns, DATA)
    assert np.shares_memory(model.unlabeled["X_unlabeled"], kept["X_unlabeled"])
    assert_same_results(fits(model), reference(estimator, design))


@pytest.mark.parametrize("estimator", ["OLS", "Logit"])
def test_a_nan_in_a_strided_memory_map_is_found_and_dropped(tmp_path, estimator):
    X = DATA["X"][U].copy()
    X[1234, 2] = np.nan
    X[2321, 1] = np.inf
    y, f = (DATA["y"], DATA["f"]) if estimator == "OLS" else (DATA["y_binary"], DATA["f_binary"])
    cls = getattr(ppinfer, estimator)
    stored = _strided(tmp_path)("X_unlabeled", X)
    with pytest.raises(ValueError, match=r"^X_unlabeled has 2 row\(s\) with NaN or infinite values \(first at position 1234\)"):
        cls(y[L], DATA["X"][L], f[L], stored, f[U])
    dropped = cls(y[L], DATA["X"][L], f[L], stored, f[U], missing="drop").fit()
    keep = np.isfinite(X).all(axis=1)
    expected = cls(y[L], DATA["X"][L], f[L], X[keep], f[U][keep]).fit()
    np.testing.assert_allclose(dropped.params, expected.params, rtol=1e-10)
    np.testing.assert_allclose(dropped.bse, expected.bse, rtol=1e-10)


def test_row_sums_past_the_largest_float_are_not_missing_values():
    """The finiteness check of a strided design sums rows; rows of huge finite values whose sum
    overflows are then looked at one by one and found finite."""
    from ppinfer.core.validation import Variable, make_sample

    wide = np.zeros((40_000, 4))
    wide[:, 0] = 1.0
    wide[7, 1:3] = 1e308
    sample = make_sample({"X": Variable(wide[:, :3], ["a", "b", "c"])}, missing="raise", label="unlabeled")
    assert sample.nobs == 40_000
    dropped = make_sample({"X": Variable(wide[:, :3], ["a", "b", "c"])}, missing="drop", label="unlabeled")
    assert dropped.nobs == 40_000


def test_parquet_ppi_against_statsmodels(table):
    """Independent reference: with lambda = 1, OLS PPI is OLS(X_u, f_u) + OLS(X, y - f)
    (Angelopoulos et al. 2023), and its HC0 variance the sum of the two sandwich variances."""
    d = DATA
    model = ppinfer.OLS(d["y"][L], d["X"][L], d["f"][L], table("X_unlabeled", d["X"][U]), table("yhat_unlabeled", d["f"][U]))
    res = model.fit(method="ppi", cov_type="HC0", use_t=False)
    unlabeled = sm.OLS(d["f"][U], d["X"][U]).fit(cov_type="HC0")
    rectifier = sm.OLS(d["y"][L] - d["f"][L], d["X"][L]).fit(cov_type="HC0")
    np.testing.assert_allclose(res.params.to_numpy(), unlabeled.params + rectifier.params, rtol=1e-10)
    np.testing.assert_allclose(res.cov_params().to_numpy(), unlabeled.cov_params() + rectifier.cov_params(), rtol=1e-8)


def test_parquet_mean_by_hand(table):
    """Mean PPI with lambda = 1 and HC0: mean(f_u) + mean(y - f), variance var(f_u)/N + var(y - f)/n."""
    d = DATA
    y, f, fu = d["y"][L], d["f"][L], d["f"][U]
    res = ppinfer.Mean(y, f, table("yhat_unlabeled", fu)).fit(method="ppi", cov_type="HC0", use_t=False)
    np.testing.assert_allclose(res.params.iloc[0], fu.mean() + (y - f).mean(), rtol=1e-12)
    np.testing.assert_allclose(res.bse.iloc[0] ** 2, fu.var() / fu.size + (y - f).var() / y.size, rtol=1e-10)


def test_passes(table):
    """One pass to validate at construction; then none for a mean (the scan sums its score
    moments), one per fit for OLS, a GLM one per Newton step plus one; fits are cached."""
    d = DATA
    mean = ppinfer.Mean(d["y"][L], d["f"][L], table("yhat_unlabeled", d["f"][U]))
    assert mean.unlabeled_passes == 1
    assert mean.fit().unlabeled_passes == 0
    assert mean.fit(method="ppi").unlabeled_passes == 0
    ols = ppinfer.OLS(d["y"][L], d["X"][L], d["f"][L], table("X_unlabeled", d["X"][U]), table("yhat_unlabeled", d["f"][U]))
    assert ols.fit().unlabeled_passes == 1
    assert ols.fit(method="naive").unlabeled_passes == 1
    assert ols.unlabeled_passes == 3
    in_memory = ppinfer.Logit(d["y_binary"][L], d["X"][L], d["f_binary"][L], d["X"][U], d["f_binary"][U]).fit()
    logit = ppinfer.Logit(d["y_binary"][L], d["X"][L], d["f_binary"][L], table("X_unlabeled", d["X"][U]),
                          table("yhat_unlabeled", d["f_binary"][U])).fit()
    assert 2 <= logit.unlabeled_passes <= 5
    assert logit.unlabeled_passes == in_memory.unlabeled_passes


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("estimator", ["Mean", "Mean draws", "Total", "Ratio"])
def test_linear_fits_read_the_sample_once(table, small_batches, estimator, design):
    """Means, totals and ratios: the scan is the only pass, whatever the design and method."""
    model = build(estimator, design, table, DATA)
    if model is None:
        pytest.skip("not an estimator of this design")
    results = fits(model)
    assert all(res.unlabeled_passes == 0 for res in results.values())
    assert model.unlabeled_passes == 1


def test_linear_fits_keep_their_precision_far_from_zero(tmp_path, small_batches):
    """The scan sums the score moments about a reference near the mean, so predictions of
    size 1e7 with unit spread give the in-memory numbers, with clusters and with strata."""
    rng = np.random.default_rng(8)
    n, N = 300, 6000
    y = 1e7 + rng.normal(size=n)
    f = y + rng.normal(0.3, 0.5, size=n)
    frame = pd.DataFrame({"f": 1e7 + 0.3 + rng.normal(size=N), "school": rng.integers(0, 40, N)})
    frame["region"] = frame["school"] % 3
    frame.to_parquet(tmp_path / "big.parquet", row_group_size=1000)
    table = ppinfer.read_parquet(tmp_path / "big.parquet")
    school = rng.integers(0, 40, n)
    for labeled, unlabeled in (({"clusters": school}, {"clusters_unlabeled": "school"}),
                               ({"strata": school % 3}, {"strata_unlabeled": "region"})):
        memory = {key: frame[column].to_numpy() for key, column in unlabeled.items()}
        parts = {key: table[column] for key, column in unlabeled.items()}
        expected = ppinfer.Mean(y, f, frame["f"].to_numpy(), **labeled, **memory).fit()
        model = ppinfer.Mean(y, f, table["f"], **labeled, **parts)
        assert_same_results({"ppi++": model.fit()}, {"ppi++": expected})
        assert model.unlabeled_passes == 1


# -- errors name the file and row ------------------------------------------------------------------
@pytest.fixture
def frame_file(tmp_path):
    def write(frame: pd.DataFrame, name: str = "bad.parquet", row_group_size: int = 400):
        path = tmp_path / name
        frame.to_parquet(path, row_group_size=row_group_size)
        return ppinfer.read_parquet(path)
    return write


def _regression_frame(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"one": 1.0, "x": rng.normal(size=rows)})
    frame["pred"] = 0.5 + frame["x"] + rng.normal(size=rows)
    frame["prob"] = 1 / (1 + np.exp(-frame["pred"]))
    frame["w"] = rng.uniform(1, 2, rows)
    frame["school"] = rng.integers(0, 30, rows)
    return frame


def _labeled(rows: int = 200, seed: int = 1):
    frame = _regression_frame(rows, seed)
    y = frame["pred"].to_numpy() + np.random.default_rng(seed).normal(size=rows)
    return y, frame[["one", "x"]].to_numpy(), frame["pred"].to_numpy()


def test_nan_names_file_and_row(frame_file, small_batches):
    frame = _regression_frame()
    frame.loc[1234, "x"] = np.nan
    table = frame_file(frame)
    y, X, f = _labeled()
    with pytest.raises(ValueError, match=r"^X_unlabeled has 1 row\(s\) with NaN or infinite value\(s\) in rows 700 to "
                                         r"1,399 of file bad.parquet \(first at row 1,234 of file bad.parquet "
                                         r"\(position 1,234 of the sample\)\).*missing='drop'"):
        ppinfer.OLS(y, X, f, table[["one", "x"]], table["pred"])


def test_missing_drop_equals_in_memory_drop(frame_file, small_batches):
    frame = _regression_frame()
    frame.loc[[5, 1234], "x"] = np.nan
    frame.loc[1500, "pred"] = np.inf
    table = frame_file(frame)
    y, X, f = _labeled()
    chunked = ppinfer.OLS(y, X, f, table[["one", "x"]], table["pred"], missing="drop")
    memory = ppinfer.OLS(y, X, f, frame[["one", "x"]].to_numpy(), frame["pred"].to_numpy(), missing="drop")
    assert chunked.rows_dropped == memory.rows_dropped == (0, 3)
    assert chunked.nobs_unlabeled == memory.nobs_unlabeled == 1997
    assert_same_results({"ppi++": chunked.fit()}, {"ppi++": memory.fit()})


def test_range_error_names_row(frame_file, small_batches):
    frame = _regression_frame()
    frame.loc[1500, "prob"] = 1.5
    table = frame_file(frame)
    y, X, f = _labeled()
    with pytest.raises(ValueError, match=r"^yhat_unlabeled must be probabilities in \[0, 1\]; found 1 value\(s\) "
                                         r"outside \(first: 1.5 at row 1,500 of file bad.parquet"):
        ppinfer.Logit((y > 0.5).astype(float), X, np.clip(f, 0, 1), table[["one", "x"]], table["prob"])


def test_negative_weight_names_row(frame_file, small_batches):
    frame = _regression_frame()
    frame.loc[1800, "w"] = -1.0
    table = frame_file(frame)
    y, X, f = _labeled()
    with pytest.raises(ValueError, match=r"^weights_unlabeled must be non-negative; .*row 1,800 of file bad.parquet"):
        ppinfer.OLS(y, X, f, table[["one", "x"]], table["pred"], weights=np.ones(len(y)), weights_unlabeled=table["w"])


def test_missing_cluster_label(frame_file):
    frame = _regression_frame()
    frame["school"] = frame["school"].astype(object)
    frame.loc[77, "school"] = None
    table = frame_file(frame)
    y, X, f = _labeled()
    groups = np.arange(len(y)) % 30
    with pytest.raises(ValueError, match=r"^groups_unlabeled has 1 row\(s\) with missing label\(s\).*row 77 of file"):
        ppinfer.OLS(y, X, f, table[["one", "x"]], table["pred"], groups=groups, groups_unlabeled=table["school"])
    dropped = ppinfer.OLS(y, X, f, table[["one", "x"]], table["pred"], groups=groups, groups_unlabeled=table["school"],
                          missing="drop")
    assert dropped.rows_dropped == (0, 1)


def test_wrong_inputs(frame_file, tmp_path):
    frame = _regression_frame()
    frame["word"] = "a"
    table = frame_file(frame)
    y, X, f = _labeled()
    with pytest.raises(TypeError, match=r"^X_unlabeled must be numeric"):
        ppinfer.OLS(y, X, f, table[["one", "word"]], table["pred"])
    with pytest.raises(TypeError, match=r"select its column"):
        ppinfer.OLS(y, X, f, table, table["pred"])
    with pytest.raises(KeyError, match=r"not column\(s\) of the Parquet files"):
        table["nope"]
    with pytest.raises(TypeError, match=r"^y: the labeled sample must be held in memory"):
        ppinfer.Mean(table["pred"], f, table["pred"])
    with pytest.raises(ValueError, match=r"X has 2 columns but X_unlabeled has 1"):
        ppinfer.OLS(y, X, f, table[["x"]], table["pred"])
    with pytest.raises(ValueError, match=r"^no Parquet file at"):
        ppinfer.read_parquet(tmp_path / "absent.parquet")
    other = tmp_path / "other"
    other.mkdir()
    frame.to_parquet(other / "o.parquet")
    with pytest.raises(TypeError, match=r"one ppinfer.read_parquet table"):
        ppinfer.OLS(y, X, f, table[["one", "x"]], ppinfer.read_parquet(other)["pred"])


def test_bootstrap_refused(frame_file):
    table = frame_file(_regression_frame())
    y, X, f = _labeled()
    model = ppinfer.OLS(y, X, f, table[["one", "x"]], table["pred"])
    with pytest.raises(ValueError, match=r"cannot be resampled: use ci='analytic'"):
        model.fit(ci="bootstrap", n_boot=10)


def test_numpy_with_parquet_columns(frame_file):
    """In-memory arrays (here the unlabeled weights) are sliced with the files' batches."""
    frame = _regression_frame()
    table = frame_file(frame)
    y, X, f = _labeled()
    chunked = ppinfer.OLS(y, X, f, table[["one", "x"]], table["pred"], weights=np.ones(len(y)),
                          weights_unlabeled=frame["w"].to_numpy())
    memory = ppinfer.OLS(y, X, f, frame[["one", "x"]].to_numpy(), frame["pred"].to_numpy(), weights=np.ones(len(y)),
                         weights_unlabeled=frame["w"].to_numpy())
    assert_same_results({"ppi++": chunked.fit()}, {"ppi++": memory.fit()})


# -- the formula interface on Parquet files ------------------------------------------------------------
@pytest.mark.parametrize("options", [{}, {"clusters": "school"}, {"weights": "w"}, {"strata": "g"}])
def test_formula_on_parquet_equals_pandas(tmp_path, small_batches, options):
    data_frame, unlabeled = formula_frames(2400)
    unlabeled.to_parquet(tmp_path / "u.parquet", row_group_size=500)
    formula = "np.log(y) ~ center(x) + C(g)"  # a transformed outcome and a stateful transformation
    expected = ppinfer.ols(formula, data_frame, unlabeled, yhat="pred", **options)
    actual = ppinfer.ols(formula, data_frame, str(tmp_path / "u.parquet"), yhat="pred", **options)
    assert actual.param_names == expected.param_names
    assert_same_results({"ppi++": actual.fit(), "naive": actual.fit(method="naive")},
                        {"ppi++": expected.fit(), "naive": expected.fit(method="naive")})


def test_formula_on_parquet_levels_and_missing(tmp_path, small_batches):
    data_frame, unlabeled = formula_frames(2400)
    extra = unlabeled.copy()
    extra.loc[1000, "g"] = "z"
    extra.to_parquet(tmp_path / "extra.parquet")
    with pytest.raises(ValueError, match=r"unlabeled design of rows 700 to 1,399 of file extra.parquet"):
        ppinfer.ols("y ~ x + C(g)", data_frame, tmp_path / "extra.parquet", yhat="pred")
    unlabeled[unlabeled["g"] != "c"].to_parquet(tmp_path / "fewer.parquet")
    with pytest.raises(ValueError, match=r"level 'c' of C\(g\) occurs in data but not in unlabeled"):
        ppinfer.ols("y ~ x + C(g)", data_frame, tmp_path / "fewer.parquet", yhat="pred")
    holes = unlabeled.copy()
    holes.loc[[10, 1500], "x"] = np.nan
    holes.to_parquet(tmp_path / "holes.parquet")
    with pytest.raises(ValueError, match=r"^unlabeled has 1 row\(s\) with missing values.*first at row 10 of file "
                                         r"holes.parquet"):
        ppinfer.ols("y ~ x + C(g)", data_frame, tmp_path / "holes.parquet", yhat="pred")
    dropped = ppinfer.ols("y ~ x + C(g)", data_frame, tmp_path / "holes.parquet", yhat="pred", missing="drop")
    reference = ppinfer.ols("y ~ x + C(g)", data_frame, holes, yhat="pred", missing="drop")
    assert dropped.rows_dropped == reference.rows_dropped == (0, 2)
    assert_same_results({"ppi++": dropped.fit()}, {"ppi++": reference.fit()})
    with pytest.raises(TypeError, match=r"yhat_unlabeled must be column name"):
        ppinfer.ols("y ~ x", data_frame, tmp_path / "holes.parquet", yhat="pred", yhat_unlabeled=np.zeros(2100))


# -- the core does not need the optional packages -----------------------------------------------------
def test_core_imports_no_optional_package():
    code = textwrap.dedent("""
        import sys, numpy as np, ppinfer
        rng = np.random.default_rng(0)
        X = np.column_stack([np.ones(600), rng.normal(size=600)])
        y = X @ [1.0, 2.0] + rng.normal(size=600)
        ppinfer.OLS(y[:100], X[:100], y[:100], X[100:], y[100:]).fit().summary()
        print(sorted(m for m in ("dask", "distributed", "pyarrow.parquet") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the Newton steps taken without the loss ---------------------------------------------------------------
@pytest.mark.parametrize("family", [Binomial(), Poisson()])
def test_certified_newton_steps_decrease_the_loss(family):
    """For steps with K max|x's| <= 1.5 the loss does not increase (the bound of fit_glm's Notes),
    checked on random starting points of random problems."""
    rng = np.random.default_rng(11)
    certified = 0
    for _ in range(200):
        X = np.column_stack([np.ones(300), rng.normal(size=(300, 2))])
        truth = rng.normal(scale=0.5, size=3)
        eta = X @ truth
        v = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float) if isinstance(family, Binomial) else \
            rng.poisson(np.exp(eta)).astype(float)
        beta = truth + rng.normal(scale=rng.choice([0.05, 0.3, 1.0]), size=3)
        residual, curvature = family.working(v, X @ beta)
        step = np.linalg.solve((X * curvature[:, None]).T @ X, X.T @ residual)
        if np.max(np.abs(X @ step)) > NEWTON_DECREASE_BOUND:
            continue
        certified += 1
        before, after = family.loss(v, X @ beta).sum(), family.loss(v, X @ (beta + step)).sum()
        assert after <= before + 1e-12 * abs(before)
    assert certified > 50


@pytest.mark.parametrize("family, make", [
    (Binomial(), lambda eta, rng: rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)),
    (Poisson(), lambda eta, rng: rng.poisson(np.exp(eta)).astype(float)),
])
def test_glm_fit_with_certified_steps_equals_statsmodels(family, make):
    rng = np.random.default_rng(4)
    X = np.column_stack([np.ones(5000), rng.normal(size=(5000, 3))])
    v = make(X @ [0.2, 0.5, -0.4, 0.3], rng)
    for start in (None, np.zeros(4), np.array([1.0, -1.0, 1.0, -1.0])):
        fit = fit_glm(family, [(X, v)], start=start)
        sm_family = sm.families.Binomial() if isinstance(family, Binomial) else sm.families.Poisson()
        reference = sm.GLM(v, X, family=sm_family).fit(tol=1e-14)
        np.testing.assert_allclose(fit.params, reference.params, rtol=1e-9, atol=1e-12)
        covariance = np.asarray(reference.cov_params())
        np.testing.assert_allclose(fit.bread, covariance, rtol=1e-8, atol=1e-8 * np.abs(covariance).max())


def test_read_parquet_paths(tmp_path):
    frame = _regression_frame(100)
    frame.iloc[:60].to_parquet(tmp_path / "a.parquet")
    frame.iloc[60:].to_parquet(tmp_path / "b.parquet")
    assert len(ppinfer.read_parquet(tmp_path)) == 100
    assert len(ppinfer.read_parquet(str(tmp_path / "*.parquet"))) == 100
    assert len(ppinfer.read_parquet([tmp_path / "b.parquet"])) == 40
    assert ppinfer.read_parquet(tmp_path).columns == list(frame.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repr(ppinfer.read_parquet(tmp_path))
