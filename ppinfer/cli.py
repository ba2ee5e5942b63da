"""Command line: ``ppinfer fit``, ``ppinfer demo``, ``ppinfer simulate`` (also ``python -m ppinfer``).

``ppinfer fit`` is for people who do not write Python: it reads a labeled and an
unlabeled data file, fits one estimator with the public API, prints the summary,
and can write the tidy table of estimates to a CSV or JSON file.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
import warnings
from pathlib import Path

import pandas as pd

#: the estimators of ``ppinfer fit --model``
MODELS = ("ols", "logit", "poisson", "mean", "quantile")
#: the methods of ``ppinfer fit --method``
FIT_METHODS = ("ppi++", "ppi", "classical", "naive")
#: design options of ``ppinfer fit``: (flag, keyword of the estimators), each a column name
DESIGN_OPTIONS = (("--weights", "weights"), ("--groups", "groups"), ("--strata", "strata"),
                  ("--label-prob", "label_prob"))
#: columns of the table written by ``--output``, one row per parameter
TABLE_COLUMNS = ("term", "estimate", "std_err", "statistic", "pvalue", "lower", "upper", "method", "lambda")
#: file suffixes read by ``ppinfer fit`` (a compression suffix such as .gz may follow csv, tsv and json)
INPUT_FORMATS = {".csv": "CSV", ".tsv": "TSV", ".parquet": "Parquet", ".pq": "Parquet", ".json": "JSON",
                 ".jsonl": "JSON lines"}
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zip", ".zst")
#: what a bad file, column, formula or option raises: reported in one line, exit status 2
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, ArithmeticError)

FIT_EXAMPLE = """\
examples:
  ppinfer fit "y ~ x1 + C(region)" --labeled lab.csv --unlabeled unl.parquet --yhat pred
  ppinfer fit "y ~ x1" --labeled lab.csv --unlabeled unl.csv --yhat pred --method ppi --alpha 0.1 \\
      --groups school --output estimates.csv
  ppinfer fit "y" --model mean --labeled lab.csv --unlabeled unl.csv --yhat pred
  ppinfer fit "y" --model quantile --q 0.25 0.5 0.75 --labeled lab.csv --unlabeled unl.csv \\
      --yhat pred_lab --yhat-unlabeled pred_unl --output quartiles.json

The labeled file holds the outcome, the covariates and the predictions; the unlabeled file the
covariates and the predictions. Column names given for --weights, --groups and --strata are also
read from the unlabeled file when it has them."""


class UserError(ValueError):
    """A mistake in the command's options or files, reported in one line."""


def _demo(arguments: argparse.Namespace) -> int:
    from .demo import run

    run(arguments.n, arguments.N, quality=arguments.quality, bias=arguments.bias, seed=arguments.seed)
    return 0


def _simulate(arguments: argparse.Namespace) -> int:
    from .simulation.cli import run_preset

    return run_preset(arguments)


# -- ppinfer fit ---------------------------------------------------------------------------


