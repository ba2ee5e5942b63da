"""The command line, run in-process on files in tmp_path: ``ppinfer fit`` against the Python API,
statsmodels and hand computations; help, version; one-line errors with exit status 2."""

from __future__ import annotations

import gzip
import io
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

import ppinfer
from ppinfer.cli import TABLE_COLUMNS, main

N_LABELED, N_UNLABELED = 300, 3000


def draw(rng: np.random.Generator, size: int) -> pd.DataFrame:
    """Outcome linear in x1 and a three-level group; predictions correlated with it, biased in level and slope."""
    x1 = rng.normal(size=size)
    group = rng.choice(["a", "b", "c"], size=size)
    y = 1.0 + x1 + 0.5 * (group == "b") + rng.normal(size=size)
    return pd.DataFrame({
        "y": y,
        "count": rng.poisson(np.exp(0.3 + 0.4 * x1)),
        "binary": (y > 1.2).astype(float),
        "x1": x1,
        "g": group,
        "pred": 0.3 + 1.2 * (0.8 * y + 0.6 * rng.normal(size=size)),
        "w": rng.uniform(0.5, 2.0, size=size),
        "school": rng.integers(0, 40, size=size),
        "p": rng.uniform(0.2, 0.9, size=size),
    })


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(2026)
    labeled = draw(rng, N_LABELED)
    unlabeled = draw(rng, N_UNLABELED).drop(columns=["y", "count", "binary", "p"])
    labeled.to_csv(tmp_path / "lab.csv", index=False)
    unlabeled.to_csv(tmp_path / "unl.csv", index=False)
    return tmp_path, labeled, unlabeled


def run(*argv) -> int:
    return main([str(a) for a in argv])


def read_output(path) -> pd.DataFrame:
    if str(path).endswith(".json"):
        return pd.DataFrame(json.loads(path.read_text()))
    return pd.read_csv(path)


def assert_table_matches(table: pd.DataFrame, res, alpha: float) -> None:
    """The written table against the results object of the Python API."""
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert list(table["term"]) == list(res.params.index)
    interval, test = res.conf_int(alpha=alpha), res.test()
    for column, expected in (("estimate", res.params), ("std_err", res.bse), ("statistic", test["statistic"]),
                             ("pvalue", test["pvalue"]), ("lower", interval["lower"]), ("upper", interval["upper"])):
        np.testing.assert_allclose(table[column].to_numpy(), expected.to_numpy(), rtol=1e-12, err_msg=column)
    assert (table["method"] == res.method).all()


# -- help and version ------------------------------------------------------------------------


def test_version(capsys):
    from importlib.metadata import version

    assert run("--version") == 0
    assert capsys.readouterr().out.strip() == f"ppinfer {version('ppinfer')}"


def test_no_command_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ppinfer") and all(command in out for command in ("fit", "demo", "simulate"))
    assert run("fit", "--help") == 0
    out = capsys.readouterr().out
    assert "--yhat-unlabeled" in out and "examples:" in out


