"""Unlabeled samples read partition by partition beyond Mean and the canonical regressions.

* ``ppinfer.glm`` on Parquet files and a Dask DataFrame (offsets and exposures
  read with each partition) gives the in-memory formula fit to 1e-10;
* ``LabelShift`` counts the predicted classes of Parquet, Dask and memory-map
  labels in one pass, giving the in-memory results to 1e-10;
* the estimators that read their samples in memory (``SyntheticGMM``,
  ``MultipleImputation``, ``MEstimator``, ``ppboot``, ``TreatmentEffect``) raise a
  ``TypeError`` naming the argument and how to load it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import ppinfer
from ppinfer.core import sources
from ppinfer.core.validation import ChunkedSample
from ppinfer.label_shift import LabelShift

from sources_cases import N_LABELED, assert_same_results, data, formula_frames

pytest.importorskip("pyarrow")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")

pytestmark = pytest.mark.filterwarnings("ignore::ppinfer.PPIWarning")

METHODS = ("ppi++", "ppi", "classical", "naive")


@pytest.fixture
def small_batches(monkeypatch):
    """Parquet batches of 700 rows (several per file)."""
    monkeypatch.setattr(sources, "PARTITION_ROWS", 700)


def _fits(model, cov_types=(None,)) -> dict:
    return {(method, cov): model.fit(method=method, cov_type=cov) for method in METHODS for cov in cov_types}


# -- ppinfer.glm with an unlabeled data frame read partition by partition ----------------------------
def glm_frames(rows: int = 2400):
    """:func:`formula_frames` with counts, their predictions and exposures (days, log days)."""
    labeled, unlabeled = formula_frames(rows)
    rng = np.random.default_rng(11)
    for frame in (labeled, unlabeled):
        m = len(frame)
        frame["days"] = rng.uniform(0.5, 3.0, m)
        frame["log_days"] = np.log(frame["days"])
        rate = np.exp(0.2 + 0.4 * frame["x"] + 0.3 * (frame["g"] == "b"))
        frame["count"] = rng.poisson(rate * frame["days"]).astype(float)
        frame["count_pred"] = rate * frame["days"] * np.exp(rng.normal(0.1, 0.2, m))
    return labeled, unlabeled


GLM_CASES = {
    "gamma log": dict(formula="y ~ x + C(g)", yhat="pred", family=sm.families.Gamma(sm.families.links.Log())),
    "binomial probit": dict(formula="hit ~ x + C(g)", yhat="prob",
                            family=sm.families.Binomial(sm.families.links.Probit())),
    "poisson offset": dict(formula="count ~ x + C(g)", yhat="count_pred", family=sm.families.Poisson(),
                           offset="log_days"),
}


@pytest.fixture(scope="module")
def glm_data(tmp_path_factory):
    """Labeled and unlabeled frames; the unlabeled one in two Parquet files (row groups of 500)."""
    labeled, unlabeled = glm_frames()
    folder = tmp_path_factory.mktemp("glm")
    unlabeled.iloc[:1000].to_parquet(folder / "part-0.parquet", row_group_size=500)
    unlabeled.iloc[1000:].to_parquet(folder / "part-1.parquet", row_group_size=500)
    return labeled, unlabeled, folder


def _glm_pair(labeled, unlabeled, streamed, case: str, **options):
    arguments = dict(GLM_CASES[case])
    formula = arguments.pop("formula")
    arguments.update(options)
    expected = ppinfer.glm(formula, labeled, unlabeled, **arguments)
    actual = ppinfer.glm(formula, labeled, streamed, **arguments)
    assert isinstance(actual.unlabeled, ChunkedSample)
    assert actual.param_names == expected.param_names
    return actual, expected


@pytest.mark.parametrize("case", list(GLM_CASES))
@pytest.mark.parametrize("where", ["parquet", "path", "dask"])
def test_glm_formula_streamed_equals_in_memory(glm_data, small_batches, where, case):
    labeled, unlabeled, folder = glm_data
    streamed = {"parquet": lambda: ppinfer.read_parquet(folder), "path": lambda: str(folder),
                "dask": lambda: dd.from_pandas(unlabeled, npartitions=3)}[where]()
    actual, expected = _glm_pair(labeled, unlabeled, streamed, case)
    assert_same_results(_fits(actual, (None, "HC0")), _fits(expected, (None, "HC0")))


@pytest.mark.parametrize("options", [{"clusters": "school"}, {"weights": "w", "strata": "g"}])
def test_glm_formula_streamed_with_design(glm_data, small_batches, options):
    labeled, unlabeled, folder = glm_data
    for case in ("gamma log", "poisson offset"):
        actual, expected = _glm_pair(labeled, unlabeled, ppinfer.read_parquet(folder), case, **options)
        assert_same_results(_fits(actual), _fits(expected))


def test_glm_formula_streamed_exposure(glm_data, small_batches):
    """exposure='days': log(days) taken as each partition is read; equal to the in-memory exposure
    and to the offset log(days)."""
    labeled, unlabeled, folder = glm_data
    for streamed in (ppinfer.read_parquet(folder), dd.from_pandas(unlabeled, npartitions=3)):
        actual, expected = _glm_pair(labeled, unlabeled, streamed, "poisson offset", offset=None, exposure="days")
        assert_same_results(_fits(actual), _fits(expected))
        offset, _ = _glm_pair(labeled, unlabeled, streamed, "poisson offset")
        assert_same_results(_fits(actual), _fits(offset))
    # an offset and an exposure together, one of them as an explicit unlabeled column
    both, reference = _glm_pair(labeled, unlabeled, ppinfer.read_parquet(folder), "poisson offset",
                                offset="x", offset_unlabeled="x", exposure="days")
    assert_same_results(_fits(both), _fits(reference))


def test_glm_formula_streamed_dask_processes(glm_data):
    """The offsets' and exposures' partitions are read by worker processes (the plan pickles)."""
    from concurrent.futures import ProcessPoolExecutor

    import dask

    labeled, unlabeled, _ = glm_data
    streamed = dd.from_pandas(unlabeled, npartitions=2)
    # one pool for every pass (dask would start a pool of processes for each computation)
    with ProcessPoolExecutor(2) as pool, dask.config.set(scheduler="processes", pool=pool):
        actual, expected = _glm_pair(labeled, unlabeled, streamed, "poisson offset", offset=None, exposure="days",
                                     clusters="school")
        assert_same_results({"ppi++": actual.fit()}, {"ppi++": expected.fit()})


def test_glm_formula_streamed_missing_drop(glm_data, tmp_path):
    labeled, unlabeled, _ = glm_data
    holes = unlabeled.copy()
    holes.loc[[7, 1500], "log_days"] = np.nan
    holes.to_parquet(tmp_path / "holes.parquet")
    with pytest.raises(ValueError, match=r"^offset_unlabeled has 2 row\(s\) with NaN or infinite value\(s\) in rows "
                                         r"0 to 2,099 of file holes.parquet \(first at row 7 of file holes.parquet"):
        ppinfer.glm("count ~ x", labeled, str(tmp_path / "holes.parquet"), yhat="count_pred",
                    family=sm.families.Poisson(), offset="log_days")
    holes.loc[300, "x"] = np.nan  # a formula variable too
    holes.to_parquet(tmp_path / "holes.parquet")
    actual, expected = _glm_pair(labeled, holes, str(tmp_path / "holes.parquet"), "poisson offset", missing="drop")
    assert actual.rows_dropped == expected.rows_dropped == (0, 3)
    assert_same_results(_fits(actual), _fits(expected))


def test_glm_formula_streamed_offset_errors(glm_data, tmp_path):
    labeled, unlabeled, folder = glm_data
    table = ppinfer.read_parquet(folder)
    poisson = dict(yhat="count_pred", family=sm.families.Poisson())
    with pytest.raises(TypeError, match=r"^offset_unlabeled must be a column name of unlabeled"):
        ppinfer.glm("count ~ x", labeled, table, offset="log_days",
                    offset_unlabeled=unlabeled["log_days"].to_numpy(), **poisson)
    with pytest.raises(ValueError, match=r"^offset='lag' is a column of data but not of unlabeled"):
        ppinfer.glm("count ~ x", labeled.assign(lag=0.0), table, offset="lag", **poisson)
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] are not in unlabeled"):
        ppinfer.glm("count ~ x", labeled, table, offset="log_days", offset_unlabeled="nope", **poisson)
    bad = unlabeled.copy()
    bad.loc[1234, "days"] = 0.0
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"^exposure_unlabeled must be positive; found 1 value\(s\) <= 0 "
                                         r"\(first: 0.0 at row 1,234 of file bad.parquet"):
        ppinfer.glm("count ~ x", labeled, str(tmp_path / "bad.parquet"), exposure="days", **poisson)
    with pytest.raises(ValueError, match=r"^exposure needs the log link"):
        ppinfer.glm("hit ~ x", labeled, table, yhat="prob", exposure="days",
                    family=sm.families.Binomial(sm.families.links.Probit()))


def test_glm_arrays_streamed_exposure(glm_data):
    """The array interface: an exposure given as Parquet columns."""
    labeled, unlabeled, folder = glm_data
    table = ppinfer.read_parquet(folder)
    X = np.column_stack([np.ones(len(labeled)), labeled["x"]])
    Xu = np.column_stack([np.ones(len(unlabeled)), unlabeled["x"]])
    common = dict(family=sm.families.NegativeBinomial(alpha=0.5), exposure=labeled["days"].to_numpy())
    expected = ppinfer.GLM(labeled["count"], X, labeled["count_pred"], Xu, unlabeled["count_pred"].to_numpy(),
                           exposure_unlabeled=unlabeled["days"].to_numpy(), **common)
    actual = ppinfer.GLM(labeled["count"], X, labeled["count_pred"], Xu,
                         table["count_pred"], exposure_unlabeled=table["days"], **common)
    assert isinstance(actual.unlabeled, ChunkedSample)
    assert_same_results(_fits(actual), _fits(expected))
    with pytest.raises(TypeError, match=r"^exposure: the labeled sample must be held in memory"):
        ppinfer.GLM(labeled["count"], X, labeled["count_pred"], Xu, unlabeled["count_pred"].to_numpy(),
                    family=sm.families.Poisson(), exposure=da.from_array(labeled["days"].to_numpy()),
                    exposure_unlabeled=unlabeled["days"].to_numpy())


# -- LabelShift: the predicted classes counted in one pass -----------------------------------------
def _label_data(seed: int = 4):
    rng = np.random.default_rng(seed)
    classes = np.array(["cat", "dog", "emu"])
    y = rng.choice(3, 400, p=[0.5, 0.3, 0.2])
    yhat = np.where(rng.random(400) < 0.85, y, rng.integers(0, 3, 400))
    truth = rng.choice(3, 5000, p=[0.2, 0.3, 0.5])
    yhat_unlabeled = np.where(rng.random(5000) < 0.85, truth, rng.integers(0, 3, 5000))
    return classes[y], classes[yhat], classes[yhat_unlabeled], (y, yhat, yhat_unlabeled)


def _assert_same_label_shift(actual: LabelShift, expected: LabelShift) -> None:
    assert actual.classes == expected.classes
    assert actual.nobs_unlabeled == expected.nobs_unlabeled
    for method in ("ppi", "naive"):
        a, b = actual.fit(method=method), expected.fit(method=method)
        np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a.cov_params().to_numpy(), b.cov_params().to_numpy(), rtol=1e-10, atol=1e-14)


def test_label_shift_streamed_equals_in_memory(tmp_path, small_batches):
    y, yhat, yhat_unlabeled, codes = _label_data()
    expected = LabelShift(y, yhat, yhat_unlabeled)
    frame = pd.DataFrame({"pred": yhat_unlabeled, "code": codes[2]})
    frame.iloc[:2000].to_parquet(tmp_path / "a.parquet")
    frame.iloc[2000:].to_parquet(tmp_path / "b.parquet")
    table = ppinfer.read_parquet(tmp_path)
    _assert_same_label_shift(LabelShift(y, yhat, table["pred"]), expected)
    _assert_same_label_shift(LabelShift(y, yhat, table[["pred"]]), expected)
    _assert_same_label_shift(LabelShift(y, yhat, dd.from_pandas(frame, npartitions=4)["pred"]), expected)
    _assert_same_label_shift(LabelShift(y, yhat, dd.from_pandas(frame[["pred"]], npartitions=3)), expected)
    # integer labels: a Dask array and a memory map of int16 codes
    expected_codes = LabelShift(codes[0], codes[1], codes[2])
    _assert_same_label_shift(LabelShift(codes[0], codes[1], da.from_array(codes[2], chunks=700)), expected_codes)
    mapped = np.lib.format.open_memmap(tmp_path / "codes.npy", mode="w+", dtype=np.int16, shape=codes[2].shape)
    mapped[:] = codes[2]
    mapped.flush()
    _assert_same_label_shift(LabelShift(codes[0], codes[1], np.load(tmp_path / "codes.npy", mmap_mode="r")),
                             expected_codes)
    _assert_same_label_shift(LabelShift(codes[0], codes[1], table["code"], classes=[0, 1, 2]), expected_codes)


def test_label_shift_streamed_errors(tmp_path, small_batches):
    y, yhat, yhat_unlabeled, _ = _label_data()
    frame = pd.DataFrame({"pred": pd.Series(yhat_unlabeled, dtype=object), "other": 1.0})
    frame.loc[1500, "pred"] = None
    frame.loc[2600, "pred"] = "yak"
    frame.to_parquet(tmp_path / "labels.parquet")
    table = ppinfer.read_parquet(tmp_path / "labels.parquet")
    with pytest.raises(ValueError, match=r"^yhat_unlabeled has 1 missing label\(s\) \(first at row 1,500 of file "
                                         r"labels.parquet.*drop those units first"):
        LabelShift(y, yhat, table["pred"])
    frame.loc[1500, "pred"] = "cat"
    frame.to_parquet(tmp_path / "labels.parquet")
    with pytest.raises(ValueError, match=r"^yhat_unlabeled has labels \['yak'\] that are not among classes"):
        LabelShift(y, yhat, table["pred"], classes=["cat", "dog", "emu"])
    with pytest.raises(ValueError, match=r"one class label per unit \(one column\)"):
        LabelShift(y, yhat, table[["pred", "other"]])
    with pytest.raises(TypeError, match=r"select its column"):
        LabelShift(y, yhat, table)
    frame.iloc[:0].to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match=r"^yhat_unlabeled is empty"):
        LabelShift(y, yhat, ppinfer.read_parquet(tmp_path / "empty.parquet")["pred"])
    with pytest.raises(TypeError, match=r"^LabelShift reads the labeled sample in memory.*y was given a Dask "
                                        r"collection.*NumPy array or pandas Series.*\.compute\(\)"):
        LabelShift(dd.from_pandas(pd.Series(y), npartitions=2), yhat, yhat_unlabeled)
    with pytest.raises(TypeError, match=r"^LabelShift reads the labeled sample in memory.*yhat was given Parquet "
                                        r"columns \['pred'\].*pd\.read_parquet\(path, columns=\['pred'\]\)"):
        LabelShift(y, table["pred"], yhat_unlabeled)


# -- estimators that read their samples in memory --------------------------------------------------
@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    """Labeled arrays, the unlabeled ones as Parquet columns and as a Dask DataFrame (same rows)."""
    d = data()
    L, U = slice(0, N_LABELED), slice(N_LABELED, None)
    frame = pd.DataFrame({"x0": d["X"][U, 0], "x1": d["X"][U, 1], "x2": d["X"][U, 2], "f": d["f"][U],
                          "d0": d["draws"][U, 0], "d1": d["draws"][U, 1], "school": d["school"][U]})
    path = tmp_path_factory.mktemp("in_memory") / "u.parquet"
    frame.to_parquet(path)
    labeled = {"y": d["y"][L], "X": d["X"][L], "f": d["f"][L], "draws": d["draws"][L, :2], "school": d["school"][L]}
    return labeled, frame, ppinfer.read_parquet(path), dd.from_pandas(frame, npartitions=3), str(path)


def _refused(estimator: str, argument: str, kind: str, fix: str, what: str = "the unlabeled sample") -> str:
    return (rf"^{estimator} reads {what} in memory, not partition by partition: {argument} was given {kind}.*"
            rf"Load it into .* first, e\.g\. with {fix}")


PARQUET = (r"Parquet columns", r"pd\.read_parquet\(path, columns=")
DASK = (r"a Dask collection", r"\.compute\(\)")


def test_synthetic_gmm_refuses_streamed(arrays):
    labeled, frame, table, frames, _ = arrays
    y, X, draws = labeled["y"], labeled["X"], labeled["draws"]
    Xu, drawsu = frame[["x0", "x1", "x2"]].to_numpy(), frame[["d0", "d1"]].to_numpy()
    for value, (kind, fix) in ((table[["d0", "d1"]], PARQUET), (frames[["d0", "d1"]], DASK),
                               (da.from_array(drawsu, chunks=(700, 2)), DASK)):
        with pytest.raises(TypeError, match=_refused("SyntheticGMM", "synthetic_unlabeled", kind, fix)):
            ppinfer.SyntheticGMM(y, draws, value)
    with pytest.raises(TypeError, match=_refused("SyntheticGMM", r"synthetic_unlabeled\[1\]", *DASK)):
        ppinfer.SyntheticGMM(y, [draws[:, 0], draws[:, 1]], [drawsu[:, 0], frames["d1"]])
    with pytest.raises(TypeError, match=_refused("SyntheticGMM", "X_unlabeled", *PARQUET)):
        ppinfer.SyntheticGMM(y, draws, drawsu, X=X, X_unlabeled=table[["x0", "x1", "x2"]])
    with pytest.raises(TypeError, match=_refused("SyntheticGMM", "clusters_unlabeled", *DASK)):
        ppinfer.SyntheticGMM(y, draws, drawsu, clusters=labeled["school"], clusters_unlabeled=frames["school"])
    with pytest.raises(TypeError, match=_refused("SyntheticGMM", "synthetic", *DASK, what="the labeled sample")):
        ppinfer.SyntheticGMM(y, da.from_array(draws), drawsu)
    # the in-memory arrays still work
    assert ppinfer.SyntheticGMM(y, draws, drawsu, X=X, X_unlabeled=Xu).fit().params.size == 3


def test_multiple_imputation_refuses_streamed(arrays, tmp_path):
    labeled, frame, table, frames, _ = arrays
    y, X, f = labeled["y"], labeled["X"], labeled["f"]
    Xu, fu = frame[["x0", "x1", "x2"]].to_numpy(), frame["f"].to_numpy()
    with pytest.raises(TypeError, match=_refused("MultipleImputation", "yhat_unlabeled", *PARQUET)):
        ppinfer.MultipleImputation(y, f, table["f"], X=X, X_unlabeled=Xu)
    with pytest.raises(TypeError, match=_refused("MultipleImputation", "yhat_unlabeled", *DASK)):
        ppinfer.MultipleImputation(y, f, frames["f"], X=X, X_unlabeled=Xu)
    with pytest.raises(TypeError, match=_refused("MultipleImputation", "X_unlabeled", *DASK)):
        ppinfer.MultipleImputation(y, f, fu, X=X, X_unlabeled=frames[["x0", "x1", "x2"]])
    with pytest.raises(TypeError, match=_refused("MultipleImputation", "imputation_X_unlabeled", *PARQUET)):
        ppinfer.MultipleImputation(y, f, fu, X=X, X_unlabeled=Xu, imputation_X=X,
                                   imputation_X_unlabeled=table[["x0", "x1", "x2"]])
    mapped = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float32, shape=fu.shape)
    mapped[:] = fu
    mapped.flush()
    with pytest.raises(TypeError, match=_refused("MultipleImputation", "yhat_unlabeled", "a memory map of float32",
                                                 r"np\.asarray\(values, dtype=float\)")):
        ppinfer.MultipleImputation(y, f, np.load(tmp_path / "f.npy", mmap_mode="r"), X=X, X_unlabeled=Xu)


def test_mestimator_refuses_streamed(arrays):
    labeled, frame, table, frames, path = arrays
    data_frame = pd.DataFrame({"y": labeled["y"], "f": labeled["f"]})
    unlabeled = frame[["f"]]

    def mean(theta, rows):
        return rows["y"].to_numpy() - theta[0]

    frame_fix = r"pd\.read_parquet\(path\)"
    for value, kind, fix in ((frames[["f"]], "a Dask collection", r"\.compute\(\)"),
                             (table, "a Parquet table", frame_fix), (path, "a path", frame_fix)):
        with pytest.raises(TypeError, match=_refused("MEstimator", "unlabeled", kind, fix)):
            ppinfer.MEstimator(mean, data_frame, value, predicted={"y": "f"}, start=[0.0])
    with pytest.raises(TypeError, match=_refused("MEstimator", r"unlabeled\['f'\]", *PARQUET)):
        ppinfer.MEstimator(mean, data_frame, {"f": table["f"]}, predicted={"y": "f"}, start=[0.0])
    with pytest.raises(TypeError, match=_refused("MEstimator", "weights_unlabeled", *DASK)):
        ppinfer.MEstimator(mean, data_frame, unlabeled, predicted={"y": "f"}, start=[0.0],
                           weights=np.ones(len(data_frame)), weights_unlabeled=frames["x0"])
    with pytest.raises(TypeError, match=_refused("MEstimator", "data", *DASK, what="the labeled sample")):
        ppinfer.MEstimator(mean, dd.from_pandas(data_frame, npartitions=2), unlabeled, predicted={"y": "f"},
                           start=[0.0])
    res = ppinfer.MEstimator(mean, data_frame, unlabeled, predicted={"y": "f"}, start=[0.0]).fit()
    assert np.isfinite(res.params.iloc[0])


def test_ppboot_refuses_streamed(arrays):
    labeled, frame, table, frames, path = arrays
    data_frame = pd.DataFrame({"y": labeled["y"], "f": labeled["f"]})

    def mean(values):
        return np.mean(values["y"]) if isinstance(values, pd.DataFrame) else np.mean(values)

    options = dict(n_boot=20, seed=0, progress=False)
    for value, kind, fix in ((frames[["f"]], "a Dask collection", r"\.compute\(\)"),
                             (table, "a Parquet table", r"pd\.read_parquet\(path\)"),
                             (path, "a path", r"pd\.read_parquet\(path\)")):
        with pytest.raises(TypeError, match=_refused("ppboot", "unlabeled", kind, fix)):
            ppinfer.ppboot(mean, data_frame, value, predicted={"y": "f"}, **options)
    with pytest.raises(TypeError, match=_refused("ppboot", "unlabeled", *PARQUET)):
        ppinfer.ppboot(mean, labeled["y"], table["f"], yhat=labeled["f"], **options)
    with pytest.raises(TypeError, match=_refused("ppboot", "unlabeled", *DASK)):
        ppinfer.ppboot(mean, labeled["y"], frames["f"].to_dask_array(lengths=True), yhat=labeled["f"], **options)
    with pytest.raises(TypeError, match=_refused("ppboot", "clusters_unlabeled", *DASK)):
        ppinfer.ppboot(mean, data_frame, frame[["f"]], predicted={"y": "f"},
                       design=ppinfer.Design(clusters=labeled["school"], clusters_unlabeled=frames["school"]),
                       **options)
    with pytest.raises(TypeError, match=_refused("ppboot", "yhat", *PARQUET, what="the labeled sample")):
        ppinfer.ppboot(mean, labeled["y"], frame["f"].to_numpy(), yhat=table["f"], **options)
    assert ppinfer.ppboot(mean, data_frame, frame[["f"]], predicted={"y": "f"}, **options).params.size == 1


def test_treatment_effect_refuses_streamed(arrays, tmp_path):
    """A trial is one sample (units without an outcome are predicted within it): every per-unit
    argument, and the formula's data, must be in memory."""
    _, frame, table, frames, path = arrays
    n = len(frame)
    rng = np.random.default_rng(2)
    arm = rng.permutation(np.repeat([0, 1], [n // 2, n - n // 2]))
    y = frame["f"].to_numpy() + 0.3 * arm + rng.normal(size=n)
    trial = frame.assign(y=y, arm=arm)
    trial.to_parquet(tmp_path / "trial.parquet")
    what = "the trial"
    with pytest.raises(TypeError, match=_refused("TreatmentEffect", "prognostic", *PARQUET, what=what)):
        ppinfer.TreatmentEffect(y, arm, prognostic=table["f"])
    with pytest.raises(TypeError, match=_refused("TreatmentEffect", "prognostic", *DASK, what=what)):
        ppinfer.TreatmentEffect(y, arm, prognostic=frames["f"])
    with pytest.raises(TypeError, match=_refused("TreatmentEffect", "X", *DASK, what=what)):
        ppinfer.TreatmentEffect(y, arm, X=da.from_array(frame[["x1", "x2"]].to_numpy(), chunks=(700, 2)))
    with pytest.raises(TypeError, match=_refused("TreatmentEffect", "treatment", *PARQUET, what=what)):
        ppinfer.TreatmentEffect(y, table["x0"])
    with pytest.raises(TypeError, match=_refused("TreatmentEffect", "clusters", *DASK, what=what)):
        ppinfer.TreatmentEffect(y, arm, clusters=frames["school"])
    with pytest.raises(TypeError, match=_refused("treatment_effect", "data", *DASK, what=what)):
        ppinfer.treatment_effect("y ~ arm + x1", dd.from_pandas(trial, npartitions=2))
    with pytest.raises(TypeError, match=_refused("treatment_effect", "data", "a path", r"pd\.read_parquet\(path\)",
                                                 what=what)):
        ppinfer.treatment_effect("y ~ arm + x1", str(tmp_path / "trial.parquet"))
    with pytest.raises(TypeError, match=_refused("treatment_effect", "prognostic", *DASK, what=what)):
        ppinfer.treatment_effect("y ~ arm + x1", trial, prognostic=frames["f"])
    reference = ppinfer.treatment_effect("y ~ arm + x1", trial, prognostic="f").fit(method="ppct")
    assert np.isfinite(reference.params.iloc[0])
