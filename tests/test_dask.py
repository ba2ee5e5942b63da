"""The unlabeled sample on a Dask cluster: a LocalCluster of two worker processes.

Every estimator and design option gives the numbers of the in-memory sample
(to 1e-10) from Dask arrays, Dask DataFrame columns and, through the formula
interface, a Dask DataFrame; the work runs on the active ``distributed``
client; errors found on a worker name the partition and row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ppinfer

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from sources_cases import (  # noqa: E402
    DESIGNS, ESTIMATORS, N_LABELED, assert_same_results, build, data, fits, formula_frames, unlabeled_frame,
)

pytestmark = [pytest.mark.filterwarnings("ignore::ppinfer.PPIWarning"), pytest.mark.xdist_group("dask")]

DATA = data()
L, U = slice(0, N_LABELED), slice(N_LABELED, None)
CHUNK = 700  # five partitions of the 3,000 unlabeled rows, the last one shorter


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as active:
        yield active
    cluster.close()


def as_dask(_, values):
    return da.from_array(values, chunks=(CHUNK,) + values.shape[1:])


_REFERENCE: dict = {}


def reference(estimator: str, design: str):
    key = (estimator, design)
    if key not in _REFERENCE:
        model = build(estimator, design, lambda _, values: values, DATA)
        _REFERENCE[key] = None if model is None else fits(model)
    return _REFERENCE[key]


#: the regressions' cases run in test_dask_regressions.py (a file per xdist worker)
MEAN_ESTIMATORS = tuple(e for e in ESTIMATORS if not e.startswith(("OLS", "Logit", "Poisson")))


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("estimator", MEAN_ESTIMATORS)
def test_dask_arrays_equal_in_memory(client, estimator, design):
    check_dask_arrays(client, estimator, design)


def check_dask_arrays(client, estimator, design):
    expected = reference(estimator, design)
    if expected is None:
        pytest.skip("not an estimator of this design")
    with distributed.get_task_stream(client) as stream:
        model = build(estimator, design, as_dask, DATA)
        results = fits(model)
    assert len(stream.data) > 0  # the scan (a mean's only pass) and the fits' passes ran on the cluster
    assert_same_results(results, expected)


@pytest.fixture(scope="module")
def frame():
    return dd.from_pandas(unlabeled_frame(DATA), npartitions=4)


@pytest.mark.parametrize("estimator", ["OLS", "Logit", "Poisson", "Mean draws"])
def test_dataframe_columns_equal_in_memory(client, frame, estimator):
    """Columns of one Dask DataFrame (and design columns as its Series)."""
    columns = unlabeled_frame(DATA)

    def convert(_, values):
        if values.ndim == 1:
            return frame[next(c for c in columns if np.array_equal(columns[c].to_numpy(), values))]
        return frame[[next(c for c in columns if np.array_equal(columns[c].to_numpy(), values[:, k]))
                      for k in range(values.shape[1])]]

    for design in ("srs", "nested"):
        assert_same_results(fits(build(estimator, design, convert, DATA)), reference(estimator, design))


@pytest.mark.parametrize("options", [{}, {"clusters": "school", "strata": "g", "nest": True}, {"weights": "w"}])
def test_formula_on_dask_dataframe(client, options):
    """The labeled design's specification (levels, a stateful transformation, the outcome's
    transformation) applied to each partition on the workers."""
    labeled, unlabeled = formula_frames(3300)
    partitioned = dd.from_pandas(unlabeled, npartitions=3)
    for function, formula, yhat in ((ppinfer.ols, "np.log(y) ~ center(x) + C(g)", "pred"),
                                    (ppinfer.logit, "hit ~ x + C(g)", "prob")):
        expected = function(formula, labeled, unlabeled, yhat=yhat, **options)
        actual = function(formula, labeled, partitioned, yhat=yhat, **options)
        assert_same_results({m: actual.fit(method=m) for m in ("ppi++", "naive")},
                            {m: expected.fit(method=m) for m in ("ppi++", "naive")})


def test_worker_errors_name_the_partition(client):
    y, X, f = DATA["y"][L], DATA["X"][L], DATA["f"][L]
    X_unlabeled = DATA["X"][U].copy()
    X_unlabeled[2000, 1] = np.nan
    with pytest.raises(ValueError, match=r"^X_unlabeled has 1 row\(s\) with NaN or infinite value\(s\) in rows 0 to "
                                         r"699 of partition 2 \(first at row 600 of partition 2 \(position 2,000 of "
                                         r"the sample\)\)"):
        ppinfer.OLS(y, X, f, as_dask(None, X_unlabeled), as_dask(None, DATA["f"][U]))
    unlabeled = unlabeled_frame(DATA)
    unlabeled.loc[2000, "f_binary"] = 2.0
    partitioned = dd.from_pandas(unlabeled, npartitions=3).clear_divisions()
    with pytest.raises(ValueError, match=r"^yhat_unlabeled must be probabilities in \[0, 1\]; found 1 value\(s\) "
                                         r"outside \(first: 2.0 at row \d+ of partition 2\)"):
        ppinfer.Logit(DATA["y_binary"][L], X, DATA["f_binary"][L], partitioned[["x0", "x1", "x2"]],
                      partitioned["f_binary"])


def test_partitions_must_line_up(client):
    y, X, f = DATA["y"][L], DATA["X"][L], DATA["f"][L]
    frame = dd.from_pandas(unlabeled_frame(DATA), npartitions=3).clear_divisions()
    other = dd.from_pandas(unlabeled_frame(DATA), npartitions=4).clear_divisions()
    with pytest.raises(ValueError, match=r"different numbers of partitions"):
        ppinfer.OLS(y, X, f, frame[["x0", "x1", "x2"]], other["f"])
    with pytest.raises(TypeError, match=r"give it as a Dask collection"):
        ppinfer.OLS(y, X, f, frame[["x0", "x1", "x2"]], DATA["f"][U])


def test_threaded_scheduler_without_client(monkeypatch):
    """Without a client, Dask's default (threaded) scheduler runs the same passes."""
    import dask

    monkeypatch.setattr(ppinfer.core.sources, "dask_client", lambda: None)
    with dask.config.set(scheduler="threads"):
        assert_same_results(fits(build("Logit", "clusters", as_dask, DATA)), reference("Logit", "clusters"))


