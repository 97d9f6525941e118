"""Command line: ``python -m bench <command>``, one dispatch table over the commands' modules.

Every mistake a user can make ends in one ``error:`` line and exit status 2; a grid in which
some run failed exits 1 after recording every run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import bench.perf as perf
import bench.reports.figures as figures
from bench.commands import compare, export, listing, run, status
from bench.defaults import EXIT_INTERRUPTED, EXIT_USAGE
from bench.errors import BenchError, is_storage_failure, printable, storage_error
from bench.registry import PLUGIN_WARNINGS
from bench.reports import tables_cli


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, its options, and the function that runs it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "run": Command("run a grid of methods x models x datasets x densities x seeds",
                   run.add_arguments, run.command),
    "status": Command("a grid's runs by state, the workers alive and the time left",
                      status.add_arguments, status.command),
    "list": Command("methods, models, datasets and presets",
                    listing.add_arguments, listing.command),
    "report": Command("tables of results from the run store",
                      tables_cli.add_arguments, tables_cli.command),
    "figures": Command("PNG and PDF figures of results", figures.add_arguments, figures.command),
    "perf": Command("speed figures: engine vs minimal and conventional loops, masked layers, "
                    "pruning scores; writes results/perf/<device>.json",
                    perf.add_arguments, perf.command),
    "export": Command("write selected records into one snapshot file",
                      export.add_arguments, export.command),
    "compare": Command("compare two result sets; exit 1 on a regression, 2 if impossible",
                       compare.add_arguments, compare.command),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one ``error:`` line (exit 2) instead of usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BenchError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The parser: one subparser per entry of :data:`COMMANDS`."""
    parser = _Parser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, entry in COMMANDS.items():
        entry.add_arguments(sub.add_parser(name, help=entry.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv[1:]  # the command's own options, for workers that rerun it
        for warning in PLUGIN_WARNINGS:
            print(f"warning: {warning}", file=sys.stderr)
        return COMMANDS[args.command].run(args)
    except BenchError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the disk refused somewhere no layer named it: still one line
        if not is_storage_failure(exc):
            raise
        print(f"error: {printable(storage_error(exc, doing='reading or writing'))}",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished runs are saved; rerun the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `bench status | head`: the reader left; nothing is lost
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
