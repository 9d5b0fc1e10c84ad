"""Segmenter keywords from the command line (``--segmenter-arg KEY=VALUE``), read as the backend expects them.

A VALUE is read as JSON when it is JSON (``iterations=3``, ``box=[10, 10, 200, 200]``, ``flag=true``);
comma-separated numbers become a tuple of numbers (``box=10,10,200,200`` -> ``(10, 10, 200, 200)``), so a
backend parameter that takes a tuple (GrabCut's box) is usable from the command line; anything else stays
text (``root=masks/``). A KEY the backend's constructor does not take is refused with the keys it does
take, before any work.

Example:
    >>> parse_segmenter_args("grabcut", ["box=10,10,200,200", "concept=cat"])
    {'box': (10, 10, 200, 200), 'concept': 'cat'}
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Sequence


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_value(raw: str) -> Any:
    """One VALUE (see the module docstring)."""
    text = raw.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    else:
        return tuple(value) if isinstance(value, list) else value
    if "," in text:
        parts = [p.strip() for p in text.split(",")]
        try:
            return tuple(_number(p) for p in parts)
        except ValueError:
            pass
    return value


def backend_parameters(name: str) -> tuple[set[str], bool] | None:
    """(keyword names, takes **kwargs) of the backend registered as ``name``, or None when it cannot be inspected."""
    from modeledit.segmenters import SEGMENTERS

    try:
        target = SEGMENTERS.get(name)
    except (KeyError, ImportError):
        return None
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    names = {p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    return names, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def parse_segmenter_args(segmenter: str, items: Sequence[str] | None, flag: str = "--segmenter-arg") -> dict[str, Any]:
    """``KEY=VALUE`` items as keywords for ``segmenter`` (see the module docstring)."""
    out: dict[str, Any] = {}
    for it in items or []:
        key, sep, raw = it.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{flag} {it!r} must look like KEY=VALUE")
        out[key] = parse_value(raw)
    params = backend_parameters(segmenter) if out else None
    if params is not None:
        names, var_kw = params
        unknown = sorted(set(out) - names)
        if unknown and not var_kw:
            raise ValueError(f"{flag}: the {segmenter} segmenter takes no keyword {unknown[0]!r}; it takes {sorted(names) or 'none'}")
    return out
