"""Unlabeled predictions read partition by partition, unlabeled design columns in memory.

The predictions (and covariates) of the unlabeled sample come from Parquet
files, Dask arrays or a float32 memory map, while its design columns (strata,
clusters, weights, fpc) are NumPy arrays or pandas Series: the arrays are read
alongside the source's partitions (the labels tallied by the scan, like labels
read from the source), and every number equals the all-in-memory model's to
1e-10. Arrays of the wrong length are named in the error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ppinfer
from ppinfer.core import sources
from ppinfer.core.validation import ChunkedSample

from sources_cases import N_LABELED, assert_same_results, parquet_columns, data, fits, unlabeled_frame

pytest.importorskip("pyarrow")
da = pytest.importorskip("dask.array")

pytestmark = pytest.mark.filterwarnings("ignore::ppinfer.PPIWarning")

DATA = data()
DATA["school3"] = DATA["school"] // 3
DATA["fpc"] = np.full(len(DATA["y"]), 5000.0)
DATA["fpc_phase"] = np.full(len(DATA["y"]), 30000.0)
L, U = slice(0, N_LABELED), slice(N_LABELED, None)
CHUNK = 700  # partitions of the 3,000 unlabeled rows, the last one shorter

#: design keyword -> data key (the unlabeled keyword gets the unlabeled rows, in memory)
DESIGNS = {
    "strata": {"strata": "region"},
    "clusters": {"clusters": "school"},
    "weights": {"weights": "weights"},
    "strata clusters weights": {"strata": "region", "clusters": "school", "weights": "weights"},
    "nested": {"strata": "region", "clusters": "school3", "weights": "weights", "nest": True},
    "fpc": {"strata": "region", "fpc": "fpc", "weights": "weights"},
    "two-phase label strata": {"label_prob": "label_prob", "strata": "region", "fpc": "fpc_phase",
                               "label_strata": "region"},
}
#: options of the labeled sample only
LABELED_ONLY = ("label_prob", "label_strata", "nest")
ESTIMATORS = ("Mean", "OLS")


def design_options(design: str, convert=None) -> dict:
    """The design keywords, the unlabeled ones as NumPy arrays (or ``convert(key, values)``)."""
    options = {}
    for key, column in DESIGNS[design].items():
        if key == "nest":
            options[key] = column
            continue
        options[key] = DATA[column][L]
        if key not in LABELED_ONLY:
            values = DATA[column][U]
            options[f"{key}_unlabeled"] = values if convert is None else convert(f"{key}_unlabeled", values)
    return options


def build(estimator: str, design: str, convert, design_convert=None, **keywords):
    """The model with the unlabeled predictions (and covariates) given as ``convert(key, values)``."""
    options = {**design_options(design, design_convert), **keywords}
    if estimator == "Mean":
        return ppinfer.Mean(DATA["y"][L], DATA["f"][L], convert("yhat_unlabeled", DATA["f"][U]), **options)
    return ppinfer.OLS(DATA["y"][L], DATA["X"][L], DATA["f"][L], convert("X_unlabeled", DATA["X"][U]),
                       convert("yhat_unlabeled", DATA["f"][U]), **options)


def in_memory(_, values):
    return values


def as_dask(_, values):
    return da.from_array(values, chunks=(CHUNK,) + values.shape[1:])


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    """The unlabeled columns in two Parquet files."""
    return parquet_columns(tmp_path_factory.mktemp("unlabeled"), DATA)


@pytest.fixture(scope="module")
def memmap(tmp_path_factory):
    """Float32 memory maps of the unlabeled arrays (read in partitions)."""
    folder = tmp_path_factory.mktemp("mapped")
    count = iter(range(10**6))

    def mapped(key, values):
        path = folder / f"{key}-{next(count)}.npy"
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=values.shape)
        array[:] = values
        array.flush()
        return np.load(path, mmap_mode="r")

    return mapped


@pytest.fixture
def small_batches(monkeypatch):
    """Partitions of 700 rows (Parquet batches, memory map conversions)."""
    monkeypatch.setattr(sources, "PARTITION_ROWS", CHUNK)


@pytest.fixture(params=["parquet", "dask", "memmap"])
def source(request, small_batches):
    if request.param == "dask":
        return as_dask
    return request.getfixturevalue(request.param)


_REFERENCE: dict = {}


def reference(estimator: str, design: str) -> dict:
    key = (estimator, design)
    if key not in _REFERENCE:
        _REFERENCE[key] = fits(build(estimator, design, in_memory))
    return _REFERENCE[key]


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_numpy_design_columns_equal_in_memory(source, estimator, design):
    model = build(estimator, design, source)
    assert isinstance(model.unlabeled, ChunkedSample)
    assert model.unlabeled.passes == 1  # the design's labels were tallied by the scan
    assert_same_results(fits(model), reference(estimator, design))
    memory = build(estimator, design, in_memory).design
    assert model.design.stratum_names == memory.stratum_names
    assert (model.design.npsu, model.design.nstrata) == (memory.npsu, memory.nstrata)


def test_the_reported_case(tmp_path):
    """Mean with strata: Parquet predictions, NumPy strata (a KeyError before the fix)."""
    rng = np.random.default_rng(0)
    n, N = 200, 3000
    f = rng.normal(size=n + N)
    y = f + rng.normal(size=n + N)
    r = rng.integers(0, 3, n + N).astype(float)
    pd.DataFrame({"pred": f[n:]}).to_parquet(tmp_path / "a.parquet")
    table = ppinfer.read_parquet(tmp_path)
    chunked = ppinfer.Mean(y[:n], f[:n], table["pred"], strata=r[:n], strata_unlabeled=r[n:])
    memory = ppinfer.Mean(y[:n], f[:n], f[n:], strata=r[:n], strata_unlabeled=r[n:])
    assert isinstance(chunked.unlabeled, ChunkedSample)
    assert_same_results({"ppi++": chunked.fit()}, {"ppi++": memory.fit()})


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_string_labels_as_pandas_series(source, estimator):
    """Labels of any type, as pandas Series (with their own index), read alongside the source."""
    names = np.array(["north", "south", "east"], dtype=object)
    index = np.arange(len(DATA["y"])) + 1000
    school = pd.Series([f"s{int(k)}" for k in DATA["school"]], index=index)
    region = pd.Series(names[DATA["region"].astype(int)], index=index, dtype="category")
    options = {"strata": region[:N_LABELED], "clusters": school[:N_LABELED], "weights": DATA["weights"][L]}

    def model(convert):
        unlabeled = {"strata_unlabeled": region[N_LABELED:], "clusters_unlabeled": school[N_LABELED:],
                         "weights_unlabeled": DATA["weights"][U]}
        if estimator == "Mean":
            return ppinfer.Mean(DATA["y"][L], DATA["f"][L], convert("yhat_unlabeled", DATA["f"][U]),
                                **options, **unlabeled)
        return ppinfer.OLS(DATA["y"][L], DATA["X"][L], DATA["f"][L], convert("X_unlabeled", DATA["X"][U]),
                           convert("yhat_unlabeled", DATA["f"][U]), **options, **unlabeled)

    chunked, memory = model(source), model(in_memory)
    assert isinstance(chunked.unlabeled, ChunkedSample)
    assert chunked.design.stratum_names == memory.design.stratum_names
    assert_same_results(fits(chunked), fits(memory))


def test_labels_as_lists(parquet, small_batches):
    """Labels given as Python lists are read alongside the Parquet batches too."""
    region = [f"r{int(k)}" for k in DATA["region"]]
    options = {"strata": region[:N_LABELED], "clusters": list(DATA["school"][L])}
    chunked = ppinfer.Mean(DATA["y"][L], DATA["f"][L], parquet("yhat_unlabeled", DATA["f"][U]), **options,
                           strata_unlabeled=region[N_LABELED:], clusters_unlabeled=list(DATA["school"][U]))
    memory = ppinfer.Mean(DATA["y"][L], DATA["f"][L], DATA["f"][U], **options,
                          strata_unlabeled=region[N_LABELED:], clusters_unlabeled=list(DATA["school"][U]))
    assert chunked.design.stratum_names == memory.design.stratum_names
    assert sorted(chunked.design.stratum_names) == ["r0", "r1", "r2"]
    assert_same_results(fits(chunked), fits(memory))


def test_unlabeled_only_labels(parquet, small_batches):
    """Strata and clusters with labels only the unlabeled sample has (more strata than labeled units see)."""
    region = DATA["region"].copy()
    region[U][:40] = 7.0  # a stratum of the unlabeled sample only: raised on, in memory and from Parquet
    with pytest.raises(ValueError, match=r"strata \['7.0'\] need at least 2 labeled"):
        ppinfer.Mean(DATA["y"][L], DATA["f"][L], DATA["f"][U], strata=region[L], strata_unlabeled=region[U])
    with pytest.raises(ValueError, match=r"strata \['7.0'\] need at least 2 labeled"):
        ppinfer.Mean(DATA["y"][L], DATA["f"][L], parquet("yhat_unlabeled", DATA["f"][U]), strata=region[L],
                     strata_unlabeled=region[U])
    school = DATA["school"].copy()
    school[U][:40] = 1000.0 + np.arange(40)  # PSUs of the unlabeled sample only
    options = {"clusters": school[L], "clusters_unlabeled": school[U]}
    chunked = ppinfer.Mean(DATA["y"][L], DATA["f"][L], parquet("yhat_unlabeled", DATA["f"][U]), **options)
    memory = ppinfer.Mean(DATA["y"][L], DATA["f"][L], DATA["f"][U], **options)
    assert chunked.design.npsu == memory.design.npsu
    assert_same_results(fits(chunked), fits(memory))


def test_mixed_design_columns(parquet, small_batches):
    """Strata read from the Parquet files, clusters and weights in memory."""
    def some(key, values):
        return parquet(key, values) if key == "strata_unlabeled" else values

    model = build("OLS", "strata clusters weights", parquet, some)
    assert isinstance(model.unlabeled, ChunkedSample)
    assert_same_results(fits(model), reference("OLS", "strata clusters weights"))


def test_missing_labels_in_memory(parquet, small_batches):
    """A missing label of an in-memory design column: raised on by name, or its row dropped."""
    region = DATA["region"].copy()
    region[N_LABELED + 1500] = np.nan

    def model(convert, missing):
        return ppinfer.OLS(DATA["y"][L], DATA["X"][L], DATA["f"][L], convert("X_unlabeled", DATA["X"][U]),
                           convert("yhat_unlabeled", DATA["f"][U]), strata=region[L], strata_unlabeled=region[U],
                           clusters=DATA["school"][L], clusters_unlabeled=DATA["school"][U], missing=missing)

    with pytest.raises(ValueError, match=r"^strata_unlabeled has 1 row\(s\) with missing label"):
        model(parquet, "raise")
    chunked, memory = model(parquet, "drop"), model(in_memory, "drop")
    assert chunked.unlabeled.n_dropped == memory.unlabeled.n_dropped == 1
    assert_same_results(fits(chunked), fits(memory))


@pytest.mark.parametrize("key", ["strata_unlabeled", "clusters_unlabeled", "weights_unlabeled", "fpc_unlabeled"])
def test_wrong_length_names_the_argument(source, key):
    options = design_options("fpc")
    options["clusters"], options["clusters_unlabeled"] = DATA["school"][L], DATA["school"][U]
    options[key] = options[key][:-5]
    pattern = rf"^{key} has {len(DATA['y']) - N_LABELED - 5} rows but yhat_unlabeled has {len(DATA['y']) - N_LABELED}"
    with pytest.raises(ValueError, match=pattern):
        ppinfer.Mean(DATA["y"][L], DATA["f"][L], source("yhat_unlabeled", DATA["f"][U]), **options)


def test_groups_keyword(parquet, small_batches):
    """The older names groups / groups_unlabeled: the error names the keyword given."""
    chunked = ppinfer.Mean(DATA["y"][L], DATA["f"][L], parquet("yhat_unlabeled", DATA["f"][U]),
                           groups=DATA["school"][L], groups_unlabeled=DATA["school"][U])
    memory = ppinfer.Mean(DATA["y"][L], DATA["f"][L], DATA["f"][U], groups=DATA["school"][L],
                          groups_unlabeled=DATA["school"][U])
    assert_same_results(fits(chunked), fits(memory))
    with pytest.raises(ValueError, match=r"^groups_unlabeled has 2999 rows"):
        ppinfer.Mean(DATA["y"][L], DATA["f"][L], parquet("yhat_unlabeled", DATA["f"][U]),
                     groups=DATA["school"][L], groups_unlabeled=DATA["school"][U][1:])


def test_numpy_labels_with_dask_frame_columns():
    """Dask DataFrame partitions have unknown lengths: an in-memory design column is named."""
    dd = pytest.importorskip("dask.dataframe")
    frame = dd.from_pandas(unlabeled_frame(DATA), npartitions=4)
    with pytest.raises(TypeError, match=r"^strata_unlabeled is a NumPy array but the other unlabeled arrays"):
        ppinfer.Mean(DATA["y"][L], DATA["f"][L], frame["f"], strata=DATA["region"][L],
                     strata_unlabeled=DATA["region"][U])
    model = ppinfer.Mean(DATA["y"][L], DATA["f"][L], frame["f"], strata=DATA["region"][L],
                         strata_unlabeled=frame["region"])
    assert_same_results(fits(model), reference("Mean", "strata"))


def test_dask_workers_read_the_labels():
    """On a distributed cluster of worker processes the in-memory labels travel with the partitions."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        with distributed.Client(cluster) as client:
            model = build("OLS", "strata clusters weights", as_dask)
            with distributed.get_task_stream(client) as stream:
                results = fits(model)
            assert len(stream.data) > 0
    finally:
        cluster.close()
    assert_same_results(results, reference("OLS", "strata clusters weights"))
