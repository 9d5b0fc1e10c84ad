"""Telling a user's mistake from a bug, for the command line.

The library reports bad input with ``ValueError`` / ``TypeError`` / ``KeyError`` / ``FileNotFoundError``
(and ``ImportError`` for a missing optional dependency, ``RuntimeError`` for an unreachable host),
raised by an explicit ``raise`` statement in the package's own source with one sentence saying what
was wrong and what to do. The same types also come out of bugs (``int("abc")`` deep inside a function,
a shape mismatch in torch): those must show their traceback. :func:`user_message` draws the line:

* an exception raised by a ``raise`` statement in the package's own files (``modeledit``, and the
  ``eval``, ``segmenters``, ``styles`` folders installed under it), or any :class:`UserError`, is a
  user error: its message is returned;
* a filesystem ``OSError`` carrying a file name (permission denied, not a directory, disk full, ...)
  is the user's environment: a one-line message naming the file is returned;
* anything else is a bug: ``None`` (the caller shows the traceback).

Example:
    >>> try:
    ...     load_model("mobilenet_v3")
    ... except Exception as exc:
    ...     print(user_message(exc))
    unknown model 'mobilenet_v3'; closest: ['mobilenet_v2']; ...
"""
from __future__ import annotations

import errno
import importlib.util
import linecache
from functools import lru_cache
from pathlib import Path

USER_TYPES = (ValueError, TypeError, KeyError, FileNotFoundError, ImportError, RuntimeError)

# filesystem conditions that are the user's environment, not a bug in the code
_FS_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOSPC, errno.EROFS,
    errno.ENOENT, errno.ENAMETOOLONG, getattr(errno, "EDQUOT", errno.ENOSPC),
}


class UserError(Exception):
    """Mixin for exceptions that are always the user's to fix (subclass it with a builtin type)."""


class UsageError(UserError, ValueError):
    """A command-line value that does not parse or does not fit (shown as one line, exit code 2)."""


class Diverged(UserError, ValueError):
    """An optimisation whose loss or weights became NaN or infinite: the setting (e.g. a learning rate) is too
    large for these exemplars. The harness cell records such a setting as diverged (never selected) instead of
    failing the run; a direct call shows the message."""


@lru_cache(maxsize=1)
def package_roots() -> tuple[Path, ...]:
    """Folders holding the package's own source (the core and the three mapped sub-packages)."""
    roots = []
    for mod in ("modeledit", "modeledit.eval", "modeledit.segmenters", "modeledit.styles"):
        spec = importlib.util.find_spec(mod)
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(p).resolve() for p in spec.submodule_search_locations)
    return tuple(roots)


def _raised_by_package(exc: BaseException) -> bool:
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    try:
        path = Path(filename).resolve()
    except OSError:
        return False
    if not any(path.is_relative_to(r) for r in package_roots()):
        return False
    return linecache.getline(filename, tb.tb_lineno).lstrip().startswith("raise")


def user_message(exc: BaseException) -> str | None:
    """The one-line message for a user's mistake, or ``None`` when ``exc`` looks like a bug."""
    if isinstance(exc, OSError) and not isinstance(exc, UserError) and exc.errno in _FS_ERRNOS and exc.filename:
        if not _raised_by_package(exc):
            what = exc.strerror or exc.__class__.__name__
            target = f"{exc.filename!s}" + (f" -> {exc.filename2!s}" if exc.filename2 else "")
            return f"cannot use {target!r}: {what}; choose a path you can write to (or read from)"
    if isinstance(exc, UserError) or (isinstance(exc, USER_TYPES) and _raised_by_package(exc)):
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return " ".join(str(msg).split()) or exc.__class__.__name__
    return None
