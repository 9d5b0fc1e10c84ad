"""Long work off the request thread: one heavy job at a time, its state kept on the server.

A :class:`JobRunner` runs one job in a worker thread; the page polls :meth:`JobRunner.snapshot` (so a
reloaded page finds the job where it is). A job function takes a :class:`Job` and reports progress with
:meth:`Job.step`, which also raises :class:`Cancelled` once the user asked to stop. A job's failure is one
message: a user's mistake (see :mod:`modeledit.errors`) as it is, a bug as one line naming the server's
log, which holds the traceback.

Example:
    >>> runner = JobRunner()
    >>> job = runner.submit("count", lambda job: sum(job.step(i, 10) or i for i in range(10)))
    >>> runner.wait(job.id).result
    45
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from modeledit.errors import user_message

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a job by :meth:`Job.step` once the job was cancelled."""


def error_text(exc: BaseException) -> str:
    """One line for the page: the user's mistake as the library says it, or a pointer to the log for a bug."""
    msg = user_message(exc)
    if msg is not None:
        return msg
    log.error("studio: internal error", exc_info=exc)
    return f"internal error ({exc.__class__.__name__}); this is a bug: the server's log has the details"


@dataclass
class Job:
    """One unit of long work and what the page shows of it."""

    id: int
    kind: str
    status: str = "running"          # running, done, failed, cancelled
    done: int = 0
    total: int = 0
    message: str = ""
    error: str = ""
    result: Any = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def step(self, done: int, total: int | None = None, message: str | None = None) -> None:
        """Record progress; raises :class:`Cancelled` when the job was asked to stop."""
        self.done = int(done)
        if total is not None:
            self.total = int(total)
        if message is not None:
            self.message = message
        if self._cancel.is_set():
            raise Cancelled()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "status": self.status, "done": self.done, "total": self.total,
                "message": self.message, "error": self.error,
                "seconds": round((self.finished or time.time()) - self.started, 1)}


class JobRunner:
    """Runs at most one job at a time in a daemon thread; keeps the last job for the page to read.

    ``context`` (a function returning a context manager) is entered in the job's thread around each job: a new
    thread starts with none of the server's context variables (the studio passes its device runtime this way)."""

    def __init__(self, context: Callable[[], contextlib.AbstractContextManager] | None = None) -> None:
        self._context = context or contextlib.nullcontext
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._job: Job | None = None
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._job is not None and self._job.status == "running"

    def current(self) -> Job | None:
        return self._job

    def require_idle(self) -> None:
        """A ValueError naming the running job, for actions that must not overlap one."""
        job = self._job
        if job is not None and job.status == "running":
            raise ValueError(f"the job '{job.kind}' is still running; wait for it to finish or cancel it first")

    def submit(self, kind: str, fn: Callable[[Job], Any], on_done: Callable[[Job], None] | None = None) -> Job:
        """Start ``fn(job)`` in the worker thread; a ValueError when a job is already running."""
        with self._lock:
            if self._job is not None and self._job.status == "running":
                raise ValueError(f"the job '{self._job.kind}' is still running; wait for it to finish or cancel it first")
            job = Job(next(self._ids), kind)
            self._job = job
            self._thread = threading.Thread(target=self._run, args=(job, fn, on_done), name=f"studio-job-{job.id}", daemon=True)
            self._thread.start()
        return job

    def _run(self, job: Job, fn: Callable[[Job], Any], on_done: Callable[[Job], None] | None) -> None:
        try:
            with self._context():
                job.result = fn(job)
            job.status = "done"
        except Cancelled:
            job.status, job.message = "cancelled", "cancelled"
        except Exception as exc:  # noqa: BLE001 - every failure becomes one message on the page
            job.status, job.error = "failed", error_text(exc)
        finally:
            job.finished = time.time()
            if on_done is not None:
                try:
                    on_done(job)
                except Exception:  # noqa: BLE001 - the job's own outcome stands; the log keeps this one
                    log.exception("studio: the finishing step of job %s failed", job.kind)

    def cancel(self) -> Job | None:
        """Ask the running job to stop at its next step; the job itself (or None)."""
        job = self._job
        if job is not None and job.status == "running":
            job._cancel.set()
        return job

    def wait(self, job_id: int | None = None, timeout: float | None = None) -> Job | None:
        """Block until the current job ends (tests and shutdown)."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return self._job

    def snapshot(self) -> dict[str, Any] | None:
        job = self._job
        return None if job is None else job.to_dict()
