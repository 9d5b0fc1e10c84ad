"""The ``modeledit`` command line. Each subcommand lives in its own module under
``modeledit.commands`` (``add_arguments(parser)`` and ``run(args) -> int``) and is imported only
when it is used, so ``modeledit layers`` never imports TensorFlow or the world renderer.

Exit codes: 0 done; 2 a user's mistake (one line on stderr saying what was wrong and what to do,
see :mod:`modeledit.errors`); 1 a bug (its traceback) or failed cells; 130 interrupted (Ctrl-C: the
unit in flight is finished or discarded, finished units are kept, the same command resumes); 143
terminated (SIGTERM, e.g. ``kill`` or a scheduler's stop: handled exactly as Ctrl-C).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import traceback
import warnings
from typing import Iterator, Sequence

from modeledit.errors import UsageError, user_message
from modeledit.signals import Terminated, terminate_as_interrupt

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
    "photos": ("modeledit.commands.photos", "the protocol on the shipped colour photos with the real MobileNetV2"),
    "studio": ("modeledit.commands.studio", "the interactive editor in the browser: paint a concept, restyle it, rewrite, compare"),
}

INTERRUPTED = "interrupted: rerun the same command to resume"
# loggers that flood -v with internals nobody asked for
QUIET_LOGGERS = ("PIL", "matplotlib", "urllib3", "fsspec", "filelock", "h5py", "numexpr", "asyncio")


class HelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` to help texts whose flag has a meaningful default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (raised as :class:`UsageError`, printed by :func:`main`) and
    defaults shown in ``--help``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="modeledit", description="Edit classifiers' prediction rules; test them with concept counterfactuals.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one log line (category, message, where), without echoing the source line."""
    logging.getLogger("py.warnings").warning("%s: %s (%s:%s)", category.__name__, message, filename.rsplit("/", 1)[-1], lineno)


@contextlib.contextmanager
def _console(verbose: bool) -> Iterator[None]:
    """Logging on stderr routed through tqdm while bars are live, one-line warnings, quiet libraries."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level, old_handlers = root.level, list(root.handlers)
    root.handlers = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet = {n: logging.getLogger(n).level for n in QUIET_LOGGERS}
    for n in QUIET_LOGGERS:
        logging.getLogger(n).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(), logging_redirect_tqdm(loggers=[root]):
            warnings.showwarning = _show_warning
            yield
    finally:
        root.handlers = old_handlers
        root.setLevel(old_level)
        for n, lvl in quiet.items():
            logging.getLogger(n).setLevel(lvl)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    verbose = argv[0] in ("-v", "--verbose")
    if verbose:
        argv = argv[1:]
    name, rest = (argv[0], argv[1:]) if argv else ("", [])
    prog = f"modeledit {name}" if name in COMMANDS else "modeledit"
    try:
        if name not in COMMANDS:
            raise UsageError(f"unknown command {name!r}; choose from {', '.join(COMMANDS)} (see `modeledit --help`)")
        module = importlib.import_module(COMMANDS[name][0])
        parser = Parser(prog=prog, description=COMMANDS[name][1])
        module.add_arguments(parser)
        args = parser.parse_args(rest)
        with _console(verbose), terminate_as_interrupt():
            return int(module.run(args) or 0)
    except KeyboardInterrupt as exc:
        print(f"{prog}: {INTERRUPTED}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # noqa: BLE001 - sorted into user errors (one line) and bugs (traceback)
        msg = user_message(exc)
        if msg is None:
            traceback.print_exc()
            print(f"{prog}: internal error ({exc.__class__.__name__}); this is a bug, please report it with the traceback above",
                  file=sys.stderr)
            return 1
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
