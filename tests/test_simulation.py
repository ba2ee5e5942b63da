"""The simulation harness: known coverage, reproducibility, plug-ins, the command line, bad input."""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import ppinfer  # noqa: E402
from ppinfer import simulation as sim  # noqa: E402
from ppinfer.cli import main  # noqa: E402

Z = stats.norm.isf(0.025)


def within_mc_error(observed: float, expected: float, reps: int, *, k: float = 3.5) -> bool:
    return abs(observed - expected) <= k * math.sqrt(expected * (1.0 - expected) / reps)


# -- a user's own setting: heavy-tailed outcomes, a user method --------------------------------


@dataclass(frozen=True)
class Sample:
    y: np.ndarray
    yhat: np.ndarray
    yhat_unlabeled: np.ndarray
    truth: dict

    def model(self):
        return ppinfer.Mean(self.y, self.yhat, self.yhat_unlabeled)


def shifted_t_outcomes(rng, n, N, *, df=np.inf, noise=1.0):
    """Outcomes t(df) (normal for df = inf) with mean 2; predictions = outcome + noise."""
    draw = (lambda size: rng.standard_t(df, size)) if np.isfinite(df) else (lambda size: rng.normal(size=size))
    y = 2.0 + draw(n)
    unlabeled = 2.0 + draw(N)
    return Sample(y, y + noise * rng.normal(size=n), unlabeled + noise * rng.normal(size=N), {"y": 2.0})


class TInterval:
    """Student t interval of the labeled mean: exact 95% coverage for normal outcomes."""

    name = "t interval"

    def __call__(self, dataset):
        return TResults(np.asarray(dataset.y))


class TResults:
    def __init__(self, y):
        self.params = pd.Series([y.mean()], index=["y"])
        self._se = y.std(ddof=1) / math.sqrt(y.size)
        self._df = y.size - 1

    def conf_int(self, alpha=0.05):
        half = stats.t.isf(alpha / 2.0, self._df) * self._se
        mean = self.params.iloc[0]
        return pd.DataFrame({"lower": [mean - half], "upper": [mean + half]}, index=["y"])


def fails_on_odd_means(dataset):
    if dataset.y.mean() > 2.0:
        raise ValueError("refusing")
    return TResults(np.asarray(dataset.y))


# -- validity -------------------------------------------------------------------------------


@pytest.mark.montecarlo
def test_classical_mean_reproduces_the_exact_t_coverage_at_n_30():
    # the classical mean's default interval is ybar +- t_{n-1} * s / sqrt(n) (HC2: the unbiased
    # variance; t with n - 1 degrees of freedom): exact for normal data, coverage 0.95.
    n, reps = 30, 1000  # 3.5 MC SE = 0.024 on the coverage, 0.044 on the power
    expected = 0.95
    scenarios = sim.grid(estimand="mean", n=n, N=1, prediction_quality=0.0)
    study = sim.run(scenarios, ["classical"], reps=reps, seed=11, progress=False)
    row = study.summary().iloc[0]
    assert row["reps"] == reps and row["failures"] == 0
    assert within_mc_error(row["coverage"], expected, reps), (row["coverage"], expected)
    assert row["coverage_mcse"] == pytest.approx(math.sqrt(row["coverage"] * (1 - row["coverage"]) / reps))
    assert row["type1_error"] == pytest.approx(1.0 - row["coverage"])
    # power at the reported shift: a noncentral t with the known outcome sd 1.5 (Y = 1 + x1 + x2/2 + e)
    noncentrality = row["effect_size"] / (1.5 / math.sqrt(n))
    cut = stats.t.isf(0.025, n - 1)
    power = stats.nct.sf(cut, n - 1, noncentrality) + stats.nct.cdf(-cut, n - 1, noncentrality)
    assert within_mc_error(row["power"], power, reps), (row["power"], power)
    # the classical effective sample size is n by definition
    assert row["effective_n"] == pytest.approx(n) and row["effective_n_empirical"] == pytest.approx(n)


