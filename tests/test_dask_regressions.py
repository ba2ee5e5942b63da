"""The regressions' Dask-array cases of ``test_dask.py`` (split off so that the two
xdist workers share the cluster tests): every design option gives the in-memory
numbers to 1e-10 on a LocalCluster of two worker processes."""

from __future__ import annotations

import pytest

pytest.importorskip("dask.array")
pytest.importorskip("distributed")

from sources_cases import DESIGNS, ESTIMATORS  # noqa: E402
from test_dask import check_dask_arrays, client  # noqa: E402, F401  (the module's cluster fixture)

pytestmark = [pytest.mark.filterwarnings("ignore::ppinfer.PPIWarning")]


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("estimator", [e for e in ESTIMATORS if e.startswith(("OLS", "Logit", "Poisson"))])
def test_dask_arrays_equal_in_memory(client, estimator, design):  # noqa: F811
    check_dask_arrays(client, estimator, design)
