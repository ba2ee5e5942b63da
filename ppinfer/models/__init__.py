"""ppinfer's estimators: each a model holding validated data and a design, with ``fit()``."""
