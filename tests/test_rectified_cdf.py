"""The rectified CDF's pieces against brute force, for every sampling design.

At every breakpoint the reference recomputes the weighted CDFs and the four
variance blocks from their definitions: explicit (weighted, centred) indicator
contributions summed within clusters, with the G / (G - 1) factors. The package
computes them from cumulative sums over sorted values instead, at positions found by
binary search or, in the scan over all breakpoints, by merging the sorted samples.
"""

import numpy as np
import pytest

from ppinfer.rectified_cdf import Points, RectifiedCDF, StratifiedCDF

N_LABELED, N_UNLABELED, N_CLUSTERS = 60, 150, 12


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    # rounding creates ties within and across samples
    y = np.round(rng.normal(size=N_LABELED), 1)
    f = np.round(y + rng.normal(size=N_LABELED), 1)
    fu = np.round(rng.normal(size=N_UNLABELED) * 1.3, 1)
    return {
        "y": y,
        "f": f,
        "fu": fu,
        "w": rng.uniform(0.5, 2.0, N_LABELED),
        "wu": rng.uniform(0.5, 2.0, N_UNLABELED),
        "pi": rng.uniform(0.2, 0.9, N_LABELED),
        "g": rng.integers(0, N_CLUSTERS, N_LABELED),
        "gu": rng.integers(0, N_CLUSTERS, N_UNLABELED),
        "t": np.unique(np.concatenate([y, f, fu])),
    }


def correction(codes):
    present = np.unique(codes).size
    return present / (present - 1.0)


def brute_force(d, *, weights=False, label_prob=False, clusters=None):
    """Rows (F_Y, F_u - F_f, var_y, cov_yf, var_f, var_fu) at every breakpoint."""
    n, N = N_LABELED, N_UNLABELED
    w = 1 / d["pi"] if label_prob else (d["w"] if weights else np.ones(n))
    wu = d["wu"] if weights else np.ones(N)
    a, b = w / w.sum(), wu / wu.sum()
    rows = []
    for t in d["t"]:
        F_y, F_f, F_u = a @ (d["y"] <= t), a @ (d["f"] <= t), b @ (d["fu"] <= t)
        r_y, r_f, r_u = a * ((d["y"] <= t) - F_y), a * ((d["f"] <= t) - F_f), b * ((d["fu"] <= t) - F_u)
        if clusters is None:
            keep = (1 - d["pi"]) if label_prob else 1.0
            both = (1 - 2 * d["pi"]) if label_prob else 1.0
            blocks = (r_y @ r_y, (keep * r_y) @ r_f, (both * r_f) @ r_f, r_u @ r_u)
        else:
            labeled = "labeled" in clusters
            unlabeled = "unlabeled" in clusters
            A_y = np.bincount(d["g"], r_y, N_CLUSTERS) * np.sqrt(correction(d["g"])) if labeled else None
            A_f = np.bincount(d["g"], r_f, N_CLUSTERS) * np.sqrt(correction(d["g"])) if labeled else None
            B = np.bincount(d["gu"], r_u, N_CLUSTERS) * np.sqrt(correction(d["gu"])) if unlabeled else None
            if labeled and unlabeled:  # shared clusters: contributions add within a cluster
                D = A_f - B
                blocks = (A_y @ A_y, A_y @ D, D @ D, 0.0)
            elif labeled:
                blocks = (A_y @ A_y, A_y @ A_f, A_f @ A_f, r_u @ r_u)
            else:
                blocks = (r_y @ r_y, r_y @ r_f, r_f @ r_f, B @ B)
        rows.append((F_y, F_u - F_f, *blocks))
    return np.array(rows)


def package(cdf, t):
    fy, slope, blocks = cdf.pieces(t)
    return np.column_stack([fy, slope, *blocks])


DESIGNS = ["iid", "weights", "label_prob", "clusters labeled", "clusters unlabeled", "clusters shared"]


def build(d, design):
    """The package's CDF for ``design`` and the matching options of :func:`brute_force`."""
    options, reference = {}, {}
    if design == "weights" or design == "clusters shared":
        options.update(weights=d["w"], weights_unlabeled=d["wu"])
        reference["weights"] = True
    if design == "label_prob":
        options["label_prob"] = d["pi"]
        reference["label_prob"] = True
    if design.startswith("clusters"):
        where = {"clusters labeled": ("labeled",), "clusters unlabeled": ("unlabeled",),
                 "clusters shared": ("labeled", "unlabeled")}[design]
        if "labeled" in where:
            options["groups"] = d["g"]
        if "unlabeled" in where:
            options["groups_unlabeled"] = d["gu"]
        options["ngroups"] = N_CLUSTERS
        reference["clusters"] = where
    return RectifiedCDF(d["y"], d["f"], d["fu"], **options), reference


@pytest.mark.parametrize("design", DESIGNS)
def test_pieces_match_brute_force(data, design):
    cdf, reference = build(data, design)
    np.testing.assert_allclose(package(cdf, data["t"]), brute_force(data, **reference), rtol=0, atol=1e-13)


@pytest.mark.parametrize("size", [1, 4, 1000])
@pytest.mark.parametrize("design", DESIGNS)
def test_breakpoint_chunks_visit_every_breakpoint_in_order(data, design, size):
    """The scan's chunks: every distinct value of y, f and fu once, in increasing
    order, with positions found by merging rather than searching; the pieces there
    are the brute-force ones, and the left limits those of the previous breakpoint."""
    cdf, reference = build(data, design)
    chunks = list(cdf.breakpoints(True, size))
    assert np.array_equal(np.concatenate([chunk.values for chunk in chunks]), data["t"])
    pieces = np.vstack([package(cdf, chunk) for chunk in chunks])
    expected = brute_force(data, **reference)
    np.testing.assert_allclose(pieces, expected, rtol=0, atol=1e-13)
    left = package(cdf, Points(data["t"], side="left"))
    np.testing.assert_allclose(left[1:], expected[:-1], rtol=0, atol=1e-13)
    np.testing.assert_allclose(left[0], 0.0, atol=1e-15)
    # lambda = 0 visits the outcomes only
    labeled = np.concatenate([chunk.values for chunk in cdf.breakpoints(False, size)])
    assert np.array_equal(labeled, np.unique(data["y"]))


def test_stratified_combines_strata_with_weights(data):
    d = data
    strata = (d["y"] > 0).astype(int)
    strata_u = (d["fu"] > 0).astype(int)
    shares = np.array([0.3, 0.7])
    parts = [RectifiedCDF(d["y"][strata == k], d["f"][strata == k], d["fu"][strata_u == k]) for k in (0, 1)]
    stratified = StratifiedCDF(parts, shares)
    chunks = list(stratified.breakpoints(True, 3))
    assert np.array_equal(np.concatenate([chunk.values for chunk in chunks]), d["t"])
    evaluation = stratified.evaluate(d["t"])
    lam = np.array([0.2, 0.9])
    expected_value = sum(shares[k] * (package(parts[k], d["t"])[:, 0] + lam[k] * package(parts[k], d["t"])[:, 1])
                         for k in (0, 1))
    expected_variance = 0.0
    for k in (0, 1):
        _, _, var_y, cov_yf, var_f, var_fu = package(parts[k], d["t"]).T
        expected_variance = expected_variance + shares[k] ** 2 * (
            var_y - 2 * lam[k] * cov_yf + lam[k] ** 2 * (var_f + var_fu)
        )
    np.testing.assert_allclose(evaluation.value(lam), expected_value, atol=1e-14)
    np.testing.assert_allclose(evaluation.variance(lam), np.maximum(expected_variance, 0), atol=1e-14)
