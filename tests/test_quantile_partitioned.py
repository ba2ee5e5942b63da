"""Quantiles with the unlabeled sample read partition by partition (Dask arrays, Parquet files).

The bracketing search of :mod:`ppinfer.models.partitioned_cdf` must give the
numbers of the in-memory inversion, which visits every breakpoint: point
estimates, interval ends (two-sided and one-sided, several levels), p-values,
lambdas and degrees of freedom, for every design (independent samples, two
phases, clusters with units in both samples), with and without ties, with
synthetic draws, and when the search has to split gaps and count in several
passes (limits made small here). The in-memory
numbers themselves are checked against order statistics, R's survey formulas
and Monte Carlo coverage in test_quantile_*.py; equality carries those checks over.
"""

from __future__ import annotations

import numpy as np
import pytest

import ppinfer
import ppinfer.models.partitioned_cdf as partitioned

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from sources_cases import DESIGNS, N_LABELED, data, design_arrays

pytestmark = pytest.mark.filterwarnings("ignore::ppinfer.PPIWarning")

LEVELS = [0.1, 0.5, 0.9]
CHUNK = 700
DATA = data()
L, U = slice(0, N_LABELED), slice(N_LABELED, None)


def as_dask(values):
    return da.from_array(values, chunks=(CHUNK,) + values.shape[1:])


def quantile(design: str, convert, *, outcome="y", prediction="f", rounding=None, contiguous=False):
    """``contiguous``: the unlabeled rows sorted by PSU, so that most PSUs lie in one partition."""
    labeled, unlabeled = design_arrays(DATA, design)
    if "clusters_unlabeled" in unlabeled:
        # PSUs of each sample's own (clusters with units in both samples join them: see below)
        unlabeled["clusters_unlabeled"] = unlabeled["clusters_unlabeled"] + 1000.0
    y, f = DATA[outcome], DATA[prediction]
    if rounding is not None:
        y, f = np.round(y, rounding), np.round(f, rounding)
    f_unlabeled = f[U]
    if contiguous:
        order = np.argsort(unlabeled["clusters_unlabeled"], kind="stable")
        unlabeled = {key: value[order] for key, value in unlabeled.items()}
        f_unlabeled = f_unlabeled[order]
    options = dict(labeled, **{key: convert(value) for key, value in unlabeled.items()})
    return ppinfer.Quantile(y[L], f[L], convert(f_unlabeled), q=LEVELS, **options)


def same(actual, expected, what: str) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=1e-10, atol=1e-10, err_msg=what)


def check_fits(model, reference, fits) -> None:
    for options in fits:
        expected, result = reference.fit(**options), model.fit(**options)
        label = str(options)
        same(result.params, expected.params, f"{label} params")
        same(result.bse, expected.bse, f"{label} bse")
        same(result.conf_int(), expected.conf_int(), f"{label} conf_int")
        same(result.conf_int(alpha=0.2), expected.conf_int(alpha=0.2), f"{label} conf_int(0.2)")
        for alternative in ("larger", "smaller"):
            same(result.conf_int(alternative=alternative), expected.conf_int(alternative=alternative),
                 f"{label} {alternative}")
        same(result.pvalues, expected.pvalues, f"{label} pvalues")
        if expected.df is not None:
            same(result.df, expected.df, f"{label} df")
        if expected.lam is not None and not isinstance(expected.lam, str):
            same(np.asarray(result.lam, dtype=float), np.asarray(expected.lam, dtype=float), f"{label} lam")


FITS = [{"method": "ppi++"}, {"method": "ppi"}, {"method": "classical"}, {"method": "naive"},
        {"method": "ppi++", "lam": "overall"}, {"method": "ppi++", "cov_type": "HC0", "use_t": False}]
CLUSTERED_FITS = FITS[:-1] + [{"method": "ppi++", "cov_type": "CR0", "use_t": False}]


@pytest.mark.parametrize("design", DESIGNS)
def test_dask_arrays_equal_in_memory(design):
    # a fresh model: the labeled sample's fits need no pass, PPI++ a few counting passes
    assert 1 <= quantile(design, as_dask).fit().unlabeled_passes <= 8
    fits = CLUSTERED_FITS if "clusters" in DESIGNS[design] else FITS
    check_fits(quantile(design, as_dask), quantile(design, lambda v: v), fits)


