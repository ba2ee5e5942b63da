"""Print the Monte Carlo figures that the GLM, M-estimator, predicted-covariate, bootstrap and
label-shift tests assert, with the tests' own seeds and sizes (nominal 0.90 unless stated).

    python simulations/wave_figures.py            # about a minute on one core
    python simulations/wave_figures.py glm        # one part: glm, m_estimator, predicted_covariates, ...

Each figure is a coverage over seeded replications; its Monte Carlo standard error is
sqrt(p (1 - p) / reps) (0.017 at 300 replications).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
warnings.simplefilter("ignore")


def show(title: str, table: dict) -> None:
    print(f"\n{title}")
    for label, value in table.items():
        print(f"  {label:28s} {np.array2string(np.round(np.asarray(value, dtype=float), 3))}")


def glm() -> None:
    import test_glm as t

    for index, (case, (n, N, predict)) in enumerate(t.COVERAGE_CASES.items()):
        coverage, widths = t.coverage_run(case, n, N, 300, seed=20_251_000 + index, predict=predict)
        show(f"GLM {case} (n={n}, N={N}, 300 reps): coverage per coefficient; mean widths",
             {**{f"coverage {k}": v for k, v in coverage.items()}, **{f"width {k}": v for k, v in widths.items()}})


def m_estimator() -> None:
    import test_mestimator as t

    huber = t.run_coverage(t.huber_data, t.huber_score(1.5), np.array([0.5, 1.0, -0.5]),
                           lambda labeled: np.linalg.lstsq(labeled[t.COLUMNS], labeled["y"], rcond=None)[0],
                           200, seed=20_251_100)
    show("MEstimator, Huber regression, t(3) errors (n=150, 200 reps): coverage per coefficient", huber)
    iv = t.run_coverage(lambda rng: t.iv_data(rng, n=200, N=2000), t.iv_score, np.array([1.0, 2.0]),
                        lambda labeled: np.zeros(2), 200, seed=20_251_200)
    show("MEstimator, instrumental variables (n=200, N=2000, 200 reps): coverage per coefficient", iv)


def predicted_covariates() -> None:
    import test_predicted_covariates as t

    for case, (family, reps, n, N, seed) in t.CASES.items():
        study = t.coverage_study(family, reps, n, N, seed)
        show(f"predicted covariate, {case} (n={n}, N={N}, {reps} reps): coverage per coefficient",
             {label: cover for label, (cover, _) in study.items()})


def bootstrap() -> None:
    import test_ppboot as t

    for case, (target, reps, n, N, n_boot, seed) in t.CASES.items():
        study = t.coverage_study(target, reps, n, N, n_boot, seed)
        show(f"ppboot, {case} (n={n}, N={N}, {reps} reps of {n_boot} resamples): coverage, mean width",
             {label: value for label, value in study.items()})


def label_shift() -> None:
    import test_label_shift as t

    for name in t.SCENARIOS:
        covered, naive = t.coverage(name, 1_000)
        show(f"label shift, {name} (1000 reps): coverage per class", {"ppinfer": covered, "naive": naive})


if __name__ == "__main__":
    chosen = set(sys.argv[1:])
    for part in (glm, m_estimator, predicted_covariates, bootstrap, label_shift):
        if not chosen or part.__name__ in chosen:
            part()
