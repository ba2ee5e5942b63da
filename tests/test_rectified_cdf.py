"""The rectified CDF's design variance against brute force, at every breakpoint.

The reference (:mod:`quantile_reference`) recomputes, at each breakpoint ``t`` and with
loops over strata and PSUs, the weighted CDFs and the variance blocks from the
linearization itself: each row's contribution ``alpha_i (1{v_i <= t} - F(t))`` with the
``cov_type`` correction written out by hand, PSU totals centred within strata, times
``(1 - f_h) c_h``, and the second-phase term of a two-phase design. The package computes
the same blocks from cumulative sums over sorted values, at positions found by binary
search or, in the scan over all breakpoints, by merging the sorted samples.
"""

import warnings

import numpy as np
import pytest
from quantile_reference import (
    contribution,
    correction,
    design_variance,
    linearized,
    stratum_factors,
)

import ppinfer
from ppinfer.models.rectified_cdf import Points

N_LABELED, N_UNLABELED = 60, 150
#: labeled / unlabeled PSUs per stratum, and the population's PSUs per stratum (for the fpc)
PSUS, PSUS_UNLABELED = 4, 5
POPULATION_PSUS = np.array([10.0, 14.0, 9.0])
POPULATION_UNITS = np.array([100.0, 90.0, 120.0])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    n, N = N_LABELED, N_UNLABELED
    s, su = np.arange(n) % 3, np.arange(N) % 3
    g = s * 100 + rng.integers(0, PSUS, n)
    gu = su * 100 + 50 + rng.integers(0, PSUS_UNLABELED, N)  # PSUs of the unlabeled sample only
    shared = su * 100 + rng.integers(0, PSUS + 2, N)  # two-phase / shared PSUs: labels 0-3 hold labeled units too
    effect = rng.normal(size=400)
    # rounding creates ties within and across samples
    y = np.round(effect[g] + rng.normal(size=n), 1)
    f = np.round(y + rng.normal(size=n), 1)
    fu = np.round(1.3 * (effect[shared] + rng.normal(size=N)), 1)
    return {
        "y": y, "f": f, "fu": fu, "s": s, "su": su, "g": g, "gu": gu, "shared": shared,
        "w": rng.uniform(0.5, 2.0, n), "wu": rng.uniform(0.5, 2.0, N),
        "pi": rng.uniform(0.2, 0.9, n), "label_strata": rng.integers(0, 2, n),
        "t": np.unique(np.concatenate([y, f, fu])),
    }


# --------------------------------------------------------------------------------------
# the designs: the reference's arguments and the estimator's keywords
# --------------------------------------------------------------------------------------
def reference(d, cov_type, *, weights=False, clusters=None, strata=False, fpc=False, label_strata=False,
              two_phase=False):
    """(F_Y, F_u - F_f, var_y, cov_yf, var_f, var_fu) at every breakpoint by brute force;
    ``clusters``: "labeled", "unlabeled", "both" (separate PSUs) or "shared" (two-phase: True)."""
    arguments = dict(cov_type=cov_type)
    if weights:
        arguments.update(weights=d["w"], weights_unlabeled=d["wu"])
    if strata:
        arguments.update(strata=d["s"], strata_unlabeled=d["su"])
    if two_phase:
        arguments.update(label_prob=d["pi"], label_strata=d["label_strata"] if label_strata else None)
        if clusters:
            arguments.update(units=d["g"], units_unlabeled=d["shared"])
        if fpc:
            arguments["population"] = POPULATION_PSUS + 3 if clusters else POPULATION_UNITS * 3
    else:
        if clusters in ("labeled", "both", "shared"):
            arguments["units"] = d["g"]
        if clusters in ("unlabeled", "both", "shared"):
            arguments["units_unlabeled"] = d["shared"] if clusters == "shared" else d["gu"]
        if fpc:
            arguments["population"] = POPULATION_PSUS if "units" in arguments else POPULATION_UNITS
            arguments["population_unlabeled"] = POPULATION_PSUS + 3 if "units_unlabeled" in arguments \
                else POPULATION_UNITS * 2
    return linearized(d["t"], d["y"], d["f"], d["fu"], **arguments)