@pytest.mark.montecarlo
def test_user_process_and_user_method_plug_in():
    reps = 400
    scenarios = sim.grid(estimand=shifted_t_outcomes, n=[20], N=[500], df=[np.inf, 3.0])
    assert list(scenarios.table.columns) == ["estimand", "n", "N", "df"]
    study = sim.run(scenarios, {"t": TInterval(), "PPI++": "ppi++"}, reps=reps, seed=3, n_jobs=2, progress=False)
    summary = study.summary().set_index(["df", "method"])
    assert set(summary.index) == {(np.inf, "t"), (3.0, "t"), (np.inf, "PPI++"), (3.0, "PPI++")}
    # the t interval is exact for normal outcomes
    assert within_mc_error(summary.loc[(np.inf, "t"), "coverage"], 0.95, reps)
    assert math.isnan(summary.loc[(np.inf, "t"), "effective_n"])  # the user results report none
    assert summary.loc[(np.inf, "PPI++"), "effective_n"] > 20  # ppinfer results report theirs
    assert (summary["estimand"] == "shifted_t_outcomes").all() and (summary["failures"] == 0).all()


# -- reproducibility ---------------------------------------------------------------------------


def test_identical_summaries_for_one_and_two_processes():
    scenarios = sim.grid(estimand=["mean", "ols"], n=[40], N=[300], prediction_quality=[0.7], prediction_bias=[0.0, 0.5])
    one = sim.run(scenarios, reps=12, seed=5, n_jobs=1, progress=False, keep_replications=True)
    two = sim.run(scenarios, reps=12, seed=5, n_jobs=2, progress=False, keep_replications=True)
    pd.testing.assert_frame_equal(one.summary(), two.summary(), check_exact=True)
    pd.testing.assert_frame_equal(one.replications, two.replications, check_exact=True)
    other_seed = sim.run(scenarios, reps=12, seed=6, n_jobs=1, progress=False)
    assert not np.allclose(one.summary()["bias"], other_seed.summary()["bias"])


def test_a_scenario_gives_the_same_numbers_in_any_grid_and_replication_r_its_own_stream():
    small = sim.grid(estimand="mean", n=30, N=100, prediction_quality=0.5)
    large = sim.grid(estimand=["ols", "mean"], n=[30, 60], N=100, prediction_quality=0.5)
    a = sim.run(small, reps=6, seed=9, progress=False, keep_replications=True).replications
    b = sim.run(large, reps=6, seed=9, progress=False, keep_replications=True).replications
    shared = b[(b["estimand"] == "mean") & (b["n"] == 30)].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, shared, check_exact=True)
    # replication r draws from child r of the scenario's child of SeedSequence(seed)
    scenario = small[0]
    parent = np.random.SeedSequence(9, spawn_key=scenario.seed_key)
    data = scenario.draw(np.random.default_rng(parent.spawn(4)[3]))
    row = a[(a["rep"] == 3) & (a["method"] == "classical")].iloc[0]
    assert row["estimate"] == data.labeled["y"].mean()


# -- results object ----------------------------------------------------------------------------


def test_csv_round_trip_plots_and_concat(tmp_path):
    scenarios = sim.grid(estimand=["mean", "quantile"], n=[30, 60], N=200, prediction_quality=[0.5, 0.9])
    study = sim.run(scenarios, reps=5, seed=1, progress=False)
    path = tmp_path / "study.csv"
    study.to_csv(path)
    loaded = sim.load(path)
    pd.testing.assert_frame_equal(study.summary(), loaded.summary(), check_exact=False, rtol=1e-14)
    assert (loaded.reps, loaded.seed, loaded.alpha, loaded.methods) == (5, 1, 0.05, study.methods)
    for metric in ("coverage", "width", "type1", "power", "effective_n"):
        figure = loaded.plot(metric, invalid=None)
        # rows: estimands; columns: the two prediction qualities
        assert len(figure.axes) == 4
        plt.close(figure)
    assert set(study.summary(parameter="focus")["parameter"]) == {"y", "q=0.5"}
    more = sim.run(sim.grid(estimand="ols", n=30, N=200), reps=5, seed=1, progress=False)
    combined = sim.concat([study, more])
    assert len(combined.summary()) == len(study.summary()) + len(more.summary())
    with pytest.raises(ValueError, match="share scenarios"):
        sim.concat([study, study])
    with pytest.raises(ValueError, match="metric='widht'.*Did you mean 'width'"):
        study.plot("widht")


# -- figures: coverage zoomed around nominal, invalid methods apart ---------------------------

SCENARIO_COLUMNS = ["estimand", "n", "N", "prediction_quality", "prediction_bias"]
VALID_COVERAGE = {"classical": 0.93, "ppi": 0.94, "ppi++": 0.96}


