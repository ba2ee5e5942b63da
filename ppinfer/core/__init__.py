"""The estimator-independent core: validation, fitting, variance algebra, inference, results.

Nothing here knows a particular estimator or sampling design; models build on it.
"""
