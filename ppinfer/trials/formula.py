"""The formula interface of trials: ``treatment_effect("y ~ arm + age", data=...)``.

A one-line alias of :meth:`TreatmentEffect.from_formula
<ppinfer.trials.model.TreatmentEffect.from_formula>`; the parsing is
:mod:`ppinfer.core.formula`'s.
"""

from __future__ import annotations

from .model import TreatmentEffect

__all__ = ["treatment_effect"]

treatment_effect = TreatmentEffect.from_formula
