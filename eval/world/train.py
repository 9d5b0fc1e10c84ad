"""Training the world classifiers (``modeledit world train ARCH`` reproduces the shipped weights).

A preset names everything that determines a shipped classifier: the architecture and its sizes, the
world config (text tags or not), the number of training scenes, the optimiser schedule and the seed.
Training renders the split once (cached outside git), trains on the CPU with SGD + one-cycle learning
rate and random shifts, measures clean test accuracy and writes a self-describing checkpoint with
:func:`modeledit.models.save_project_checkpoint` (float32 weights, 1-2 MB per file).

Example:
    >>> from modeledit.eval.world.train import PRESETS, train
    >>> result = train(PRESETS["vgg"], out="world_vgg.pt")
    >>> result["clean_test_accuracy"] > 0.9
    True
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from modeledit.atomic import atomic_path, write_text_atomic
from modeledit.eval.world.scene import CLASSES, WorldConfig
from modeledit.eval.world.data import WorldDataset, render_tensors
from modeledit.config import JsonConfig

log = logging.getLogger(__name__)


@dataclass
class TrainConfig(JsonConfig):
    """How one world classifier is trained (the shipped ones are :data:`PRESETS`)."""

    name: str = "world_vgg"
    arch: str = "vgg_small"
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    world: WorldConfig = field(default_factory=WorldConfig)
    n_train: int = 6000
    n_test: int = 1800
    epochs: int = 6
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    shift: int = 4
    seed: int = 0
    #: start from the weights (and normalisation) of this model name, e.g. "world_vgg" (None: random init)
    init_from: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.world, Mapping):
            self.world = WorldConfig.from_json(self.world)
        if self.epochs < 1 or self.n_train < len(CLASSES) or self.batch_size < 2:
            raise ValueError("epochs must be >= 1, n_train at least one item per class and batch_size >= 2")

#: the shipped classifiers: ``modeledit world train KEY`` reproduces ``eval/world/zoo/world_KEY.pt``
PRESETS: dict[str, TrainConfig] = {
    "vgg": TrainConfig("world_vgg", "vgg_small", {"plan": [24, "M", 48, "M", 96, 96, "M", 160, "M"]}),
    "resnet": TrainConfig("world_resnet", "resnet_small", {"widths": [16, 32, 64, 128], "stem_stride": 2}, epochs=12),
    # fine-tuned from world_vgg on the text-tag world, where half of the tagged scenes of the tag classes show
    # another class's object in a random context: only the word names the class, as text does for CLIP
    "vgg_text": TrainConfig(
        "world_vgg_text", "vgg_small", {"plan": [24, "M", 48, "M", 96, 96, "M", 160, "M"]},
        world=WorldConfig(text_tag_rate=0.8, neutral_tag_rate=0.3, tag_decides_rate=0.5), n_train=3000, epochs=8, lr=0.02,
        init_from="world_vgg",
    ),
}


def _shift(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels per image (reflect padding), as CIFAR training does."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=gen.device)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


@torch.no_grad()
def accuracy(model: nn.Module, x_u8: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
             batch_size: int = 256) -> tuple[float, torch.Tensor]:
    """Top-1 accuracy of ``model`` on uint8 images (N, 3, H, W); returns (accuracy, predictions)."""
    was = model.training
    model.eval()
    preds = []
    try:
        dev = next(model.parameters()).device
        for i in range(0, len(x_u8), batch_size):
            xb = (x_u8[i:i + batch_size].to(dev).float() / 255.0 - mean.to(dev)) / std.to(dev)
            preds.append(model(xb).argmax(1).cpu())
    finally:
        model.train(was)
    p = torch.cat(preds)
    return float((p == y).float().mean()), p


def train(cfg: TrainConfig, out: str | os.PathLike | None = None, command: str = "", progress: bool = True) -> dict[str, Any]:
    """Train ``cfg`` on its world, report clean test accuracy, and save the checkpoint to ``out``.

    With ``out``, every finished epoch is kept in ``OUT.resume.pt`` (model, optimiser, schedule and random
    states, written atomically): a run killed or interrupted (Ctrl-C) mid-epoch loses only that epoch, and
    the same call resumes after the last finished one, to the same weights as an uninterrupted run. The
    resume file is removed once the checkpoint is written.

    Example:
        >>> train(TrainConfig(epochs=1, n_train=720, n_test=180), out="/tmp/tiny.pt")["clean_test_accuracy"]
    """
    from modeledit.eval.world.models import save_project_checkpoint
    from modeledit.eval.world.nets import build_net
    from modeledit.progress import tqdm

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    x_tr, y_tr = render_tensors(WorldDataset("train", cfg.n_train, cfg.world, with_masks=False), progress=progress)
    x_te, y_te = render_tensors(WorldDataset("test", cfg.n_test, cfg.world, with_masks=False), progress=progress)
    mean = x_tr.float().div(255).mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    std = x_tr.float().div(255).std(dim=(0, 2, 3)).view(1, 3, 1, 1)
    model = build_net(cfg.arch, num_classes=len(CLASSES), **cfg.net_kwargs)
    if cfg.init_from:
        from modeledit.models import load_model

        init = load_model(cfg.init_from)
        model.load_state_dict(init.model.state_dict())
        mean, std = torch.tensor(init.mean, device=x_tr.device).view(1, 3, 1, 1), torch.tensor(init.std, device=x_tr.device).view(1, 3, 1, 1)
    from modeledit.device import current_runtime

    dev = torch.device(current_runtime().device if current_runtime() is not None else "cpu")   # the command's --device
    model.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((cfg.n_train + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.25)
    history: list[dict[str, Any]] = []
    resume_path = Path(f"{out}.resume.pt") if out is not None else None
    first_epoch = 0
    if resume_path is not None and resume_path.is_file():
        state = torch.load(str(resume_path), map_location="cpu", weights_only=False)
        if state.get("train_config") != json.loads(cfg.to_json()):
            raise ValueError(f"{resume_path} holds an interrupted run of another configuration; delete it to start afresh")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        mean, std, history, first_epoch = state["mean"], state["std"], state["history"], state["epoch"]
        log.info("%s: resuming after epoch %d of %d (%s)", cfg.name, first_epoch, cfg.epochs, resume_path)
    model.train()
    for epoch in range(first_epoch, cfg.epochs):
        order = torch.randperm(cfg.n_train, generator=gen)
        total, seen = 0.0, 0
        bar = tqdm(range(0, cfg.n_train, cfg.batch_size), desc=f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}", disable=not progress, mininterval=5)
        for i in bar:
            idx = order[i:i + cfg.batch_size]
            xb = ((_shift(x_tr[idx].float() / 255.0, cfg.shift, gen) - mean) / std).to(dev, non_blocking=True)
            loss = nn.functional.cross_entropy(model(xb), y_tr[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
        acc, _ = accuracy(model, x_te, y_te, mean, std)
        history.append({"epoch": epoch + 1, "train_loss": round(total / seen, 4), "test_accuracy": round(acc, 4)})
        log.info("%s epoch %d: loss %.4f, test accuracy %.4f", cfg.name, epoch + 1, total / seen, acc)
        if resume_path is not None and epoch + 1 < cfg.epochs:  # the finished epoch is kept
            with atomic_path(resume_path) as tmp:
                torch.save({"train_config": json.loads(cfg.to_json()), "epoch": epoch + 1, "model": model.state_dict(),
                            "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                            "torch_rng": torch.get_rng_state(), "mean": mean, "std": std, "history": history}, str(tmp))
    model.eval()
    acc, _ = accuracy(model, x_te, y_te, mean, std)
    model.cpu()   # the checkpoint holds CPU tensors, whatever device trained it
    result = {
        "name": cfg.name, "clean_test_accuracy": round(acc, 4), "n_test": cfg.n_test, "world_version": cfg.world.version,
        "world_config": json.loads(cfg.world.to_json()), "train_config": json.loads(cfg.to_json()),
        "command": command or f"modeledit world train {cfg.name.removeprefix('world_')}",
        "train_seconds": round(time.time() - t0, 1), "history": history, "torch": torch.__version__,
    }
    if out is not None:
        spec = {
            "arch": cfg.arch, "kwargs": cfg.net_kwargs, "mean": mean.flatten().tolist(), "std": std.flatten().tolist(),
            "input_size": cfg.world.image_size, "name": cfg.name,
        }
        save_project_checkpoint(out, model, spec, CLASSES, world=result["world_config"], train=result)
        if resume_path is not None:
            resume_path.unlink(missing_ok=True)
    return result


def update_zoo_index(result: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Merge one training result (without its history) into the zoo's JSON index, atomically."""
    p = Path(path)
    index = json.loads(p.read_text()) if p.is_file() else {}
    index[result["name"]] = {k: v for k, v in result.items() if k != "history"}
    write_text_atomic(p, json.dumps(index, indent=2, sort_keys=True) + "\n")
