"""The arms of a trial: which label is the control, which are treated, and their codes.

A 0/1 or boolean assignment is unambiguous (1 or True is treated). Any other coding
(``"placebo"``/``"active"``, 1/2, several doses) must name the control arm, or with
two arms the treated one, so that no sort order decides the sign of an effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Arms:
    """Arm labels and each unit's arm code.

    Attributes
    ----------
    labels : tuple
        Arm labels, the control arm first, then the others in sorted order.
    codes : (n,) int array
        Each unit's arm as a position in ``labels``.
    binary_coded : bool
        The assignment was 0/1 or boolean (two arms, no names to show).
    """

    labels: tuple
    codes: np.ndarray
    binary_coded: bool

    @property
    def count(self) -> int:
        """Number of arms."""
        return len(self.labels)

    @property
    def names(self) -> list[str]:
        """Labels as text (``"treated"``/``"control"`` for a 0/1 assignment)."""
        if self.binary_coded:
            return ["control", "treated"]
        return [str(label) for label in self.labels]

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=self.count)

    @property
    def shares(self) -> np.ndarray:
        """Fraction of units in each arm, ``n_a / n``."""
        return self.sizes / self.codes.shape[0]

    def indicators(self) -> np.ndarray:
        """(n, K) 0/1 matrix, column ``a`` marking the units of arm ``a``."""
        return (self.codes[:, None] == np.arange(self.count)).astype(float)


def _is_binary_coding(levels: list) -> bool:
    if len(levels) != 2:
        return False
    if all(isinstance(level, (bool, np.bool_)) for level in levels):
        return True
    try:
        return sorted(float(level) for level in levels) == [0.0, 1.0] and not any(
            isinstance(level, str) for level in levels
        )
    except (TypeError, ValueError):
        return False


def _find(level, levels: list, argument: str):
    """The element of ``levels`` equal to ``level`` (or to its text), or a ValueError."""
    for candidate in levels:
        if candidate == level:
            return candidate
    for candidate in levels:
        if str(candidate) == str(level):
            return candidate
    raise ValueError(f"{argument}={level!r} is not an arm of treatment; its levels are {levels}.")


def arm_codes(
    values: pd.Series, *, treated=None, control=None, argument: str = "treatment"
) -> tuple[np.ndarray, tuple, bool]:
    """Float arm codes (NaN where the label is missing), the arm labels and whether
    the assignment is 0/1 coded (see :class:`Arms`).

    Parameters
    ----------
    values : pandas.Series
        One label per unit, of any type.
    treated, control : optional
        The treated arm (two arms only) and the control arm. Needed unless the
        labels are 0/1 or boolean.
    argument : str
        The argument's name in error messages.
    """
    missing = values.isna().to_numpy()
    present = values[~missing]
    try:
        levels = sorted(pd.unique(present).tolist())
    except TypeError:  # mixed types: sort by text
        levels = sorted(pd.unique(present).tolist(), key=str)
    if len(levels) < 2:
        raise ValueError(
            f"{argument} has {len(levels)} distinct arm(s) {levels}; a trial needs at least two arms."
        )
    binary_coded = _is_binary_coding(levels)
    if treated is not None and len(levels) > 2:
        raise ValueError(
            f"treated={treated!r} applies to two-arm trials; {argument} has {len(levels)} arms {levels}. "
            "Name the control arm with control=; every other arm is compared with it."
        )
    if treated is not None and control is not None:
        treated, control = _find(treated, levels, "treated"), _find(control, levels, "control")
        if treated == control:
            raise ValueError(f"treated and control are the same arm ({treated!r}).")
    elif treated is not None:
        treated = _find(treated, levels, "treated")
        control = next(level for level in levels if level != treated)
    elif control is not None:
        control = _find(control, levels, "control")
    elif binary_coded:
        control = levels[0]  # 0 or False
    else:
        hint = "treated= (or control=)" if len(levels) == 2 else "control="
        raise ValueError(
            f"{argument} has arms {levels}; say which is which with {hint}, e.g. "
            f"{hint.split('=')[0]}={levels[-1 if len(levels) == 2 else 0]!r}. Only a 0/1 or boolean "
            "assignment is read without it (1 or True treated), so that no sort order decides the "
            "sign of the effect."
        )
    labels = (control, *[level for level in levels if level != control])
    position = {label: k for k, label in enumerate(labels)}
    codes = np.full(values.shape[0], np.nan)
    codes[~missing] = [position[label] for label in present.tolist()]
    return codes, labels, binary_coded and labels[0] == levels[0]
