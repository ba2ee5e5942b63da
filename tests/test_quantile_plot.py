"""Quantile results plot the rectified CDF with the interval (rendered to PNG)."""

from __future__ import annotations

import io
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ppinfer  # noqa: E402


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(11)
    y = rng.normal(size=200)
    return ppinfer.Quantile(y, y + rng.normal(0, 0.5, 200), rng.normal(0.2, 1.1, 4000), q=[0.25, 0.5])


def curves(figure):
    ax = figure.axes[0]
    return [line for line in ax.get_lines() if line.get_label().startswith("rectified CDF")], ax


def test_classical_curve_is_the_empirical_cdf_and_the_interval_is_shaded(model):
    res = model.fit(method="classical")
    figure = res.plot(alpha=0.1)
    lines, ax = curves(figure)
    assert [line.get_label() for line in lines] == ["rectified CDF, q = 0.25", "rectified CDF, q = 0.5"]
    y = np.sort(model.labeled["y"])
    for line in lines:
        t, value = line.get_data()
        np.testing.assert_allclose(value, np.searchsorted(y, t, side="right") / y.size, atol=1e-12)
    interval = res.conf_int(alpha=0.1)
    shaded = sorted((patch.get_x(), patch.get_x() + patch.get_width()) for patch in ax.patches)
    np.testing.assert_allclose(shaded, interval[["lower", "upper"]].to_numpy(), rtol=1e-12)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(figure)


def test_ppi_curve_crosses_each_level_at_its_estimate(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit()
    figure = res.plot()
    lines, _ = curves(figure)
    for line, level, estimate in zip(lines, model.q, res.params.to_numpy()):
        t, value = line.get_data()
        assert np.all(value[t < estimate - 1e-9] < level + 1e-12)
        assert np.all(value[t > estimate + 0.05] >= level - 0.02)
    plt.close(figure)


def test_other_results_keep_the_forest_plot():
    rng = np.random.default_rng(2)
    y = rng.normal(size=100)
    res = ppinfer.Mean(y, y + rng.normal(size=100), rng.normal(size=1000)).fit()
    figure = res.plot()
    assert figure.axes[0].get_lines() or figure.axes[0].collections
    plt.close(figure)
