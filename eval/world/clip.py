"""A small CLIP trained on the benchmark world, which learns to read from its captions.

open_clip's own classes build it (``CLIP`` with a ``ModifiedResNet`` image tower, the RN50 family's
architecture, and the text transformer, with open_clip's BPE tokenizer): the config ``world-RN``
(``eval/world/zoo/open_clip/world-RN.json``) is registered with ``open_clip.add_model_config`` and the
model comes from ``open_clip.create_model("world-RN")``, exactly as open_clip builds its own models.

Training is contrastive, on world scenes paired with captions from varied templates ("a photo of a cow
on the grass.", "a cow in front of the water.", ...). In a share of the scenes a paper tag carries a
word, drawn from the class names and from neutral words independently of the object shown, and the
caption mentions it ("... with a sign that says 'car'."). Nothing forces a label onto the word: the
model reads because reading helps it match captions, and the typographic attack comes from that, as it
did for OpenAI's CLIP. Tags are printed in the *training fonts* (the world's own tag font, DejaVu Sans
Bold, DejaVu Sans Mono Bold) at random places and sizes; the serif face and the handwriting imitation
(``modeledit.counterfactuals.text``, font ``"hand"``) are held out for the attack evaluation.

Status of the shipped model (``results/world/clip/eval.json``): zero-shot accuracy 0.89 on clean test
scenes, but it has *not* learned to read within the CPU budget it got (about 1330 steps of 128 pairs):
a pasted class name sends under 1% of correct predictions to that class, about as often as a blank
patch does; the typographic goal (at least 50%) is not met. See :data:`PRESET` for the stages.

``modeledit world train clip`` reproduces the shipped checkpoint ``eval/world/zoo/clip_world-RN.pt``
(fp16 state dict + the config, seed, data and time that made it); ``load_model("clip:world-RN")``
loads it offline through the zero-shot path of :mod:`modeledit.models` (class names x prompt
templates through open_clip's tokenizer).

Example:
    >>> from modeledit import load_model
    >>> lm = load_model("clip:world-RN")            # offline, shipped weights
    >>> lm.class_names[:3], lm.input_size
    (['car', 'bus', 'truck'], 64)
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from modeledit.eval.world.scene import CLASSES, CONTEXTS, NEUTRAL_WORDS, WorldConfig

log = logging.getLogger(__name__)

#: the open_clip model name of the world CLIP (its config file is ``<zoo>/open_clip/world-RN.json``)
CLIP_ARCH = "world-RN"
#: the shipped checkpoint's file name (in the zoo folder, next to the other world models)
CHECKPOINT_NAME = "clip_world-RN.pt"
#: fonts the tags are printed in during training; "serif" and "hand" are held out for the attack tests
TRAIN_FONTS: tuple[str, ...] = ("world", "sans", "mono")
HELD_OUT_FONTS: tuple[str, ...] = ("serif", "hand")
#: words printed on tags besides the class names (more than the world's own neutral words)
EXTRA_NEUTRAL_WORDS: tuple[str, ...] = ("stop", "shop", "cafe", "park", "free", "push", "pull", "menu")

#: context -> (prepositional phrase, noun phrase) used in captions
CONTEXT_PHRASES: dict[str, tuple[str, str]] = {
    "road": ("on the road", "the road"), "grass": ("on the grass", "the grass"), "water": ("on the water", "the water"),
    "sky": ("in the sky", "the sky"), "sand": ("on the sand", "the sand"), "floor": ("on the floor", "the floor"),
}
#: captions naming the object and its context ({c} class, {on} prepositional phrase, {the} noun phrase)
SCENE_TEMPLATES: tuple[str, ...] = (
    "a photo of a {c} {on}", "a {c} in front of {the}", "a picture of a {c} {on}", "{the} with a {c}",
    "a {c} {on}", "a blurry photo of a {c} {on}", "there is a {c} {on}",
)
#: captions naming the object only (the zero-shot prompts are of this kind)
OBJECT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {c}", "a bad photo of a {c}", "a photo of the large {c}", "a photo of the small {c}",
    "a close-up photo of a {c}", "itap of a {c}", "a {c}", "a picture of a {c}",
)
#: how a caption mentions the tag's word after the scene ({w} the word)
SIGN_SUFFIXES: tuple[str, ...] = (
    " with a sign that says '{w}'", ", and a note that reads '{w}'", " next to a paper tag saying {w}",
    " with the word '{w}' written on paper", " and a label: {w}",
)
#: captions that mention only the word, as web captions that transcribe a sign do
SIGN_ONLY_TEMPLATES: tuple[str, ...] = (
    "a sign that says '{w}'", "the word '{w}' on a piece of paper", "a note that reads {w}", "'{w}' written on a label",
)
#: captions of large signs that name them by their word, as "a stop sign" does
SIGN_NAME_TEMPLATES: tuple[str, ...] = ("a '{w}' sign", "a photo of a {w} sign", "a {w} sign", "a close-up photo of a '{w}' sign")
#: prompt templates of the zero-shot classifier (the CLIP_TEMPLATES of modeledit.models)
ZERO_SHOT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.", "a bad photo of a {}.", "a photo of the large {}.", "a photo of the small {}.",
    "a close-up photo of a {}.", "itap of a {}.",
)


@dataclass
class ClipTrainConfig:
    """Everything that determines the shipped world CLIP (``modeledit world train clip``).

    ``tag_rate``: share of training scenes that carry a paper tag with a word; ``blank_rate``: share that
    carry a blank paper patch (no word; the caption does not mention it, as unreadable notes in web
    photos); ``class_word_rate``: share of tag words
    that are class names (the rest are neutral words); ``mention_rate``: share of tagged scenes whose
    caption mentions the word; ``sign_only_rate``: share of those captions that mention only the word;
    ``object_only_rate``: share of captions that name the object without its context.
    ``stop_at`` and ``init`` chain stages: the shipped model is a second stage that starts from the
    weights of a first one (see :data:`PRESET`).
    ``threads``: torch threads; 1 because on the shared 2-core machine (other jobs running) a niced
    run with 1 thread took 7-8 s per step against 18-23 s with 2 (OpenMP barriers stall under contention).
    """

    name: str = "clip_world-RN"
    arch: str = CLIP_ARCH
    world: WorldConfig = field(default_factory=WorldConfig)
    n_train: int = 40_000
    n_val: int = 540
    n_test: int = 1800
    steps: int = 1600
    batch_size: int = 128
    lr: float = 1.5e-3
    weight_decay: float = 0.1
    warmup: int = 100
    shift: int = 4
    tag_rate: float = 0.6
    blank_rate: float = 0.05
    class_word_rate: float = 0.75
    mention_rate: float = 0.95
    sign_only_rate: float = 0.35
    object_only_rate: float = 0.35
    tag_height: tuple[float, float] = (0.16, 0.26)
    #: share of tagged scenes whose tag is a large sign (letters ``sign_height`` of the image) captioned by
    #: the sign alone, as web photos of signs are; ``sign_name_rate`` of those captions name it "a '{w}' sign"
    sign_rate: float = 0.0
    sign_height: tuple[float, float] = (0.3, 0.45)
    sign_name_rate: float = 0.5
    fonts: tuple[str, ...] = TRAIN_FONTS
    seed: int = 0
    threads: int = 1
    #: stop after this many steps of the ``steps``-long schedule (None: run it to the end)
    stop_at: int | None = None
    #: the config of a stage trained first, whose weights this stage starts from (None: random init)
    init: "ClipTrainConfig | None" = None

    def __post_init__(self) -> None:
        if isinstance(self.world, Mapping):
            self.world = WorldConfig.from_json(self.world)
        if isinstance(self.init, (Mapping, str)):
            self.init = ClipTrainConfig.from_json(self.init)
        if self.stop_at is not None and not 1 <= int(self.stop_at) <= self.steps:
            raise ValueError(f"stop_at must be between 1 and steps={self.steps}, got {self.stop_at}")
        self.fonts = tuple(self.fonts)
        self.tag_height = tuple(self.tag_height)  # type: ignore[assignment]
        self.sign_height = tuple(self.sign_height)  # type: ignore[assignment]
        for name in ("tag_rate", "blank_rate", "sign_rate", "sign_name_rate", "class_word_rate", "mention_rate", "sign_only_rate", "object_only_rate"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        unknown = [f for f in self.fonts if f not in ("world",) + TRAIN_FONTS + HELD_OUT_FONTS]
        if unknown:
            raise KeyError(f"unknown tag fonts {unknown}; valid: {list(TRAIN_FONTS + HELD_OUT_FONTS)}")
        if self.tag_rate + self.blank_rate > 1.0:
            raise ValueError(f"tag_rate + blank_rate must be at most 1, got {self.tag_rate} + {self.blank_rate}")
        if self.steps < 1 or self.batch_size < 2 or self.n_train < len(CLASSES):
            raise ValueError("steps must be >= 1, batch_size >= 2 and n_train at least one scene per class")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> "ClipTrainConfig":
        return cls(**(json.loads(text) if isinstance(text, str) else dict(text)))


#: the shipped model (``modeledit world train clip``), three stages, each starting from the previous one's
#: weights: (1) 492 steps of a 1600-step cosine schedule that learn objects and contexts with a moderate
#: reading signal; (2) 290 steps of a 600-step schedule with a stronger one (more tagged scenes, more
#: captions that transcribe only the sign, larger tags, blank paper patches); (3) 550 steps in which 30% of
#: the tags are large signs captioned by the sign alone. Stages 1 and 2 were stopped where they were because
#: the model had not begun to read (see the README); the stop points are part of the recipe.
_STAGE1 = ClipTrainConfig(steps=1600, stop_at=492, warmup=100, lr=1.5e-3, tag_rate=0.5, blank_rate=0.0, mention_rate=0.9,
                          sign_only_rate=0.2, tag_height=(0.14, 0.22), seed=0)
_STAGE2 = ClipTrainConfig(steps=600, stop_at=290, warmup=50, lr=1e-3, seed=1, init=_STAGE1)
PRESET = ClipTrainConfig(steps=550, warmup=30, lr=1e-3, seed=2, sign_rate=0.3, init=_STAGE2)


def tag_words() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(class-name words, neutral words) printed on the training tags."""
    return tuple(CLASSES), tuple(NEUTRAL_WORDS) + EXTRA_NEUTRAL_WORDS


