"""CLI flags whose valid values are a registry's names: the registry is the one list.

``--solver`` (the editor's :data:`~modeledit.editor.SOLVERS`), ``--methods`` (the method catalogue),
``--segmenter``, ``--stylizer`` and ``--executor`` read their choices and the names in their help from the
registry, when argparse needs them (a value to check, ``--help``): building a parser imports nothing, and a
solver, method or backend registered by a plugin appears in the help and is accepted without touching
the command line. ``tests/test_architecture.py`` checks that no command lists these names by hand.

Example:
    >>> add_registry_flag(p, "--solver", "solver", default="closed_form", help="how the rewrite is solved", check=True)
"""
from __future__ import annotations

import argparse
from typing import Any, Iterator

#: flag kind -> the registry (``module:attr``) holding its names
REGISTRIES = {
    "solver": "modeledit.editor:SOLVERS",
    "method": "modeledit.eval.methods:METHODS",
    "segmenter": "modeledit.segmenters:SEGMENTERS",
    "stylizer": "modeledit.styles:STYLIZERS",
    "executor": "modeledit.eval.executors:EXECUTORS",
}


class RegistryNames:
    """The names of one registry, read on each use (``in``, iteration, ``str`` for help texts)."""

    def __init__(self, kind: str) -> None:
        if kind not in REGISTRIES:
            raise KeyError(f"no registry for CLI flags of kind {kind!r}; known: {sorted(REGISTRIES)}")
        self.kind = kind

    def registry(self) -> Any:
        from modeledit.registry import import_target

        return import_target(REGISTRIES[self.kind])

    def __contains__(self, name: object) -> bool:
        return name in self.registry()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.registry()))

    def __len__(self) -> int:
        return len(list(self))

    def __str__(self) -> str:
        return ", ".join(self)


def add_registry_flag(p: argparse.ArgumentParser, flag: str, kind: str, help: str, check: bool = False,
                      **kwargs: Any) -> argparse.Action:
    """``flag`` whose help ends with the registry's names; with ``check`` argparse also refuses other values
    (otherwise the command checks them before any work, naming the closest valid ones)."""
    names = RegistryNames(kind)
    action = p.add_argument(flag, help=f"{help} (one of: %(registry_names)s)", metavar=kwargs.pop("metavar", "NAME"),
                            **({"choices": names} if check else {}), **kwargs)
    action.registry_names = names   # read by argparse's help expansion, %(registry_names)s
    return action
