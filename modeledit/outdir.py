"""The one owner of output places: an ``--out`` never mixes with the inputs, never lands in the installed
package, and a non-empty folder is only resumed by the command that wrote it.

Rules, checked by :func:`prepare_out` before any work (nothing is created by the check):

* ``--out`` equal to, inside, or containing an input (``--images``, a dataset folder, an exemplar file) is
  refused: the output would be read back as input on the next run.
* ``--out`` inside the installed package (``modeledit``, its ``eval``/``segmenters``/``styles`` folders) is
  refused: nothing a command writes goes into the package (the shipped models stay as they ship).
* A missing or empty folder is used as it is.
* A non-empty folder is resumed only when it was written by the same command: its marker file
  (``.modeledit-out.json``: the command, and for commands that rewrite a whole folder the settings that
  decide its files) says so, or, for folders written before markers existed, it holds that command's own
  record (e.g. ``manifest.json`` + ``cells/`` of a results store, ``config.json`` + ``records/`` of a
  counterfactual dataset). The command's own store then checks the settings, as before.
* Anything else is refused with one line. ``--force`` replaces a folder that modeledit wrote (another
  command's output, or this command's with other settings): the old folder is moved aside to
  ``OUT.replaced-N`` and removed only once the new run has finished, so a failed or interrupted run puts it
  back (when it wrote nothing) or keeps it. A folder modeledit did not write is never emptied, not even with
  ``--force``: choose another folder.

Example:
    >>> with prepare_out("results/cf", command="counterfactuals", inputs={"--images": "photos/"}):
    ...     generate_counterfactuals("photos/", ..., out_dir="results/cf")
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

MARKER = ".modeledit-out.json"

#: what a folder written by a command holds (before markers existed): every listed name must be there
SIGNATURES: dict[str, tuple[str, ...]] = {
    "counterfactuals": ("config.json", "records"),
    "sensitivity": ("manifest.json", "cells"),
    "bench": ("manifest.json", "cells"),
    "snow": ("manifest.json", "cells"),
    "typographic": ("manifest.json", "cells"),
    "photos": ("manifest.json", "cells"),
    "world render": ("0000.json",),
    "world clip-eval": ("eval.json",),
    "demo": ("index.html", "results.json"),
}


def _abs(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def input_paths(inputs: Mapping[str, Any] | None) -> list[tuple[str, Path]]:
    """(flag, path) for every input that names a place on disk; dataset specs such as ``world:test`` are skipped,
    ``folder:DIR`` is DIR."""
    out = []
    for flag, value in (inputs or {}).items():
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if v is None or v == "":
                continue
            s = str(v)
            if s.startswith("folder:"):
                s = s.split(":", 1)[1]
            if os.path.exists(os.path.expanduser(s)):
                out.append((flag, _real(s)))
    return out


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or child.is_relative_to(parent)


def check_apart(out: str | os.PathLike, inputs: Mapping[str, Any] | None, flag: str = "--out") -> None:
    """Refuse an output place equal to, inside or containing an input, or inside the installed package."""
    from modeledit.errors import package_roots

    o = _real(out)
    for in_flag, p in input_paths(inputs):
        if o == p:
            raise ValueError(f"{flag} {str(out)!r} is the input of {in_flag}; write the output to a new folder outside the inputs")
        if p.is_dir() and _inside(o, p):
            raise ValueError(f"{flag} {str(out)!r} lies inside the input folder of {in_flag} ({str(p)!r}): the output would be read "
                             f"back as input; choose a folder outside {str(p)!r}")
        if _inside(p, o):
            raise ValueError(f"{flag} {str(out)!r} contains the input of {in_flag} ({str(p)!r}); choose an output folder that "
                             "does not hold the inputs")
    for root in package_roots():
        if _inside(o, root):
            raise ValueError(f"{flag} {str(out)!r} lies inside the installed modeledit package ({str(root)!r}), which no command "
                             "writes into; choose a place outside it (e.g. ./results/...)")


def owner(folder: Path, prefer: str | None = None) -> tuple[str | None, Any, bool]:
    """(command that wrote ``folder`` or None, its recorded settings, whether a marker says so). Without a marker
    the folder's own record decides; several commands share one (a results store): ``prefer`` first."""
    marker = folder / MARKER
    if marker.is_file():
        with contextlib.suppress(OSError, ValueError):
            rec = json.loads(marker.read_text())
            if isinstance(rec, dict) and isinstance(rec.get("command"), str):
                return rec["command"], rec.get("config"), True
    order = [prefer] if prefer in SIGNATURES else []
    for command in [*order, *SIGNATURES]:
        names = SIGNATURES[command]
        if all((folder / n).exists() for n in names):
            return command, None, False
    return None, None, False


