"""What produced a result: package versions, weight hashes, and where a model's weights came from.

:func:`weights_record` is the one record of a model's weights that every manifest and edit file carries
(``{"model": ..., "weights": "random" | "torchvision:..." | "offline:..." | "file:...", "weights_sha256": ...}``).

Example:
    >>> lm = load_model("resnet18", weights="random")
    >>> weights_record(lm)
    {'model': 'resnet18', 'weights': 'random', 'weights_sha256': ''}
"""
from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata
from typing import Any

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



def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def weights_record(model: Any) -> dict[str, str]:
    """Where the weights of ``model`` came from, for a manifest or an edit file.

    ``model``: a :class:`~modeledit.models.LoadedModel`, or its ``nn.Module`` (``load_model`` marks the module, so
    functions that receive only the network still know). A module that ``load_model`` did not make is
    ``"unknown"``. ``weights`` is ``"random"`` only where random init was asked for."""
    from modeledit.models import LoadedModel

    if isinstance(model, LoadedModel):
        return {"model": model.name, "weights": model.weights_source or "unknown", "weights_sha256": model.weights_sha256}
    mark = getattr(model, "modeledit_weights", None)
    if isinstance(mark, dict):
        return {"model": str(mark.get("model", type(model).__name__)), "weights": str(mark.get("weights") or "unknown"),
                "weights_sha256": str(mark.get("weights_sha256", ""))}
    return {"model": type(model).__name__, "weights": "unknown", "weights_sha256": ""}
