"""Warnings ppinfer issues when a fit goes ahead but its numbers deserve caution."""

from __future__ import annotations

__all__ = [
    "PPIWarning",
    "SmallSampleWarning",
    "FewClustersWarning",
    "SeparationWarning",
    "ConstantOutcomeWarning",
]


class PPIWarning(UserWarning):
    """A fit went ahead with a fallback or in conditions the user should know about.

    The base class of ppinfer's warnings: filter it to act on all of them at once.

    Examples
    --------
    Turn every ppinfer warning into an error (in a test suite, say), or silence
    them in a loop of simulations:

    >>> import warnings
    >>> import ppinfer
    >>> issubclass(ppinfer.SmallSampleWarning, ppinfer.PPIWarning)
    True
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", ppinfer.PPIWarning)
    ...     try:
    ...         ppinfer.Mean([1.0, 2.0, 4.0], [1.5, 2.0, 3.5], [1.0, 2.0, 3.0, 5.0]).fit()
    ...     except ppinfer.PPIWarning as warning:
    ...         print(type(warning).__name__)
    SmallSampleWarning
    """


class SmallSampleWarning(PPIWarning):
    """The labeled sample is small (fewer than 30 rows, or fewer than 10 rows per parameter):
    large-sample intervals may under-cover; prefer ``use_t=True`` and a leverage-adjusted
    ``cov_type`` (the defaults).

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=12); yhat = y + rng.normal(0.0, 0.5, size=12)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     res = ppinfer.Mean(y, yhat, rng.normal(size=500)).fit()
    >>> [w.category.__name__ for w in caught]
    ['SmallSampleWarning']

    Once the defaults are accepted knowingly, the warning can be silenced:

    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", ppinfer.SmallSampleWarning)
    ...     res = ppinfer.Mean(y, yhat, rng.normal(size=500)).fit()
    >>> res.use_t, res.cov_type
    (True, 'HC2')
    """


class FewClustersWarning(PPIWarning):
    """Few clusters (primary sampling units), or clusters of very unequal size: cluster-robust
    variances are biased downwards; prefer ``cov_type="CR2"`` with ``use_t=True`` (the defaults).

    Examples
    --------
    Eight schools of 25 pupils each in the labeled sample:

    >>> import warnings
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=200); yhat = y + rng.normal(0.0, 0.5, size=200)
    >>> school = np.repeat(np.arange(8), 25)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     res = ppinfer.Mean(y, yhat, rng.normal(size=1000), clusters=school).fit()
    >>> [w.category.__name__ for w in caught], res.cov_type
    (['FewClustersWarning'], 'CR2')
    """


class SeparationWarning(PPIWarning):
    """A logistic (or other bounded-mean) fit is near separation: fitted means within 1e-6 of
    their bounds or very large coefficients. Estimates and standard errors are unreliable.

    Examples
    --------
    A covariate that almost determines a binary outcome:

    >>> import warnings
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=200)
    >>> y = (rng.uniform(size=200) < 1 / (1 + np.exp(-6 * x))).astype(float)
    >>> X = np.column_stack([np.ones(200), x])
    >>> X_unlabeled = np.column_stack([np.ones(300), rng.normal(size=300)])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     res = ppinfer.Logit(y, X, 0.2 + 0.6 * y, X_unlabeled, rng.uniform(0.2, 0.8, 300)).fit()
    >>> [w.category.__name__ for w in caught]
    ['SeparationWarning']
    """


class ConstantOutcomeWarning(PPIWarning):
    """The labeled outcome is constant: its estimated variance, hence every standard error, is 0.

    Examples
    --------
    Every labeled unit has the same outcome (raised when the model is built):

    >>> import warnings
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     model = ppinfer.Mean(np.ones(50), rng.uniform(size=50), rng.uniform(size=500))
    >>> [w.category.__name__ for w in caught]
    ['ConstantOutcomeWarning']
    """
