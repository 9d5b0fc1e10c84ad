"""What produced a result: package versions and weight hashes."""
from __future__ import annotations

import hashlib
import platform
from importlib import metadata

import torch
from torch import nn


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of Python and the packages a result depends on (absent packages are left out)."""
    out = {"python": platform.python_version()}
    for pkg in ("modeledit", "torch", "torchvision", "numpy", "onnxruntime", "open_clip_torch", "timm", *extra):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def tensor_hash(t: torch.Tensor) -> str:
    """sha256 of a tensor's bytes, dtype and shape (device-independent)."""
    t = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_hash(model: nn.Module) -> str:
    """sha256 over every parameter and buffer, by name."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor_hash(t).encode())
    return h.hexdigest()
