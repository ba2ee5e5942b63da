"""Command line: ``ppinfer demo``, ``ppinfer simulate`` (also ``python -m ppinfer``)."""

from __future__ import annotations

import argparse
import sys


def _demo(arguments: argparse.Namespace) -> int:
    from .demo import run

    run(arguments.n, arguments.N, quality=arguments.quality, bias=arguments.bias, seed=arguments.seed)
    return 0


def _simulate(arguments: argparse.Namespace) -> int:
    from .simulation.cli import run_preset

    return run_preset(arguments)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppinfer", description="Valid inference with machine-learning predictions (PPI, PPI++)."
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
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
    parser = build_parser()
    arguments = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if arguments.command is None:
        arguments = parser.parse_args(["demo"])
    return arguments.handler(arguments)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