@pytest.mark.parametrize("design", ["srs", "clusters", "nested"])
def test_ties_fixed_lambdas_and_covariance_types(design):
    """An outcome recorded in steps of 0.5 (atoms at every breakpoint), lambda fixed
    beyond [0, 1], and the other covariance estimators."""
    clustered = "clusters" in DESIGNS[design]
    fits = [{"method": "ppi++"}, {"method": "ppi++", "lam": 1.4}, {"method": "ppi++", "lam": -0.3},
            {"method": "ppi++", "cov_type": "CR1" if clustered else "HC1"},
            {"method": "ppi++", "cov_type": "CR0" if clustered else "HC3"}]
    model = quantile(design, as_dask, rounding=0)
    check_fits(model, quantile(design, lambda v: v, rounding=0), fits)


def test_synthetic_draws():
    draws = DATA["draws"]
    reference = ppinfer.Quantile(DATA["y"][L], draws[L], draws[U], q=LEVELS)
    model = ppinfer.Quantile(DATA["y"][L], draws[L], as_dask(draws[U]), q=LEVELS)
    check_fits(model, reference, [{"method": "ppi++"}, {"method": "ppi"}, {"method": "naive"}])


@pytest.mark.parametrize("design, contiguous", [("srs", False), ("strata", False), ("clusters", False),
                                                ("nested", False), ("clusters", True)])
def test_search_splits_gaps_and_counts_in_several_passes(monkeypatch, design, contiguous):
    """Limits small enough that the search splits gaps before gathering their rows, and
    that the PSU x bin table of the PSUs spanning partitions (all of them, or a few when the
    rows are sorted by PSU) takes several passes per count."""
    monkeypatch.setattr(partitioned, "COLLECT_CELLS", 40)
    monkeypatch.setattr(partitioned, "REFINE_POINTS", 6)
    monkeypatch.setattr(partitioned, "DENSE_CELLS", 4 * 60 if contiguous else 60 * 40)
    assert quantile(design, as_dask, contiguous=contiguous).fit().unlabeled_passes >= 3
    check_fits(quantile(design, as_dask, contiguous=contiguous), quantile(design, lambda v: v, contiguous=contiguous),
               [{"method": "ppi++"}, {"method": "ppi++", "lam": 0.7}])


def spanning_psus(model) -> list[float]:
    """The share of the PSUs with rows in several partitions, per partitioned CDF the model built."""
    return [cdf._clusters.nspan / cdf.npsu for cdf in model._cache.values()
            if isinstance(cdf, partitioned.PartitionedCDF) and cdf._clusters is not None]


@pytest.mark.parametrize("design, rounding", [("clusters", None), ("nested", None), ("two-phase", 0)])
def test_psus_stored_together(design, rounding):
    """The unlabeled rows sorted by PSU: most PSUs lie in one partition (their sums from
    pair weights), a few span two (the PSU x bin table); with ties inside PSUs."""
    model = quantile(design, as_dask, rounding=rounding, contiguous=True)
    check_fits(model, quantile(design, lambda v: v, rounding=rounding, contiguous=True),
               [{"method": "ppi++"}, {"method": "ppi++", "cov_type": "CR1"}])
    assert spanning_psus(model) and all(0 < share <= 0.25 for share in spanning_psus(model))


