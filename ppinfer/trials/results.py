"""Results of a trial analysis: contrasts of arms, their tests and multiplicity adjustments."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ..results import PPIResults
from .contrasts import Contrast

__all__ = ["TrialResults"]


class TrialResults(PPIResults):
    """Results of :meth:`ppinfer.TreatmentEffect.fit`: one parameter per contrast of two arms.

    Everything :class:`~ppinfer.PPIResults` has, and the attributes below.

    Attributes
    ----------
    contrast : Contrast
        The contrast estimated (``contrast.name`` is ``"diff"``, ``"rr"``, ...).
        Tests, ``tvalues`` and ``pvalues`` are against its no-effect value
        ``contrast.null`` (0 for differences and logs, 1 for ratios).
    arm_means : pandas.DataFrame
        The estimated mean (risk, for a binary outcome) of each arm, with its
        standard error.
    df : pandas.Series or None
        Degrees of freedom of the t reference distribution (``use_t=True``).

    Examples
    --------
    Two doses against placebo, adjusted for a baseline covariate:

    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(3)
    >>> arm = rng.permutation(np.repeat(["placebo", "low", "high"], 100))
    >>> x = rng.normal(size=300)
    >>> y = x + 0.2 * (arm == "low") + 0.6 * (arm == "high") + rng.normal(size=300)
    >>> res = ppinfer.TreatmentEffect(y, arm, X=x, control="placebo").fit(method="ancova")
    >>> res.contrast.name, res.params.round(2).to_dict()
    ('diff', {'high - placebo': 0.59, 'low - placebo': 0.14})
    >>> print(res.arm_means.round(2))
             estimate    se
    arm
    placebo      0.10  0.11
    high         0.69  0.12
    low          0.24  0.12

    Both contrasts at once: Holm-adjusted p-values and simultaneous intervals.

    >>> res.adjusted_pvalues("holm").round(3).to_dict()
    {'high - placebo': 0.0, 'low - placebo': 0.317}
    >>> print(res.simultaneous_conf_int().round(2))
                    lower  upper
    high - placebo   0.28   0.91
    low - placebo   -0.17   0.45
    """

    def __init__(
        self,
        *,
        contrast: Contrast,
        arm_names: list[str],
        arm_values: np.ndarray,
        arm_covariance: np.ndarray,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.contrast = contrast
        self._arms = (arm_names, arm_values, arm_covariance)

    @cached_property
    def arm_means(self) -> pd.DataFrame:
        names, values, covariance = self._arms
        return pd.DataFrame(
            {"estimate": values, "se": np.sqrt(np.diag(covariance))}, index=pd.Index(names, name="arm")
        )

    def test(self, null=None, alternative: str = "two-sided") -> pd.DataFrame:
        """Tests of each contrast against ``null`` (default: no effect, ``contrast.null``).

        See :meth:`ppinfer.results.PPIResults.test`.
        """
        return super().test(self.contrast.null if null is None else null, alternative)

    @cached_property
    def tvalues(self) -> pd.Series:
        """Test statistics against no effect (``contrast.null``)."""
        return self.test()["statistic"].rename("t" if self.use_t else "z")

    def adjusted_pvalues(self, method: str = "holm") -> pd.Series:
        """p-values adjusted for testing every contrast; see :func:`ppinfer.multiplicity.adjusted_pvalues`."""
        from ..multiplicity import adjusted_pvalues

        return adjusted_pvalues(self, method=method)

    def simultaneous_conf_int(self, alpha: float = 0.05, method: str = "max-z", alternative: str = "two-sided"):
        """Intervals covering every contrast at once; see :func:`ppinfer.multiplicity.simultaneous_conf_int`."""
        from ..multiplicity import simultaneous_conf_int

        return simultaneous_conf_int(self, alpha=alpha, method=method, alternative=alternative)
