"""The documentation in the code: doctests run, public objects have examples, parameters are documented.

* every module's doctests pass (one test per module);
* every class and function a public ``__all__`` exports has an ``Examples``
  section with at least one ``>>>`` line;
* the estimators' Parameters sections name every argument of their signatures
  (the design keywords included);
* no text in the package points at developer files that do not ship.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import io
import pkgutil
import re
import warnings
from pathlib import Path

import pytest

import ppinfer

#: modules not imported for their doctests: ``python -m ppinfer`` runs the command line on import
SKIPPED_MODULES = {"ppinfer.__main__"}
MODULES = ["ppinfer"] + sorted(
    info.name for info in pkgutil.walk_packages(ppinfer.__path__, "ppinfer.") if info.name not in SKIPPED_MODULES
)
#: the public namespaces whose ``__all__`` is checked for examples
PUBLIC_NAMESPACES = (
    "ppinfer",
    "ppinfer.power",
    "ppinfer.simulation",
    "ppinfer.multiplicity",
    "ppinfer.trials",
    "ppinfer.designs",
    "ppinfer.datasets",
    "ppinfer.label_shift",
    "ppinfer.crossfit",
)
#: estimators whose Parameters section must name every argument of the constructor
DOCUMENTED_CONSTRUCTORS = (
    "ppinfer.Mean",
    "ppinfer.Total",
    "ppinfer.Ratio",
    "ppinfer.OLS",
    "ppinfer.Logit",
    "ppinfer.Poisson",
    "ppinfer.GLM",
    "ppinfer.Quantile",
)
#: developer files that are not part of the distribution
DEVELOPER_FILES = ("METHODS.md", "ARCHITECTURE.md", "STYLE.md", "../shared")
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


@pytest.fixture(autouse=True)
def _quiet_figures():
    """Draw figures off screen and close them after each test."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        yield
        return
    matplotlib.use("Agg")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    with warnings.catch_warnings():
        # warnings a doctest provokes on purpose are recorded inside the doctest itself
        warnings.simplefilter("ignore", ppinfer.PPIWarning)
        for test in finder.find(module, name):
            runner.run(test, out=report.write)
    summary = runner.summarize(verbose=False)
    assert summary.failed == 0, f"{summary.failed} of {summary.attempted} doctest(s) failed in {name}:\n{report.getvalue()}"


def _public_callables():
    for namespace in PUBLIC_NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                yield pytest.param(value, id=f"{namespace}.{name}")


def _section(doc: str, title: str) -> str | None:
    """The text of a numpydoc section (None when the docstring has none)."""
    match = re.search(rf"^{title}\n-+\n(.*?)(?=^\S[^\n]*\n-{{3,}}\n|\Z)", doc, flags=re.M | re.S)
    return None if match is None else match.group(1)


@pytest.mark.parametrize("value", list(_public_callables()))
def test_public_objects_have_examples(value):
    doc = inspect.getdoc(value) or ""
    examples = _section(doc, "Examples")
    assert examples is not None, f"{value.__qualname__} has no Examples section"
    assert ">>>" in examples, f"the Examples section of {value.__qualname__} has no >>> line"


def _documented_parameters(doc: str) -> set[str]:
    section = _section(doc, "Parameters") or ""
    names = set()
    for line in section.splitlines():
        if line and not line[0].isspace():
            head = line.split(" : ")[0].strip()
            names.update(part.strip().lstrip("*") for part in head.split(","))
    return names


@pytest.mark.parametrize("path", DOCUMENTED_CONSTRUCTORS)
def test_constructor_parameters_documented(path):
    cls = getattr(ppinfer, path.split(".")[-1])
    parameters = [
        name for name, parameter in inspect.signature(cls).parameters.items()
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    missing = [name for name in parameters if name not in _documented_parameters(inspect.getdoc(cls))]
    assert not missing, f"{path}'s Parameters section does not document {missing}"


def test_section_parser_finds_parameters():
    doc = "Title.\n\nParameters\n----------\na, b : int\n    Two.\n**kw\n    More.\n\nNotes\n-----\nc : no\n"
    assert _documented_parameters(doc) == {"a", "b", "kw"}
    assert _section(doc, "Examples") is None


def _strings(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_no_developer_files_mentioned():
    """Docstrings (and every other string of the package) stand on their own."""
    root = Path(ppinfer.__file__).parent
    found = [
        f"{path.relative_to(root.parent)}:{line}: {name}"
        for path in sorted(root.rglob("*.py"))
        for line, text in _strings(path)
        for name in DEVELOPER_FILES
        if name in text
    ]
    assert not found, "strings mention developer files:\n" + "\n".join(found)