def test_readme_example_runs_as_written_and_gives_the_table_shown(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Command line\n", 1)[1].split("\n## ", 1)[0]
    commands = section.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", "")
    shown = section.split("```\nterm,", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    for line in commands.strip().splitlines():
        argv = shlex.split(line)
        if argv[0] == "python":
            exec(argv[2], {})
        else:
            assert argv[0] == "ppinfer" and main(argv[1:]) == 0
    assert "Prediction-powered inference: OLS" in capsys.readouterr().out
    written = pd.read_csv(tmp_path / "estimates.csv")
    expected = pd.read_csv(io.StringIO("term," + shown))
    pd.testing.assert_frame_equal(written, expected, check_exact=False, rtol=1e-12)


# -- ppinfer fit against the Python API --------------------------------------------------------


def test_ols_with_a_categorical_prints_the_summary_and_writes_the_table(files, capsys):
    tmp, labeled, unlabeled = files
    formula = "y ~ x1 + C(g)"
    code = run("fit", formula, "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv", "--yhat", "pred",
               "--alpha", 0.1, "--output", tmp / "out.csv")
    assert code == 0
    res = ppinfer.ols(formula, data=labeled, unlabeled=unlabeled, yhat="pred").fit()
    captured = capsys.readouterr()
    assert str(res.summary(alpha=0.1)) in captured.out and captured.err == ""
    table = read_output(tmp / "out.csv")
    assert_table_matches(table, res, alpha=0.1)
    assert list(table["term"]) == ["Intercept", "C(g)[T.b]", "C(g)[T.c]", "x1"]
    np.testing.assert_allclose(table["lambda"], res.lam, rtol=1e-12)
    assert 0 < res.lam < 1  # a tuned lambda, not a boundary value


@pytest.mark.parametrize(
    ("model", "formula", "extra", "api"),
    [
        ("logit", "binary ~ x1", [], lambda lab, unl: ppinfer.logit("binary ~ x1", lab, unl, "pred")),
        ("poisson", "count ~ x1", [], lambda lab, unl: ppinfer.poisson("count ~ x1", lab, unl, "pred")),
        ("mean", "y", [], lambda lab, unl: ppinfer.Mean(lab["y"], lab["pred"], unl["pred"])),
        ("mean", "y ~ 1", [], lambda lab, unl: ppinfer.Mean(lab["y"], lab["pred"], unl["pred"])),
        ("quantile", "y", ["--q", 0.25, 0.5], lambda lab, unl: ppinfer.Quantile(lab["y"], lab["pred"], unl["pred"],
                                                                              q=[0.25, 0.5])),
        ("quantile", "y", [], lambda lab, unl: ppinfer.Quantile(lab["y"], lab["pred"], unl["pred"], q=0.5)),
    ],
)
def test_every_model_matches_the_python_api(files, model, formula, extra, api):
    tmp, labeled, unlabeled = files
    if model == "logit":  # predicted probabilities
        for frame in (labeled, unlabeled):
            frame["pred"] = stats.norm.cdf(frame["pred"] - 1.2)
    elif model == "poisson":  # predicted means are positive
        for frame in (labeled, unlabeled):
            frame["pred"] = frame["pred"].clip(0.01, None)
    labeled.to_csv(tmp / "lab.csv", index=False)
    unlabeled.to_csv(tmp / "unl.csv", index=False)
    for method in ("ppi++", "classical"):
        code = run("fit", formula, "--model", model, *extra, "--labeled", tmp / "lab.csv", "--unlabeled",
                   tmp / "unl.csv", "--yhat", "pred", "--method", method, "--output", tmp / "out.json")
        assert code == 0
        res = api(labeled, unlabeled).fit(method=method)
        table = read_output(tmp / "out.json")
        assert_table_matches(table, res, alpha=0.05)
        expected_lambda = np.broadcast_to(np.asarray(res.lam, dtype=float), (len(table),))
        np.testing.assert_allclose(table["lambda"].astype(float), expected_lambda, rtol=1e-12)


def test_design_options_are_passed_as_columns(files):
    tmp, labeled, unlabeled = files
    cases = [
        (["--groups", "school"], {"groups": "school"}),
        (["--weights", "w"], {"weights": "w"}),
        (["--label-prob", "p"], {"label_prob": "p"}),
    ]
    for flags, options in cases:
        assert run("fit", "y ~ x1", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv", "--yhat", "pred",
                   *flags, "--output", tmp / "out.csv") == 0
        res = ppinfer.ols("y ~ x1", labeled, unlabeled, "pred", **options).fit()
        assert_table_matches(read_output(tmp / "out.csv"), res, alpha=0.05)
    # the mean reads the unlabeled file's column of the same name, as the formula interface does
    assert run("fit", "y", "--model", "mean", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv",
               "--yhat", "pred", "--groups", "school", "--output", tmp / "out.csv") == 0
    res = ppinfer.Mean(labeled["y"], labeled["pred"], unlabeled["pred"], groups=labeled["school"],
                       groups_unlabeled=unlabeled["school"]).fit()
    assert_table_matches(read_output(tmp / "out.csv"), res, alpha=0.05)


def test_strata_give_one_lambda_per_stratum_in_the_table(files):
    tmp, labeled, unlabeled = files
    assert run("fit", "y ~ x1", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv", "--yhat", "pred",
               "--strata", "g", "--output", tmp / "out.csv") == 0
    res = ppinfer.ols("y ~ x1", labeled, unlabeled, "pred", strata="g").fit()
    table = read_output(tmp / "out.csv")
    assert_table_matches(table, res, alpha=0.05)
    text = table["lambda"].iloc[0]
    for stratum, value in res.lam.items():
        assert f"stratum {stratum}: {value:.6g}" in text


def test_parquet_tsv_and_json_inputs_and_prediction_columns_with_other_names(files):
    pytest.importorskip("pyarrow")
    tmp, labeled, unlabeled = files
    renamed = unlabeled.rename(columns={"pred": "prediction"})
    renamed.to_parquet(tmp / "unl.parquet")
    labeled.to_csv(tmp / "lab.tsv", sep="\t", index=False)
    # JSON written here at full precision (pandas' to_json keeps 10 digits)
    records = renamed.to_dict(orient="records")
    (tmp / "unl.json").write_text(json.dumps(records))
    with gzip.open(tmp / "unl.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    res = ppinfer.ols("y ~ x1 + C(g)", labeled, unlabeled, "pred").fit()
    for labeled_file, unlabeled_file in (("lab.csv", "unl.parquet"), ("lab.tsv", "unl.json"),
                                         ("lab.csv", "unl.jsonl.gz")):
        assert run("fit", "y ~ x1 + C(g)", "--labeled", tmp / labeled_file, "--unlabeled", tmp / unlabeled_file,
                   "--yhat", "pred", "--yhat-unlabeled", "prediction", "--output", tmp / "out.json") == 0
        table = read_output(tmp / "out.json")
        assert_table_matches(table, res, alpha=0.05)


def test_json_output_keeps_tiny_p_values_and_writes_null_lambda_for_naive_pooling(files):
    tmp, labeled, unlabeled = files
    assert run("fit", "y ~ x1 + C(g)", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv", "--yhat",
               "pred", "--method", "naive", "--output", tmp / "out.json") == 0
    records = json.loads((tmp / "out.json").read_text())
    res = ppinfer.ols("y ~ x1 + C(g)", labeled, unlabeled, "pred").fit(method="naive")
    pvalues = res.test()["pvalue"]
    tiny = pvalues[(pvalues > 0) & (pvalues < 1e-12)]
    assert len(tiny) > 0  # the case pandas' to_json would round to 0
    by_term = {record["term"]: record for record in records}
    for term, value in tiny.items():
        assert by_term[term]["pvalue"] == value
    assert all(record["lambda"] is None for record in records)


def test_missing_rows_raise_or_are_dropped(files, capsys):
    tmp, labeled, unlabeled = files
    labeled.loc[[3, 17], "x1"] = np.nan
    labeled.to_csv(tmp / "lab.csv", index=False)
    arguments = ["fit", "y ~ x1", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv", "--yhat", "pred"]
    assert run(*arguments) == 2
    assert "missing='drop'" in capsys.readouterr().err
    assert run(*arguments, "--missing", "drop", "--output", tmp / "out.csv") == 0
    res = ppinfer.ols("y ~ x1", labeled, unlabeled, "pred", missing="drop").fit()
    assert res.nobs == N_LABELED - 2
    assert_table_matches(read_output(tmp / "out.csv"), res, alpha=0.05)


# -- against independent references ------------------------------------------------------------


def test_classical_ols_is_statsmodels_hc0_with_z_intervals(files):
    tmp, labeled, _ = files
    assert run("fit", "y ~ x1 + C(g)", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv", "--yhat",
               "pred", "--method", "classical", "--alpha", 0.1, "--cov-type", "HC0", "--normal",
               "--output", tmp / "out.csv") == 0
    table = read_output(tmp / "out.csv").set_index("term")
    reference = smf.ols("y ~ x1 + C(g)", data=labeled).fit(cov_type="HC0")  # normal-based inference
    np.testing.assert_allclose(table["estimate"], reference.params[table.index], rtol=1e-10)
    np.testing.assert_allclose(table["std_err"], reference.bse[table.index], rtol=1e-10)
    np.testing.assert_allclose(table["pvalue"], reference.pvalues[table.index], rtol=1e-8)
    interval = reference.conf_int(alpha=0.1).loc[table.index]
    np.testing.assert_allclose(table[["lower", "upper"]].to_numpy(), interval.to_numpy(), rtol=1e-10)
    assert (table["lambda"] == 0).all()


def test_ppi_mean_is_the_closed_form(files):
    tmp, labeled, unlabeled = files
    assert run("fit", "y", "--model", "mean", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv",
               "--yhat", "pred", "--method", "ppi", "--cov-type", "HC0", "--normal", "--output", tmp / "out.csv") == 0
    row = read_output(tmp / "out.csv").iloc[0]
    # theta = mean(yhat_unlabeled) + mean(y - yhat); Var = var(y - yhat) / n + var(yhat_unlabeled) / N (1/n moments)
    rectifier, predictions = labeled["y"] - labeled["pred"], unlabeled["pred"]
    estimate = predictions.mean() + rectifier.mean()
    std_err = np.sqrt(rectifier.var(ddof=0) / N_LABELED + predictions.var(ddof=0) / N_UNLABELED)
    z = stats.norm.ppf(0.975)
    assert row["estimate"] == pytest.approx(estimate, rel=1e-12)
    assert row["std_err"] == pytest.approx(std_err, rel=1e-12)
    assert (row["lower"], row["upper"]) == pytest.approx((estimate - z * std_err, estimate + z * std_err), rel=1e-12)
    assert row["pvalue"] == pytest.approx(2 * stats.norm.sf(abs(estimate / std_err)), rel=1e-9)
    assert row["term"] == "y" and row["method"] == "ppi" and row["lambda"] == 1.0


# -- errors: one line on stderr, exit status 2, no traceback -------------------------------------


def fit_error(capsys, *argv) -> str:
    code = run("fit", *argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert lines[-1].startswith("ppinfer fit: error: ")
    return lines


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--labeled": "{tmp}/nothing.csv"}, r"--labeled .*nothing.csv: no such file\.$"),
        ({"--unlabeled": "{tmp}/unl.xlsx"}, r"cannot tell the format from the extension '\.xlsx'; use one of "
                                            r"\.csv, \.tsv"),
        ({"--yhat": "prd"}, r"--yhat 'prd': no such column in .*lab.csv \(its columns: y, count, .*\)\. "
                            r"Did you mean 'pred'\?"),
        ({"--yhat-unlabeled": "prediction"}, r"--yhat-unlabeled 'prediction': no such column in .*unl.csv"),
        ({"--groups": "schools"}, r"--groups 'schools': no such column .* Did you mean 'school'\?"),
        ({"formula": "y ~ x1 + x9"}, r"name 'x9' is not defined \(columns of .*lab.csv: y, count"),
        ({"formula": "y ~ x1 +"}, r"could not build the design from formula 'y ~ x1 \+' and data: expected a noun"),
        ({"--model": "mean"}, r"--model mean estimates a mean of one column and takes no covariates; write the "
                              r"formula as 'y' or 'y ~ 1'"),
        ({"--q": "0.5"}, r"--q sets the levels of --model quantile; it does not apply to --model ols"),
        ({"--output": "table.xlsx"}, r"--output table.xlsx: the table is written as \.csv or \.json"),
        ({"--alpha": "1.5"}, r"alpha must lie strictly between 0 and 1"),
        ({"formula": "g ~ x1"}, r"the formula's outcome must be one numeric column"),
    ],
)
def test_errors_are_one_line(files, capsys, change, message):
    tmp, _, _ = files
    options = {"formula": "y ~ x1", "--labeled": f"{tmp}/lab.csv", "--unlabeled": f"{tmp}/unl.csv", "--yhat": "pred"}
    options.update({key: value.format(tmp=tmp) for key, value in change.items()})
    argv = [options.pop("formula")] + [item for pair in options.items() for item in pair]
    lines = fit_error(capsys, *argv)
    assert len(lines) == 1, lines
    assert re.search(message, lines[0]), lines[0]


def test_unreadable_and_empty_files(files, capsys):
    tmp, _, _ = files
    (tmp / "bad.json").write_text("{not json")
    (tmp / "empty.csv").write_text("y,x1,pred\n")
    base = ["y ~ x1", "--unlabeled", tmp / "unl.csv", "--yhat", "pred", "--labeled"]
    assert "could not read it as JSON" in fit_error(capsys, *base, tmp / "bad.json")[0]
    assert "the file holds no rows" in fit_error(capsys, *base, tmp / "empty.csv")[0]


def test_parquet_without_pyarrow_says_how_to_install_it(files, capsys, monkeypatch):
    tmp, _, _ = files
    (tmp / "unl.parquet").write_bytes(b"PAR1")

    def no_engine(*args, **kwargs):  # what pandas raises when neither pyarrow nor fastparquet is installed
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    lines = fit_error(capsys, "y ~ x1", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.parquet",
                      "--yhat", "pred")
    assert lines == [f"ppinfer fit: error: --unlabeled {tmp / 'unl.parquet'}: reading Parquet files needs pyarrow; "
                     'install it with: pip install "ppinfer[parquet]"']


def test_unknown_choices_are_usage_errors(files, capsys):
    tmp, _, _ = files
    code = run("fit", "y ~ x1", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv", "--yhat", "pred",
               "--method", "ppi+")
    err = capsys.readouterr().err
    assert code == 2 and "argument --method: invalid choice: 'ppi+'" in err and "Traceback" not in err
    assert run("fit", "y ~ x1", "--labeled", tmp / "lab.csv") == 2
    assert "the following arguments are required: --unlabeled, --yhat" in capsys.readouterr().err


def test_warnings_are_printed_in_one_line_each(files, capsys):
    tmp, labeled, unlabeled = files
    labeled.assign(pred=1.0).to_csv(tmp / "lab.csv", index=False)
    unlabeled.assign(pred=1.0).to_csv(tmp / "unl.csv", index=False)
    code = run("fit", "y", "--model", "mean", "--labeled", tmp / "lab.csv", "--unlabeled", tmp / "unl.csv",
               "--yhat", "pred", "--output", tmp / "out.csv")
    captured = capsys.readouterr()
    assert code == 0
    warning_lines = [line for line in captured.err.splitlines() if line]
    assert warning_lines and all(line.startswith("ppinfer fit: warning: ") for line in warning_lines)
    assert "Traceback" not in captured.err and "Prediction-powered inference: Mean" in captured.out
    # constant predictions carry no information: lambda falls back to 0, the classical estimate
    row = read_output(tmp / "out.csv").iloc[0]
    assert row["lambda"] == 0.0 and row["estimate"] == pytest.approx(labeled["y"].mean(), rel=1e-12)
