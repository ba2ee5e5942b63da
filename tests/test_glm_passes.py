"""How a GLM fit spends its passes over a large block (``ppinfer.core.fitting.fit_glm``).

* The PPI fits of the unlabeled predictions start from the labeled prediction
  fit and take their first step with that fit's Hessian, scaled to the
  unlabeled sample's total weight (``start_hessian``), so that the pass at the
  start computes the score alone. The step is kept only when a bound certifies
  that the loss decreases; these tests check the bound against the loss itself,
  and that a poor approximation (too small, too large, wrong directions)
  changes neither the estimate nor the bread.
* The design collector of an unstratified, unclustered sample sums its scores'
  outer products, their sum and their count from one product of the scores
  above a row of ones; rows whose Hessian weight is too small to divide by take
  another path. Both must give the sums computed here by hand.
* The scan checks the rank of a GLM's unlabeled design on every 16th row; when
  those rows are not of full rank, one more pass sums the whole design's Gram
  matrix, and only the whole design's rank decides (an error names the
  dependent columns).

Reference values: statsmodels' ``GLM`` (coefficients and the inverse of its
Hessian at the estimate), the logistic loss and the score sums computed here
with NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

import ppinfer
import ppinfer.core.fitting as fitting
from ppinfer.core.families import Binomial, Poisson
from ppinfer.core.fitting import fit_glm
from ppinfer.designs.base import DesignCollectorFactory

# statsmodels warns on the fits of fractional predictions with the binomial family
pytestmark = pytest.mark.filterwarnings("ignore:Perfect separation")


def _data(family, rng, n=4000):
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    eta = X @ np.array([0.2, 0.5, -0.4, 0.3])
    if isinstance(family, Binomial):
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
        reference = sm.GLM(y, X, family=sm.families.Binomial())
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
        reference = sm.GLM(y, X, family=sm.families.Poisson())
    return X, y, reference


class _CountedPasses:
    """Counts the passes over blocks of more than ``rows`` rows, and whether each had a Hessian."""

    def __init__(self, monkeypatch, rows):
        self.hessians = []
        original = fitting._block_sums

        def counted(family, X, v, beta, weights, offset, **options):
            if v.shape[0] > rows:
                self.hessians.append(options["hessian"])
            return original(family, X, v, beta, weights, offset, **options)

        monkeypatch.setattr(fitting, "_block_sums", counted)


@pytest.mark.parametrize("family", [Binomial(), Poisson()], ids=["logit", "poisson"])
@pytest.mark.parametrize("factor", [1.0, 0.02, 50.0, "rotated"])
def test_estimate_and_bread_do_not_depend_on_the_guess(family, factor):
    rng = np.random.default_rng(3)
    X, y, reference = _data(family, rng)
    expected = reference.fit(tol=1e-13)
    start = expected.params + rng.normal(scale=0.05, size=4)
    exact = -reference.hessian(start)
    if factor == "rotated":
        # positive definite, but its directions are not the Hessian's
        Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
        guess = Q @ np.diag(np.linalg.eigvalsh(exact)[::-1]) @ Q.T
    else:
        guess = exact * factor
    fit = fit_glm(family, [(X, y)], start=start, start_hessian=guess)
    np.testing.assert_allclose(fit.params, expected.params, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(fit.bread, np.linalg.inv(-reference.hessian(expected.params)), rtol=1e-8)


def test_a_good_guess_saves_the_hessian_at_the_start(monkeypatch):
    rng = np.random.default_rng(4)
    X, y, reference = _data(Binomial(), rng)
    start = reference.fit().params + 0.02
    counted = _CountedPasses(monkeypatch, rows=100)
    fit_glm(Binomial(), [(X, y)], start=start)
    plain = counted.hessians[:]
    counted.hessians.clear()
    fit_glm(Binomial(), [(X, y)], start=start, start_hessian=-reference.hessian(start))
    assert plain[0] is True
    assert counted.hessians[0] is False, "the pass at the start computed a Hessian it was given"
    assert len(counted.hessians) <= len(plain)


def test_a_rejected_guess_costs_one_pass_and_computes_the_hessian(monkeypatch):
    rng = np.random.default_rng(5)
    X, y, reference = _data(Binomial(), rng)
    expected = reference.fit(tol=1e-13)
    start = expected.params + 0.3
    counted = _CountedPasses(monkeypatch, rows=100)
    # a hundredth of the Hessian: a step a hundred times too long, whose loss bound fails
    fit = fit_glm(Binomial(), [(X, y)], start=start, start_hessian=-reference.hessian(start) / 100.0)
    assert counted.hessians[:3] == [False, True, True]
    np.testing.assert_allclose(fit.params, expected.params, rtol=1e-9)


def _logistic_loss(X, y, beta):
    eta = X @ beta
    return float(np.sum(np.logaddexp(0.0, eta) - y * eta))


def test_certified_steps_decrease_the_loss_and_short_newton_steps_are_certified():
    """Over random starts and guesses, a certified step never increases the hand-computed
    loss; an exact Newton step of small reach is always certified."""
    rng = np.random.default_rng(6)
    X, y, reference = _data(Binomial(), rng, n=500)
    family = Binomial()
    certified = rejected = 0
    for _ in range(200):
        start = reference.fit().params + rng.normal(scale=rng.choice([0.01, 0.3, 1.0]), size=4)
        exact = -reference.hessian(start)
        guess = exact * np.exp(rng.normal(scale=1.0)) + np.diag(rng.random(4)) * rng.choice([0.0, 50.0])
        at_start = fitting._block_sums(family, X, y, start, None, None, hessian=False, loss=False, collector=None)
        step = np.linalg.solve(guess, at_start.score)
        trial = fitting._block_sums(family, X, y, start + step, None, None, hessian=True, loss=False,
                                    collector=None, previous=start)
        if fitting._guess_decreases(trial, step, at_start.score, family.concordance):
            certified += 1
            assert _logistic_loss(X, y, start + step) <= _logistic_loss(X, y, start) + 1e-9
        else:
            rejected += 1
        newton = np.linalg.solve(exact, at_start.score)
        end = fitting._block_sums(family, X, y, start + newton, None, None, hessian=True, loss=False,
                                  collector=None, previous=start)
        if end.reach <= 0.5:
            assert fitting._guess_decreases(end, newton, at_start.score, family.concordance)
    assert certified > 20 and rejected > 20, (certified, rejected)


@pytest.mark.parametrize("cls", [ppinfer.Logit, ppinfer.Poisson])
def test_ppi_fits_start_from_the_labeled_hessian(cls, monkeypatch):
    """The unlabeled prediction fit's first pass has no Hessian, and the PPI++ estimate is
    the labeled fit plus lambda times the difference of statsmodels' prediction fits."""
    rng = np.random.default_rng(7)
    n, N = 800, 20000
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    Xu = np.column_stack([np.ones(N), rng.normal(size=(N, 2))])
    beta = np.array([0.3, 0.5, -0.4])
    if cls is ppinfer.Logit:
        y = (rng.random(n) < 1 / (1 + np.exp(-X @ beta))).astype(float)
        f = 1 / (1 + np.exp(-(X @ beta + 0.3)))
        fu = 1 / (1 + np.exp(-(Xu @ beta + 0.3)))
        sm_family = sm.families.Binomial()
    else:
        y = rng.poisson(np.exp(X @ beta)).astype(float)
        f, fu = np.exp(X @ beta + 0.2), np.exp(Xu @ beta + 0.2)
        sm_family = sm.families.Poisson()
    counted = _CountedPasses(monkeypatch, rows=n)
    res = cls(y, X, f, Xu, fu).fit(method="ppi", use_t=False)
    assert counted.hessians[0] is False
    assert len(counted.hessians) <= 4
    fit_y = sm.GLM(y, X, family=sm_family).fit(tol=1e-13).params
    fit_f = sm.GLM(f, X, family=sm_family).fit(tol=1e-13).params
    fit_u = sm.GLM(fu, Xu, family=sm_family).fit(tol=1e-13).params
    np.testing.assert_allclose(res.params, fit_y + fit_u - fit_f, rtol=1e-9, atol=1e-11)


