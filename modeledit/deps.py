"""Optional dependencies and online resources: fail fast, and say what to install or do instead.

Example:
    >>> open_clip = optional_import("open_clip", "clip")      # ImportError: pip install 'modeledit[clip]'
    >>> require_network("huggingface.co", "open_clip RN50 weights", "pass a local checkpoint path")
"""
from __future__ import annotations

import importlib
import os
import socket
from typing import Any


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
