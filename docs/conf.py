"""Sphinx configuration of ppinfer's documentation (``sphinx-build -W -b html docs docs/_build``)."""

import ppinfer

project = "ppinfer"
author = "ppinfer developers"
release = ppinfer.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()
html_theme = "pydata_sphinx_theme"
html_title = "ppinfer"
html_theme_options = {"navigation_with_keys": False}
exclude_patterns = ["_build"]
nitpicky = False