def _suffixes(path: Path) -> tuple[str, str | None]:
    """The format suffix of a file name and its compression suffix, if any."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes[-1] if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES else None
    if compression:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), compression


def read_table(path: str | Path, flag: str) -> pd.DataFrame:
    """Read a data file by its extension: CSV, TSV, Parquet, JSON (records or columns) or JSON lines.

    Parameters
    ----------
    path : str or Path
        The file; ``.csv``, ``.tsv``, ``.json`` and ``.jsonl`` may be compressed
        (``.gz``, ``.bz2``, ``.xz``, ``.zip``, ``.zst``).
    flag : str
        The option that named the file, for error messages.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    UserError
        A missing file, an unknown extension, an unreadable or empty file, or
        Parquet without pyarrow (with the command that installs it).
    """
    path = Path(path)
    suffix, compression = _suffixes(path)
    if suffix not in INPUT_FORMATS:
        raise UserError(
            f"{flag} {path}: cannot tell the format from the extension {suffix or '(none)'!r}; use one of "
            f"{', '.join(INPUT_FORMATS)}."
        )
    parquet = INPUT_FORMATS[suffix] == "Parquet"
    if parquet and compression:
        raise UserError(f"{flag} {path}: Parquet files are compressed inside; drop the {compression} suffix.")
    if not path.is_file():
        raise UserError(f"{flag} {path}: no such file.")
    try:
        if parquet:
            frame = pd.read_parquet(path)
        elif suffix in (".json", ".jsonl"):
            frame = pd.read_json(path, lines=suffix == ".jsonl")
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except ImportError as error:
        if parquet:
            raise UserError(
                f"{flag} {path}: reading Parquet files needs pyarrow; install it with: pip install \"ppinfer[parquet]\""
            ) from None
        raise UserError(f"{flag} {path}: {_one_line(error)}") from None
    except (ValueError, OSError) as error:
        raise UserError(f"{flag} {path}: could not read it as {INPUT_FORMATS[suffix]}: {_one_line(error)}") from None
    if frame.empty:
        raise UserError(f"{flag} {path}: the file holds no rows.")
    return frame


def _require_column(frame: pd.DataFrame, column: str, flag: str, path) -> None:
    if column in frame.columns:
        return
    close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UserError(
        f"{flag} {column!r}: no such column in {path} (its columns: {', '.join(map(str, frame.columns))}).{hint}"
    )


def _outcome_column(formula: str, model: str) -> str:
    """The outcome of a mean or quantile 'formula': ``y`` or ``y ~ 1``."""
    outcome, tilde, right = formula.partition("~")
    if tilde and right.strip() != "1":
        raise UserError(
            f"--model {model} estimates a {model} of one column and takes no covariates; write the formula as "
            f"'{outcome.strip()}' or '{outcome.strip()} ~ 1' (for covariates use --model ols, logit or poisson)."
        )
    return outcome.strip()


def _build_model(arguments: argparse.Namespace, labeled: pd.DataFrame, unlabeled: pd.DataFrame):
    """The ppinfer model the options describe, built with the public API."""
    import ppinfer

    yhat_unlabeled = arguments.yhat_unlabeled or arguments.yhat
    _require_column(labeled, arguments.yhat, "--yhat", arguments.labeled)
    _require_column(unlabeled, yhat_unlabeled, "--yhat-unlabeled" if arguments.yhat_unlabeled else "--yhat",
                    arguments.unlabeled)
    design = {}
    for flag, keyword in DESIGN_OPTIONS:
        column = getattr(arguments, keyword)
        if column is not None:
            _require_column(labeled, column, flag, arguments.labeled)
            design[keyword] = column
    if arguments.q is not None and arguments.model != "quantile":
        raise UserError(f"--q sets the levels of --model quantile; it does not apply to --model {arguments.model}.")

    if arguments.model in ("ols", "logit", "poisson"):
        entry = getattr(ppinfer, arguments.model)
        return entry(arguments.formula, labeled, unlabeled, arguments.yhat, yhat_unlabeled,
                     missing=arguments.missing, **design)
    outcome = _outcome_column(arguments.formula, arguments.model)
    _require_column(labeled, outcome, "outcome", arguments.labeled)
    options = {}
    for keyword, column in design.items():
        options[keyword] = labeled[column]
        # like the formula interface: a column the unlabeled file also has gives the unlabeled rows' values
        if keyword != "label_prob" and column in unlabeled.columns:
            options[f"{keyword}_unlabeled"] = unlabeled[column]
    arrays = (labeled[outcome], labeled[arguments.yhat], unlabeled[yhat_unlabeled])
    if arguments.model == "mean":
        return ppinfer.Mean(*arrays, missing=arguments.missing, **options)
    q = arguments.q if arguments.q is not None else [0.5]
    return ppinfer.Quantile(*arrays, q=q if len(q) > 1 else q[0], missing=arguments.missing, **options)


def _by_group(values: pd.Series) -> str:
    name = values.index.name or "group"
    return "; ".join(f"{name} {key}: {value:.6g}" for key, value in values.items())


def _lambda_column(lam, terms: pd.Index) -> list:
    """The lambda of each parameter: a number, or for stratified fits a text listing the strata's lambdas."""
    if lam is None:  # naive pooling
        return [float("nan")] * len(terms)
    if isinstance(lam, pd.DataFrame) and list(lam.columns) == list(terms):  # per stratum and parameter
        return [_by_group(lam[term]) for term in terms]
    if isinstance(lam, pd.Series):
        return lam.astype(float).tolist() if lam.index.equals(terms) else [_by_group(lam)] * len(terms)
    if isinstance(lam, pd.DataFrame):
        return [" ".join(str(lam).split())] * len(terms)
    return [float(lam)] * len(terms)