def test_many_psus_in_few_passes(monkeypatch):
    """2,000 PSUs of 10 consecutive rows (the first 50 with labeled units too), each within a
    partition: no PSU x bin table, so the passes do not grow with the PSUs (with the table
    limited as below, counting every PSU's table took 33 passes)."""
    monkeypatch.setattr(partitioned, "DENSE_CELLS", 2000 * 25)
    rng = np.random.default_rng(7)
    n, N = 200, 20_000
    f = rng.normal(size=n + N)
    y = f + rng.normal(scale=0.5, size=n + N)
    f = np.round(f, 2)  # ties inside PSUs and with labeled values
    psu = np.r_[np.arange(n) // 4, np.arange(N) // 10].astype(float)
    options = {"clusters": psu[:n], "q": [0.25, 0.5]}

    def model(convert):
        return ppinfer.Quantile(y[:n], f[:n], convert(f[n:]), clusters_unlabeled=convert(psu[n:]), **options)

    chunked = model(lambda v: da.from_array(v, chunks=1000))
    result = chunked.fit()
    assert result.unlabeled_passes <= 5 and spanning_psus(chunked) == [0]
    check_fits(model(lambda v: da.from_array(v, chunks=1000)), model(lambda v: v), [{"method": "ppi++"}])


def test_tests_components_and_plot_read_the_partitions():
    model, reference = quantile("strata", as_dask), quantile("strata", lambda v: v)
    result, expected = model.fit(), reference.fit()
    null = expected.params.to_numpy() + [0.05, -0.02, 0.0]
    hypothesis = dict(zip(expected.params.index, null))
    same(result.t_test(hypothesis).pvalue, expected.t_test(hypothesis).pvalue, "t_test")
    got, want = model.components("HC0"), reference.components("HC0")
    for name in ("var_y", "cov_yf", "var_f", "var_fu"):
        same(np.diag(getattr(got, name)), np.diag(getattr(want, name)), name)
    figure = result.plot()
    assert figure.axes


def test_parquet_files_equal_in_memory(tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    f, region = DATA["f"], DATA["region"]
    frame = pd.DataFrame({"pred": f[U], "region": region[U]})
    for k, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(tmp_path / f"part{k}.parquet")
    table = ppinfer.read_parquet(tmp_path)
    model = ppinfer.Quantile(DATA["y"][L], f[L], table["pred"], q=LEVELS, strata=region[L],
                             strata_unlabeled=table["region"])
    reference = ppinfer.Quantile(DATA["y"][L], f[L], f[U], q=LEVELS, strata=region[L], strata_unlabeled=region[U])
    check_fits(model, reference, [{"method": "ppi++"}, {"method": "ppi"}])


def test_memory_map_of_float32_values(tmp_path):
    f = DATA["f"]
    stored = np.lib.format.open_memmap(tmp_path / "pred.npy", mode="w+", dtype=np.float32, shape=(len(f) - N_LABELED,))
    stored[:] = f[U]
    stored.flush()
    values = np.load(tmp_path / "pred.npy", mmap_mode="r")
    model = ppinfer.Quantile(DATA["y"][L], f[L], values, q=LEVELS)
    reference = ppinfer.Quantile(DATA["y"][L], f[L], f[U], q=LEVELS)
    check_fits(model, reference, [{"method": "ppi++"}])


def test_two_phase_leverage_and_fixed_lambda():
    """Two phases with strata and an fpc (the second-phase term): the leverage of the labeled rows
    of the all-units fit u (HC2) and a lambda beyond [0, 1]."""
    fits = [{"method": "ppi++", "cov_type": "HC2"}, {"method": "ppi++", "lam": 1.3}]
    check_fits(quantile("two-phase fpc", as_dask), quantile("two-phase fpc", lambda v: v), fits)


def joined(convert, *, two_phase: bool, strata: bool, label_strata: bool = False, contiguous: bool = False):
    """A model whose clusters (schools) have units in both samples (``contiguous``: the
    unlabeled rows sorted by school)."""
    y, f, school, region, weights = (DATA[k] for k in ("y", "f", "school", "region", "weights"))
    labeled, unlabeled = {"clusters": school[L]}, {"clusters_unlabeled": school[U], "f": f[U]}
    if two_phase:
        labeled["label_prob"] = DATA["label_prob"][L]
    if label_strata:
        labeled["label_strata"] = school[L] % 4
    if strata:
        labeled.update(strata=region[L], weights=weights[L])
        unlabeled.update(strata_unlabeled=region[U], weights_unlabeled=weights[U])
    order = np.argsort(school[U], kind="stable") if contiguous else slice(None)
    unlabeled = {key: convert(value[order]) for key, value in unlabeled.items()}
    return ppinfer.Quantile(y[L], f[L], unlabeled.pop("f"), q=LEVELS, **labeled, **unlabeled)


@pytest.mark.parametrize("two_phase, strata, fits", [
    (False, False, [{"method": "ppi++"}, {"method": "ppi++", "cov_type": "CR1"}, {"method": "ppi"},
                    {"method": "naive"}]),
    (True, True, [{"method": "ppi++"}, {"method": "ppi++", "lam": "overall"}, {"method": "ppi++", "lam": 0.6}]),
])
def test_clusters_in_both_samples_equal_in_memory(two_phase, strata, fits):
    """PSUs with units in both samples (independent samples; two phases with strata and
    weights): the cross sums of the labeled and unlabeled units of each PSU (CR2 by default)."""
    check_fits(joined(as_dask, two_phase=two_phase, strata=strata),
               joined(lambda v: v, two_phase=two_phase, strata=strata), fits)


def test_joined_samples_in_several_rounds(monkeypatch):
    """Two phases with labeling strata (their second-phase term), strata, weights and PSUs with
    units in both samples, with a search that splits gaps, gathers their rows in several rounds
    and counts in several passes."""
    monkeypatch.setattr(partitioned, "COLLECT_CELLS", 40)
    monkeypatch.setattr(partitioned, "REFINE_POINTS", 6)
    monkeypatch.setattr(partitioned, "DENSE_CELLS", 60 * 200)
    options = {"two_phase": True, "strata": True, "label_strata": True}
    assert joined(as_dask, **options).fit().unlabeled_passes >= 3
    check_fits(joined(as_dask, **options), joined(lambda v: v, **options),
               [{"method": "ppi++"}, {"method": "ppi++", "lam": 0.7}, {"method": "naive"}])


def test_shared_psus_stored_together(monkeypatch):
    """PSUs with units in both samples, the unlabeled rows sorted by PSU (pair weights for the
    cross sums; a few PSUs spanning two partitions), in several rounds."""
    monkeypatch.setattr(partitioned, "COLLECT_CELLS", 2000)
    monkeypatch.setattr(partitioned, "REFINE_POINTS", 6)
    options = {"two_phase": True, "strata": True}
    model = joined(as_dask, **options, contiguous=True)
    check_fits(model, joined(lambda v: v, **options, contiguous=True), [{"method": "ppi++"}])
    assert spanning_psus(model) and all(0 < share <= 0.25 for share in spanning_psus(model))


def test_bootstrap_raises():
    model = quantile("srs", as_dask)
    with pytest.raises(ValueError, match="ci='analytic'"):
        model.fit(ci="bootstrap", n_boot=10)


def test_compare_equals_in_memory():
    """compare()'s default methods, naive pooling included, give the in-memory comparison."""
    table, expected = quantile("srs", as_dask).compare().table, quantile("srs", lambda v: v).compare().table
    assert list(table["method"].unique()) == ["classical", "naive", "ppi", "ppi++"]
    assert list(table["method"]) == list(expected["method"])
    numbers = expected.select_dtypes("number").columns
    np.testing.assert_allclose(table[numbers].to_numpy(float), expected[numbers].to_numpy(float), rtol=1e-10)


def test_naive_pooling_in_several_rounds(monkeypatch):
    """Naive pooling reads the unlabeled values near its estimate and interval ends, as PPI
    does: a forced search that splits gaps and gathers rows in several rounds gives the
    in-memory numbers."""
    monkeypatch.setattr(partitioned, "COLLECT_CELLS", 40)
    monkeypatch.setattr(partitioned, "REFINE_POINTS", 6)
    model = quantile("strata", as_dask)
    assert model.fit(method="naive").unlabeled_passes >= 3
    check_fits(model, quantile("strata", lambda v: v), [{"method": "naive"}, {"method": "naive", "cov_type": "HC0"}])


def test_missing_predictions_dropped_or_named():
    f = DATA["f"].copy()
    f[N_LABELED + np.array([5, 701, 2400])] = np.nan
    weights = DATA["weights"]
    options = {"weights": weights[L], "missing": "drop"}
    reference = ppinfer.Quantile(DATA["y"][L], f[L], f[U], q=LEVELS, weights_unlabeled=weights[U], **options)
    model = ppinfer.Quantile(DATA["y"][L], f[L], as_dask(f[U]), q=LEVELS, weights_unlabeled=as_dask(weights[U]),
                             **options)
    assert model.nobs_unlabeled == reference.nobs_unlabeled == len(f) - N_LABELED - 3
    check_fits(model, reference, [{"method": "ppi++"}])
    with pytest.raises(ValueError, match=r"yhat_unlabeled.*NaN.*partition \d.*missing='drop'"):
        ppinfer.Quantile(DATA["y"][L], f[L], as_dask(f[U]), q=0.5)
