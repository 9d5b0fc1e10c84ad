"""Run a grid of independent cells in-process or as Ray tasks, writing each result once.

A sweep is ``cells`` (parameter dicts) and a *runner factory*: a picklable callable that builds, once
per worker, the function that computes one cell (so models and statistics load once per worker, not per
cell). The driver writes every result through :class:`ResultStore` atomically; a rerun skips finished
cells; a cell whose worker fails or dies is retried on a fresh worker, and reported if it still fails.

Example:
    >>> ex = get_executor("ray", address=None, workers=2)
    >>> ex.run(cells, RunnerFactory(...), store)
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from modeledit.eval.results import ResultStore
from modeledit.progress import tqdm
from modeledit.registry import Registry

log = logging.getLogger(__name__)

Runner = Callable[[Mapping[str, Any]], Sequence[Mapping[str, Any]]]


@dataclass
class SweepReport:
    done: int = 0
    skipped: int = 0
    retried: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class LocalExecutor:
    """Cells one after another in this process, on the one device of the command (``--device``)."""

    name = "local"

    def __init__(self, max_retries: int = 1) -> None:
        self.max_retries = max_retries

    def run(self, cells: Sequence[Mapping[str, Any]], factory: Callable[[], Runner], store: ResultStore) -> SweepReport:
        report = SweepReport(skipped=len(cells) - len(store.pending(cells)))
        todo = store.pending(cells)
        if not todo:
            return report
        runner = factory()
        for params in tqdm(todo, desc="cells", unit="cell"):
            for attempt in range(self.max_retries + 1):
                try:
                    store.write(params, runner(params))
                    report.done += 1
                    break
                except Exception as exc:  # noqa: BLE001 - a cell's failure is recorded, the sweep goes on
                    if attempt < self.max_retries:
                        report.retried.append(str(params))
                        continue
                    report.failed[str(params)] = f"{type(exc).__name__}: {exc}"
                    log.error("cell %s failed: %s", params, exc)
        return report


def check_ray_address(address: str | None, timeout: float = 3.0) -> None:
    """A one-line RuntimeError, within ``timeout`` seconds, when the Ray cluster at ``address`` (``ray://HOST:PORT``
    or ``HOST:PORT``) does not answer on its port; None, ``auto`` and ``local`` are not probed."""
    import socket
    from urllib.parse import urlsplit

    if not address or address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ValueError(f"--address {address!r} is not a Ray address; write ray://HOST:PORT (a Ray client server, port 10001 by "
                         "default) or HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or type(exc).__name__).lower()
        raise RuntimeError(f"the Ray cluster at {address} does not answer ({why}); start it (`ray start --head` on that machine) "
                           "or drop --address to run a local Ray instance") from None


class RayExecutor:
    """Cells as tasks on Ray actors (one runner per actor); a local Ray instance unless ``address`` is given.

    Inside a command run with a CUDA ``--device`` (:func:`modeledit.device.using`), each actor asks Ray for one
    GPU (``gpus_per_worker``, default 1 then, 0 otherwise) and runs its cells on the GPU Ray gives it, at the
    command's precision: ``--workers N`` on N GPUs runs N cells at once, on one machine or a cluster (``address``).
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int = 2, max_retries: int = 2, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float | None = None) -> None:
        from modeledit.device import current_runtime

        self.address, self.workers, self.max_retries, self.cpus = address, workers, max_retries, cpus_per_worker
        self.runtime = current_runtime()
        cuda = self.runtime is not None and self.runtime.cuda
        self.gpus = float(gpus_per_worker) if gpus_per_worker is not None else (1.0 if cuda else 0.0)

    def run(self, cells: Sequence[Mapping[str, Any]], factory: Callable[[], Runner], store: ResultStore) -> SweepReport:
        from modeledit.deps import optional_import

        ray = optional_import("ray", "ray")
        report = SweepReport(skipped=len(cells) - len(store.pending(cells)))
        todo = list(store.pending(cells))
        if not todo:
            return report
        started = not ray.is_initialized()
        if started:
            check_ray_address(self.address)
            # a local instance's workers see the driver's import path, so runners defined anywhere load there
            env = None if self.address else {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
            ray.init(address=self.address, num_cpus=None if self.address else max(self.workers, 1), runtime_env=env,
                     include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        try:
            self._drive(ray, todo, factory, store, report)
        finally:
            if started:
                ray.shutdown()
        return report

    def _drive(self, ray: Any, todo: list, factory: Callable[[], Runner], store: ResultStore, report: SweepReport) -> None:
        @ray.remote(num_cpus=self.cpus, num_gpus=self.gpus)
        class Worker:
            def __init__(self, factory: Callable[[], Runner], threads: int, runtime: Any) -> None:
                import dataclasses

                import torch

                from modeledit.device import using

                torch.set_num_threads(threads)  # one worker per CPU: avoid oversubscribed OpenMP pools
                # Ray shows each actor only its own GPU(s) (CUDA_VISIBLE_DEVICES): the driver's cuda:N is this actor's cuda
                self.runtime = dataclasses.replace(runtime, device="cuda") if runtime is not None and runtime.cuda else runtime
                if self.runtime is not None:
                    self.runtime.begin()   # --deterministic: this process's algorithms and seeds too
                with using(self.runtime):
                    self.runner = factory()

            def run(self, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
                from modeledit.device import using

                with using(self.runtime):
                    return self.runner(params)

        n = min(self.workers, len(todo))
        threads = max(1, int(self.cpus))
        actors = [Worker.remote(factory, threads, self.runtime) for _ in range(n)]
        attempts: dict[int, int] = {}
        queue = list(range(len(todo)))
        running: dict[Any, tuple[int, int]] = {}  # object ref -> (cell position, actor slot)
        free = list(range(n))
        bar = tqdm(total=len(todo), desc="cells (ray)", unit="cell")
        while queue or running:
            while queue and free:
                pos, slot = queue.pop(0), free.pop(0)
                running[actors[slot].run.remote(todo[pos])] = (pos, slot)
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            pos, slot = running.pop(ref)
            params = todo[pos]
            try:
                store.write(params, ray.get(ref))
                report.done += 1
                bar.update(1)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError) as exc:
                attempts[pos] = attempts.get(pos, 0) + 1
                if isinstance(exc, ray.exceptions.RayActorError):
                    actors[slot] = Worker.remote(factory, threads, self.runtime)  # the worker died: replace it
                if attempts[pos] <= self.max_retries:
                    report.retried.append(str(params))
                    log.warning("cell %s failed (%s); retrying", params, type(exc).__name__)
                    queue.append(pos)
                else:
                    report.failed[str(params)] = f"{type(exc).__name__}: {exc}"
                    log.error("cell %s failed after %d attempts", params, attempts[pos])
                    bar.update(1)
            free.append(slot)
        bar.close()


EXECUTORS = Registry("executor")
EXECUTORS.register("local", LocalExecutor, "cells one after another in this process")
EXECUTORS.register("ray", RayExecutor, "cells on Ray actors (local instance or a cluster)")


def get_executor(name: str, **kwargs: Any) -> LocalExecutor | RayExecutor:
    """``local`` or ``ray`` (kwargs: address, workers, max_retries, cpus_per_worker, gpus_per_worker; local takes only
    max_retries). Ray actors take one GPU each when the command runs on CUDA (see :class:`RayExecutor`)."""
    cls = EXECUTORS.get(name)
    if cls is LocalExecutor:
        kwargs = {k: v for k, v in kwargs.items() if k == "max_retries"}
    return cls(**kwargs)
