"""Prediction-powered bootstrap (PPBoot, Zrnic 2024) of a user's statistic.

References:

* a mean, where the analytic PPI interval exists: the ideal bootstrap variance of
  ``mean(Y - lam f) + lam mean(f~)`` is the 1/n-normalised closed form
  ``s2(Y - lam f)/n + lam^2 s2(f~)/N``, computed by hand with numpy; ppboot's standard
  error and interval must match it to Monte Carlo error (tolerances from the standard
  error of a standard deviation, ``sd / sqrt(2B)``, and of a sample quantile,
  ``sqrt(q(1 - q)/B) / phi(z_q) * sd``, for B replicates), and its tuned lambda the
  PPI++ lambda ``cov(Y, f)/n / (s2(f)/n + s2(f~)/N)`` (tolerance by the delta method);
* clusters: the bootstrap of whole PSUs has the cluster-robust (CR0) variance, by hand;
* point estimates: the statistic evaluated by hand on the three data sets;
* Monte Carlo: coverage of a correlation and a ratio of means (true values in closed
  form) with biased predictions.

``python tests/test_ppboot.py [reps]`` prints the Monte Carlo figures.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ppinfer
from ppinfer.models import ppboot as ppboot_module

QUIET = dict(progress=False)


def frames(seed: int, n: int = 200, N: int = 2000):
    """x measured everywhere; y measured on the labeled rows, predicted (biased, noisy) everywhere."""
    rng = np.random.default_rng(seed)

    def one(m):
        x = rng.normal(size=m)
        y = 1.0 + 0.6 * x + rng.normal(size=m)
        return pd.DataFrame({"x": x, "y": y, "y_llm": 0.4 + 1.2 * y + 0.6 * rng.normal(size=m),
                             "id": np.arange(m), "g": rng.integers(0, 3, m)})

    return one(n), one(N).drop(columns="y")


def mean_y(data):
    return data["y"].mean()


# --------------------------------------------------------------------------------------
# exact values
# --------------------------------------------------------------------------------------
def test_point_estimate_combines_the_three_statistics():
    labeled, unlabeled = frames(1)
    median_gap = lambda d: d["y"].median() - d["x"].median()  # noqa: E731
    res = ppinfer.ppboot(median_gap, labeled, unlabeled, predicted={"y": "y_llm"}, lam=0.4, n_boot=20, seed=0,
                         **QUIET)
    t_y = labeled["y"].median() - labeled["x"].median()
    t_f = labeled["y_llm"].median() - labeled["x"].median()
    t_u = unlabeled["y_llm"].median() - unlabeled["x"].median()
    assert res.params.iloc[0] == pytest.approx(t_y + 0.4 * (t_u - t_f), abs=1e-12)
    assert res.method == "ppi++" and res.lam == 0.4
    classical = ppinfer.ppboot(median_gap, labeled, unlabeled, predicted={"y": "y_llm"}, lam=0, n_boot=20, seed=0,
                               **QUIET)
    assert classical.params.iloc[0] == pytest.approx(t_y, abs=1e-12) and classical.method == "classical"
    assert ppinfer.ppboot(median_gap, labeled, unlabeled, predicted={"y": "y_llm"}, lam=1, n_boot=20, seed=0,
                          **QUIET).method == "ppi"


def test_statistic_sees_measured_names_with_the_predictions_in_place():
    labeled, unlabeled = frames(2, n=30, N=50)
    seen = []

    def record(data):
        seen.append(data.copy())
        return data["y"].mean()

    ppinfer.PPBoot(record, labeled, unlabeled, predicted={"y": "y_llm"})
    measured, predicted, unlabeled_seen = seen
    np.testing.assert_array_equal(measured["y"], labeled["y"])
    np.testing.assert_array_equal(predicted["y"], labeled["y_llm"])
    np.testing.assert_array_equal(unlabeled_seen["y"], unlabeled["y_llm"])
    np.testing.assert_array_equal(predicted["x"], labeled["x"])  # measured variables untouched


def test_basic_interval_reflects_the_percentile_interval():
    labeled, unlabeled = frames(3)
    options = dict(predicted={"y": "y_llm"}, n_boot=200, seed=5, **QUIET)
    percentile = ppinfer.ppboot(mean_y, labeled, unlabeled, **options)
    basic = ppinfer.ppboot(mean_y, labeled, unlabeled, ci="basic", **options)
    theta = percentile.params.iloc[0]
    low, high = percentile.conf_int().iloc[0]
    np.testing.assert_allclose(basic.conf_int().iloc[0].to_numpy(), [2 * theta - high, 2 * theta - low], rtol=1e-12)


def test_vector_statistic_names_and_lambda_rules():
    labeled, unlabeled = frames(4)

    def moments(data):
        return pd.Series({"mean": data["y"].mean(), "sd": data["y"].std(), "corr": data["x"].corr(data["y"])})

    model = ppinfer.PPBoot(moments, labeled, unlabeled, predicted={"y": "y_llm"})
    res = model.fit(n_boot=100, seed=1, **QUIET)
    assert res.param_names == ["mean", "sd", "corr"]
    assert isinstance(res.lam, pd.Series) and list(res.lam.index) == ["mean", "sd", "corr"]
    assert np.all((res.lam >= 0) & (res.lam <= 1))
    assert isinstance(model.fit(n_boot=100, seed=1, lam="overall", **QUIET).lam, float)
    matrix = model.fit(n_boot=100, seed=1, lam="matrix", **QUIET)
    assert matrix.lam.shape == (3, 3)
    t = model._values
    np.testing.assert_allclose(matrix.params.to_numpy(), t[0] + matrix.lam.to_numpy() @ (t[2] - t[1]))
    # the matrix minimises the trace of the replicates' covariance over all matrices
    assert np.trace(matrix.cov_params()) <= np.trace(res.cov_params()) + 1e-15
    with pytest.raises(ValueError, match="per-stratum"):
        model.fit(n_boot=10, lam="per-stratum", **QUIET)


def test_arrays_interface():
    labeled, unlabeled = frames(5)
    corr = lambda z: np.corrcoef(z[:, 0], z[:, 1])[0, 1]  # noqa: E731
    by_arrays = ppinfer.ppboot(corr, labeled[["x", "y"]].to_numpy(), unlabeled[["x", "y_llm"]].to_numpy(),
                               yhat=labeled[["x", "y_llm"]].to_numpy(), n_boot=100, seed=3, **QUIET)
    by_frames = ppinfer.ppboot(lambda d: d["x"].corr(d["y"]), labeled, unlabeled, predicted={"y": "y_llm"},
                               n_boot=100, seed=3, **QUIET)
    np.testing.assert_allclose(by_arrays.conf_int().to_numpy(), by_frames.conf_int().to_numpy(), rtol=1e-10)
    assert by_arrays.param_names == ["statistic"]


# --------------------------------------------------------------------------------------
# reproducibility, workers, progress
# --------------------------------------------------------------------------------------
def test_results_do_not_depend_on_the_number_of_workers():
    labeled, unlabeled = frames(6, n=100, N=400)
    statistic = lambda d: d["y"].quantile(0.3)  # noqa: E731  (a lambda: workers are forked)
    options = dict(predicted={"y": "y_llm"}, n_boot=64, seed=11, **QUIET)
    def model():
        return ppinfer.PPBoot(statistic, labeled, unlabeled, predicted={"y": "y_llm"})

    one = model()
    serial = one.replicates(64, seed=11, progress=False)
    parallel = model().replicates(64, seed=11, progress=False, n_jobs=2)
    np.testing.assert_array_equal(serial, parallel)
    pd.testing.assert_frame_equal(ppinfer.ppboot(statistic, labeled, unlabeled, **options).conf_int(),
                                  ppinfer.ppboot(statistic, labeled, unlabeled, n_jobs=2, **options).conf_int())
    again = model().replicates(64, seed=np.random.SeedSequence(11), progress=False)
    np.testing.assert_array_equal(serial, again)
    assert not np.array_equal(serial, one.replicates(64, seed=12, progress=False))


def test_model_bootstrap_takes_a_seed_sequence():
    """The models' bootstrap shares ppboot's runner: a SeedSequence seeds it like its integer."""
    labeled, unlabeled = frames(15, n=60, N=200)
    model = ppinfer.Mean(labeled["y"], labeled["y_llm"], unlabeled["y_llm"])
    by_int = model.fit(ci="bootstrap", n_boot=20, seed=3, progress=False)
    by_sequence = model.fit(ci="bootstrap", n_boot=20, seed=np.random.SeedSequence(3), progress=False)
    pd.testing.assert_frame_equal(by_int.conf_int(), by_sequence.conf_int())


def test_workers_need_a_picklable_statistic_without_fork(monkeypatch):
    labeled, unlabeled = frames(7, n=40, N=80)
    monkeypatch.setattr(ppboot_module, "_start_method", lambda: "spawn")
    with pytest.raises(TypeError, match="picklable"):
        ppinfer.ppboot(lambda d: d["y"].mean(), labeled, unlabeled, predicted={"y": "y_llm"}, n_boot=10,
                       n_jobs=2, **QUIET)


def test_progress_bar(capsys, monkeypatch):
    labeled, unlabeled = frames(8, n=40, N=80)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the plain line
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    ppinfer.ppboot(mean_y, labeled, unlabeled, predicted={"y": "y_llm"}, n_boot=30, seed=0, progress=True)
    assert "PPBoot: 30/30 replicates (100%)" in capsys.readouterr().err
    ppinfer.ppboot(mean_y, labeled, unlabeled, predicted={"y": "y_llm"}, n_boot=30, seed=0, progress=False)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------------------
# designs
# --------------------------------------------------------------------------------------
def test_strata_are_resampled_within():
    labeled, unlabeled = frames(9)
    counts = lambda d: d.groupby("g").size().reindex([0, 1, 2]).astype(float)  # noqa: E731
    model = ppinfer.PPBoot(counts, labeled, unlabeled, predicted={"y": "y_llm"},
                           design=ppinfer.Design(strata="g"))
    draws = model.replicates(50, seed=0, progress=False)
    np.testing.assert_array_equal(draws[:, 0], np.broadcast_to(labeled.groupby("g").size().to_numpy(), (50, 3)))
    np.testing.assert_array_equal(draws[:, 2], np.broadcast_to(unlabeled.groupby("g").size().to_numpy(), (50, 3)))
    free = ppinfer.PPBoot(counts, labeled, unlabeled, predicted={"y": "y_llm"}).replicates(50, seed=0, progress=False)
    assert free[:, 0].std(axis=0).min() > 1


@pytest.mark.montecarlo
def test_clusters_resampled_whole_give_the_cluster_robust_variance():
    rng = np.random.default_rng(10)

    def clustered(groups, size, offset):
        cluster = np.repeat(np.arange(groups), size) + offset
        effect = np.repeat(rng.normal(size=groups), size)
        y = effect + rng.normal(size=groups * size)
        return pd.DataFrame({"y": y, "y_llm": 0.8 * y + 0.3 * np.repeat(rng.normal(size=groups), size)
                             + 0.5 * rng.normal(size=groups * size), "school": cluster})

    labeled, unlabeled = clustered(40, 5, 0), clustered(200, 5, 1000).drop(columns="y")
    B = 1500
    data = dict(labeled=labeled["y"].to_numpy(), unlabeled=unlabeled["y_llm"].to_numpy(),
                yhat=labeled["y_llm"].to_numpy())
    design = ppinfer.Design(clusters=labeled["school"].to_numpy(), clusters_unlabeled=unlabeled["school"].to_numpy())
    res = ppinfer.ppboot(np.mean, **data, lam=1.0, n_boot=B, seed=2, design=design, **QUIET)
    # CR0 by hand: cluster totals of the rows' contributions to each mean
    rectifier = (labeled["y"] - labeled["y_llm"]).to_numpy()
    z_lab = pd.Series(rectifier - rectifier.mean()).groupby(labeled["school"]).sum().to_numpy() / len(labeled)
    pred = unlabeled["y_llm"].to_numpy()
    z_unl = pd.Series(pred - pred.mean()).groupby(unlabeled["school"]).sum().to_numpy() / len(unlabeled)
    sd = np.sqrt(np.sum(z_lab**2) + np.sum(z_unl**2))
    assert abs(res.bse.iloc[0] / sd - 1) <= 3.5 / np.sqrt(2 * B)
    # resampling rows as if independent misses the clustering: far too small
    iid = ppinfer.ppboot(np.mean, **data, lam=1.0, n_boot=B, seed=2, **QUIET)
    assert iid.bse.iloc[0] / sd < 1 - 10 / np.sqrt(2 * B)


# --------------------------------------------------------------------------------------
# the analytic interval where it exists: a mean
# --------------------------------------------------------------------------------------
@pytest.mark.montecarlo
def test_mean_matches_the_analytic_ppi_interval_to_monte_carlo_error():
    labeled, unlabeled = frames(11, n=300, N=3000)
    n, N, B = 300, 3000, 2000
    y, f, fu = labeled["y"].to_numpy(), labeled["y_llm"].to_numpy(), unlabeled["y_llm"].to_numpy()
    model = ppinfer.PPBoot(np.mean, y, fu, yhat=f)
    # lambda = 1: the interval
    res = model.fit(n_boot=B, lam=1.0, seed=4, **QUIET)
    theta = np.mean(y - f) + np.mean(fu)
    sd = np.sqrt(np.var(y - f) / n + np.var(fu) / N)
    assert res.params.iloc[0] == pytest.approx(theta, abs=1e-12)
    assert abs(res.bse.iloc[0] / sd - 1) <= 3.5 / np.sqrt(2 * B)
    alpha = 0.1
    z = stats.norm.isf(alpha / 2)
    quantile_se = np.sqrt(alpha / 2 * (1 - alpha / 2) / B) / stats.norm.pdf(z) * sd
    np.testing.assert_allclose(res.conf_int(alpha).iloc[0].to_numpy(), [theta - z * sd, theta + z * sd],
                               rtol=0, atol=3.5 * quantile_se)
    # tuned: the PPI++ lambda, to Monte Carlo error (delta method for a ratio of bootstrap covariances,
    # replicates treated as normal)
    tuned = model.fit(n_boot=B, seed=5, **QUIET)
    v_f, v_u, c = np.var(f) / n, np.var(fu) / N, np.cov(y, f, bias=True)[0, 1] / n
    v_y = np.var(y) / n
    lam = c / (v_f + v_u)
    var_c, var_s, cov_cs = (v_y * v_f + c**2) / B, 2 * (v_f**2 + v_u**2) / B, 2 * c * v_f / B
    se_lam = lam * np.sqrt(var_c / c**2 + var_s / (v_f + v_u) ** 2 - 2 * cov_cs / (c * (v_f + v_u)))
    assert abs(tuned.lam - min(lam, 1.0)) <= 3.5 * se_lam


@pytest.mark.montecarlo
def test_ratio_matches_its_linearized_variance_to_monte_carlo_error():
    """A ratio of means at lambda = 1: R_Y + R_u - R_f, with the linearization (delta-method) variance
    ``sum_i ((y_i - R_Y x_i) - (f_i - R_f x_i))^2 / (n xbar)^2 + sum_j (f~_j - R_u x~_j)^2 / (N xbar~)^2``."""
    rng = np.random.default_rng(12)
    n, N, B = 300, 3000, 2000
    measured, predicted = draw(rng, n, "ratio")
    _, unlabeled = draw(rng, N, "ratio")
    res = ppinfer.ppboot(ratio, measured, unlabeled, yhat=predicted, lam=1.0, n_boot=B, seed=6, **QUIET)
    x, y, f = measured[:, 0], measured[:, 1], predicted[:, 1]
    xu, fu = unlabeled[:, 0], unlabeled[:, 1]
    r_y, r_f, r_u = y.mean() / x.mean(), f.mean() / x.mean(), fu.mean() / xu.mean()
    assert res.params.iloc[0] == pytest.approx(r_y + r_u - r_f, rel=1e-12)
    labeled_part = ((y - r_y * x) - (f - r_f * x)) / (n * x.mean())
    unlabeled_part = (fu - r_u * xu) / (N * xu.mean())
    sd = np.sqrt(np.sum(labeled_part**2) + np.sum(unlabeled_part**2))
    assert abs(res.bse.iloc[0] / sd - 1) <= 3.5 / np.sqrt(2 * B)


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (dict(statistic="mean"), TypeError, "statistic must be a function"),
        (dict(predicted=None), TypeError, "non-empty mapping"),
        (dict(predicted={"z": "y_llm"}), ValueError, "'z', which is not a column of labeled"),
        (dict(predicted={"y": "nope"}), ValueError, "'nope' is not a column of labeled"),
        (dict(yhat="y_llm"), ValueError, "yhat= is for arrays"),
        (dict(design=ppinfer.Design(weights="x", weights_unlabeled="x")), ValueError, "weighted statistic"),
        (dict(design=ppinfer.Design(fpc="x", fpc_unlabeled="x")), ValueError, "fpc"),
        (dict(design="clusters"), TypeError, "design must be a ppinfer.Design"),
        (dict(statistic=lambda d: d[["x", "y"]].to_numpy()), ValueError, "1-D array"),
        (dict(statistic=lambda d: "text"), TypeError, "number or a 1-D array"),
        (dict(statistic=lambda d: d["y"].head(3 if "y_llm" in d and d["y"].equals(d["y_llm"]) else 2).to_numpy()),
         ValueError, "returned 3 value\\(s\\) on the labeled predictions but 2"),
        (dict(statistic=lambda d: np.inf), ValueError, "not finite on the data"),
        (dict(statistic=lambda d: d["y"].mean() if len(d) == 50 else d["missing"].mean()), ValueError,
         "failed on the unlabeled predictions: KeyError"),
    ],
)
def test_construction_errors(arguments, error, message):
    labeled, unlabeled = frames(12, n=50, N=100)
    options = dict(statistic=mean_y, predicted={"y": "y_llm"})
    options.update(arguments)
    statistic = options.pop("statistic")
    with pytest.raises(error, match=message):
        ppinfer.PPBoot(statistic, labeled, unlabeled, **options)


def test_array_errors():
    y = np.arange(10.0)
    with pytest.raises(TypeError, match="yhat .* is required"):
        ppinfer.PPBoot(np.mean, y, y)
    with pytest.raises(ValueError, match="yhat has shape \\(9,\\)"):
        ppinfer.PPBoot(np.mean, y, y, yhat=y[1:])
    with pytest.raises(ValueError, match="unlabeled has shape"):
        ppinfer.PPBoot(np.mean, y, np.ones((5, 2)), yhat=y)
    with pytest.raises(ValueError, match="labeled has 1 missing"):
        ppinfer.PPBoot(np.mean, np.r_[y[:-1], np.nan], y, yhat=y)
    with pytest.raises(ValueError, match="predicted= maps columns of data frames"):
        ppinfer.PPBoot(np.mean, y, y, yhat=y, predicted={"y": "f"})


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(n_boot=1), ValueError, "n_boot must be an integer >= 2"),
        (dict(n_jobs=0), ValueError, "n_jobs must be a positive integer or -1"),
        (dict(ci="bca"), ValueError, "ci='bca' is not valid"),
        (dict(lam="matrx"), ValueError, "Did you mean 'matrix'"),
        (dict(progress="yes"), TypeError, "progress must be True, False or 'auto'"),
        (dict(seed="x"), TypeError, "seed must be None, an integer"),
    ],
)
def test_fit_errors(options, error, message):
    labeled, unlabeled = frames(13, n=30, N=60)
    with pytest.raises(error, match=message):
        ppinfer.ppboot(mean_y, labeled, unlabeled, predicted={"y": "y_llm"}, **{"n_boot": 5, **options})


def test_statistic_undefined_on_a_resample_is_reported():
    labeled, unlabeled = frames(14, n=30, N=60)
    distinct = lambda d: 1.0 if d["id"].is_unique else np.nan  # noqa: E731
    with pytest.raises(ValueError, match="not finite on 20 of 20 bootstrap resamples"):
        ppinfer.ppboot(distinct, labeled, unlabeled, predicted={"y": "y_llm"}, n_boot=20, seed=0, **QUIET)


# --------------------------------------------------------------------------------------
# Monte Carlo coverage with biased predictions
# --------------------------------------------------------------------------------------
NOMINAL = 0.90
#: correlation of x and y: 0.6 / sqrt(0.36 + 1)
TRUE = {"correlation": 0.6 / np.sqrt(1.36), "ratio": 3.0}


def correlation(z):
    centred = z - z.mean(axis=0)
    return (centred[:, 0] @ centred[:, 1]) / np.sqrt((centred[:, 0] @ centred[:, 0]) * (centred[:, 1] @ centred[:, 1]))


def ratio(z):
    return z[:, 1].mean() / z[:, 0].mean()


def draw(rng, m: int, target: str):
    """Columns (measured on everyone, measured on the labeled only) and the second's biased prediction."""
    if target == "correlation":
        x = rng.normal(size=m)
        y = 0.6 * x + rng.normal(size=m)
        prediction = 0.5 + 1.3 * y + 0.4 * x + 0.5 * rng.normal(size=m)  # biased level, slope and correlation
    else:
        x = rng.gamma(2.0, 1.0, m)
        y = 3.0 * x + x * rng.normal(size=m)
        prediction = 0.8 * y + 1.0 + 0.8 * rng.normal(size=m)
    return np.column_stack([x, y]), np.column_stack([x, prediction])


