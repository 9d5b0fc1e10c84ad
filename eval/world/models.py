"""The benchmark world's classifiers: self-describing checkpoints, shipped in ``zoo/`` beside this file.

They reach :func:`modeledit.load_model` through the ``modeledit.models`` entry-point group declared
in ``pyproject.toml`` (``world_vgg = "modeledit.eval.world.models:load_world_vgg"``), so the core
never imports the world. A checkpoint holds the architecture spec (a net of
:mod:`modeledit.eval.world.nets`), the weights and the class names.

Example:
    >>> from modeledit import load_model
    >>> lm = load_model("world_vgg")                     # shipped weights, offline
    >>> lm.class_names[:3], lm.input_size
    (['car', 'bus', 'truck'], 64)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from modeledit.atomic import atomic_path
from modeledit.models import LoadedModel, _load_strict, file_weights, read_torch_file

#: the shipped classifiers and what they are
SHIPPED = {
    "world_vgg": "VGG-style (conv-BN-ReLU) classifier trained on the benchmark world (shipped weights)",
    "world_resnet": "ResNet-style (BasicBlock) classifier trained on the benchmark world (shipped weights)",
    "world_vgg_text": "VGG-style world classifier trained with class-correlated text tags (typographic experiments)",
}


def shipped_checkpoint_dir() -> Path:
    return Path(__file__).parent / "zoo"


def trained_dir() -> Path:
    """Where ``modeledit world train`` writes and registers checkpoints by default: ``$MODELEDIT_CACHE/world/models``
    or ``~/.cache/modeledit/world/models`` (never the package's ``zoo/``: the shipped models stay as they ship).
    Load one with ``load_model("world_vgg", weights=trained_dir() / "world_vgg.pt")``."""
    root = os.environ.get("MODELEDIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "modeledit")
    return Path(root) / "world" / "models"


def train_out(out: str | os.PathLike | None, name: str) -> Path:
    """Where ``modeledit world train`` writes the checkpoint ``name``: ``out`` (a file path outside the installed
    package: a one-line ValueError otherwise), or by default :func:`trained_dir` / ``NAME.pt``.

    Example:
        >>> train_out(None, "world_vgg").relative_to(trained_dir())
        PosixPath('world_vgg.pt')
    """
    from modeledit.outdir import check_apart

    if out is None:
        return trained_dir() / f"{name}.pt"
    check_apart(out, {})
    return Path(out).expanduser()


def load_project_checkpoint(path: str | os.PathLike, name: str | None = None) -> LoadedModel:
    """Load a checkpoint written by :func:`save_project_checkpoint` (the world classifiers use it)."""
    from modeledit.eval.world.nets import build_net

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist")
    blob = read_torch_file(p, weights_only=False)
    if not isinstance(blob, dict) or not {"spec", "class_names", "state_dict"} <= set(blob):
        raise ValueError(f"{str(p)!r} is a torch file but not a project checkpoint (spec, class_names, state_dict); "
                         "pass a file written by `modeledit world train` or save_project_checkpoint")
    spec = blob["spec"]
    model = build_net(spec["arch"], num_classes=len(blob["class_names"]), **spec.get("kwargs", {}))
    _load_strict(model, blob["state_dict"], str(p))
    ws, sha = file_weights(p)
    return LoadedModel(
        name or spec.get("name", p.stem), model, list(blob["class_names"]), mean=tuple(spec["mean"]), std=tuple(spec["std"]),
        input_size=int(spec["input_size"]), resize_size=int(spec["input_size"]), source=f"project checkpoint {p.name}",
        weights_source=ws, weights_sha256=sha,
        meta={k: v for k, v in blob.items() if k not in ("state_dict",)},
    )


def save_project_checkpoint(path: str | os.PathLike, model: nn.Module, spec: dict[str, Any], class_names: Sequence[str], **meta: Any) -> None:
    """Write a self-describing checkpoint atomically (spec: arch, kwargs, mean, std, input_size, name)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"spec": dict(spec), "class_names": list(class_names), "state_dict": state, **meta}, str(tmp))


def _shipped_loader(stem: str) -> Callable[..., LoadedModel]:
    def load(name: str, weights: Any) -> LoadedModel:
        path = Path(weights).expanduser() if weights is not None else shipped_checkpoint_dir() / f"{stem}.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing; reproduce it with `modeledit world train {stem.removeprefix('world_')}`"
            )
        return load_project_checkpoint(path, name)

    load.__doc__ = SHIPPED[stem]
    load.__name__ = f"load_{stem}"
    return load


load_world_vgg = _shipped_loader("world_vgg")
load_world_resnet = _shipped_loader("world_resnet")
load_world_vgg_text = _shipped_loader("world_vgg_text")