def options(d, *, weights=False, clusters=None, strata=False, fpc=False, label_strata=False, two_phase=False):
    """The Quantile keywords of a design (the reference functions' arguments)."""
    n, N = N_LABELED, N_UNLABELED
    out = {}
    if weights:
        out.update(weights=d["w"], weights_unlabeled=d["wu"])
    if two_phase:
        out["label_prob"] = d["pi"]
        if clusters:
            out.update(clusters=d["g"], clusters_unlabeled=d["shared"])
        if label_strata:
            out["label_strata"] = d["label_strata"]
        if fpc:
            population = POPULATION_PSUS + 3 if clusters else POPULATION_UNITS * 3
            out.update(fpc=population[d["s"]] if strata else np.full(n, population[0]),
                       fpc_unlabeled=population[d["su"]] if strata else np.full(N, population[0]))
    else:
        if clusters in ("labeled", "both", "shared"):
            out["clusters"] = d["g"]
        if clusters in ("unlabeled", "both", "shared"):
            out["clusters_unlabeled"] = d["shared"] if clusters == "shared" else d["gu"]
        if fpc:
            clustered_l, clustered_u = "clusters" in out, "clusters_unlabeled" in out
            population = POPULATION_PSUS if clustered_l else POPULATION_UNITS
            population_u = POPULATION_PSUS + 3 if clustered_u else POPULATION_UNITS * 2
            out.update(fpc=population[d["s"]] if strata else np.full(n, population[0]),
                       fpc_unlabeled=population_u[d["su"]] if strata else np.full(N, population_u[0]))
    if strata:
        out.update(strata=d["s"], strata_unlabeled=d["su"])
    return out