def percentile_level(n_boot: int) -> float:
    """Expected coverage of a NOMINAL percentile interval from ``n_boot`` replicates of an exact
    bootstrap distribution: ``np.quantile``'s q-quantile of B draws lies at order-statistic position
    ``1 + q (B - 1)``, and the k-th of B draws has expected distribution-function value k / (B + 1)
    (0.885 for B = 120 at 0.90; the nominal level as B grows)."""
    tail = (1 - NOMINAL) / 2
    return (1 - 2 * tail) * (n_boot - 1) / (n_boot + 1)


def coverage_study(target: str, reps: int, n: int, N: int, n_boot: int, seed: int) -> dict:
    statistic = {"correlation": correlation, "ratio": ratio}[target]
    rng = np.random.default_rng(seed)
    covered, widths = {"ppi++": 0, "classical": 0}, {"ppi++": 0.0, "classical": 0.0}
    for r in range(reps):
        measured, predicted = draw(rng, n, target)
        _, unlabeled = draw(rng, N, target)
        model = ppinfer.PPBoot(statistic, measured, unlabeled, yhat=predicted)
        for label, lam in (("ppi++", None), ("classical", 0.0)):
            low, high = model.fit(n_boot=n_boot, lam=lam, seed=r, progress=False).conf_int(1 - NOMINAL).iloc[0]
            covered[label] += low <= TRUE[target] <= high
            widths[label] += (high - low) / reps
    return {label: (covered[label] / reps, widths[label]) for label in covered}