def tidy_table(results, alpha: float = 0.05) -> pd.DataFrame:
    """One row per parameter: term, estimate, std_err, statistic, pvalue, lower, upper, method, lambda.

    Parameters
    ----------
    results : PPIResults
        A fitted model's results.
    alpha : float
        Intervals at level ``1 - alpha``; ``statistic`` and ``pvalue`` are those
        of the two-sided z test of ``theta = 0``.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import ppinfer
    >>> from ppinfer.cli import tidy_table
    >>> res = ppinfer.Mean([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.5], [1.0, 2.0, 3.0, 4.0, 5.0]).fit(method="ppi")
    >>> tidy_table(res)[["term", "estimate", "method", "lambda"]]   # 3 + mean(y - yhat) = 3 - 0.125
      term  estimate method  lambda
    0    y     2.875    ppi     1.0
    """
    params = results.params
    interval = results.conf_int(alpha=alpha)
    test = results.test()
    table = pd.DataFrame({
        "term": params.index.astype(str),
        "estimate": params.to_numpy(),
        "std_err": results.bse.to_numpy(),
        "statistic": test["statistic"].to_numpy(),
        "pvalue": test["pvalue"].to_numpy(),
        "lower": interval["lower"].to_numpy(),
        "upper": interval["upper"].to_numpy(),
        "method": results.method,
        "lambda": _lambda_column(results.lam, params.index),
    })
    return table[list(TABLE_COLUMNS)]


def _check_output(path: Path | None) -> None:
    if path is not None and path.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--output {path}: the table is written as .csv or .json; end the file name with one of them.")


def _json_value(value):
    """Numbers at full precision (pandas' to_json rounds 2e-14 to 0); NaN as null, infinities as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _write_table(table: pd.DataFrame, path: Path) -> None:
    if path.suffix.lower() == ".json":
        records = [{key: _json_value(value) for key, value in row.items()} for row in table.to_dict(orient="records")]
        path.write_text(json.dumps(records, indent=2) + "\n")
    else:
        table.to_csv(path, index=False)


def _one_line(error) -> str:
    """An error message on one line, without patsy's echo of the formula and its ^^^ marker."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    kept = [line for k, line in enumerate(lines)
            if set(line.strip()) != {"^"} and not (k + 1 < len(lines) and set(lines[k + 1].strip()) == {"^"})]
    return " ".join(line.strip() for line in kept) or type(error).__name__


def _fit(arguments: argparse.Namespace) -> int:
    output = arguments.output
    caught: list = []
    labeled = None
    try:
        _check_output(output)
        labeled = read_table(arguments.labeled, "--labeled")
        unlabeled = read_table(arguments.unlabeled, "--unlabeled")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            options = {"method": arguments.method}
            if arguments.cov_type is not None:
                options["cov_type"] = arguments.cov_type
            if arguments.normal:
                options["use_t"] = False
            results = _build_model(arguments, labeled, unlabeled).fit(**options)
            summary = str(results.summary(alpha=arguments.alpha))
            table = tidy_table(results, alpha=arguments.alpha)
        if output is not None:
            _write_table(table, output)
    except USER_ERRORS as error:
        message = _one_line(error)
        if "is not defined" in message and labeled is not None:  # a formula variable that is not a column
            message += f" (columns of {arguments.labeled}: {', '.join(map(str, labeled.columns))})"
        print(f"ppinfer fit: error: {message}", file=sys.stderr)
        return 2
    finally:
        for warning in caught:
            print(f"ppinfer fit: warning: {_one_line(warning.message)}", file=sys.stderr)
    print(summary)
    if output is not None:
        print(f"\nWrote {len(table)} rows ({', '.join(TABLE_COLUMNS)}) to {output}")
    return 0