def made_up_study(reps: int = 1000, naive_coverage: float = 0.0) -> sim.Study:
    """A summary written here: valid methods at 0.93-0.96, naive pooling far below (or as given)."""
    rows = []
    for estimand, parameter in (("mean", "y"), ("ols", "x1")):
        for quality in (0.5, 0.9):
            for n in (50, 200, 1000):
                coverages = {**VALID_COVERAGE, "naive": naive_coverage if estimand == "ols" else 0.6}
                for method, coverage in coverages.items():
                    mcse = math.sqrt(coverage * (1 - coverage) / reps)
                    rows.append({
                        "estimand": estimand, "n": n, "N": 10_000, "prediction_quality": quality,
                        "prediction_bias": 0.5, "method": method, "parameter": parameter, "reps": reps,
                        "failures": 0, "coverage": coverage, "coverage_mcse": mcse,
                        "type1_error": 1 - coverage, "type1_error_mcse": mcse, "power": 0.8, "power_mcse": 0.01,
                        "mean_width": 1 / math.sqrt(n), "mean_width_mcse": 0.001,
                        "effective_n": 20.0 * n if method == "naive" else (1 + quality) * n,
                    })
    return sim.Study(pd.DataFrame(rows), scenario_columns=SCENARIO_COLUMNS, methods=["classical", "naive", "ppi", "ppi++"],
                     reps=reps, seed=0, alpha=0.05, effect=2.8)


def drawn_methods(ax) -> set:
    return {container.get_label() for container in ax.containers}


def has_horizontal_line_at(ax, level: float) -> bool:
    return any(np.allclose(line.get_ydata(), level) for line in ax.get_lines())


def test_invalid_methods_are_those_far_below_nominal():
    # threshold 1 - alpha - 0.10 - 3.5 sqrt(alpha (1 - alpha) / reps), by hand
    threshold = 0.95 - 0.10 - 3.5 * math.sqrt(0.05 * 0.95 / 1000)
    assert made_up_study().invalid_methods() == ["naive"]
    assert made_up_study(naive_coverage=threshold + 0.001).invalid_methods() == ["naive"]  # mean: 0.6
    study = made_up_study()
    study._summary.loc[study._summary["method"] == "naive", "coverage"] = threshold + 0.001
    assert study.invalid_methods() == []
    study._summary.loc[study._summary["method"] == "naive", "coverage"] = threshold - 0.001
    assert study.invalid_methods() == ["naive"]


