"""Open a page in Debian's headless Chromium (no sandbox, no background networking) and return its DOM."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


#: the window the report must fit (no horizontal overflow)
WINDOW = (1300, 1000)


def _run(page: Path, extra: list[str], window: tuple[int, int], timeout: float) -> subprocess.CompletedProcess:
    exe = chromium()
    assert exe, "chromium is not installed (make test installs Debian's chromium)"
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
               f"--window-size={window[0]},{window[1]}", *extra, page.resolve().as_uri()]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def dump_dom(page: Path, timeout: float = 90, window: tuple[int, int] = WINDOW) -> str:
    """The page's DOM after load, in a window of ``window`` pixels (its checks write attributes on <body>)."""
    return _run(page, ["--dump-dom"], window, timeout).stdout


def screenshot(page: Path, path: Path, timeout: float = 90, window: tuple[int, int] = WINDOW) -> Path:
    """A PNG of the page's first ``window`` pixels."""
    _run(page, [f"--screenshot={Path(path).resolve()}"], window, timeout)
    assert Path(path).is_file(), f"chromium wrote no screenshot at {path}"
    return Path(path)
