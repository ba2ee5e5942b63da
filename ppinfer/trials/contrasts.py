"""Contrasts of arm means: differences, ratios and odds ratios, and their logs.

Every trial estimator first estimates the arm means ``p_a`` (risks for a binary
endpoint) with influence rows; a contrast ``c(p_t, p_c)`` of two arms then has the
influence rows ``dc/dp_t * rows_t + dc/dp_c * rows_c`` (the delta method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.options import choose


@dataclass(frozen=True)
class Contrast:
    """A contrast of two arm means.

    Attributes
    ----------
    name : str
        The keyword (``"diff"``, ``"rr"``, ``"or"``, ``"logrr"``, ``"logor"``).
    description : str
        What it is called in a summary.
    null : float
        Its value when the arms do not differ (0 or 1).
    value, gradient : callables of (p_t, p_c)
        The contrast and its derivatives with respect to ``p_t`` and ``p_c``.
    domain : str
        The arm means it is defined for (empty: any).
    """

    name: str
    description: str
    null: float
    value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    gradient: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    domain: str = ""

    def label(self, treated: str, control: str) -> str:
        """The parameter name of the contrast of arm ``treated`` with arm ``control``."""
        return {
            "diff": f"{treated} - {control}",
            "rr": f"{treated} / {control}",
            "logrr": f"log({treated} / {control})",
            "or": f"odds({treated}) / odds({control})",
            "logor": f"log(odds({treated}) / odds({control}))",
        }[self.name]

    def check(self, means: np.ndarray, labels: list[str]) -> None:
        """Raise if an arm mean lies outside the contrast's domain."""
        if self.domain == "positive":
            bad = ~(means > 0.0)
        elif self.domain == "probability":
            bad = ~((means > 0.0) & (means < 1.0))
        else:
            return
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            what = "positive" if self.domain == "positive" else "strictly between 0 and 1"
            raise ValueError(
                f"contrast={self.name!r} ({self.description}) needs arm means {what}; the estimated mean of "
                f"arm {labels[first]!r} is {means[first]:.4g}. Use contrast='diff'."
            )


def _odds(p):
    return p / (1.0 - p)


def _logit_slope(p):
    return 1.0 / (p * (1.0 - p))


CONTRASTS = {
    "diff": Contrast(
        "diff", "difference", 0.0, lambda t, c: t - c, lambda t, c: (np.ones_like(t), -np.ones_like(c))
    ),
    "rr": Contrast(
        "rr", "ratio (risk ratio)", 1.0, lambda t, c: t / c, lambda t, c: (1.0 / c, -t / c**2), "positive"
    ),
    "logrr": Contrast(
        "logrr", "log ratio (log risk ratio)", 0.0, lambda t, c: np.log(t) - np.log(c),
        lambda t, c: (1.0 / t, -1.0 / c), "positive",
    ),
    "or": Contrast(
        "or", "odds ratio", 1.0, lambda t, c: _odds(t) / _odds(c),
        lambda t, c: (_odds(t) / _odds(c) * _logit_slope(t), -_odds(t) / _odds(c) * _logit_slope(c)),
        "probability",
    ),
    "logor": Contrast(
        "logor", "log odds ratio", 0.0, lambda t, c: np.log(_odds(t)) - np.log(_odds(c)),
        lambda t, c: (_logit_slope(t), -_logit_slope(c)), "probability",
    ),
}

#: accepted spellings of each contrast
CONTRAST_NAMES = {
    "diff": "diff",
    "difference": "diff",
    "rd": "diff",
    "risk difference": "diff",
    "rr": "rr",
    "ratio": "rr",
    "risk ratio": "rr",
    "logrr": "logrr",
    "log rr": "logrr",
    "or": "or",
    "odds ratio": "or",
    "logor": "logor",
    "log or": "logor",
}

#: which pairs of arms are compared
COMPARISONS = {"control": "control", "vs-control": "control", "pairwise": "pairwise", "all": "pairwise"}


def choose_contrast(contrast: str) -> Contrast:
    return CONTRASTS[choose(contrast, CONTRAST_NAMES, "contrast")]


def arm_pairs(count: int, comparisons: str) -> list[tuple[int, int]]:
    """(treated, control) arm positions: each arm against arm 0, or every pair."""
    if comparisons == "control":
        return [(a, 0) for a in range(1, count)]
    return [(a, b) for b in range(count) for a in range(b + 1, count)]


def contrast_rows(
    contrast: Contrast, means: np.ndarray, rows: np.ndarray, pairs: list[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Contrast values (J,) and their influence rows (n, J) from arm means (K,) and rows (n, K)."""
    treated = np.array([t for t, _ in pairs])
    control = np.array([c for _, c in pairs])
    values = contrast.value(means[treated], means[control])
    slope_t, slope_c = contrast.gradient(means[treated], means[control])
    return values, rows[:, treated] * slope_t + rows[:, control] * slope_c


def contrast_gradient(contrast: Contrast, means: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """(K, J) derivatives of the contrasts with respect to the arm means (the delta method's weights)."""
    treated = np.array([t for t, _ in pairs])
    control = np.array([c for _, c in pairs])
    slope_t, slope_c = contrast.gradient(means[treated], means[control])
    gradient = np.zeros((means.shape[0], len(pairs)))
    columns = np.arange(len(pairs))
    gradient[treated, columns] = slope_t
    gradient[control, columns] = slope_c
    return gradient