def test_quantile_counting_passes_run_on_the_cluster(client):
    """The quantile's bracketing search (tests/test_quantile_partitioned.py) on the workers."""
    f, region, school = DATA["f"], DATA["region"], DATA["school"] + 100 * DATA["region"]
    options = dict(strata=region[L], clusters=school[L], weights=DATA["weights"][L])
    reference = ppinfer.Quantile(DATA["y"][L], f[L], f[U], q=[0.25, 0.5], **options, strata_unlabeled=region[U],
                                 clusters_unlabeled=school[U] + 10_000, weights_unlabeled=DATA["weights"][U])
    model = ppinfer.Quantile(DATA["y"][L], f[L], as_dask(None, f[U]), q=[0.25, 0.5], **options,
                             strata_unlabeled=as_dask(None, region[U]),
                             clusters_unlabeled=as_dask(None, school[U] + 10_000),
                             weights_unlabeled=as_dask(None, DATA["weights"][U]))
    with distributed.get_task_stream(client) as stream:
        result = model.fit()
    assert len(stream.data) > 0
    expected = reference.fit()
    np.testing.assert_allclose(result.params, expected.params, rtol=1e-10)
    np.testing.assert_allclose(result.conf_int(), expected.conf_int(), rtol=1e-10)
    np.testing.assert_allclose(result.lam, expected.lam, rtol=1e-10)
    # naive pooling and a two-phase design, whose counts carry the labeled rows' share, on the workers too
    naive, expected_naive = model.fit(method="naive"), reference.fit(method="naive")
    np.testing.assert_allclose(naive.params, expected_naive.params, rtol=1e-10)
    np.testing.assert_allclose(naive.conf_int(), expected_naive.conf_int(), rtol=1e-10)
    two_phase = dict(label_prob=DATA["label_prob"][L], clusters=school[L])
    streamed = ppinfer.Quantile(DATA["y"][L], f[L], as_dask(None, f[U]), q=0.5, **two_phase,
                                clusters_unlabeled=as_dask(None, school[U])).fit()
    in_memory = ppinfer.Quantile(DATA["y"][L], f[L], f[U], q=0.5, **two_phase, clusters_unlabeled=school[U]).fit()
    np.testing.assert_allclose(streamed.conf_int(), in_memory.conf_int(), rtol=1e-10)
    np.testing.assert_allclose(streamed.lam, in_memory.lam, rtol=1e-10)
