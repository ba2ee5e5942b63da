"""Figures and the numbers quoted in simulations/README.md, from simulations/results/*.csv.

    python simulations/report.py

Reads the per-estimand summaries written by run_study.py (and naive_by_N.csv), writes
results/coverage.png, width.png, effective_n.png and naive_by_N.png,
and prints the tables of the README.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ppinfer import simulation as sim  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DPI = 80


def save(figure, name: str) -> None:
    figure.savefig(RESULTS / name, dpi=DPI)
    plt.close(figure)
    print(f"wrote {RESULTS / name}")


def markdown(frame: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].map(lambda v: "" if pd.isna(v) else floatfmt.format(v))
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def main() -> None:
    paths = [RESULTS / f"{e}.csv" for e in sim.BUILTIN_ESTIMANDS if (RESULTS / f"{e}.csv").exists()]
    study = sim.concat([sim.load(path) for path in paths])
    nominal, reps = 1 - study.alpha, study.reps
    band = 3.5 * np.sqrt(nominal * (1 - nominal) / reps)
    print(f"{len(study.scenarios)} scenarios, {reps} replications each, seed {study.seed}; "
          f"nominal {nominal:g}, 3.5 MC SE = {band:.3f}\n")
    print(f"invalid methods (drawn apart, coverage on the 0-1 scale): {study.invalid_methods()}")
    save(study.plot("coverage"), "coverage.png")
    save(study.plot("width"), "width.png")
    save(study.plot("effective_n"), "effective_n.png")

    focus = study.summary(parameter="focus")
    # 1. coverage of each method over the whole grid
    rows = []
    for method, block in focus.groupby("method", sort=False):
        outside = (block["coverage"] - nominal).abs() > band
        rows.append({"method": method, "min coverage": block["coverage"].min(), "median": block["coverage"].median(),
                     "max": block["coverage"].max(), f"outside {nominal:g} +- 3.5 MC SE": f"{outside.sum()} of {len(block)}"})
    print("Coverage over every scenario (focus parameters):\n" + markdown(pd.DataFrame(rows)) + "\n")
    for method in ("ppi", "ppi++"):
        block = focus[(focus["method"] == method) & ((focus["coverage"] - nominal).abs() > band)]
        if len(block):
            print(f"{method} scenarios outside the band:\n{block[study.scenario_columns + ['coverage']].to_string()}\n")
    by_estimand = focus.pivot_table(index="estimand", columns="method", values="coverage", aggfunc="min", sort=False)
    print("Lowest coverage per estimand:\n" + markdown(by_estimand[study.methods].reset_index()) + "\n")

    # 2. naive pooling by bias (paper grid) ...
    naive = focus[focus["method"] == "naive"]
    table = naive.pivot_table(index="estimand", columns=["prediction_bias"], values="coverage", aggfunc="median", sort=False)
    table.columns = [f"bias {b:g}: median naive coverage" for b in table.columns]
    print("Naive pooling (paper grid, N = 10,000):\n" + markdown(table.reset_index()) + "\n")

    # 3. PPI++ against classical: ratio of mean widths on the same replications
    wide = focus.pivot_table(index=study.scenario_columns, columns="method", values="mean_width")
    ratio = (wide["ppi++"] / wide["classical"]).rename("ratio")
    worst = ratio.idxmax()
    where = ", ".join(f"{k} {v:g}" if not isinstance(v, str) else f"{k} {v}" for k, v in zip(study.scenario_columns, worst))
    print(f"PPI++ / classical mean width: max {ratio.max():.3f} at ({where}), "
          f"median {ratio.median():.3f}, min {ratio.min():.3f}")
    by_quality = ratio.groupby(level="prediction_quality").agg(["min", "median", "max"])
    print("by prediction quality:\n" + markdown(by_quality.reset_index()) + "\n")
    ppi_ratio = (wide["ppi"] / wide["classical"]).groupby(level=["prediction_quality", "prediction_bias"]).max()
    print("PPI / classical mean width, max over n and estimands:\n" + markdown(ppi_ratio.rename("max").reset_index()) + "\n")

    # 4. effective sample size of PPI++ as a function of quality (bias 0), and the mean's theory
    ppipp = focus[(focus["method"] == "ppi++") & (focus["prediction_bias"] == 0.0)].copy()
    ppipp["gain"] = ppipp["effective_n_empirical"] / ppipp["n"]
    gain = ppipp[ppipp["n"] == 200].pivot_table(index="prediction_quality", columns="estimand", values="gain", sort=False)
    rho = gain.index.to_numpy()
    gain["theory (mean)"] = 1.0 / (1.0 - rho**2 * 10_000 / (200 + 10_000))
    print("PPI++ effective n / n at n = 200, N = 10,000, bias 0 (n x MSE classical / MSE PPI++):\n"
          + markdown(gain.reset_index(), "{:.2f}") + "\n")

    naive_path = RESULTS / "naive_by_N.csv"
    if naive_path.exists():
        by_n = sim.load(naive_path)
        save(by_n.plot("coverage", x="N"), "naive_by_N.png")
        frame = by_n.summary(parameter="focus", methods=["naive", "ppi++"])
        table = frame.pivot_table(index=["estimand", "method", "prediction_bias"], columns="N", values="coverage")
        table.columns = [f"N = {n:,}" for n in table.columns]
        print(f"Coverage by N (n = 200, quality 0.9, {by_n.reps} replications):\n" + markdown(table.reset_index()) + "\n")


if __name__ == "__main__":
    main()
