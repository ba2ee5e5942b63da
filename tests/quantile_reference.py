"""Brute-force references for quantiles under sampling designs (numpy, loops over strata and PSUs).

At each point ``t`` the rectified CDF's pieces are recomputed from the linearization
itself: each row's contribution ``alpha_i (1{v_i <= t} - F(t))`` (``alpha_i`` its share of
the fit's weight) with the ``cov_type`` correction written out here (HC2:
``(1 - w_i / W)^(-1/2)`` on labeled rows kept one by one; HC3: ``(1 - w_i / W)^-1``; CR2:
``(1 - W_g / W)^(-1/2)`` on a PSU's rows), PSU totals by label, centred within strata,
times ``(1 - f_h) c_h`` (``f_h`` the sampled share of the stratum's population of PSUs or
units, ``c_h = G_h / (G_h - 1)`` for CR1, ``n / (n - 1)`` for HC1). Independent samples
have a variance each (labeled rows: ``(Y, f)``; unlabeled: ``u``), unless they share
PSUs; a two-phase design has one, of the labeled rows' ``(Y, f - u)`` and the unlabeled
rows' ``(0, -u)``, and an fpc or labeling strata add ``sum_h (S_h - (1 - f_h) c_h P_h)``,
``P_h = sum_{i in h} (1 - pi_i) r_i r_i'`` of the unadjusted rows ``r``, ``S_h = P_h`` or its
version centred within labeling strata with the factors ``n_k / (n_k - 1)``.

The interval is the set of values the two one-sided tests accept, found by testing
every breakpoint (with its left limit, ``F`` at the previous breakpoint) and every gap
between breakpoints.
"""

from __future__ import annotations

import numpy as np


def contribution(values, weights, t, correction):
    """Each row's ``alpha_i (1{v_i <= t} - F(t))`` times its correction, and ``F(t)``."""
    alpha = weights / weights.sum()
    below = values <= t
    cdf = alpha @ below
    return alpha * (below - cdf) * correction, cdf


def correction(weights, psu, cov_type, *, kept_rows):
    """The cov_type correction of a fit's rows: by PSU (CR2) or, for rows kept one by one
    (the labeled sample's), by their leverage ``w_i / W`` (HC2, HC3, and CR2 without PSUs)."""
    W = weights.sum()
    if psu is not None:
        if cov_type != "CR2":
            return np.ones(weights.size)
        totals = {label: weights[psu == label].sum() for label in np.unique(psu)}
        return np.array([(1 - totals[label] / W) ** -0.5 for label in psu])
    if kept_rows and cov_type in ("HC2", "CR2"):
        return (1 - weights / W) ** -0.5
    if kept_rows and cov_type == "HC3":
        return 1 / (1 - weights / W)
    return np.ones(weights.size)


def stratum_factors(units, strata, cov_type, *, population=None, rows=None):
    """``(1 - f_h) c_h`` by stratum code."""
    factors = {}
    for h in np.unique(strata):
        G = np.unique(units[strata == h]).size
        fpc = 1.0 if population is None else 1 - G / population[h]
        small = G / (G - 1.0) if cov_type == "CR1" else rows / (rows - 1.0) if cov_type == "HC1" else 1.0
        factors[h] = fpc * small
    return factors


def design_variance(rows, units, strata, factors):
    """``sum_h factor_h sum_{j in h} (Z_hj - Zbar_h)(Z_hj - Zbar_h)'`` with PSU totals ``Z``."""
    total = np.zeros((rows.shape[1], rows.shape[1]))
    for h in np.unique(strata):
        inside = strata == h
        totals = np.array([rows[inside & (units == j)].sum(axis=0) for j in np.unique(units[inside])])
        centred = totals - totals.mean(axis=0)
        total += factors[h] * centred.T @ centred
    return total


def linearized(points, y, f, fu, *, cov_type, weights=None, weights_unlabeled=None, units=None,
               units_unlabeled=None, strata=None, strata_unlabeled=None, population=None,
               population_unlabeled=None, label_prob=None, label_strata=None):
    """Rows ``(F_Y, F_u - F_f, var_y, cov_yf, var_f, var_fu)`` at each point.

    ``units`` are PSU labels (None: every row its own unit); a label present in both
    samples makes one design of the two (independent samples sharing PSUs). With
    ``label_prob`` the design is two-phase (then ``population`` is the first phase's).
    """
    n, N = y.size, fu.size
    w = np.ones(n) if weights is None else weights
    wu = np.ones(N) if weights_unlabeled is None else weights_unlabeled
    s = np.zeros(n, int) if strata is None else strata
    su = np.zeros(N, int) if strata_unlabeled is None else strata_unlabeled
    own_l, own_u = 10**9 + np.arange(n), 2 * 10**9 + np.arange(N)
    units_l = own_l if units is None else units
    units_u = own_u if units_unlabeled is None else units_unlabeled
    if label_prob is not None:
        return _two_phase(points, y, f, fu, label_prob, label_strata, w, wu, units_l, units_u, s, su,
                          units is not None, cov_type, population)
    factors_l = stratum_factors(units_l, s, cov_type, population=population, rows=n)
    factors_u = stratum_factors(units_u, su, cov_type, population=population_unlabeled, rows=N)
    corr_l = correction(w, units, cov_type, kept_rows=True)
    corr_u = correction(wu, units_unlabeled, cov_type, kept_rows=False)
    shared = np.intersect1d(units_l, units_u).size > 0
    out = []
    for t in points:
        zy, Fy = contribution(y, w, t, corr_l)
        zf, Ff = contribution(f, w, t, corr_l)
        zu, Fu = contribution(fu, wu, t, corr_u)
        if shared:
            # one design: PSU totals add across samples, each sample's rows scaled by its root factor
            root_l = np.sqrt([factors_l[h] for h in s])[:, None]
            root_u = np.sqrt([factors_u[h] for h in su])[:, None]
            rows = np.vstack([np.column_stack([zy, zf]) * root_l, np.column_stack([0 * zu, -zu]) * root_u])
            V = design_variance(rows, np.r_[units_l, units_u], np.r_[s, su], dict.fromkeys(np.r_[s, su], 1.0))
            blocks = (V[0, 0], V[0, 1], V[1, 1], 0.0)
        else:
            V = design_variance(np.column_stack([zy, zf]), units_l, s, factors_l)
            Vu = design_variance(zu[:, None], units_u, su, factors_u)
            blocks = (V[0, 0], V[0, 1], V[1, 1], Vu[0, 0])
        out.append((Fy, Fu - Ff, *blocks))
    return np.array(out)


