"""open_clip registration and the zoo files: the model, its tokenizer, checkpoints.

Part of the world CLIP (:mod:`modeledit.eval.world.clip`)."""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
import torch

from modeledit.eval.world.clip.config import CHECKPOINT_NAME, CLIP_ARCH, CLIP_ARCHS


def zoo_dir() -> Path:
    from modeledit.eval.world.models import shipped_checkpoint_dir

    return shipped_checkpoint_dir()


def config_path(arch: str = CLIP_ARCH) -> Path:
    """The open_clip model config of a world CLIP architecture (:data:`CLIP_ARCHS`)."""
    if arch not in CLIP_ARCHS:
        raise KeyError(f"unknown world CLIP architecture {arch!r}; valid: {list(CLIP_ARCHS)}")
    return zoo_dir() / "open_clip" / f"{arch}.json"


def checkpoint_path() -> Path:
    return zoo_dir() / CHECKPOINT_NAME


def register_open_clip_config() -> Any:
    """Register the world CLIP configs (:data:`CLIP_ARCHS`) with open_clip (once) and return the open_clip module.

    Example:
        >>> open_clip = register_open_clip_config()
        >>> model = open_clip.create_model("world-RN")
    """
    from modeledit.deps import optional_import

    open_clip = optional_import("open_clip", "clip")
    known = set(open_clip.list_models())
    for arch in CLIP_ARCHS:
        if arch not in known:
            path = config_path(arch)
            if not path.is_file():
                raise FileNotFoundError(f"the open_clip config {path} is missing; reinstall modeledit")
            open_clip.add_model_config(path)
    return open_clip


def create_clip(seed: int | None = None, arch: str = CLIP_ARCH) -> nn.Module:
    """A freshly initialised world CLIP, built by ``open_clip.create_model`` from the registered config."""
    open_clip = register_open_clip_config()
    config_path(arch)   # an unknown architecture is a KeyError naming the valid ones
    if seed is not None:
        torch.manual_seed(seed)
    import logging as _logging

    oc_log = _logging.getLogger()
    level = oc_log.level
    oc_log.setLevel(_logging.ERROR)  # open_clip warns that no pretrained weights were loaded: we load our own
    try:
        return open_clip.create_model(arch)
    finally:
        oc_log.setLevel(level)


def tower_size(model: nn.Module) -> int:
    """The image tower's input size (``model`` a CLIP or its ``visual``)."""
    visual = getattr(model, "visual", model)
    size = visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def tower_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """World scenes (N, 3, 64, 64) as the image tower takes them: unchanged at 64 px, bilinearly upsampled for
    the 96 and 128 px towers. Tags and attacks are always painted at the world's 64 px, in training and in
    evaluation alike; only the tower sees the larger grid."""
    size = tower_size(model)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


@functools.lru_cache(maxsize=1)
def tokenizer() -> Any:
    """open_clip's tokenizer of the world CLIP (made once: open_clip logs each time it builds one)."""
    return register_open_clip_config().get_tokenizer(CLIP_ARCH)


def load_clip_checkpoint(path: str | os.PathLike | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The world CLIP (float32, eval mode) and the checkpoint's record from a file written by :func:`save_clip_checkpoint`."""
    p = Path(path) if path is not None else checkpoint_path()
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing; reproduce it with `modeledit world train clip`")
    blob = torch.load(str(p), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob or blob.get("arch") not in CLIP_ARCHS:
        raise ValueError(f"{str(p)!r} is not a world CLIP checkpoint (written by `modeledit world train clip`)")
    arch = str(blob["arch"])
    model = create_clip(arch=arch)
    state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {str(p)!r} does not fit {arch}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    record = json.loads(blob.get("record", "{}"))
    return model.eval(), record


def save_clip_checkpoint(path: str | os.PathLike, model: nn.Module, record: Mapping[str, Any]) -> None:
    """Write the model as an fp16 state dict plus a JSON record (config, seed, data, time), atomically;
    the architecture is the record's ``arch`` (default :data:`CLIP_ARCH`)."""
    arch = str(record.get("arch", CLIP_ARCH))
    size = int(json.loads(config_path(arch).read_text())["vision_cfg"]["image_size"])   # KeyError for an unknown arch
    if tower_size(model) != size:
        raise ValueError(f"the record says {arch} ({size} px) but the model's image tower takes {tower_size(model)} px")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).clone() for k, v in model.state_dict().items()}
    tmp = p.with_suffix(p.suffix + ".tmp")
    torch.save({"arch": arch, "state_dict": state, "record": json.dumps(dict(record), sort_keys=True)}, str(tmp))
    os.replace(tmp, p)
