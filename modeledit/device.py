"""Where a command runs and at what precision: the device, mixed precision for predictions, determinism.

One place resolves ``--device`` (``auto``: CUDA when a GPU is visible, else the CPU; ``cpu``, ``cuda``,
``cuda:N``) and ``--precision`` (``fp32``: no autocast, the default, so committed numbers do not move;
``bf16`` / ``fp16``: autocast on *prediction* passes only; statistics, solvers and training keep their
precision). :class:`Runtime` carries these choices (and the data-loading ones, ``--workers`` and
``--batch-size``) from the command line to the harnesses and into every manifest
(:meth:`Runtime.record`); it is picklable, so Ray workers receive it with their runner.

:func:`batched` is the one batched-prediction loop: it splits a batch, runs each part, and after a CUDA
out-of-memory error retries once at half the batch size with one warning line.

Example:
    >>> from modeledit.device import Runtime, resolve_device
    >>> resolve_device("auto")                       # device(type='cpu') on a machine without a GPU
    >>> rt = Runtime(device="cpu", precision="bf16")
    >>> lm = rt.place(load_model("world_vgg"))        # on the device; predictions under bf16 autocast
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from modeledit.config import JsonConfig

log = logging.getLogger(__name__)

#: --precision -> the autocast dtype (None: no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
#: the runtime of the command in flight (set only inside :func:`using`, always reset on exit); Ray workers set
#: their own from what the driver sends (modeledit.eval.executors)
_CURRENT: contextvars.ContextVar["Runtime | None"] = contextvars.ContextVar("modeledit_runtime", default=None)


def cuda_count() -> int:
    """How many CUDA GPUs this process sees (0 without a CUDA build or driver)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (CUDA when a GPU is visible, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` -> a torch.device.

    A CUDA device that is not visible is a ValueError (one sentence), raised before any work.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if cuda_count() else "cpu")
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise ValueError(f"--device {spec!r} is not a device; give {DEVICE_CHOICES}") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ValueError(f"--device {spec!r} is not supported; give {DEVICE_CHOICES}")
    n = cuda_count()
    if n == 0:
        raise ValueError(f"--device {spec} but no CUDA GPU is visible; use --device cpu (or auto)")
    if dev.index is not None and dev.index >= n:
        raise ValueError(f"--device {spec} but only {n} CUDA GPU(s) are visible (cuda:0..cuda:{n - 1}); choose one of those")
    return dev


def check_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``precision`` if it is one of fp32, bf16, fp16 and runs on ``device``; a ValueError otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and torch.device(device).type == "cpu":
        raise ValueError("--precision fp16 needs a CUDA device (the CPU's autocast is bf16); use --precision bf16 on the CPU")
    return precision


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context for a prediction pass: nothing for fp32, ``torch.autocast`` otherwise."""
    dtype = PRECISIONS[check_precision(precision, device)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def set_deterministic(seed: int = 0) -> None:
    """Seeds (Python, NumPy, torch, every GPU) and deterministic algorithms (cuDNN's included).

    Operations without a deterministic implementation warn instead of failing (``warn_only``).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's requirement for deterministic GEMMs
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is a CUDA out-of-memory error."""
    return isinstance(exc, torch.cuda.OutOfMemoryError)


def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int, what: str = "prediction") -> list[torch.Tensor]:
    """``fn`` on consecutive slices of ``x`` of ``batch_size`` rows; the outputs in order.

    A CUDA out-of-memory error retries the failed slice, and every later one, once at half the batch
    size, with one warning line; a second one is raised.
    """
    out: list[torch.Tensor] = []
    size, halved, i = max(1, int(batch_size)), False, 0
    while i < len(x):
        try:
            out.append(fn(x[i:i + size]))
        except torch.cuda.OutOfMemoryError:
            if halved or size == 1:
                raise
            halved, size = True, max(1, size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("CUDA out of memory during %s at batch size %d; retrying at %d (pass a smaller --batch-size)",
                        what, size * 2, size)
            continue
        i += size
    return out


def loader_options(device: torch.device | str, workers: int = 0) -> dict[str, Any]:
    """DataLoader keyword arguments for feeding ``device``: worker processes, pinned memory for CUDA."""
    cuda = torch.device(device).type == "cuda"
    opts: dict[str, Any] = {"num_workers": int(workers), "pin_memory": cuda}
    if workers:
        opts["persistent_workers"] = False
    return opts


def describe_device(device: torch.device | str) -> str:
    """The device's name: the GPU's model for CUDA, the processor for the CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    return platform.processor() or platform.machine()


@dataclass
class Runtime(JsonConfig):
    """How a command runs (not what it computes): device, prediction precision, determinism, data loading.

    ``device`` is a resolved spec (``cpu``, ``cuda``, ``cuda:1``); ``batch_size`` None keeps each
    harness's own batch size.
    """

    device: str = "cpu"
    precision: str = "fp32"
    deterministic: bool = False
    workers: int = 0
    batch_size: int | None = None

    def __post_init__(self) -> None:
        check_precision(self.precision, self.device if self.device != "auto" else "cpu")
        if self.workers < 0:
            raise ValueError(f"--workers must be 0 or more, got {self.workers}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"--batch-size must be positive, got {self.batch_size}")

    @classmethod
    def resolve(cls, device: str | None = "auto", precision: str = "fp32", deterministic: bool = False, workers: int = 0,
                batch_size: int | None = None) -> "Runtime":
        """A Runtime with ``device`` resolved (``auto`` becomes ``cuda`` or ``cpu``); the one-line errors above."""
        dev = resolve_device(device)
        return cls(str(dev), check_precision(precision, dev), bool(deterministic), int(workers), batch_size)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.precision, self.device)

    def begin(self, seed: int = 0) -> None:
        """What a process does once before its work: deterministic algorithms and seeds where asked for."""
        if self.deterministic:
            set_deterministic(seed)

    def place(self, lm: Any) -> Any:
        """A LoadedModel (or nn.Module) moved to the device; a LoadedModel also predicts at ``precision``."""
        if hasattr(lm, "to") and hasattr(lm, "precision"):
            return lm.to(self.device, precision=self.precision)
        return lm.to(self.device)

    def batch(self, default: int) -> int:
        """``--batch-size`` where given, else the harness's ``default``."""
        return int(self.batch_size or default)

    def loader(self) -> dict[str, Any]:
        return loader_options(self.device, self.workers)

    def record(self) -> dict[str, Any]:
        """What a manifest records about how it ran."""
        return device_record(self.device, self.precision, self.deterministic)


@contextlib.contextmanager
def using(runtime: "Runtime | None") -> Iterator["Runtime | None"]:
    """Inside, :func:`modeledit.load_model` places every model it loads on ``runtime``'s device at its precision
    (an explicit ``device=`` still wins), and stylizers run there; ``None`` changes nothing. The command line
    wraps each command in it, so every harness, however it loads its model, runs where ``--device`` says.
    It sets no seeds: :meth:`Runtime.begin` does (once per process; the command line calls it).

    Example:
        >>> with using(Runtime.resolve("auto", "bf16")):
        ...     run_bench(cfg, "out/")
    """
    if runtime is None:
        yield None
        return
    token = _CURRENT.set(runtime)
    try:
        yield runtime
    finally:
        _CURRENT.reset(token)


def current_runtime() -> "Runtime | None":
    """The runtime set by the innermost :func:`using` (None outside any)."""
    return _CURRENT.get()


def runtime_batch_size(default: int) -> int:
    """Images per batch on the device: the command's ``--batch-size`` (the current runtime's) where given, else
    ``default`` (the harness's own). Harnesses read it once, when a worker builds its runner."""
    rt = current_runtime()
    return rt.batch(default) if rt is not None else int(default)


def runtime_record(model: Any = None) -> dict[str, Any]:
    """What a manifest records about how it ran: ``model``'s device and prediction precision (a LoadedModel
    or an nn.Module), else the current runtime's, else the CPU at fp32."""
    rt = current_runtime()
    if model is not None:
        module = getattr(model, "model", model)
        dev = module_device(module) if isinstance(module, torch.nn.Module) else torch.device(rt.device if rt else "cpu")
        return device_record(dev, getattr(model, "precision", rt.precision if rt else "fp32"), bool(rt and rt.deterministic))
    return rt.record() if rt else device_record("cpu")


def device_record(device: torch.device | str, precision: str = "fp32", deterministic: bool = False) -> dict[str, Any]:
    """The manifest entry: device, its name, precision, determinism (and CUDA's version on a GPU)."""
    dev = torch.device(device)
    out: dict[str, Any] = {"device": str(dev), "device_name": describe_device(dev), "precision": precision,
                           "deterministic": bool(deterministic)}
    if dev.type == "cuda":
        out["cuda"] = torch.version.cuda
    return out


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for a module with neither."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def describe(devices: Sequence[str] = ("cpu",)) -> dict[str, Any]:
    """The machine, for benchmark JSON: processor, cores, torch's threads, and each visible GPU."""
    import platform

    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                            "cuda_available": bool(cuda_count()),
                            "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}
    if cuda_count():
        info["cuda"] = torch.version.cuda
        info["gpus"] = [{"name": torch.cuda.get_device_name(i),
                         "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2 ** 30, 1)} for i in range(cuda_count())]
    return info
