"""ppinfer: valid statistical inference with machine-learning predictions.

Prediction-powered inference (PPI) and its power-tuned form PPI++ combine a small
labeled sample (gold-standard outcomes with predictions) with a large unlabeled
sample (predictions only). The estimates stay valid whatever the predictions'
quality and are more precise than labeled-only ("classical") ones when the
predictions are good.

>>> import ppinfer
>>> model = ppinfer.OLS(y, X, yhat, X_unlabeled, yhat_unlabeled)   # doctest: +SKIP
>>> model.fit(method="ppi++").summary()                             # doctest: +SKIP
"""

from .core.sources import ParquetTable, read_parquet
from .core.warnings import (
    ConstantOutcomeWarning, FewClustersWarning, PPIWarning, SeparationWarning, SmallSampleWarning,
)
from .designs import Design
from .formula import glm, logit, ols, poisson
from .mean import Mean
from .models.mean import Ratio, Total
from .quantile import Quantile
from .models.mestimator import MEstimator
from .regression import GLM, OLS, Logit, Poisson
from .results import PPIResults

__version__ = "0.1.0"

#: names imported on first use (heavier modules, and subpackages)
_LAZY = {
    "TreatmentEffect": "ppinfer.trials",
    "treatment_effect": "ppinfer.trials",
    "TrialResults": "ppinfer.trials",
    "cross_fit": "ppinfer.crossfit",
    "CrossFitPredictions": "ppinfer.crossfit",
    "SyntheticGMM": "ppinfer.models.synthetic",
    "MultipleImputation": "ppinfer.models.imputation",
    "rubin_combine": "ppinfer.models.imputation",
    "ppboot": "ppinfer.models.ppboot",
    "PPBoot": "ppinfer.models.ppboot",
    "LabelShift": "ppinfer.label_shift",
    "multiplicity": None,
    "power": None,
    "simulation": None,
    "datasets": None,
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'ppinfer' has no attribute {name!r}")
    import importlib

    module = _LAZY[name]
    value = importlib.import_module(f"ppinfer.{name}") if module is None else getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "Mean",
    "Total",
    "Ratio",
    "Quantile",
    "OLS",
    "Logit",
    "Poisson",
    "GLM",
    "MEstimator",
    "ols",
    "logit",
    "poisson",
    "glm",
    "PPIResults",
    "Design",
    "read_parquet",
    "ParquetTable",
    "PPIWarning",
    "SmallSampleWarning",
    "FewClustersWarning",
    "SeparationWarning",
    "ConstantOutcomeWarning",
    *_LAZY,
]
