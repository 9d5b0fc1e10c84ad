"""Training a world CLIP recipe (:data:`PRESETS`), and loading the shipped one.

Part of the world CLIP (:mod:`modeledit.eval.world.clip`)."""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
import torch

import numpy as np

from modeledit.config import JsonConfig
from modeledit.eval.world.scene import CLASSES, WorldConfig
from modeledit.signals import defer_interrupts
from modeledit.eval.world.clip.config import CHECKPOINT_NAME, CLIP_ARCH, ClipTrainConfig, HELD_OUT_FONTS, HELD_OUT_FONT_FILES, PRESET, ZERO_SHOT_TEMPLATES
from modeledit.eval.world.clip.v1 import V1_PRESET
from modeledit.eval.world.clip.model_io import checkpoint_path, create_clip, load_clip_checkpoint, register_open_clip_config, save_clip_checkpoint, tokenizer, tower_input, tower_size
from modeledit.eval.world.clip.vocabulary import neutral_vocabulary, vocabulary_record
from modeledit.eval.world.clip.captions import TagPainter
from modeledit.eval.world.clip.data import _lr_at, _shift, caption_words, contrastive_loss, make_batch, make_optimizer, normalize, render_scenes, set_lr, zero_shot_head, zero_shot_predict
from modeledit.eval.world.clip.monitor import GateFailed, _monitor, _monitor_set, check_gates

log = logging.getLogger(__name__)


#: ``--recipe`` of ``modeledit world train clip`` -> preset
PRESETS: dict[str, ClipTrainConfig] = {"parrot": PRESET, "v1": V1_PRESET}


