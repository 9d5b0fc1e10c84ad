"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file under its final name.

Every writer in modeledit (edits, statistics, images, result cells, tables, figures, checkpoints)
writes to a hidden temporary file beside the target and renames it into place, with the ordinary
mode 0644.

Example:
    >>> with atomic_path("out/edit.safetensors") as tmp:
    ...     save_file(tensors, str(tmp))
    >>> write_json_atomic("out/cell.json", {"a": 1})
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success it replaces ``path``, on error it is removed."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.{os.getpid()}.tmp{p.suffix}")
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, p)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def finished_files(folder: str | os.PathLike, pattern: str = "*.json") -> list[Path]:
    """The files of ``folder`` matching ``pattern``, sorted, without the hidden temporary files of :func:`atomic_path`
    (a process killed between writing one and renaming it leaves it behind, complete or truncated: never a result)."""
    return sorted(p for p in Path(folder).glob(pattern) if not p.name.startswith("."))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, sort_keys: bool = False) -> Path:
    """JSON (indent 1; unknown types as strings), written atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=1, default=str, sort_keys=sort_keys))