def test_coverage_figure_zooms_on_valid_methods_and_draws_invalid_ones_apart(tmp_path):
    study = made_up_study()
    figure = study.plot("coverage")
    figure.savefig(tmp_path / "coverage.png", dpi=50)
    assert (tmp_path / "coverage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = np.array(figure.axes).reshape(4, 2)  # rows: mean, mean apart, ols, ols apart; columns: quality
    lowest = min(c - 1.96 * math.sqrt(c * (1 - c) / 1000) for c in VALID_COVERAGE.values())
    highest = max(c + 1.96 * math.sqrt(c * (1 - c) / 1000) for c in VALID_COVERAGE.values())
    for ax in axes[[0, 2]].ravel():
        assert drawn_methods(ax) == {"Classical", "PPI", "PPI++"}
        low, high = ax.get_ylim()
        assert 0.88 < low <= lowest and highest <= high <= 1.0  # zoomed, every error bar inside
        assert has_horizontal_line_at(ax, 0.95)
    for ax in axes[[1, 3]].ravel():
        assert drawn_methods(ax) == {"Naive pooling"}
        assert ax.get_ylim() == pytest.approx((-0.02, 1.02))
        assert has_horizontal_line_at(ax, 0.95)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend[:4] == ["Classical", "PPI", "PPI++", "Naive pooling"] and "1.96 MC SE" in legend[4]
    plt.close(figure)

    together = study.plot("coverage", invalid=None)
    assert len(together.axes) == 4 and drawn_methods(together.axes[0]) == {"Classical", "Naive pooling", "PPI", "PPI++"}
    assert together.axes[2].get_ylim()[0] < 0.0  # naive pooling at 0 forces the whole scale
    plt.close(together)
    chosen = study.plot("coverage", invalid=["ppi"])
    assert drawn_methods(chosen.axes[2]) == {"PPI"} and len(chosen.axes) == 8
    plt.close(chosen)


def test_type1_figure_zooms_around_alpha():
    figure = made_up_study().plot("type1")
    main = figure.axes[0]
    low, high = main.get_ylim()
    assert -0.02 <= low <= 0.04 - 1.96 * math.sqrt(0.04 * 0.96 / 1000) and 0.07 + 0.0158 <= high < 0.12
    assert has_horizontal_line_at(main, 0.05)
    plt.close(figure)


def test_effective_n_and_power_leave_invalid_methods_out_but_width_keeps_them():
    study = made_up_study()
    for metric in ("effective_n", "power"):
        figure = study.plot(metric)
        assert len(figure.axes) == 4
        assert all(drawn_methods(ax) == {"Classical", "PPI", "PPI++"} for ax in figure.axes)
        assert any("Not drawn: Naive pooling" in text.get_text() for text in figure.texts)
        plt.close(figure)
    figure = study.plot("effective_n")
    assert figure.axes[0].get_yscale() == "log"  # n from 50 to 1000: a log scale on both axes
    plt.close(figure)
    width = study.plot("width")
    assert all("Naive pooling" in drawn_methods(ax) for ax in width.axes)
    plt.close(width)
    with pytest.raises(ValueError, match=r"invalid=\['naiv'\]: methods \['naiv'\] are not in this study"):
        study.plot("coverage", invalid=["naiv"])


def test_failed_fits_are_counted_or_raised():
    scenarios = sim.grid(estimand=shifted_t_outcomes, n=10, N=20)
    with pytest.warns(RuntimeWarning, match="failures"):
        study = sim.run(scenarios, [fails_on_odd_means], reps=40, seed=2, progress=False)
    row = study.summary().iloc[0]
    assert 0 < row["failures"] < 40 and row["reps"] + row["failures"] == 40
    with pytest.raises(sim.SimulationError, match="refusing"):
        sim.run(scenarios, [fails_on_odd_means], reps=40, seed=2, progress=False, errors="raise")


def test_progress_bar_counts_the_replications(capsys):
    scenarios = sim.grid(estimand="mean", n=[20, 40], N=50)
    sim.run(scenarios, ["classical"], reps=6, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "simulating" in err and "12/12" in err
    sim.run(scenarios, ["classical"], reps=6, seed=1)  # "auto": silent off a terminal
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be True, False or 'auto'"):
        sim.run(scenarios, reps=2, progress="verbose")


# -- the treatment-effect design ---------------------------------------------------------------


def test_ate_scenario_maps_methods_to_the_trial_estimators():
    study = sim.run(sim.grid(estimand="ate", n=80, N=400, prediction_quality=0.9), reps=4, seed=4, progress=False)
    summary = study.summary()
    assert list(summary["parameter"].unique()) == ["ate"]
    assert list(summary["method"]) == ["classical", "naive", "ppi", "ppi++"]
    assert (summary["failures"] == 0).all()
    # classical is the complete-case difference in means: its effective n is the labeled n
    assert summary.loc[summary["method"] == "classical", "effective_n"].item() == pytest.approx(80)


# -- the command line --------------------------------------------------------------------------


FIGURE_FILES = ("coverage.png", "width.png", "type1.png", "power.png")


def test_cli_quick_preset_writes_table_csv_and_figures(tmp_path, capsys):
    # the whole preset, table and CSV (drawing its 4 figures of 48 panels each would take most of
    # this test's time: the figures are written by the run of one estimand below)
    whole = tmp_path / "whole"
    code = main(["simulate", "--preset", "quick", "--reps", "2", "--n-jobs", "1", "--output", str(whole),
                 "--no-progress", "--no-figures"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "quick preset" in printed and "coverage" in printed
    assert all(f"\n{estimand} " in printed for estimand in sim.BUILTIN_ESTIMANDS), printed
    assert (whole / "summary.csv").stat().st_size > 0 and not list(whole.glob("*.png"))
    study = sim.load(whole / "summary.csv")
    scenarios, _ = sim.preset("quick")
    assert len(study.scenarios) == len(scenarios) and set(study.scenarios["estimand"]) == set(sim.BUILTIN_ESTIMANDS)
    # the figures, for one estimand of the preset
    one = tmp_path / "one"
    code = main(["simulate", "--preset", "quick", "--estimand", "mean", "--reps", "2", "--n-jobs", "1",
                 "--output", str(one), "--no-progress"])
    assert code == 0
    assert "quick preset" in capsys.readouterr().out
    for name in ("summary.csv", *FIGURE_FILES):
        assert (one / name).stat().st_size > 0
    study = sim.load(one / "summary.csv")
    assert len(study.scenarios) == len(sim.preset("quick", estimand="mean")[0])
    assert set(study.scenarios["estimand"]) == {"mean"}


# -- bad input ---------------------------------------------------------------------------------


def local_function_process():
    def process(rng, n, N):
        return shifted_t_outcomes(rng, n, N)

    return process


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(estimand="meen", n=10, N=10), r"estimand='meen' is not valid; use one of 'mean', 'quantile', 'ols', "
                                            r"'logit', 'poisson', 'ate'. Did you mean 'mean'\?"),
        (dict(estimand="mean", n=[], N=10), "n is empty"),
        (dict(estimand="mean", n=[10, 10], N=10), "n lists 10 more than once"),
        (dict(estimand="mean", n=10.5, N=10), "n must hold whole numbers"),
        (dict(estimand="mean", n=1, N=10), "n must be at least 2"),
        (dict(estimand="mean", n=10, N=0), "N must be at least 1"),
        (dict(estimand="mean", n=10, N=10, prediction_quality=1.5), r"prediction_quality must lie in \[0, 1\]"),
        (dict(estimand="mean", n=10, N=10, df=[3]), r"inconsistent grid: process 'mean' does not accept the option\(s\) \['df'\]"),
        (dict(estimand=shifted_t_outcomes, n=10, N=10, prediction_quality=0.5),
         "inconsistent grid: process 'shifted_t_outcomes' does not accept"),
        (dict(estimand=lambda rng, n, N, *, shape: None, n=10, N=10), r"requires the option\(s\) \['shape'\]"),
        (dict(estimand=lambda rng: None, n=10, N=10), r"must take the arguments \(rng, n, N\)"),
    ],
)
def test_grid_rejects_bad_or_inconsistent_settings(arguments, message):
    with pytest.raises(ValueError, match=message):
        sim.grid(**arguments)


def test_run_rejects_bad_settings():
    scenarios = sim.grid(estimand="mean", n=10, N=10)
    with pytest.raises(ValueError, match=r"method='ppi\+' is not valid; use one of 'ppi\+\+', 'ppi', 'classical', 'naive'"):
        sim.run(scenarios, ["ppi+"], reps=2, progress=False)
    for reps in (0, -3):
        with pytest.raises(ValueError, match="reps must be at least 1"):
            sim.run(scenarios, reps=reps, progress=False)
    with pytest.raises(TypeError, match="reps must be an integer"):
        sim.run(scenarios, reps=2.5, progress=False)
    with pytest.raises(ValueError, match="n_jobs must be a positive number"):
        sim.run(scenarios, reps=2, n_jobs=0, progress=False)
    with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1"):
        sim.run(scenarios, reps=2, alpha=1.5, progress=False)
    with pytest.raises(ValueError, match="errors='ignore' is not valid"):
        sim.run(scenarios, reps=2, errors="ignore", progress=False)
    with pytest.raises(TypeError, match="methods must be names"):
        sim.run(scenarios, [3], reps=2, progress=False)
    with pytest.raises(ValueError, match="method labels must be distinct"):
        sim.run(scenarios, ["ppi", "PPI"], reps=2, progress=False)
    with pytest.raises(TypeError, match="scenarios must come from"):
        sim.run({"estimand": "mean"}, reps=2, progress=False)


def test_unpicklable_process_is_refused_with_several_processes():
    scenarios = sim.grid(estimand=local_function_process(), n=10, N=10)
    with pytest.raises(TypeError, match="must be picklable.*n_jobs=1"):
        sim.run(scenarios, [TInterval()], reps=2, n_jobs=2, progress=False)
    # in one process it runs
    assert sim.run(scenarios, [TInterval()], reps=2, n_jobs=1, progress=False).summary()["reps"].item() == 2


def test_results_that_break_the_protocol_are_reported():
    scenarios = sim.grid(estimand=shifted_t_outcomes, n=10, N=10)
    with pytest.raises(sim.ProtocolError, match="lacks params and conf_int"):
        sim.run(scenarios, [lambda dataset: 3.0], reps=1, progress=False)

    def wrong_name(dataset):
        results = TResults(np.asarray(dataset.y))
        results.params = results.params.rename({"y": "mu"})
        return results

    with pytest.raises(sim.ProtocolError, match=r"no entry for parameter\(s\) \['y'\]"):
        sim.run(scenarios, [wrong_name], reps=1, progress=False)