#: (target, reps, n, N, n_boot, seed): Monte Carlo size for ~10 s per case on one core
CASES = {"correlation": ("correlation", 200, 200, 600, 120, 21), "ratio": ("ratio", 200, 200, 600, 120, 22)}


@pytest.mark.montecarlo
@pytest.mark.parametrize("case", list(CASES))
def test_ppboot_covers_with_biased_predictions(case):
    target, reps, n, N, n_boot, seed = CASES[case]
    study = coverage_study(target, reps, n, N, n_boot, seed)
    level = percentile_level(n_boot)
    tolerance = 3.5 * np.sqrt(level * (1 - level) / reps)
    for label, (coverage, _) in study.items():
        assert abs(coverage - level) <= tolerance, (label, coverage)
    assert study["ppi++"][1] < study["classical"][1]


if __name__ == "__main__":
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    for case, (target, reps, n, N, n_boot, seed) in CASES.items():
        reps = int(reps * scale)
        study = coverage_study(target, reps, n, N, n_boot, seed)
        level = percentile_level(n_boot)
        tolerance = 3.5 * np.sqrt(level * (1 - level) / reps)
        print(f"{case}: n={n}, N={N}, B={n_boot}, {reps} reps, nominal {NOMINAL} (with B replicates "
              f"{level:.3f}) +- {tolerance:.3f}")
        for label, (coverage, width) in study.items():
            print(f"  {label:10s} coverage {coverage:.3f}  mean width {width:.4f}")