def _sums_by_hand(scores, codes, ngroups):
    s1 = np.stack([scores[codes == g].sum(axis=0) for g in range(ngroups)])
    s2 = np.stack([scores[codes == g].T @ scores[codes == g] for g in range(ngroups)])
    return s1, s2, np.bincount(codes, minlength=ngroups).astype(float)


@pytest.mark.parametrize("design", ["plain", "strata", "clusters"])
def test_design_collector_sums_equal_the_scores_sums(design):
    """The collector fed by a Poisson fit's last pass holds the sums of the scores
    ``x_i (y_i - exp(x_i'b))`` at statsmodels' estimate (by stratum, or by PSU)."""
    rng = np.random.default_rng(8)
    n = 30_000  # several chunks of the fit's passes
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    y = rng.poisson(np.exp(X @ np.array([0.1, 0.3, -0.2]))).astype(float)
    codes = rng.integers(0, 4, size=n)
    factory = {
        "plain": DesignCollectorFactory(None, None, 0, 1),
        "strata": DesignCollectorFactory(None, codes, 0, 4),
        "clusters": DesignCollectorFactory(codes, None, 4, 1),
    }[design]
    fit = fit_glm(Poisson(), [(X, y)], collectors=[factory])
    expected = sm.GLM(y, X, family=sm.families.Poisson()).fit(tol=1e-13).params
    np.testing.assert_allclose(fit.params, expected, rtol=1e-9)
    scores = X * (y - np.exp(X @ expected))[:, None]
    collected = fit.collected[0]
    if design == "clusters":
        totals, _, _ = _sums_by_hand(scores, codes, 4)
        np.testing.assert_allclose(collected.totals, totals, rtol=1e-7, atol=1e-6)
        return
    s1, s2, counts = _sums_by_hand(scores, codes if design == "strata" else np.zeros(n, dtype=int),
                                   4 if design == "strata" else 1)
    np.testing.assert_allclose(collected.s1, s1, rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(collected.s2, s2, rtol=1e-9)
    np.testing.assert_array_equal(collected.counts, counts)


def test_rows_with_vanishing_hessian_weights_take_the_other_path():
    """Poisson rows with offset -400 have means (Hessian weights) near 1e-174, below what the
    one-product path divides by: those chunks sum the Hessian, score and collector apart, and
    the fit, its bread and the collector's sums still equal statsmodels' and NumPy's. Those rows
    (all with y = 0) add less than 1e-170 to any sum, so the reference is statsmodels' fit of
    the other rows (its fit with the offsets stops at the start: the deviance hardly moves)."""
    rng = np.random.default_rng(9)
    n = 20_000
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    offset = np.where(np.arange(n) % 3 == 0, -400.0, 0.0)
    y = rng.poisson(np.exp(X @ np.array([0.2, 0.3, -0.2]) + offset)).astype(float)
    # started near the solution: the usual starting values regress log(y + 1/2) - offset, far off here
    start = np.array([0.2, 0.3, -0.2])
    fit = fit_glm(Poisson(), [(X, y)], offsets=[offset], collectors=[DesignCollectorFactory(None, None, 0, 1)],
                  start=start)
    assert not np.any(y[offset < 0])
    model = sm.GLM(y[offset == 0], X[offset == 0], family=sm.families.Poisson())
    expected = model.fit(tol=1e-13).params
    np.testing.assert_allclose(fit.params, expected, rtol=1e-9)
    np.testing.assert_allclose(fit.bread, np.linalg.inv(-model.hessian(expected)), rtol=1e-8)
    scores = X * (y - np.exp(X @ expected + offset))[:, None]
    np.testing.assert_allclose(fit.collected[0].s2[0], scores.T @ scores, rtol=1e-9)
    np.testing.assert_allclose(fit.collected[0].s1[0], scores.sum(axis=0), atol=1e-6)


def _glm_data(rng, N, n=400):
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    Xu = np.column_stack([np.ones(N), rng.normal(size=(N, 2))])
    beta = np.array([0.2, 0.5, -0.3])
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ beta))).astype(float)
    return y, X, 1 / (1 + np.exp(-X @ beta - 0.2)), Xu, 1 / (1 + np.exp(-Xu @ beta - 0.2))