def package(d, design_options, cov_type, points=None):
    """The package's (F_Y, F_u - F_f, var_y, cov_yf, var_f, var_fu) at the breakpoints."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few clusters
        model = ppinfer.Quantile(d["y"], d["f"], d["fu"], **design_options)
    cdf = model._rectified_cdf("ppi", cov_type)
    base, slopes, blocks = cdf.pieces(d["t"] if points is None else points)
    return np.column_stack([base, slopes[0], *blocks[:, 0]])


INDEPENDENT = {
    "iid": {},
    "weights": dict(weights=True),
    "clusters labeled": dict(clusters="labeled"),
    "clusters unlabeled": dict(clusters="unlabeled", weights=True),
    "clusters shared": dict(clusters="shared", weights=True),
    "strata": dict(strata=True),
    "strata weights fpc": dict(strata=True, weights=True, fpc=True),
    "strata clusters weights fpc": dict(strata=True, clusters="both", weights=True, fpc=True),
    "strata shared clusters weights": dict(strata=True, clusters="shared", weights=True),
}
TWO_PHASE = {
    "two-phase": {},
    "two-phase weights fpc": dict(weights=True, fpc=True),
    "two-phase label strata": dict(label_strata=True, strata=True),
    "two-phase clustered": dict(clusters=True),
    "two-phase clustered strata weights fpc": dict(clusters=True, strata=True, weights=True, fpc=True),
    "two-phase clustered strata label strata": dict(clusters=True, strata=True, label_strata=True),
}
UNCLUSTERED_COV_TYPES = ["HC0", "HC1", "HC2", "HC3", "CR1", "CR2"]
CLUSTERED_COV_TYPES = ["CR0", "CR1", "CR2"]


def cases():
    for name, design in INDEPENDENT.items():
        for cov_type in CLUSTERED_COV_TYPES if design.get("clusters") else UNCLUSTERED_COV_TYPES:
            yield pytest.param(name, cov_type, False, id=f"{name}-{cov_type}")
    for name, design in TWO_PHASE.items():
        for cov_type in CLUSTERED_COV_TYPES if design.get("clusters") else UNCLUSTERED_COV_TYPES:
            yield pytest.param(name, cov_type, True, id=f"{name}-{cov_type}")


@pytest.mark.parametrize("name, cov_type, two_phase", list(cases()))
def test_design_variance_matches_brute_force(data, name, cov_type, two_phase):
    design = (TWO_PHASE if two_phase else INDEPENDENT)[name]
    expected = reference(data, cov_type, two_phase=two_phase, **design)
    keywords = options(data, two_phase=two_phase, **design)
    actual = package(data, keywords, cov_type)
    scale = np.max(np.abs(expected[:, 2:]))
    np.testing.assert_allclose(actual[:, :2], expected[:, :2], rtol=0, atol=1e-13)
    np.testing.assert_allclose(actual[:, 2:], expected[:, 2:], rtol=0, atol=1e-12 * scale)


def test_hc2_and_cr2_closed_forms(data):
    """Equal weights: HC2 gives the unbiased ``F (1 - F) / (n - 1)``; equal-size clusters
    without strata: CR2 scales every cluster by ``(1 - 1/G)^(-1/2)``, so it equals CR1."""
    d = data
    n = N_LABELED
    hc2 = package(d, {}, "HC2")
    Fy = hc2[:, 0]
    np.testing.assert_allclose(hc2[:, 2], Fy * (1 - Fy) / (n - 1), rtol=1e-12, atol=1e-16)
    hc0 = package(d, {}, "HC0")
    np.testing.assert_allclose(hc0[:, 2], Fy * (1 - Fy) / n, rtol=1e-12, atol=1e-16)
    equal = {"clusters": np.arange(n) % 12, "clusters_unlabeled": 100 + np.arange(N_UNLABELED) % 15}
    np.testing.assert_allclose(package(d, equal, "CR2")[:, 2:], package(d, equal, "CR1")[:, 2:], rtol=1e-10, atol=1e-16)
    assert not np.allclose(package(d, equal, "CR0")[:, 2:], package(d, equal, "CR1")[:, 2:])


@pytest.mark.parametrize("size", [1, 4, 1000])
@pytest.mark.parametrize("name", ["iid", "strata clusters weights fpc", "two-phase clustered strata weights fpc"])
def test_breakpoint_chunks_visit_every_breakpoint_in_order(data, name, size):
    """The scan's chunks: every distinct value of y, f and fu once, in increasing
    order, with positions found by merging rather than searching; the pieces there
    are the brute-force ones, and the left limits those of the previous breakpoint."""
    two_phase = name.startswith("two-phase")
    design = (TWO_PHASE if two_phase else INDEPENDENT)[name]
    keywords = options(data, two_phase=two_phase, **design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cdf = ppinfer.Quantile(data["y"], data["f"], data["fu"], **keywords)._rectified_cdf("ppi", "CR1")
    chunks = list(cdf.breakpoints(True, size))
    assert np.array_equal(np.concatenate([chunk.values for chunk in chunks]), data["t"])
    pieces = np.vstack([package(data, keywords, "CR1", chunk) for chunk in chunks])
    expected = reference(data, "CR1", two_phase=two_phase, **design)
    np.testing.assert_allclose(pieces, expected, rtol=0, atol=1e-12 * np.max(np.abs(expected)))
    left = package(data, keywords, "CR1", Points(data["t"], side="left"))
    np.testing.assert_allclose(left[1:], expected[:-1], rtol=0, atol=1e-12 * np.max(np.abs(expected)))
    np.testing.assert_allclose(left[0], 0.0, atol=1e-15)
    # lambda = 0 visits the outcomes only
    labeled = np.concatenate([chunk.values for chunk in cdf.breakpoints(False, size)])
    assert np.array_equal(labeled, np.unique(data["y"]))


def test_per_stratum_blocks_and_slopes(data):
    """One lambda per stratum: each stratum's blocks are its part of the design variance
    (its PSUs, its factor), and ``F_u - F_f`` splits into ``Delta_h = sum_{u in h} alpha
    (1{u <= t} - F_u) - sum_{f in h} alpha (1{f <= t} - F_u)``, summing to the whole."""
    d = data
    keywords = options(d, strata=True, clusters="both", weights=True, fpc=True)
    model = ppinfer.Quantile(d["y"], d["f"], d["fu"], **keywords)
    points = d["t"][::5]
    cdf = model._rectified_cdf("ppi", "CR2", by_stratum=True)
    _, slopes, blocks = cdf.pieces(points)
    total = package(d, keywords, "CR2", points)
    scale = np.max(np.abs(total[:, 2:]))
    np.testing.assert_allclose(blocks.sum(axis=1).T, total[:, 2:], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(slopes.sum(axis=0), total[:, 1], rtol=0, atol=1e-14)
    a, au = d["w"] / d["w"].sum(), d["wu"] / d["wu"].sum()
    for h in range(3):
        inside, inside_u = d["s"] == h, d["su"] == h
        for j, t in enumerate(points):
            Fu = au @ (d["fu"] <= t)
            delta = au[inside_u] @ ((d["fu"][inside_u] <= t) - Fu) - a[inside] @ ((d["f"][inside] <= t) - Fu)
            assert slopes[h, j] == pytest.approx(delta, abs=1e-14)
        np.testing.assert_allclose(blocks[:, h].T, _stratum_reference(d, h, points), rtol=0, atol=1e-12 * scale)


def _stratum_reference(d, h, points):
    """Stratum h's part of the CR2 design variance of ``strata clusters weights fpc``: its
    own rows' contributions (shares of the whole fits' weights), PSUs and factor."""
    corr_l = correction(d["w"], d["g"], "CR2", kept_rows=True)
    corr_u = correction(d["wu"], d["gu"], "CR2", kept_rows=False)
    factors_l = stratum_factors(d["g"], d["s"], "CR2", population=POPULATION_PSUS)
    factors_u = stratum_factors(d["gu"], d["su"], "CR2", population=POPULATION_PSUS + 3)
    inside, inside_u = d["s"] == h, d["su"] == h
    out = []
    for t in points:
        zy, _ = contribution(d["y"], d["w"], t, corr_l)
        zf, _ = contribution(d["f"], d["w"], t, corr_l)
        zu, _ = contribution(d["fu"], d["wu"], t, corr_u)
        V = design_variance(np.column_stack([zy, zf])[inside], d["g"][inside], d["s"][inside], factors_l)
        Vu = design_variance(zu[inside_u, None], d["gu"][inside_u], d["su"][inside_u], factors_u)
        out.append((V[0, 0], V[0, 1], V[1, 1], Vu[0, 0]))
    return np.array(out)


def test_stratified_shorthand_is_fisch_et_al(data):
    """The ``strata`` shorthand with stratum shares W_h (no weights): each stratum an
    i.i.d. pair of samples, ``F = sum_h W_h F_h(t; lam_h)``, per-stratum blocks
    ``W_h^2`` times the stratum's i.i.d. blocks (HC0) and slopes ``W_h (F_u,h - F_f,h)``."""
    d = data
    shares = {0: 0.5, 1: 0.3, 2: 0.2}
    model = ppinfer.Quantile(d["y"], d["f"], d["fu"], strata=d["s"], strata_unlabeled=d["su"], stratum_weights=shares)
    base, slopes, blocks = model._rectified_cdf("ppi", "HC0", by_stratum=True).pieces(d["t"])
    expected_base = 0.0
    for h, share in shares.items():
        y, f, fu = d["y"][d["s"] == h], d["f"][d["s"] == h], d["fu"][d["su"] == h]
        iy, i_f, iu = (np.less_equal.outer(v, d["t"]).astype(float) for v in (y, f, fu))
        expected_base = expected_base + share * iy.mean(axis=0)
        np.testing.assert_allclose(slopes[h], share * (iu.mean(axis=0) - i_f.mean(axis=0)), atol=1e-14)
        by_hand = [
            np.mean((iy - iy.mean(0)) ** 2, axis=0) / y.size,
            np.mean((iy - iy.mean(0)) * (i_f - i_f.mean(0)), axis=0) / y.size,
            np.mean((i_f - i_f.mean(0)) ** 2, axis=0) / y.size,
            np.mean((iu - iu.mean(0)) ** 2, axis=0) / fu.size,
        ]
        np.testing.assert_allclose(blocks[:, h], share**2 * np.array(by_hand), rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(base, expected_base, atol=1e-14)


MEAN_DESIGNS = {
    "span strata weights": dict(strata=True, clusters="shared", weights=True),
    "clusters unlabeled only": dict(clusters="unlabeled"),
    "two-phase clustered strata label strata fpc": dict(two_phase=True, clusters=True, strata=True,
                                                        label_strata=True, fpc=True, weights=True),
}


@pytest.mark.parametrize("name, by_stratum", [
    (name, by_stratum) for name, design in MEAN_DESIGNS.items() for by_stratum in (False, True)[: 1 + design.get("strata", 0)]
])
def test_blocks_are_those_of_the_mean_of_the_indicators(data, name, by_stratum):
    """At a fixed t the quantile's problem is the mean of the indicators: its blocks (and,
    per stratum, its split of ``F_u - F_f``) equal ppinfer.Mean's on ``1{y <= t}``,
    ``1{yhat <= t}``, ``1{yhat_unlabeled <= t}``, for PPI, classical and naive fits."""
    d = data
    keywords = options(d, **MEAN_DESIGNS[name])
    clustered = "clusters" in keywords or "clusters_unlabeled" in keywords
    points = np.quantile(d["y"], [0.2, 0.5, 0.8])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ppinfer.Quantile(d["y"], d["f"], d["fu"], **keywords)
        for cov_type in CLUSTERED_COV_TYPES if clustered else UNCLUSTERED_COV_TYPES:
            _, slopes, blocks = model._rectified_cdf("ppi", cov_type, by_stratum).pieces(points)
            classical = model._rectified_cdf("classical", cov_type).pieces(points)[2][0, 0]
            naive = model._rectified_cdf("naive", cov_type).pieces(points)[2][0, 0]
            for j, t in enumerate(points):
                mean = ppinfer.Mean(*((v <= t).astype(float) for v in (d["y"], d["f"], d["fu"])), **keywords)
                c = mean.components(cov_type, by_stratum=by_stratum)
                expected = np.array([np.ravel(b) for b in (c.var_y, c.cov_yf, c.var_f, c.var_fu)])
                # Mean centres a sample's contributions before the leverage adjustment; the rectified
                # CDF centres them after it, which differs at O(h^2) where leverages vary in a sample
                rtol = 1e-4 if cov_type in ("HC2", "HC3", "CR2") else 1e-10
                np.testing.assert_allclose(blocks[:, :, j], expected, rtol=rtol, atol=1e-17)
                if by_stratum:
                    np.testing.assert_allclose(slopes[:, j], mean._deltas()[:, 0], atol=1e-14)
                assert classical[j] == pytest.approx(mean._classical_covariance(cov_type)[0, 0], rel=1e-10)
                pooled = mean.fit(method="naive", cov_type=cov_type, use_t=False).bse.iloc[0] ** 2
                assert naive[j] == pytest.approx(pooled, rel=1e-10)