def _normal(config: Any) -> Any:
    return None if config is None else json.loads(json.dumps(config, sort_keys=True, default=str))


class OutFolder(contextlib.AbstractContextManager):
    """A checked output folder; as a context manager it marks the folder as this command's once anything is
    written there; with ``--force`` it moves an earlier folder aside on entry and settles it on exit."""

    def __init__(self, path: Path, command: str, config: Any, replace: bool) -> None:
        self.path, self.command, self.config, self.replace = path, command, _normal(config), replace
        self.aside: Path | None = None

    def __enter__(self) -> "OutFolder":
        if self.replace and self.path.is_dir() and any(self.path.iterdir()):
            self.aside = _aside_name(self.path)
            os.replace(self.path, self.aside)
            log.debug("--force: %s moved aside to %s until the new run has finished", self.path, self.aside)
        return self

    def mark(self) -> None:
        if self.path.is_dir() and any(p.name != MARKER for p in self.path.iterdir()):
            from modeledit.atomic import write_json_atomic

            rec = {"command": self.command, "config": self.config}
            marker = self.path / MARKER
            with contextlib.suppress(OSError, ValueError):
                if marker.is_file() and json.loads(marker.read_text()) == rec:
                    return
            write_json_atomic(marker, rec)

    def __exit__(self, exc_type, exc, tb) -> None:
        with contextlib.suppress(OSError):
            self.mark()
        if self.aside is None:
            return None
        if exc_type is None:
            shutil.rmtree(self.aside, ignore_errors=True)
            log.info("--force: the earlier contents of %s were replaced", self.path)
        elif not self.path.exists() or not any(self.path.iterdir()):
            with contextlib.suppress(OSError):
                self.path.rmdir()
            os.replace(self.aside, self.path)
            log.debug("the run stopped before writing anything: %s is back as it was", self.path)
        else:
            log.warning("the run stopped; the folder --force replaced is kept in %s (delete it once the new run is done)", self.aside)
        return None


def _aside_name(path: Path) -> Path:
    n = 1
    while path.with_name(f"{path.name}.replaced-{n}").exists():
        n += 1
    return path.with_name(f"{path.name}.replaced-{n}")


def prepare_out(out: str | os.PathLike, command: str, inputs: Mapping[str, Any] | None = None, config: Any = None,
                force: bool = False, flag: str = "--out") -> OutFolder:
    """Check ``out`` for ``command`` (see the module docstring) and return it as an :class:`OutFolder`;
    ``config``: the settings that decide the folder's files, for commands without a store of their own that
    checks them (a folder of this command with other settings is then refused, or replaced with ``force``).

    Example:
        >>> with prepare_out("samples/", command="world render", config={"n": 18, "split": "test"}):
        ...     write_samples(ds, "samples/")
    """
    check_folder(out, flag)
    check_apart(out, inputs, flag)
    path = _abs(out)
    replace = False
    if path.is_dir() and any(path.iterdir()):
        who, settings, marked = owner(path, prefer=command)
        again = "; choose an empty or new folder, or pass --force to replace it (it is kept until the new run has finished)"
        if who is None:
            names = sorted(p.name for p in path.iterdir())
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise ValueError(f"{flag} {str(out)!r} is not empty and was not written by modeledit (it holds {shown}); choose an "
                             "empty or new folder (--force never replaces a folder modeledit did not write)")
        reason = None
        if who != command:
            reason = f"holds the output of `modeledit {who}`"
        elif marked and config is not None and settings != _normal(config):
            old = settings if isinstance(settings, dict) else {}
            differ = sorted(k for k in set(old) | set(_normal(config)) if old.get(k) != _normal(config).get(k))
            reason = f"holds `modeledit {command}` output made with other settings ({', '.join(differ) or 'config'})"
        if reason is not None and not force:
            raise ValueError(f"{flag} {str(out)!r} {reason}{again}")
        replace = force
    return OutFolder(path, command, config, replace)


def check_folder(path: str | os.PathLike | None, flag: str) -> None:
    """Refuse a place that must be a folder (a cache, an output folder) when it exists as something else."""
    if path and os.path.exists(os.path.expanduser(str(path))) and not os.path.isdir(os.path.expanduser(str(path))):
        raise ValueError(f"{flag} {str(path)!r} is a file, not a folder; give a folder (it is created if missing)")

