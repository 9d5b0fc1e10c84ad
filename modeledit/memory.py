"""Sizes checked against the model and the machine before any work: an input too small for a network's
downsampling, or a batch whose images and activations would not fit in memory, is refused with one line
instead of a traceback or the kernel's out-of-memory kill.

Example:
    >>> check_input_size(lm, 1, "--size")        # ValueError: --size 1 is too small for world_vgg ...
    >>> check_forward_memory(lm, 100000, 32, "--size")   # ValueError: ... needs about 3.8 TB ...
"""
from __future__ import annotations

from typing import Any

import torch


def available_bytes(device: torch.device | None = None) -> int | None:
    """Memory free for new allocations: the CUDA device's free memory, else MemAvailable of the machine (None: unknown)."""
    if device is not None and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def _device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _probe(lm: Any, size: int) -> int:
    """The largest activation (elements) of one image of ``size`` px through ``lm``'s network."""
    model = lm.model
    largest = [0]

    def hook(_m: Any, _i: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            largest[0] = max(largest[0], out.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=_device(model)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return largest[0]


def check_input_size(lm: Any, size: int | None, flag: str = "--size") -> None:
    """Refuse, before any work, a pixel size below min(32, half the model's input size), or one the network cannot
    take (its downsampling leaves nothing)."""
    if size is None:
        return
    base = int(getattr(lm, "input_size", 0) or 64)
    floor = min(32, max(base // 2, 1))
    if int(size) < floor:
        raise ValueError(f"{flag} {size} is too small for {getattr(lm, 'name', 'this model')} (input size {base}): below {floor} px "
                         f"the images lose what the network sees; give at least {floor}, e.g. {base}")
    if int(size) >= base:
        return   # at or above the model's own size nothing shrinks away (memory is check_forward_memory's)
    try:
        _probe(lm, int(size))
    except RuntimeError:
        raise ValueError(f"{flag} {size} is too small for {getattr(lm, 'name', 'this model')}: its layers shrink the image to "
                         f"nothing; give at least its input size {getattr(lm, 'input_size', '')} or close to it") from None


def check_forward_memory(lm: Any, size: int | None, batch: int, flag: str = "--size", fraction: float = 0.8) -> None:
    """Refuse a (size, batch) whose decoded images plus the largest activations would need more than ``fraction``
    of the free memory; estimated from one pass at the model's input size, scaled by area."""
    if size is None:
        return
    base = int(getattr(lm, "input_size", 0) or 64)
    act = _probe(lm, base) * (int(size) / base) ** 2
    need = 4.0 * batch * (3 * int(size) ** 2 * 2 + 2 * act)   # float32: the images (decoded and normalised), a layer's in and out
    free = available_bytes(_device(lm.model))
    if free is not None and need > fraction * free:
        raise ValueError(f"{flag} {size} with batches of {batch} needs about {_human(need)} of memory for images and activations, "
                         f"but {_human(free)} is free; give a smaller {flag} (the model's own is {base}) or a smaller --batch-size")

