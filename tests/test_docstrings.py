"""Docstrings: every example runs (doctest), and no docstring points outside the package."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import warnings

import matplotlib
import pytest

import ppinfer

matplotlib.use("Agg")

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(ppinfer.__path__, "ppinfer.")
    if name not in ("ppinfer.__main__",)
)
#: developers' files that do not ship with the package
OUTSIDE = ("METHODS.md", "ARCHITECTURE.md", "STYLE.md", "../shared")


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        failures, _ = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
                                      verbose=False, report=False)
    assert failures == 0, f"{failures} failing example(s) in {name}: run python -m doctest -v on it"


@pytest.mark.parametrize("name", MODULES)
def test_no_docstring_points_outside_the_package(name):
    module = importlib.import_module(name)
    texts = [inspect.getdoc(module) or ""]
    for _, value in inspect.getmembers(module):
        if getattr(value, "__module__", None) == name:
            texts.append(inspect.getdoc(value) or "")
            if inspect.isclass(value):
                texts += [inspect.getdoc(member) or "" for _, member in inspect.getmembers(value)
                          if getattr(member, "__module__", None) == name]
    for text in texts:
        for word in OUTSIDE:
            assert word not in text, f"{name}: a docstring mentions {word}, which users do not have"


#: the main entry points: each has an Examples section
DOCUMENTED = ["Mean", "Total", "Ratio", "Quantile", "OLS", "Logit", "Poisson", "GLM", "MEstimator", "ols",
              "logit", "poisson", "glm", "ppboot", "LabelShift", "Design", "TreatmentEffect", "treatment_effect",
              "SyntheticGMM", "MultipleImputation", "cross_fit"]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_entry_points_have_examples(name):
    text = inspect.getdoc(getattr(ppinfer, name)) or ""
    assert "Examples\n--------" in text and ">>>" in text, f"ppinfer.{name} has no Examples section"
