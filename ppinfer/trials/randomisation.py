"""Variance under stratified (covariate-adaptive) randomisation.

Permuted blocks within strata balance the arms inside every stratum, so the part
of an estimate's variance that comes from chance imbalance between the arms
within strata is absent. Influence rows built for simple randomisation count it,
which makes their variance conservative (Bugni, Canay & Shaikh 2018; Ye, Shao, Yi
& Zhao 2023). :func:`stratified_rows` removes it from any estimator's rows.
"""

from __future__ import annotations

import numpy as np

from .arms import Arms


def stratified_rows(rows: np.ndarray, arms: Arms, strata: np.ndarray, strata_labels) -> np.ndarray:
    """Influence rows for randomisation balanced within strata.

    Parameters
    ----------
    rows : (n, J) array
        Influence rows valid under simple randomisation.
    arms : Arms
    strata : (n,) int array
        Each unit's randomisation stratum, in ``range(len(strata_labels))``.
    strata_labels : sequence
        Stratum labels, for error messages.

    Returns
    -------
    (n, J) array
        ``r_i - sum_b (1{A_i = b} - pi_b) M_b(Z_i)``, with ``M_b(z)`` the mean row of
        the units of arm ``b`` in stratum ``z`` and ``pi_b = n_b / n``; the deviations
        ``r_i - M_{A_i}(Z_i)`` are multiplied by ``sqrt(n_c / (n_c - 1))``, ``n_c`` the
        size of unit ``i``'s cell (arm and stratum), for the cell means estimated.

    Notes
    -----
    A row is ``r_i = sum_b 1{A_i = b} r_i(b)``, ``r_i(b)`` its value had unit ``i``
    been assigned arm ``b``. Its assignment-imbalance part within strata is
    ``sum_b (1{A_i = b} - pi_b) E[r(b) | Z_i]``: under simple randomisation it has
    variance ``E[v(Z)' (diag(pi) - pi pi') v(Z)]`` with ``v_b = E[r(b) | Z]``, and
    under permuted blocks within strata its sum over units is zero. Subtracting
    its estimate leaves rows whose variance is the stratified-randomisation
    variance. For the difference in means (HC0) this is Bugni, Canay & Shaikh's
    (2018) variance ``s1^2/pi + s0^2/(1 - pi) + E[(m_1(Z) - m_0(Z))^2]`` with
    unbiased within-stratum variances ``s_a^2``; for regression-adjusted estimators it is the variance of Ye, Shao, Yi
    & Zhao (2023). When the working model already has arm-specific stratum
    effects the arms' stratum means of the residuals are zero and the rows barely
    change: adjusting for the strata makes the simple-randomisation variance right.
    """
    nstrata = len(strata_labels)
    cell = arms.codes * nstrata + strata
    counts = np.bincount(cell, minlength=arms.count * nstrata).reshape(arms.count, nstrata)
    present = np.bincount(strata, minlength=nstrata) > 0
    thin = (counts < 2) & present
    if thin.any():
        arm, stratum = (int(k[0]) for k in np.nonzero(thin))
        raise ValueError(
            f"stratum {strata_labels[stratum]!r} has {counts[arm, stratum]} unit(s) in arm "
            f"{arms.names[arm]!r}; the stratified-randomisation variance needs at least 2 units of every "
            "arm in every stratum. Merge small strata (as the randomisation lists should have)."
        )
    sums = np.stack(
        [np.bincount(cell, weights=rows[:, j], minlength=arms.count * nstrata) for j in range(rows.shape[1])],
        axis=-1,
    ).reshape(arms.count, nstrata, rows.shape[1])
    cell_means = sums / np.maximum(counts, 1)[:, :, None]
    balanced = np.einsum("b,bzj->zj", arms.shares, cell_means)
    # deviations from estimated cell means are inflated by n_c / (n_c - 1), as unbiased
    # within-cell variances are
    inflation = np.sqrt(counts / np.maximum(counts - 1, 1))[arms.codes, strata]
    return (rows - cell_means[arms.codes, strata]) * inflation[:, None] + balanced[strata]
