"""Which flags apply to which mode of a command, checked in one place: a flag given where it has no effect is
an error, never silently ignored.

A command module declares ``APPLIES``: flag -> (condition on the parsed arguments, where the flag applies,
in words). :func:`check_applicable` (called by :func:`modeledit.cli.main` right after parsing) refuses the
first flag that was given (its value differs from the parser's default) while its condition is false.
The grid flags of the comparison (``--strength-grid``, ``--alpha-grid``, ...) apply when a chosen method
uses that grid (:func:`grid_rules`).

Example:
    >>> APPLIES = {"--exemplar": (lambda a: a.mode == "photos", "--mode photos (world mode makes its own exemplar)")}
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, Mapping, Sequence

Rule = tuple[Callable[[argparse.Namespace], bool], str]

#: grid flag -> the config field a method of the comparison reads it from
GRID_FLAGS = {"--finetune-grid": "finetune_grid", "--adam-grid": "adam_grid", "--alpha-grid": "alpha_grid",
              "--strength-grid": "strength_grid", "--lambda-grid": "lambda_grid"}


def method_fields(method: str) -> set[str]:
    """The config fields (grids) ``method`` reads."""
    from modeledit.eval.methods import METHODS

    m = METHODS.get(method)
    return {f for f in (m.grid_field, m.scaled[0] if m.scaled else None, m.extra_grid[0] if m.extra_grid else None) if f}


def grid_rules(default_methods: Sequence[str] | Callable[[argparse.Namespace], Sequence[str]] | None = None) -> dict[str, Rule]:
    """``APPLIES`` entries for the grid flags: each applies when one of the chosen methods (``--methods``, or
    ``default_methods`` when it was not given) uses that grid."""

    def methods(a: argparse.Namespace) -> list[str]:
        from modeledit.commands.common import split_list

        chosen = split_list(getattr(a, "methods", None))
        if chosen:
            return chosen
        return list(default_methods(a) if callable(default_methods) else default_methods or [])

    def uses(field: str) -> Callable[[argparse.Namespace], bool]:
        def cond(a: argparse.Namespace) -> bool:
            try:
                return any(field in method_fields(m) for m in methods(a))
            except KeyError:
                return True   # an unknown method is reported by the harness's own name check
        return cond

    from modeledit.eval.methods import METHODS

    def users(field: str) -> str:   # from the method registry, so a registered method is named too
        return " or ".join(m for m in METHODS.names() if field in method_fields(m))

    return {flag: (uses(field), f"--methods including {users(field)}") for flag, field in GRID_FLAGS.items()}


def _actions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[argparse.ArgumentParser, argparse.Action]]:
    """(parser, action) for the parser's actions, with those of the chosen sub-command (``modeledit world train``)."""
    out = []
    for act in parser._actions:  # noqa: SLF001 - argparse keeps no public list
        if isinstance(act, argparse._SubParsersAction):  # noqa: SLF001
            chosen = getattr(args, act.dest, None)
            if chosen in act.choices:
                out += _actions(act.choices[chosen], args)
        else:
            out.append((parser, act))
    return out


def given_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """Option string -> value, for every option whose parsed value differs from its default."""
    out = {}
    for owner, act in _actions(parser, args):
        if not act.option_strings or act.dest in ("help",) or not hasattr(args, act.dest):
            continue
        value = getattr(args, act.dest)
        default = owner.get_default(act.dest)
        if getattr(args, f"_given_{act.dest}", False) or value != default:
            for opt in act.option_strings:
                out[opt] = value
    return out


def check_applicable(parser: argparse.ArgumentParser, args: argparse.Namespace, rules: Mapping[str, Rule] | None) -> None:
    """Raise the one-line ValueError for the first given flag whose rule says it does not apply here."""
    if not rules:
        return
    given = given_flags(parser, args)
    for flag, (cond, where) in rules.items():
        if flag in given and not cond(args):
            raise ValueError(f"{flag} applies only with {where}; it would be ignored here: drop it")


def rules_of(module: Any, args: argparse.Namespace) -> Mapping[str, Rule] | None:
    """A command module's ``APPLIES`` (for commands with actions, ``APPLIES[action]``)."""
    rules = getattr(module, "APPLIES", None)
    if callable(rules):
        return rules(args)
    return rules