def test_sampled_rows_of_full_rank_need_no_other_pass():
    y, X, f, Xu, fu = _glm_data(np.random.default_rng(10), 50_000)
    assert ppinfer.Logit(y, X, f, Xu, fu).unlabeled_passes == 1


@pytest.mark.parametrize("partitioned", [False, True], ids=["in-memory", "float32-partitions"])
def test_a_dummy_missed_by_the_sampled_rows_takes_one_pass_more(partitioned):
    """A dummy that is 1 only on rows the sample skips (row 5 of every 16): the sampled rows
    have an all-zero column, the whole design has full rank, and the fit is statsmodels'."""
    rng = np.random.default_rng(11)
    N = 40_000
    y, X, f, Xu, fu = _glm_data(rng, N)
    dummy_u = (np.arange(N) % 16 == 5).astype(float)
    dummy = (rng.random(X.shape[0]) < 0.1).astype(float)
    X, Xu = np.column_stack([X, dummy]), np.column_stack([Xu, dummy_u])
    unlabeled = Xu.astype(np.float32) if partitioned else Xu
    model = ppinfer.Logit(y, X, f, unlabeled, fu)
    assert model.unlabeled_passes == 2
    res = model.fit(method="ppi", use_t=False)
    fit_u = sm.GLM(fu, unlabeled.astype(float), family=sm.families.Binomial()).fit(tol=1e-13).params
    fit_f = sm.GLM(f, X, family=sm.families.Binomial()).fit(tol=1e-13).params
    fit_y = sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=1e-13).params
    np.testing.assert_allclose(res.params, fit_y + fit_u - fit_f, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("partitioned", [False, True], ids=["in-memory", "float32-partitions"])
def test_a_collinear_unlabeled_design_is_named_after_the_whole_design_pass(partitioned):
    rng = np.random.default_rng(12)
    y, X, f, Xu, fu = _glm_data(rng, 30_000)
    X = np.column_stack([X, rng.normal(size=X.shape[0])])
    Xu = np.column_stack([Xu, 2.0 * Xu[:, 1] - Xu[:, 2]])
    unlabeled = Xu.astype(np.float32) if partitioned else Xu
    with pytest.raises(ValueError, match=r"^X_unlabeled is rank deficient \(rank 3 < 4 columns\)"):
        ppinfer.Logit(y, X, f, unlabeled, fu)


def test_a_zero_column_of_the_unlabeled_design_is_named():
    rng = np.random.default_rng(13)
    y, X, f, Xu, fu = _glm_data(rng, 30_000)
    X = np.column_stack([X, rng.normal(size=X.shape[0])])
    Xu = np.column_stack([Xu, np.zeros(Xu.shape[0])])
    with pytest.raises(ValueError, match=r"^X_unlabeled has all-zero column\(s\) \['x4'\]"):
        ppinfer.Poisson(y, X, np.exp(X[:, 1]), Xu, np.exp(Xu[:, 1]))
