"""A GLM fit's first step made with an approximate Hessian (``fit_glm(start_hessian=...)``).

The PPI fits of the unlabeled predictions start from the labeled prediction fit
and take their first step with that fit's Hessian, scaled to the unlabeled
sample's total weight, so that the pass at the start computes the score alone.

Reference values: statsmodels' ``GLM`` (coefficients and the inverse of its
Hessian at the estimate) and the logistic loss computed here by hand. The step
is kept only when a bound certifies that the loss decreases; these tests check
the bound against the loss itself, and that a poor approximation (too small,
too large, wrong directions) changes neither the estimate nor the bread.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

import ppinfer
import ppinfer.core.fitting as fitting
from ppinfer.core.families import Binomial, Poisson
from ppinfer.core.fitting import fit_glm

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