def _two_phase(points, y, f, fu, pi, label_strata, w1, w1u, units_l, units_u, s, su, clustered, cov_type,
               population):
    n, N = y.size, fu.size
    units, strata = np.r_[units_l, units_u], np.r_[s, su]
    factors = stratum_factors(units, strata, cov_type, population=population, rows=n)
    w_labeled = w1 / pi  # the labeled fits' weights
    corr_y = correction(w_labeled, units_l if clustered else None, cov_type, kept_rows=True)
    w_all = np.r_[w1, w1u]
    if clustered:
        corr_u = correction(w_all, units, cov_type, kept_rows=True)
    else:  # the labeled rows of the all-units fit are kept one by one, the unlabeled are not
        corr_u = np.r_[correction(w_all, None, cov_type, kept_rows=True)[:n], np.ones(N)]
    keep = 1 - pi
    out = []
    for t in points:
        zy, Fy = contribution(y, w_labeled, t, corr_y)
        zf, Ff = contribution(f, w_labeled, t, corr_y)
        zu, Fu = contribution(np.r_[f, fu], w_all, t, corr_u)
        rows = np.vstack([np.column_stack([zy, zf - zu[:n]]), np.column_stack([0 * zu[n:], -zu[n:]])])
        V = design_variance(rows, units, strata, factors)
        if population is not None or label_strata is not None:
            r = np.column_stack([contribution(y, w_labeled, t, 1.0)[0], contribution(f, w_labeled, t, 1.0)[0]])
            if label_strata is not None:
                k = label_strata
                sizes = np.bincount(k).astype(float)
                centred = r - np.array([r[k == j].mean(axis=0) for j in range(sizes.size)])[k]
                small = (sizes / (sizes - 1))[k]
            for h in np.unique(s):
                inside = s == h
                P = (r[inside] * keep[inside, None]).T @ r[inside]
                S = P if label_strata is None else (centred[inside] * (keep * small)[inside, None]).T @ centred[inside]
                V += S - factors[h] * P
        out.append((Fy, Fu - Ff, V[0, 0], V[0, 1], V[1, 1], 0.0))
    return np.array(out)


def value_and_variance(pieces, lam):
    """``F(t; lam)`` and ``s2(t; lam)`` from rows of :func:`linearized`, and the labeled
    and unlabeled parts of ``s2``."""
    Fy, slope, var_y, cov_yf, var_f, var_fu = pieces.T
    labeled = var_y - 2 * lam * cov_yf + lam**2 * var_f
    unlabeled = lam**2 * var_fu
    return Fy + lam * slope, labeled + unlabeled, labeled, unlabeled


def point_estimate(breakpoints, value, q):
    """The smallest breakpoint with ``F(t; lam) >= q``."""
    return breakpoints[np.flatnonzero(value >= q - 1e-12)[0]]


def inverted_interval(breakpoints, value, variance, q, critical):
    """Infimum and supremum of the values the two one-sided tests accept, at ``critical``.

    A breakpoint ``t_k`` is accepted when ``F(t_k) >= q - c s(t_k)`` and its left limit
    ``F(t_{k-1}) <= q + c s(t_{k-1})`` (``F = 0``, ``s = 0`` below the data); a gap
    ``(t_k, t_{k+1})``, where ``F`` is ``F(t_k)``, when both hold at ``t_k``."""
    se = np.sqrt(np.maximum(variance, 0.0))
    not_low = value >= q - critical * se - 1e-12
    not_high = value <= q + critical * se + 1e-12
    not_high_before = np.r_[True, not_high[:-1]]
    ends = [(t, t) for t, ok in zip(breakpoints, not_low & not_high_before) if ok]
    following = np.r_[breakpoints[1:], np.inf]
    ends += [(t, t_next) for t, t_next, ok in zip(breakpoints, following, not_low & not_high) if ok]
    return min(a for a, _ in ends), max(b for _, b in ends)
