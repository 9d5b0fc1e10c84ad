"""One registry shape for every pluggable part: models, segmenters, stylizers, world nets, executors.

A :class:`Registry` maps a name to an object or to a ``"module:attr"`` string that is imported only
when the name is first asked for, so importing modeledit never imports a backend's dependencies
(TensorFlow, detectron2, LiteRT, open_clip). Other packages plug in through an entry-point group
(``[project.entry-points."modeledit.models"]`` in their ``pyproject.toml``): that is how the benchmark
world (``modeledit.eval.world``) adds its classifiers and its oracle segmenter without the core
knowing it exists. Unknown names raise a ``KeyError`` listing the closest valid ones.

Example:
    >>> reg = Registry("stylizer")
    >>> reg.register("texture", "modeledit.styles.texture:TextureStylizer", "pastes a texture")
    >>> reg.build("texture", tile=64)
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence


def close_matches(word: str, options: Sequence[str], n: int = 5) -> list[str]:
    """The valid names closest to a mistyped ``word`` (for error messages)."""
    options = list(dict.fromkeys(options))          # each name once (a site's name and its layer's may be the same)
    found = difflib.get_close_matches(word, options, n=n, cutoff=0.4)
    if not found:
        found = [o for o in options if word.lower() in o.lower() or o.lower() in word.lower()][:n]
    return found


def import_target(spec: str) -> Any:
    """The object a ``"package.module:attr"`` string names."""
    module, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"{spec!r} is not of the form 'module:attr'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry:
    """A registered name: its target (an object, or a ``"module:attr"`` string until first use)."""

    name: str
    target: Any
    description: str = ""

    def resolve(self) -> Any:
        if isinstance(self.target, str):
            self.target = import_target(self.target)
        return self.target


class Registry:
    """Names -> objects, imported lazily; entry points of ``group`` are added on first lookup.

    ``prefixes``: names ending in ``":"`` (e.g. ``"timm:"``) also answer for ``"timm:ANYTHING"``.
    """

    def __init__(self, kind: str, group: str | None = None, prefixes: bool = False) -> None:
        self.kind = kind
        self.group = group
        self.prefixes = prefixes
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = group is None

    def register(self, name: str, target: Any, description: str = "", replace: bool = False) -> None:
        """Add ``name``; ``target`` is the object or a ``"module:attr"`` string imported on first use."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} name {name!r} is already registered")
        self._entries[name] = Entry(name, target, description)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def decorator(self, name: str, description: str = "") -> Any:
        """``@registry.decorator("name")`` registers the decorated function or class."""

        def deco(obj: Any) -> Any:
            self.register(name, obj, description or (obj.__doc__ or "").strip().split("\n")[0])
            return obj

        return deco

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            if ep.name not in self._entries:
                self._entries[ep.name] = Entry(ep.name, ep.value, "")

    def entry(self, name: str) -> Entry:
        """The entry for ``name`` (or its prefix entry); KeyError naming the closest valid names."""
        self._load_plugins()
        if name in self._entries:
            return self._entries[name]
        if self.prefixes and ":" in name:
            prefix = name.split(":", 1)[0] + ":"
            if prefix in self._entries:
                return self._entries[prefix]
        close = close_matches(str(name), list(self._entries))
        raise KeyError(f"unknown {self.kind} {name!r}; closest: {close or '-'}; valid: {', '.join(sorted(self._entries))}")

    def get(self, name: str) -> Any:
        """The object registered under ``name``, imported on first use."""
        return self.entry(name).resolve()

    def build(self, name: str, **kwargs: Any) -> Any:
        """``get(name)(**kwargs)``: build a backend by name."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """Name -> one-line description (a plugin's is its target's docstring, read on first ask)."""
        self._load_plugins()
        out = {}
        for name, e in sorted(self._entries.items()):
            desc = e.description
            if not desc:
                try:
                    desc = ((e.resolve().__doc__ or "").strip().split("\n") or [""])[0]
                except ImportError as exc:
                    desc = f"(unavailable: {exc})"
                e.description = desc
            out[name] = desc
        return out

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._entries)