def _add_fit(commands) -> None:
    fit = commands.add_parser(
        "fit", help="fit an estimator to a labeled and an unlabeled data file and print its summary",
        description="Fit an estimator with prediction-powered inference and print its summary.",
        epilog=FIT_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("formula", help='patsy formula such as "y ~ x1 + C(group)"; for --model mean or quantile '
                                     'the outcome column alone ("y")')
    files = fit.add_argument_group("data")
    files.add_argument("--labeled", required=True, metavar="FILE",
                       help="labeled data: outcome, covariates, predictions (.csv, .tsv, .parquet, .json, .jsonl)")
    files.add_argument("--unlabeled", required=True, metavar="FILE", help="unlabeled data: covariates, predictions")
    files.add_argument("--yhat", required=True, metavar="COLUMN", help="the predictions' column")
    files.add_argument("--yhat-unlabeled", metavar="COLUMN",
                       help="the predictions' column in the unlabeled file, when its name differs")
    files.add_argument("--missing", choices=("raise", "drop"), default="raise",
                       help="rows with missing values: stop with an error (default) or drop them")
    estimator = fit.add_argument_group("estimator")
    estimator.add_argument("--model", choices=MODELS, default="ols", help="default: ols")
    estimator.add_argument("--q", type=float, nargs="+", metavar="Q",
                           help="quantile level(s) of --model quantile (default 0.5)")
    estimator.add_argument("--method", choices=FIT_METHODS, default="ppi++",
                           help="ppi++ (default: power-tuned lambda), ppi (lambda = 1), classical (labeled rows "
                                "only), naive (predictions pooled as data: invalid, for comparison)")
    estimator.add_argument("--alpha", type=float, default=0.05, help="intervals at level 1 - alpha (default 0.05)")
    estimator.add_argument("--cov-type", dest="cov_type", metavar="TYPE",
                           help="covariance estimator: HC0, HC1, HC2, HC3, CR0, CR1, CR2 (default: HC2 for means, "
                                "HC3 for regressions, CR2 with clusters)")
    estimator.add_argument("--normal", action="store_true",
                           help="normal (z) intervals and tests instead of Student's t")
    design = fit.add_argument_group("sampling design (column names)")
    design.add_argument("--weights", metavar="COLUMN", help="survey weights")
    design.add_argument("--groups", metavar="COLUMN", help="cluster ids: cluster-robust variances")
    design.add_argument("--strata", metavar="COLUMN", help="strata: stratified PPI, one lambda per stratum")
    design.add_argument("--label-prob", dest="label_prob", metavar="COLUMN",
                        help="probability that each labeled unit was chosen for labeling (labeled file only)")
    fit.add_argument("--output", type=Path, metavar="FILE",
                     help=f"also write the table ({', '.join(TABLE_COLUMNS)}) to FILE.csv or FILE.json")
    fit.set_defaults(handler=_fit)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="ppinfer", description="Valid inference with machine-learning predictions (PPI, PPI++)."
    )
    parser.add_argument("--version", action="version", version=f"ppinfer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command")
    _add_fit(commands)
    demo = commands.add_parser("demo", help="fit every estimator on simulated data with biased predictions")
    demo.add_argument("--n", type=int, default=500, help="labeled sample size (default 500)")
    demo.add_argument("--N", type=int, default=50_000, help="unlabeled sample size (default 50000)")
    demo.add_argument("--quality", type=float, default=0.8, help="correlation of predictions and outcome")
    demo.add_argument("--bias", type=float, default=0.5, help="bias of the predictions (level and slope)")
    demo.add_argument("--seed", type=int, default=2026)
    demo.set_defaults(handler=_demo)
    from .simulation.cli import add_arguments

    simulate = commands.add_parser(
        "simulate", help="run a coverage simulation study (--preset quick or paper): table, CSV and figures"
    )
    add_arguments(simulate)
    simulate.set_defaults(handler=_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 2 bad options, files or data).

    Without a command it prints the help.
    """
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv if argv is not None else sys.argv[1:])
    except SystemExit as exit_request:  # --help, --version and usage errors: argparse has printed them
        return exit_request.code if isinstance(exit_request.code, int) else 2
    if arguments.command is None:
        parser.print_help()
        return 0
    return arguments.handler(arguments)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
