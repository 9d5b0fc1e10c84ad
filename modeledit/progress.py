"""The one progress bar: ``tqdm.auto``'s, whose last line is written once to a log file or a pipe.

tqdm's ``close()`` draws a kept bar (``leave=True``) once more, with the overall rate, even when the last
update has just drawn it at 100%. On a terminal the carriage return overwrites the first drawing; in a log
file or a pipe (``modeledit bench ... 2>&1 | tee run.log``, a background job) the final line appeared
twice, with two different rates. When the stream is not a terminal and the final count is already on
screen, this bar only ends the line. A bar opened while another is running (a fine-tuning loop inside a
sweep's cell) is not drawn on such a stream: tqdm positions nested bars with cursor-up escapes, which a
log file keeps as garbage between the outer bar's lines. Every bar in modeledit comes from here.

Example:
    >>> from modeledit.progress import tqdm
    >>> for x in tqdm(items, desc="cells", unit="cell"):
    ...     work(x)
"""
from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm as _auto_tqdm
from tqdm.std import tqdm as _std_tqdm

__all__ = ["tqdm"]


def _is_terminal(fp: Any) -> bool:
    try:
        return bool(fp.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class tqdm(_auto_tqdm):
    """``tqdm.auto.tqdm`` that, on a stream that is not a terminal, does not repeat its last line on close and
    does not draw a bar nested in another."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fp = kwargs.get("file") or sys.stderr
        running = any(b is not self and not getattr(b, "disable", True) for b in list(_std_tqdm._instances))
        if running and not kwargs.get("disable") and not _is_terminal(fp):
            kwargs["disable"] = True
        super().__init__(*args, **kwargs)

    def close(self) -> None:
        if getattr(self, "disable", True) or not self._final_line_written():
            return super().close()
        self.display = lambda *args, **kwargs: True   # close() would draw the same count again: only end the line
        try:
            super().close()
        finally:
            del self.display

    def _final_line_written(self) -> bool:
        """A kept text bar (not a notebook widget) on a non-terminal stream whose last drawing shows the final count."""
        leave = getattr(self, "leave", False)
        leave = abs(getattr(self, "pos", 0)) == 0 if leave is None else leave
        return (bool(leave) and type(self).display is _std_tqdm.display and getattr(self, "sp", None) is not None
                and self.n == getattr(self, "last_print_n", None) and not _is_terminal(self.fp))