# ------------------------------------------------------------------------------------------------
# open_clip registration and the zoo files


def zoo_dir() -> Path:
    from modeledit.eval.world.models import shipped_checkpoint_dir

    return shipped_checkpoint_dir()


def config_path() -> Path:
    """The open_clip model config of the world CLIP."""
    return zoo_dir() / "open_clip" / f"{CLIP_ARCH}.json"


def checkpoint_path() -> Path:
    return zoo_dir() / CHECKPOINT_NAME


def register_open_clip_config() -> Any:
    """Register ``world-RN`` with open_clip (once) and return the open_clip module.

    Example:
        >>> open_clip = register_open_clip_config()
        >>> model = open_clip.create_model("world-RN")
    """
    from modeledit.deps import optional_import

    open_clip = optional_import("open_clip", "clip")
    if CLIP_ARCH not in open_clip.list_models():
        path = config_path()
        if not path.is_file():
            raise FileNotFoundError(f"the open_clip config {path} is missing; reinstall modeledit")
        open_clip.add_model_config(path)
    return open_clip


def create_clip(seed: int | None = None) -> nn.Module:
    """A freshly initialised world CLIP, built by ``open_clip.create_model`` from the registered config."""
    open_clip = register_open_clip_config()
    if seed is not None:
        torch.manual_seed(seed)
    import logging as _logging

    oc_log = _logging.getLogger()
    level = oc_log.level
    oc_log.setLevel(_logging.ERROR)  # open_clip warns that no pretrained weights were loaded: we load our own
    try:
        return open_clip.create_model(CLIP_ARCH)
    finally:
        oc_log.setLevel(level)


