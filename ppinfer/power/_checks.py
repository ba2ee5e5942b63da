"""Argument checks shared by the study-design functions."""

from __future__ import annotations

import math


def finite_number(value, argument: str) -> float:
    """``value`` as a finite float, or a TypeError / ValueError naming ``argument``."""
    if isinstance(value, bool):
        raise TypeError(f"{argument} must be a number; got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{argument} must be a number; got {value!r}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{argument} must be finite; got {value!r}.")
    return number
