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
    """A fit went ahead with a fallback or in conditions the user should know about."""


class SmallSampleWarning(PPIWarning):
    """The labeled sample is small (fewer than 30 rows, or fewer than 10 rows per parameter):
    large-sample intervals may under-cover; prefer ``use_t=True`` and a leverage-adjusted
    ``cov_type`` (the defaults)."""


class FewClustersWarning(PPIWarning):
    """Few clusters (primary sampling units), or clusters of very unequal size: cluster-robust
    variances are biased downwards; prefer ``cov_type="CR2"`` with ``use_t=True`` (the defaults)."""


class SeparationWarning(PPIWarning):
    """A logistic (or other bounded-mean) fit is near separation: fitted means within 1e-6 of
    their bounds or very large coefficients. Estimates and standard errors are unreliable."""


class ConstantOutcomeWarning(PPIWarning):
    """The labeled outcome is constant: its estimated variance, hence every standard error, is 0."""
