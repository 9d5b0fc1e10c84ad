"""Stopping long runs cleanly: SIGTERM raised like Ctrl-C, and interrupts deferred to the end of a unit.

Signal handlers are process-wide state, so each helper installs its handlers only in the main thread,
only over a handler it knows (never over an ignored signal: a background job of a non-interactive shell
starts with SIGINT ignored and keeps it so), and restores the previous ones when its block ends.

Example:
    >>> with defer_interrupts() as stop:
    ...     for step in range(n):
    ...         train_one_step()                # Ctrl-C here lets the step finish
    ...         if stop.requested:
    ...             save_resume_file()          # a consistent state: the step is complete
    ...             stop.raise_now()            # KeyboardInterrupt (or the previous handler's exception)
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

#: the signals :func:`defer_interrupts` holds back
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM while a command runs, raised like Ctrl-C so the run stops the same clean way (resume files
    written, the unit in flight finished or discarded, a folder without a finished unit removed)."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated`; the previous handler comes back afterwards.
    Only over the default handler (a host program's own handler is left alone)."""
    if not _main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class DeferredInterrupt:
    """What :func:`defer_interrupts` yields: ``requested`` once SIGINT or SIGTERM arrived in the block."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum == signum:       # asked twice: stop now, as without the deferral
            self._deliver(signum)
        self.signum = signum

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _deliver(self, signum: int) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        self._restore()
        if callable(previous):          # default_int_handler raises KeyboardInterrupt; the CLI's SIGTERM raises Terminated
            previous(signum, None)
        signal.raise_signal(signum)     # the default action (SIGTERM: end the process)

    def raise_now(self) -> None:
        """Deliver the held signal as the handler before the block would have (call at a unit's end)."""
        if self.signum is None:
            return
        signum, self.signum = self.signum, None
        self._deliver(signum)


@contextlib.contextmanager
def defer_interrupts() -> Iterator[DeferredInterrupt]:
    """Hold SIGINT and SIGTERM back until the caller reaches a consistent point (see the module example).
    A second arrival of the same signal is delivered at once. Outside the main thread nothing is held."""
    state = DeferredInterrupt()
    if _main_thread():
        for signum in DEFERRED_SIGNALS:
            current = signal.getsignal(signum)
            if current in (signal.SIG_IGN, None):
                continue
            state._previous[signum] = current
            signal.signal(signum, state._handle)
    try:
        yield state
    finally:
        state._restore()


@contextlib.contextmanager
def ignoring_interrupts(restore: bool = True) -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the block runs, e.g. while a finished command delivers its output: a
    Ctrl-C that arrives after the work is done must not turn its exit code into 130. ``restore=False`` leaves
    them ignored after the block (for a process that is about to exit). Only in the main thread, and never
    over a host program's own handler (only over the defaults this package installs or Python's)."""
    previous: dict[int, Any] = {}
    if _main_thread():
        for signum in DEFERRED_SIGNALS:
            current = signal.getsignal(signum)
            if current in (signal.SIG_DFL, signal.default_int_handler):
                previous[signum] = current
                signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        if restore:
            for signum, handler in previous.items():
                if signal.getsignal(signum) is signal.SIG_IGN:     # not replaced inside the block
                    signal.signal(signum, handler)


def exit_on_interrupt(code: int) -> None:
    """For a process whose command has finished with ``code`` and which is about to exit: from now on SIGINT and
    SIGTERM end it at once with that code (its output is flushed first), so a late Ctrl-C neither turns success
    into 130 nor leaves a slow shutdown (library exit handlers) unstoppable. Main thread only; a host program's
    own handlers are left alone."""
    import os
    import sys

    def _exit(signum: int, frame: Any) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)

    if not _main_thread():
        return
    for signum in DEFERRED_SIGNALS:
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler, signal.SIG_IGN):
            signal.signal(signum, _exit)