def tokenizer() -> Any:
    return register_open_clip_config().get_tokenizer(CLIP_ARCH)


def load_clip_checkpoint(path: str | os.PathLike | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The world CLIP (float32, eval mode) and the checkpoint's record from a file written by :func:`save_clip_checkpoint`."""
    p = Path(path) if path is not None else checkpoint_path()
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing; reproduce it with `modeledit world train clip`")
    blob = torch.load(str(p), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob or blob.get("arch") != CLIP_ARCH:
        raise ValueError(f"{str(p)!r} is not a world CLIP checkpoint (written by `modeledit world train clip`)")
    model = create_clip()
    state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {str(p)!r} does not fit {CLIP_ARCH}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    record = json.loads(blob.get("record", "{}"))
    return model.eval(), record


def save_clip_checkpoint(path: str | os.PathLike, model: nn.Module, record: Mapping[str, Any]) -> None:
    """Write the model as an fp16 state dict plus a JSON record (config, seed, data, time), atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).clone() for k, v in model.state_dict().items()}
    tmp = p.with_suffix(p.suffix + ".tmp")
    torch.save({"arch": CLIP_ARCH, "state_dict": state, "record": json.dumps(dict(record), sort_keys=True)}, str(tmp))
    os.replace(tmp, p)


# ------------------------------------------------------------------------------------------------
# tags and captions


def _font(font: str, px: int) -> Any:
    from PIL import ImageFont

    if font == "world":  # the font the world prints its own tags in
        return ImageFont.load_default(size=px)
    from modeledit.counterfactuals.text import font_path

    return ImageFont.truetype(str(font_path(font)), px)


class TagPainter:
    """Prints a word on a paper patch onto uint8 image tensors (3, H, W), in the training fonts.

    Glyph masks are rendered once per (word, font, size) and kept by the painter.
    """

    def __init__(self, image_size: int, fonts: Sequence[str] = TRAIN_FONTS, height: tuple[float, float] = (0.14, 0.22)) -> None:
        self.size = int(image_size)
        self.fonts = tuple(fonts)
        self.height = height
        self._glyphs: dict[tuple[str, str, int], np.ndarray] = {}

    def glyph(self, word: str, font: str, px: int) -> np.ndarray:
        """The word's ink coverage in [0, 1], (h, w), cropped to its bounding box."""
        key = (word, font, px)
        if key not in self._glyphs:
            from PIL import Image, ImageDraw

            f = _font(font, px)
            l, t, r, b = f.getbbox(word)
            im = Image.new("L", (r - l + 2, b - t + 2), 0)
            ImageDraw.Draw(im).text((1 - l, 1 - t), word, font=f, fill=255)
            self._glyphs[key] = np.asarray(im, np.float32) / 255.0
        return self._glyphs[key]

    def paint(self, image: torch.Tensor, word: str, rng: np.random.Generator, ink: bool = True,
              height: tuple[float, float] | None = None) -> torch.Tensor:
        """A copy of ``image`` (uint8 (3, H, W)) with ``word`` on a paper patch at a random place
        (``ink=False``: the patch the word would take, left blank; ``height``: letter heights instead of the painter's)."""
        font = self.fonts[int(rng.integers(0, len(self.fonts)))]
        px = int(round(rng.uniform(*(height or self.height)) * self.size))
        pad = max(1, int(rng.integers(1, 4)))
        g = self.glyph(word, font, px)
        while g.shape[1] + 2 * pad > self.size and px > 6:
            px -= 1
            g = self.glyph(word, font, px)
        g = g[: self.size - 2 * pad, : self.size - 2 * pad]
        ph, pw = g.shape[0] + 2 * pad, g.shape[1] + 2 * pad
        y0, x0 = int(rng.integers(0, self.size - ph + 1)), int(rng.integers(0, self.size - pw + 1))
        paper = rng.uniform(215, 252) * np.array([1.0, 1.0, rng.uniform(0.9, 1.0)])
        ink_rgb = rng.uniform(0, 60, size=3)
        out = image.numpy().astype(np.float32)  # numpy: tiny torch ops pay thread start-up costs per call
        out[:, y0:y0 + ph, x0:x0 + pw] = paper.reshape(3, 1, 1)
        a = g[None] * float(ink)
        ys, xs = slice(y0 + pad, y0 + pad + g.shape[0]), slice(x0 + pad, x0 + pad + g.shape[1])
        out[:, ys, xs] = out[:, ys, xs] * (1 - a) + ink_rgb.reshape(3, 1, 1) * a
        return torch.from_numpy(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def caption(class_name: str, context: str, word: str | None, cfg: ClipTrainConfig, rng: np.random.Generator,
            sign: bool = False) -> str:
    """One training caption for a scene (``word``: the tag's word, or None for an untagged scene).

    Example:
        >>> caption("cow", "grass", "car", ClipTrainConfig(), np.random.default_rng(0))
        "a cow in front of the grass with a sign that says 'car'."
    """
    on, the = CONTEXT_PHRASES[context]
    if sign and word is not None:  # a large sign: the caption is about the sign
        if rng.random() < cfg.sign_name_rate:
            return SIGN_NAME_TEMPLATES[int(rng.integers(0, len(SIGN_NAME_TEMPLATES)))].format(w=word) + "."
        return SIGN_ONLY_TEMPLATES[int(rng.integers(0, len(SIGN_ONLY_TEMPLATES)))].format(w=word) + "."
    if rng.random() < cfg.object_only_rate:
        scene = OBJECT_TEMPLATES[int(rng.integers(0, len(OBJECT_TEMPLATES)))].format(c=class_name)
    else:
        scene = SCENE_TEMPLATES[int(rng.integers(0, len(SCENE_TEMPLATES)))].format(c=class_name, on=on, the=the)
    if word is None or rng.random() >= cfg.mention_rate:
        return scene + "."
    if rng.random() < cfg.sign_only_rate:
        return SIGN_ONLY_TEMPLATES[int(rng.integers(0, len(SIGN_ONLY_TEMPLATES)))].format(w=word) + "."
    if rng.random() < 0.3:
        sign = SIGN_ONLY_TEMPLATES[int(rng.integers(0, len(SIGN_ONLY_TEMPLATES)))].format(w=word)
        return f"{sign} and {scene}."
    return scene + SIGN_SUFFIXES[int(rng.integers(0, len(SIGN_SUFFIXES)))].format(w=word) + "."


# ------------------------------------------------------------------------------------------------
# training data: rendered once, cached outside git


def render_scenes(split: str, n: int, world: WorldConfig, progress: bool = True) -> dict[str, torch.Tensor]:
    """Images (uint8 (N, 3, H, W)), labels and context indices of ``n`` scenes of a world split, cached on disk."""
    from modeledit.eval.world.data import WorldDataset, cache_dir

    ds = WorldDataset(split, n, world, with_masks=False)
    key = hashlib.sha1(("clip-scenes:" + ds.identity).encode()).hexdigest()[:16]
    path = cache_dir() / f"clip-{split}-{n}-{key}.pt"
    if path.is_file():
        return torch.load(str(path), weights_only=True)
    from modeledit.progress import tqdm

    size = world.image_size
    x = torch.empty((n, 3, size, size), dtype=torch.uint8)
    y = torch.empty(n, dtype=torch.long)
    ctx = torch.empty(n, dtype=torch.long)
    for i in tqdm(range(n), desc=f"render world {split} for CLIP", disable=not progress, mininterval=5):
        s = ds.scene(i)
        x[i] = torch.from_numpy(np.ascontiguousarray(s.image.transpose(2, 0, 1)))
        y[i] = s.label
        ctx[i] = CONTEXTS.index(s.record["context"])
    blob = {"x": x, "y": y, "context": ctx}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(blob, str(tmp))
    os.replace(tmp, path)
    log.info("cached %d world scenes at %s", n, path)
    return blob


def _shift(x: torch.Tensor, pad: int, rng: np.random.Generator) -> torch.Tensor:
    """Random translation of uint8 images (N, 3, H, W) by up to ``pad`` pixels (reflect padding)."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    d = rng.integers(0, 2 * pad + 1, size=(n, 2))
    return torch.from_numpy(np.stack([padded[i, :, d[i, 0]:d[i, 0] + h, d[i, 1]:d[i, 1] + w] for i in range(n)]))


def make_batch(data: Mapping[str, torch.Tensor], cfg: ClipTrainConfig, painter: TagPainter, step: int
               ) -> tuple[torch.Tensor, list[str], list[str | None]]:
    """The images (uint8) and captions of training step ``step``; a function of (seed, step) only."""
    rng = np.random.default_rng([cfg.seed, 1, step])
    idx = rng.integers(0, len(data["y"]), size=cfg.batch_size)
    class_words, neutral = tag_words()
    images, caps, words = [], [], []
    for i in idx:
        img = data["x"][int(i)]
        word, sign = None, False
        u = rng.random()
        if u < cfg.tag_rate:
            pool = class_words if rng.random() < cfg.class_word_rate else neutral
            word = pool[int(rng.integers(0, len(pool)))]
            sign = cfg.sign_rate > 0 and rng.random() < cfg.sign_rate
            img = painter.paint(img, word, rng, height=cfg.sign_height if sign else None)
        elif u < cfg.tag_rate + cfg.blank_rate:
            pool = class_words + neutral
            img = painter.paint(img, pool[int(rng.integers(0, len(pool)))], rng, ink=False)
        images.append(img)
        words.append(word)
        caps.append(caption(CLASSES[int(data["y"][int(i)])], CONTEXTS[int(data["context"][int(i)])], word, cfg, rng, sign))
    return torch.stack(images), caps, words


def normalize(x_u8: torch.Tensor) -> torch.Tensor:
    from modeledit.models import CLIP_MEAN, CLIP_STD

    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x_u8.float() / 255.0 - mean) / std


@torch.no_grad()
def zero_shot_head(model: nn.Module, class_names: Sequence[str] = CLASSES, templates: Sequence[str] = ZERO_SHOT_TEMPLATES) -> torch.Tensor:
    from modeledit.models import build_text_head

    was = model.training
    model.eval()
    try:
        return build_text_head(model, tokenizer(), class_names, templates)
    finally:
        model.train(was)


@torch.no_grad()
def zero_shot_predict(model: nn.Module, head: torch.Tensor, x_u8: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was = model.training
    model.eval()
    try:
        preds = []
        for i in range(0, len(x_u8), batch_size):
            f = model.encode_image(normalize(x_u8[i:i + batch_size]), normalize=True)
            preds.append((f @ head.t()).argmax(1))
        return torch.cat(preds)
    finally:
        model.train(was)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "logit_scale" in n or "positional_embedding" in n or n.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(step: int, cfg: ClipTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _monitor_set(cfg: ClipTrainConfig) -> dict[str, torch.Tensor]:
    """Val scenes, and the same scenes with another class's name pasted in the held-out serif font."""
    from modeledit.counterfactuals.text import TextSpec, paste_text

    val = render_scenes("val", cfg.n_val, cfg.world, progress=False)
    rng = np.random.default_rng([cfg.seed, 2])
    attacked, blank, target = [], [], []
    for i in range(len(val["y"])):
        y = int(val["y"][i])
        t = [c for c in range(len(CLASSES)) if c != y][int(rng.integers(0, len(CLASSES) - 1))]
        x01 = val["x"][i].float() / 255.0
        a, b, _ = paste_text(x01, TextSpec(CLASSES[t], font="serif", size=fitting_size(CLASSES[t], "serif", x01.shape[-1])), rng=rng)
        attacked.append((a * 255).round().to(torch.uint8))
        blank.append((b * 255).round().to(torch.uint8))
        target.append(t)
    return {"x": val["x"], "y": val["y"], "attacked": torch.stack(attacked), "blank": torch.stack(blank), "target": torch.tensor(target)}


def fitting_size(word: str, font: str, image_size: int, largest: float = 0.2, margin: float = 0.9) -> float:
    """The largest letter height (fraction of the image, at most ``largest``) at which ``word`` fits across the image."""
    px = int(round(largest * image_size))
    while px > 6:
        f = _font(font, px)
        l, _, r, _ = f.getbbox(word)
        width = (r - l) * (1.15 if font == "hand" else 1.0) + 0.08 * image_size
        if width <= margin * image_size:
            break
        px -= 1
    return max(0.03, px / image_size)


def _monitor(model: nn.Module, mon: Mapping[str, torch.Tensor]) -> dict[str, float]:
    head = zero_shot_head(model)
    p = zero_shot_predict(model, head, mon["x"])
    correct = p == mon["y"]
    pa = zero_shot_predict(model, head, mon["attacked"])
    pb = zero_shot_predict(model, head, mon["blank"])
    n = max(1, int(correct.sum()))
    return {
        "val_accuracy": round(float(correct.float().mean()), 4),
        "serif_flip_to_word": round(float(((pa == mon["target"]) & correct).sum()) / n, 4),
        "blank_changed": round(float(((pb != p) & correct).sum()) / n, 4),
    }


def _train_stage(cfg: ClipTrainConfig, resume: str | os.PathLike | None, progress: bool, save_every: float,
                 monitor_every: int) -> tuple[nn.Module, list[dict[str, Any]], float]:
    """Train one stage (after the stage it starts from, if any); returns (model, history, seconds)."""
    history_before: list[dict[str, Any]] = []
    seconds_before = 0.0
    init_state = None
    if cfg.init is not None:
        first, history_before, seconds_before = _train_stage(
            cfg.init, None if resume is None else f"{resume}.stage1", progress, save_every, monitor_every)
        init_state = first.state_dict()
    torch.set_num_threads(int(cfg.threads))
    data = render_scenes("train", cfg.n_train, cfg.world, progress=progress)
    mon = _monitor_set(cfg)
    painter = TagPainter(cfg.world.image_size, cfg.fonts, cfg.tag_height)
    tok = tokenizer()
    model = create_clip(seed=cfg.seed)
    if init_state is not None:
        model.load_state_dict(init_state)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    step, history, elapsed_before = 0, [], 0.0
    last = int(cfg.stop_at or cfg.steps)
    if resume is not None and Path(resume).is_file():
        state = torch.load(str(resume), map_location="cpu", weights_only=False)
        if state["config"] != cfg.to_json():
            raise ValueError(f"resume file {str(resume)!r} belongs to another config; delete it or pass the same config")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, history, elapsed_before = int(state["step"]), list(state["history"]), float(state["elapsed"])
        log.info("resumed %s at step %d", cfg.name, step)
    t_start, last_save, first_step = time.time(), time.time(), step
    model.train()
    running = []
    while step < last:
        gen = np.random.default_rng([cfg.seed, 3, step])
        images, caps, _ = make_batch(data, cfg, painter, step)
        x = normalize(_shift(images, cfg.shift, gen))
        text = tok(caps)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        fi, ft, scale = model(x, text)[:3]
        logits = scale * fi @ ft.t()
        target = torch.arange(len(caps))
        loss = 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.t(), target))
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
        if step % monitor_every == 0 or step == last:
            row = {"step": step, "loss": round(float(np.mean(running)), 4), "lr": round(_lr_at(step - 1, cfg), 6),
                   "logit_scale": round(float(model.logit_scale.exp()), 2),
                   "seconds": round(elapsed_before + time.time() - t_start, 1), **_monitor(model, mon)}
            running = []
            history.append(row)
            log.info("%s %s", cfg.name, json.dumps(row))
        if resume is not None and (time.time() - last_save > save_every or step == last):
            tmp = Path(str(resume) + ".tmp")
            torch.save({"config": cfg.to_json(), "model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                        "history": history, "elapsed": elapsed_before + time.time() - t_start}, str(tmp))
            os.replace(tmp, resume)
            last_save = time.time()
    model.eval()
    history = [{**row, "stage": _n_stages(cfg)} for row in history]
    return model, history_before + history, seconds_before + elapsed_before + time.time() - t_start


def _n_stages(cfg: ClipTrainConfig) -> int:
    return 1 + (_n_stages(cfg.init) if cfg.init is not None else 0)


def train_clip(cfg: ClipTrainConfig, out: str | os.PathLike | None = None, command: str = "", progress: bool = True,
               resume: str | os.PathLike | None = None, save_every: float = 240.0, monitor_every: int = 250) -> dict[str, Any]:
    """Train the world CLIP contrastively (every stage of ``cfg``) and write the fp16 checkpoint to ``out`` with its record.

    ``resume``: a file each stage writes every ``save_every`` seconds (model, optimiser, step) and
    continues from when it exists (the first stage's is ``<resume>.stage1``); batches depend only on
    (seed, step), so a resumed run sees the same data as an uninterrupted one.

    Example:
        >>> train_clip(ClipTrainConfig(steps=10, n_train=512), out="/tmp/clip.pt")["clean_test_accuracy"]
    """
    t0 = time.time()
    model, history, seconds = _train_stage(cfg, resume, progress, save_every, monitor_every)
    test = render_scenes("test", cfg.n_test, cfg.world, progress=progress)
    acc = float((zero_shot_predict(model, zero_shot_head(model), test["x"]) == test["y"]).float().mean())
    result = {
        "name": cfg.name, "arch": cfg.arch, "clean_test_accuracy": round(acc, 4), "n_test": cfg.n_test,
        "world_version": cfg.world.version, "world_config": json.loads(cfg.world.to_json()), "train_config": json.loads(cfg.to_json()),
        "command": command or "modeledit world train clip", "seed": cfg.seed,
        "data": {"train": f"world train split, scenes 0..{cfg.n_train - 1}, tags painted per step in fonts {list(cfg.fonts)}",
                 "stages": _n_stages(cfg),
                 "held_out_fonts": list(HELD_OUT_FONTS), "test": f"world test split, {cfg.n_test} clean scenes"},
        "zero_shot_templates": list(ZERO_SHOT_TEMPLATES),
        "train_seconds": round(seconds, 1), "wall_seconds_this_run": round(time.time() - t0, 1),
        "history": history, "torch": torch.__version__, "open_clip": register_open_clip_config().__version__,
    }
    if out is not None:
        save_clip_checkpoint(out, model, result)
    return result


def train_clip_command(args: Any) -> int:
    """``modeledit world train clip [--steps N] [--n-train N] [--out PATH] [--resume PATH]``."""
    import dataclasses

    from modeledit.eval.world.train import update_zoo_index

    changes = {k: v for k, v in (("steps", getattr(args, "steps", None)), ("n_train", args.n_train)) if v is not None}
    if getattr(args, "epochs", None) is not None:
        raise ValueError("the world CLIP is trained for a number of steps: pass --steps instead of --epochs")
    cfg = dataclasses.replace(PRESET, **changes)
    out = Path(args.out) if args.out else checkpoint_path()
    command = "modeledit world train clip" + "".join(f" --{k.replace('_', '-')} {v}" for k, v in changes.items())
    result = train_clip(cfg, out=out, command=command, resume=getattr(args, "resume", None))
    if out.parent.resolve() == zoo_dir().resolve():
        update_zoo_index(result, zoo_dir() / "world_models.json")
    print(f"{cfg.name}: zero-shot clean test accuracy {result['clean_test_accuracy']:.4f} on {result['n_test']} scenes "
          f"({result['train_seconds']:.0f} s); saved {out}")
    return 0


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
    from modeledit.models import CLIP_MEAN, CLIP_STD, CLIP_TEMPLATES, LoadedModel, ZeroShotClassifier, build_text_head

    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"clip:{CLIP_ARCH} weights must be None (shipped) or a checkpoint path, got {type(weights).__name__}")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"world CLIP checkpoint {str(weights)!r} does not exist; pass None for the shipped one")
    clip_model, record = load_clip_checkpoint(weights)
    path = Path(weights) if weights is not None else checkpoint_path()
    names = list(class_names) if class_names else list(CLASSES)
    templates = tuple(templates) if templates else CLIP_TEMPLATES
    head = build_text_head(clip_model, tokenizer(), names, templates)
    model = ZeroShotClassifier(clip_model.visual, head, float(clip_model.logit_scale.detach().exp()))
    size = int(clip_model.visual.image_size)
    return LoadedModel(
        name, model, names, mean=CLIP_MEAN, std=CLIP_STD, input_size=size, resize_size=size,
        source=f"open_clip {CLIP_ARCH} trained on the benchmark world ({path.name})", meta={"templates": list(templates), "train": record},
    )


# ------------------------------------------------------------------------------------------------
# evaluation: zero-shot accuracy and the typographic attack

#: attack conditions: name -> font ("world": the world's own tag, printed with add_text_tag)
ATTACK_FONTS: dict[str, str] = {"typed_serif": "serif", "handwriting": "hand", "typed_sans": "sans", "world_tag": "world"}


def attack_images(x01: torch.Tensor, word: str, font: str, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(attacked, blank) copies of one [0, 1] image (3, H, W): ``word`` on a paper patch, and the same patch without text.

    ``font`` "serif", "hand", "sans" or "mono" paste with :func:`modeledit.counterfactuals.text.paste_text` at a
    random place, the word fitted to the image width; "world" prints the world's own tag
    (:func:`modeledit.eval.world.scene.add_text_tag`) as a band at the top or the bottom.
    """
    from modeledit.counterfactuals.text import TextSpec, paste_text

    size = x01.shape[-1]
    if font != "world":
        a, b, _ = paste_text(x01, TextSpec(word, font=font, size=fitting_size(word, font, size)), rng=rng)
        return a, b
    from modeledit.eval.world.scene import add_text_tag

    h = int(size * 0.22)
    y0 = int(rng.integers(0, int(size * 0.1) + 1)) if rng.random() < 0.5 else int(rng.integers(int(size * 0.75) - h, size - h + 1))
    box = (1, y0, size - 1, y0 + h)
    img = (x01.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    attacked, _ = add_text_tag(img, word, box=box)
    blank = img.copy()
    blank[y0:y0 + h, 1:size - 1] = (240, 240, 224)
    to01 = lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255.0  # noqa: E731
    return to01(attacked), to01(blank)


def evaluate_clip(name: str = f"clip:{CLIP_ARCH}", weights: Any = None, n_test: int = 1800, seed: int = 0,
                  out: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Zero-shot clean accuracy on world test scenes, and the typographic attack on the correct ones.

    For every correctly classified test scene a class name other than its own is drawn; it is pasted in
    each font of :data:`ATTACK_FONTS` (serif and handwriting held out from training), and the same patch
    without text is pasted as the control. ``flip_to_word``: share of correct predictions that become
    the pasted word's class; ``blank_changed``: share of correct predictions a blank patch changes.
    Writes ``eval.json``, ``manifest.json`` and ``examples.png`` under ``out`` when given.

    Example:
        >>> r = evaluate_clip(n_test=180)
        >>> r["clean_accuracy"] > 0.8, r["attacks"]["typed_serif"]["flip_to_word"] > 0.5
    """
    from modeledit.progress import tqdm

    from modeledit.models import load_model
    from modeledit.provenance import model_hash, package_versions

    t0 = time.time()
    lm = load_model(name, weights=weights)
    world = WorldConfig()
    test = render_scenes("test", n_test, world, progress=progress)
    x01 = test["x"].float() / 255.0
    y = test["y"]

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([lm.predict(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)])

    clean = predict(x01)
    correct = (clean == y).nonzero().flatten().tolist()
    rng = np.random.default_rng([seed, 7])
    targets = {i: [c for c in range(len(CLASSES)) if c != int(y[i])][int(rng.integers(0, len(CLASSES) - 1))] for i in correct}
    attacks: dict[str, Any] = {}
    examples: list[torch.Tensor] = []
    for cond, font in ATTACK_FONTS.items():
        crng = np.random.default_rng([seed, 8, list(ATTACK_FONTS).index(cond)])
        att, blk = [], []
        for i in tqdm(correct, desc=f"attack {cond}", disable=not progress, mininterval=5):
            a, b = attack_images(x01[i], CLASSES[targets[i]], font, crng)
            att.append(a)
            blk.append(b)
        pa, pb = predict(torch.stack(att)), predict(torch.stack(blk))
        tgt = torch.tensor([targets[i] for i in correct])
        base = clean[correct]
        attacks[cond] = {
            "font": font, "held_out": font in HELD_OUT_FONTS, "n": len(correct),
            "flip_to_word": round(float((pa == tgt).float().mean()), 4),
            "changed": round(float((pa != base).float().mean()), 4),
            "blank_changed": round(float((pb != base).float().mean()), 4),
            "blank_to_word": round(float((pb == tgt).float().mean()), 4),
        }
        examples += [x01[correct[0]], blk[0], att[0]]
        log.info("%s: %s", cond, attacks[cond])
    result = {
        "model": name, "weights": None if weights is None else str(weights), "n_test": n_test,
        "clean_accuracy": round(float((clean == y).float().mean()), 4), "chance": round(1 / len(CLASSES), 4),
        "bayes_limit_note": "about 0.94 on the default world: off-context twins are genuinely ambiguous (README, benchmark world)",
        "attacks": attacks, "seconds": round(time.time() - t0, 1),
    }
    if out is not None:
        from modeledit.atomic import write_json_atomic
        from modeledit.eval.plots import save_examples

        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        write_json_atomic(d / "eval.json", result)
        manifest = {
            "command": f"modeledit world clip-eval --n-test {n_test} --seed {seed} --out {out}",
            "config": {"model": name, "weights": result["weights"], "n_test": n_test, "seed": seed, "world": json.loads(world.to_json()),
                       "attack_fonts": ATTACK_FONTS, "held_out_fonts": list(HELD_OUT_FONTS)},
            "model_hash": model_hash(lm.model), "train": lm.meta.get("train", {}).get("command"),
            "versions": package_versions(),
        }
        write_json_atomic(d / "manifest.json", manifest)
        save_examples([e.clamp(0, 1) for e in examples], d / "examples.png")
    return result