def _train_stage(cfg: ClipTrainConfig, resume: str | os.PathLike | None, progress: bool, save_every: float,
                 monitor_every: int, stop_on_gate: bool = False) -> tuple[nn.Module, list[dict[str, Any]], float]:
    """Train one stage (after the stage it starts from, if any); returns (model, history, seconds)."""
    history_before: list[dict[str, Any]] = []
    seconds_before = 0.0
    init_state = None
    if cfg.init is not None:
        first, history_before, seconds_before = _train_stage(
            cfg.init, None if resume is None else f"{resume}.stage1", progress, save_every, monitor_every, stop_on_gate)
        init_state = first.state_dict()
    torch.set_num_threads(int(cfg.threads))
    data = render_scenes("train", cfg.n_train, cfg.world, progress=progress)
    mon = _monitor_set(cfg)
    painter = TagPainter(cfg.world.image_size, cfg.fonts, cfg.tag_height)
    tok = tokenizer()
    # the tag vocabulary whose shared mentions take a caption pair out of each other's softmax
    vocabulary = (frozenset(CLASSES) | frozenset(neutral_vocabulary(cfg.n_neutral, cfg.vocab_seed))
                  if cfg.negatives == "distinct_words" else None)
    model = create_clip(seed=cfg.seed, arch=cfg.arch)
    if init_state is not None:
        model.load_state_dict(init_state)
    from modeledit.device import current_runtime

    dev = torch.device(current_runtime().device if current_runtime() is not None else "cpu")   # the command's --device
    model.to(dev)
    opt = make_optimizer(model, cfg)
    step, history, elapsed_before = 0, [], 0.0
    last = int(cfg.stop_at or cfg.steps)
    if resume is not None and Path(resume).is_file():
        state = torch.load(str(resume), map_location="cpu", weights_only=False)
        # compared as configs, not strings: a field added since (at its default) leaves an old run resumable
        if ClipTrainConfig.from_json(state["config"]) != cfg:
            raise ValueError(f"resume file {str(resume)!r} belongs to another config; delete it or pass the same config")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, history, elapsed_before = int(state["step"]), list(state["history"]), float(state["elapsed"])
        log.info("resumed %s at step %d", cfg.name, step)
    t_start, last_save, first_step = time.time(), time.time(), step

    def save_state() -> None:
        tmp = Path(str(resume) + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"config": cfg.to_json(), "model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "history": history, "elapsed": elapsed_before + time.time() - t_start}, str(tmp))
        os.replace(tmp, resume)

    model.train()
    running: list[float] = []
    # Ctrl-C or SIGTERM let the step in flight finish; the resume file then holds it (nothing is lost)
    with defer_interrupts() as interrupt:
        while step < last:
            gen = np.random.default_rng([cfg.seed, 3, step])
            images, caps, _ = make_batch(data, cfg, painter, step)
            x = tower_input(model, normalize(_shift(images, cfg.shift, gen, cfg.pad_mode)).to(dev, non_blocking=True))
            text = tok(caps).to(dev)
            set_lr(opt, step, cfg)
            fi, ft, scale = model(x, text)[:3]
            words = [caption_words(c, vocabulary) for c in caps] if vocabulary is not None else None
            loss = contrastive_loss(scale * fi @ ft.t(), caps, cfg.shared_positives, words)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            running.append(float(loss.detach()))
            step += 1
            if step % 25 == 0:
                log.info("%s step %d/%d loss %.4f (%.2f s/step so far)", cfg.name, step, last, float(np.mean(running[-25:])),
                         (time.time() - t_start) / max(1, step - first_step))
            failed = None
            if step % monitor_every == 0 or step == last:
                row = {"step": step, "loss": round(float(np.mean(running)), 4), "lr": round(_lr_at(step - 1, cfg), 6),
                       "logit_scale": round(float(model.logit_scale.detach().exp()), 2),
                       "seconds": round(elapsed_before + time.time() - t_start, 1), **_monitor(model, mon)}
                running = []
                gates = check_gates(row, history) if cfg.recipe == "parrot" else []
                if gates:
                    row["gates"] = gates
                history.append(row)
                log.info("%s %s", cfg.name, json.dumps({k: v for k, v in row.items() if k != "gates"}))
                for g in gates:
                    what = "check" if g.get("advisory") else "gate"
                    if g["passed"]:
                        log.info("%s %s of step %d passed at step %d: %s", cfg.name, what, g["step"], step, g["values"])
                        continue
                    log.warning("%s %s of step %d FAILED at step %d (%s not above %s). %s", cfg.name, what, g["step"], step,
                                ", ".join(f"{k}={g['values'][k]}" for k in g["failed"]), {k: g["bounds"][k] for k in g["failed"]},
                                " | ".join(g["advice"]))
                    if not g.get("advisory"):
                        failed = g
            stopping = failed is not None and stop_on_gate
            if resume is not None and (time.time() - last_save > save_every or step == last or stopping):
                save_state()
                last_save = time.time()
            if interrupt.requested:   # after the step: a consistent state to resume from
                if resume is not None:
                    save_state()
                    log.info("%s: interrupted after step %d; the resume file %r holds it", cfg.name, step, str(resume))
                interrupt.raise_now()
            if stopping:
                where = f"the resume file {str(resume)!r} holds step {step}" if resume is not None else "no resume file was given"
                raise GateFailed(f"{cfg.name}: the go/no-go gate of step {failed['step']} failed ({', '.join(failed['failed'])}); "
                                 f"{where}. {' | '.join(failed['advice'])}. Continue without --stop-on-gate, or change the recipe.")
    model.eval()
    history = [{**row, "stage": _n_stages(cfg)} for row in history]
    return model, history_before + history, seconds_before + elapsed_before + time.time() - t_start


def _n_stages(cfg: ClipTrainConfig) -> int:
    return 1 + (_n_stages(cfg.init) if cfg.init is not None else 0)


def train_clip(cfg: ClipTrainConfig, out: str | os.PathLike | None = None, command: str = "", progress: bool = True,
               resume: str | os.PathLike | None = None, save_every: float = 240.0, monitor_every: int = 100,
               stop_on_gate: bool = False) -> dict[str, Any]:
    """Train the world CLIP contrastively (every stage of ``cfg``) and write the fp16 checkpoint to ``out`` with its record.

    ``resume``: a file each stage writes every ``save_every`` seconds (model, optimiser, step, history) and
    continues from when it exists (the first stage's is ``<resume>.stage1``); batches depend only on
    (seed, step), so a resumed run sees the same data as an uninterrupted one. Every ``monitor_every``
    steps a row of val accuracy, serif flips and the early checks goes to the log and the record's
    history; the parrot recipe's :data:`GATES` are evaluated on the first row at or after their step, a
    failure is logged as a warning saying what it means, and ``stop_on_gate`` stops the run there
    (:class:`GateFailed`, after writing the resume file; no checkpoint is written).

    Example:
        >>> train_clip(ClipTrainConfig(steps=10, n_train=512), out="/tmp/clip.pt")["clean_test_accuracy"]
    """
    from modeledit.stats import torch_threads

    t0 = time.time()
    with torch_threads(torch.get_num_threads()):   # each stage runs on cfg.threads; the caller's count comes back
        model, history, seconds = _train_stage(cfg, resume, progress, save_every, monitor_every, stop_on_gate)
        test = render_scenes("test", cfg.n_test, cfg.world, progress=progress)
        acc = float((zero_shot_predict(model, zero_shot_head(model), test["x"]) == test["y"]).float().mean())
    data = {"train": f"world train split, scenes 0..{cfg.n_train - 1}, tags painted per step in fonts {list(cfg.fonts)}",
            "stages": _n_stages(cfg), "held_out_fonts": list(HELD_OUT_FONTS), "test": f"world test split, {cfg.n_test} clean scenes"}
    if cfg.recipe == "parrot":
        data["held_out_font_files"] = list(HELD_OUT_FONT_FILES)
        data["note"] = ("'hand' is a held-out face (DejaVu Sans Oblique) whose jitter procedure (per-letter rotation, baseline "
                        f"jitter) was seen in training, on {cfg.jitter_rate:.0%} of the tags, in the training faces")
    result = {
        "name": cfg.name, "arch": cfg.arch, "recipe": cfg.recipe, "clean_test_accuracy": round(acc, 4), "n_test": cfg.n_test,
        "world_version": cfg.world.version, "world_config": json.loads(cfg.world.to_json()), "train_config": json.loads(cfg.to_json()),
        "command": command or "modeledit world train clip", "seed": cfg.seed, "data": data, "vocabulary": vocabulary_record(cfg),
        "zero_shot_templates": list(ZERO_SHOT_TEMPLATES), "gates": [g for row in history for g in row.get("gates", [])],
        "train_seconds": round(seconds, 1), "wall_seconds_this_run": round(time.time() - t0, 1),
        "history": history, "torch": torch.__version__, "open_clip": register_open_clip_config().__version__,
    }
    if out is not None:
        save_clip_checkpoint(out, model, result)
    return result


@dataclass
class ClipRecipeRun(JsonConfig):
    """What ``modeledit world train clip`` asks for: a recipe of :data:`PRESETS` (``parrot``, ``v1``), the last
    stage's ``steps`` and ``n_train`` when given, ``overrides`` (``KEY=VALUE`` fields of its
    :class:`ClipTrainConfig`), the checkpoint path ``out`` (default: the user's cache, never the shipped file),
    a ``resume`` file and whether a failed go/no-go gate stops the run."""

    recipe: str = "parrot"
    steps: int | None = None
    n_train: int | None = None
    overrides: list[str] = field(default_factory=list)
    out: str | None = None
    resume: str | None = None
    stop_on_gate: bool = False


def train_clip_recipe(run: ClipRecipeRun) -> dict[str, Any]:
    """Train a world CLIP recipe (:func:`train_clip`), index it in the zoo file beside the checkpoint, and return
    the training result with ``out`` (the checkpoint path) and ``config_name``; ValueError/KeyError before any
    work for an unknown recipe or overrides without ``out``.

    Example:
        >>> result = train_clip_recipe(ClipRecipeRun(recipe="parrot", steps=100, out="/tmp/clip.pt"))
    """
    from modeledit.eval.world.models import train_out
    from modeledit.eval.world.train import update_zoo_index

    if run.recipe not in PRESETS:
        raise KeyError(f"unknown world CLIP recipe {run.recipe!r}; valid: {sorted(PRESETS)}")
    changes = {k: v for k, v in (("steps", run.steps), ("n_train", run.n_train)) if v is not None}
    overrides = list(run.overrides)
    cfg = dataclasses.replace(PRESETS[run.recipe], **changes).with_overrides(overrides)
    if overrides and not run.out:
        raise ValueError("--set changes the recipe: pass --out (the default path holds the reproduction of the shipped recipe)")
    out = train_out(run.out, Path(CHECKPOINT_NAME).stem)   # never the shipped checkpoint: the user's cache by default
    command = ("modeledit world train clip" + (f" --recipe {run.recipe}" if run.recipe != "parrot" else "")
               + "".join(f" --{k.replace('_', '-')} {v}" for k, v in changes.items())
               + "".join(f" --set {shlex.quote(pair)}" for pair in overrides))
    result = train_clip(cfg, out=out, command=command, resume=run.resume, stop_on_gate=run.stop_on_gate)
    update_zoo_index(result, out.parent / "world_models.json")
    return {**result, "out": str(out), "config_name": cfg.name}


def load_clip_world(name: str = f"clip:{CLIP_ARCH}", weights: Any = None, class_names: Sequence[str] | None = None,
                    templates: Sequence[str] | None = None) -> Any:
    """``load_model("clip:world-RN")``: the zero-shot classifier of the world CLIP, offline.

    Reached through the ``modeledit.models`` entry point ``clip:world-RN`` (an exact name answers before
    the core's ``clip:`` prefix). The head is built as for every CLIP (class names x prompt templates
    through open_clip's tokenizer, :func:`modeledit.models.build_text_head`); ``weights`` is None for
    the shipped checkpoint or the path of one written by ``modeledit world train clip``.

    Example:
        >>> lm = load_model("clip:world-RN")
        >>> lm.class_names[0], type(lm.model.visual).__name__
        ('car', 'ModifiedResNet')
    """
    from modeledit.models import CLIP_MEAN, CLIP_STD, CLIP_TEMPLATES, LoadedModel, ZeroShotClassifier, build_text_head, file_weights

    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"clip:{CLIP_ARCH} weights must be None (shipped) or a checkpoint path, got {type(weights).__name__}")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"world CLIP checkpoint {str(weights)!r} does not exist; pass None for the shipped one")
    clip_model, record = load_clip_checkpoint(weights)
    path = Path(weights) if weights is not None else checkpoint_path()
    names = list(class_names) if class_names else list(CLASSES)
    templates = tuple(templates) if templates else CLIP_TEMPLATES
    head = build_text_head(clip_model, tokenizer(), names, templates)
    # the public input is the world's scene size; a 96/128 px tower upsamples inside the model (tower_input)
    size = int(record.get("world_config", {}).get("image_size", WorldConfig().image_size))
    tower = tower_size(clip_model)
    model = ZeroShotClassifier(clip_model.visual, head, float(clip_model.logit_scale.detach().exp()),
                               input_size=None if tower == size else tower)
    ws, sha = file_weights(path)
    return LoadedModel(
        name, model, names, mean=CLIP_MEAN, std=CLIP_STD, input_size=size, resize_size=size,
        source=f"open_clip {record.get('arch', CLIP_ARCH)} trained on the benchmark world ({path.name})", meta={"templates": list(templates), "train": record},
        weights_source=ws, weights_sha256=sha,
    )
