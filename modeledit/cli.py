"""The ``modeledit`` command line. Each subcommand lives in its own module under
``modeledit.commands`` (``add_arguments(parser)`` and ``run(args) -> int``) and is imported only
when it is used, so ``modeledit layers`` never imports TensorFlow or the world renderer.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

# subcommand -> (module, one-line help). Add a line here to add a command.
COMMANDS: dict[str, tuple[str, str]] = {
    "layers": ("modeledit.commands.layers", "list a model's edit sites"),
    "predict": ("modeledit.commands.predict", "top-5 predictions for image files"),
    "models": ("modeledit.commands.models", "list the model names load_model knows"),
    "stats": ("modeledit.commands.stats", "precompute a site's key second moment C over an image folder"),
    "edit": ("modeledit.commands.edit", "rewrite a site from exemplars; save the edit, print objectives"),
    "apply": ("modeledit.commands.apply", "predict with a saved edit applied"),
    "counterfactuals": ("modeledit.commands.counterfactuals", "segment a concept and restyle it: write a counterfactual dataset"),
    "world": ("modeledit.commands.world", "the benchmark world: info, render samples, train classifiers, measure context reliance"),
    "bench": ("modeledit.commands.bench", "editing vs local/global fine-tuning with the paper's protocol"),
    "typographic": ("modeledit.commands.typographic", "typographic attack and its one-exemplar fix vs fine-tuning"),
    "snow": ("modeledit.commands.snow", "adapt to snowy roads from one synthetic exemplar, vs fine-tuning"),
    "demo": ("modeledit.commands.demo", "the main job on the embedded default: a browsable report"),
    "bench-summary": ("modeledit.commands.bench_summary", "re-select a finished bench at other clean-accuracy budgets"),
    "report": ("modeledit.commands.report", "build the HTML report from harness outputs"),
    "sensitivity": ("modeledit.commands.sensitivity", "per-class accuracy drops when one concept is restyled"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeledit", description="Edit classifiers' prediction rules; test them with concept counterfactuals.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    verbose = "-v" in argv[:1] or "--verbose" in argv[:1]
    if verbose:
        argv = argv[1:]
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"modeledit {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, TypeError, RuntimeError, ImportError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"modeledit {name}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
