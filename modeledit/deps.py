"""Optional dependencies and online resources: fail fast, and say what to install or do instead.

Example:
    >>> open_clip = optional_import("open_clip", "clip")      # ImportError: pip install 'modeledit[clip]'
    >>> require_network("huggingface.co", "open_clip RN50 weights", "pass a local checkpoint path")
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import sys
import tempfile
from typing import Any, Iterator


def optional_import(module: str, extra: str) -> Any:
    """Import an optional dependency or raise an ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is needed for this; install it with `pip install 'modeledit[{extra}]'` ({exc})") from None


def require_network(host: str, what: str, way_out: str, timeout: float = 3.0) -> None:
    """Fail fast (seconds) with a clear message when ``host`` cannot be reached."""
    if os.environ.get("MODELEDIT_OFFLINE", "") not in ("", "0"):
        raise RuntimeError(f"cannot fetch {what}: MODELEDIT_OFFLINE is set; {way_out}")
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            pass
    except OSError as exc:
        raise RuntimeError(f"cannot fetch {what}: {host} is unreachable ({exc.__class__.__name__}); {way_out}") from None


@contextlib.contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """Hold back what native code (TFLite, TensorFlow, absl) writes straight to file descriptor 2 while the
    block runs, e.g. LiteRT's ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU``. The text is shown
    after all if the block raises, and always when debug logging is on (``modeledit -v``).

    Example:
        >>> with native_stderr_quiet():
        ...     interpreter = Interpreter(model_path=path)
    """
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):      # no file descriptor 2 (an embedding host): nothing to hold back
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
