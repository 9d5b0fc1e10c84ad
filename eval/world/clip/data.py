"""Training data: scenes rendered once (cached outside git), batches, zero-shot heads, the loss.

Part of the world CLIP (:mod:`modeledit.eval.world.clip`)."""
from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import torch
from torch import nn

import numpy as np

from modeledit.eval.world.scene import CLASSES, CONTEXTS
from modeledit.eval.world.clip.config import ZERO_SHOT_TEMPLATES
from modeledit.eval.world.clip.model_io import tokenizer, tower_input
from modeledit.eval.world.clip.vocabulary import tag_words
from modeledit.eval.world.clip.captions import _pick, caption, fitting_size, parrot_caption

log = logging.getLogger(__name__)


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


def _shift(x: torch.Tensor, pad: int, rng: np.random.Generator, mode: str = "edge") -> torch.Tensor:
    """Random translation of uint8 images (N, 3, H, W) by up to ``pad`` pixels (numpy padding ``mode``:
    edge repeats the border pixels; the v1 recipe's reflect mirrored glyph fragments at the borders)."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=mode)
    d = rng.integers(0, 2 * pad + 1, size=(n, 2))
    return torch.from_numpy(np.stack([padded[i, :, d[i, 0]:d[i, 0] + h, d[i, 1]:d[i, 1] + w] for i in range(n)]))


def make_batch(data: Mapping[str, torch.Tensor], cfg: ClipTrainConfig, painter: TagPainter, step: int
               ) -> tuple[torch.Tensor, list[str], list[dict[str, Any]]]:
    """The images (uint8), captions and per-sample records (word, font, kind, ...) of training step
    ``step``; a function of (seed, step) only."""
    if cfg.recipe == "v1":
        return _make_batch_v1(data, cfg, painter, step)
    rng = np.random.default_rng([cfg.seed, 1, step])
    class_words, neutral = tag_words(cfg)
    vocab = class_words + neutral
    by_length: dict[int, list[str]] = {}
    for w in vocab:
        by_length.setdefault(len(w), []).append(w)
    n_pairs = int(round(cfg.meme_rate * cfg.batch_size / 2))
    idx = rng.integers(0, len(data["y"]), size=cfg.batch_size - n_pairs)
    images, caps, meta = [], [], []

    def draw_word() -> str:
        return _pick(class_words if rng.random() < cfg.class_word_rate else neutral, rng)

    def style(word: str) -> dict[str, Any]:
        font = _pick(cfg.fonts, rng)
        if step < cfg.large_steps or rng.random() >= cfg.small_share:
            h, size = float(rng.uniform(*cfg.large_height)), "large"
        elif rng.random() < cfg.fitting_share:
            h, size = fitting_size(word, font, painter.size), "fitting"
        else:
            h, size = float(rng.uniform(*cfg.tag_height)), "small"
        jitter = (cfg.jitter_rotate, cfg.jitter_shear) if rng.random() < cfg.jitter_rate else None
        return {"font": font, "height": h, "size": size, "jitter": jitter}

    for k in range(cfg.batch_size - n_pairs):
        i = int(idx[k])
        img, y, ctx = data["x"][i], CLASSES[int(data["y"][i])], CONTEXTS[int(data["context"][i])]
        if k < n_pairs:  # a meme pair: the same scene, two words, one tag style and placement
            w1 = draw_word()
            pool = [w for w in (by_length[len(w1)] if rng.random() < 0.5 else vocab) if w != w1]
            w2 = _pick(pool, rng)
            st, sub = style(w1), int(rng.integers(0, 2**62))
            for w in (w1, w2):
                images.append(painter.paint(img, w, np.random.default_rng(sub), height=(st["height"],) * 2, font=st["font"],
                                            jitter=st["jitter"]))
                cap, kind = parrot_caption(y, ctx, w, cfg, rng, step, word_only=True)
                caps.append(cap)
                meta.append({"scene": i, "word": w, "kind": kind, "meme": True, **st})
            continue
        u, word, st, blank = rng.random(), None, {}, False
        if u < cfg.tag_rate:
            word = draw_word()
            st = style(word)
            img = painter.paint(img, word, rng, height=(st["height"],) * 2, font=st["font"], jitter=st["jitter"])
        elif u < cfg.tag_rate + cfg.blank_rate:
            blank, w = True, _pick(vocab, rng)
            st = style(w)
            img = painter.paint(img, w, rng, ink=False, height=(st["height"],) * 2, font=st["font"])
        cap, kind = parrot_caption(y, ctx, word, cfg, rng, step, blank=blank)
        images.append(img)
        caps.append(cap)
        meta.append({"scene": i, "word": word, "kind": kind, "meme": False, "blank": blank, **st})
    return torch.stack(images), caps, meta


def _make_batch_v1(data: Mapping[str, torch.Tensor], cfg: ClipTrainConfig, painter: TagPainter, step: int
                   ) -> tuple[torch.Tensor, list[str], list[dict[str, Any]]]:
    """The v1 recipe's batches (the shipped checkpoint's), drawn as they were."""
    rng = np.random.default_rng([cfg.seed, 1, step])
    idx = rng.integers(0, len(data["y"]), size=cfg.batch_size)
    class_words, neutral = tag_words(cfg)
    images, caps, meta = [], [], []
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
        meta.append({"scene": int(i), "word": word, "kind": "sign" if sign else "v1", "meme": False})
        caps.append(caption(CLASSES[int(data["y"][int(i)])], CONTEXTS[int(data["context"][int(i)])], word, cfg, rng, sign))
    return torch.stack(images), caps, meta


def normalize(x_u8: torch.Tensor) -> torch.Tensor:
    from modeledit.models import CLIP_MEAN, CLIP_STD

    mean = torch.tensor(CLIP_MEAN, device=x_u8.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x_u8.device).view(1, 3, 1, 1)
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
    feats = _image_features(model, x_u8, batch_size)
    return feats.matmul(head.t().to(feats.device)).argmax(1)


@torch.no_grad()
def _image_features(model: nn.Module, x_u8: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device   # features come back on the images' device (the CPU's, usually)
        return torch.cat([model.encode_image(tower_input(model, normalize(x_u8[i:i + batch_size].to(dev))), normalize=True).to(x_u8.device)
                          for i in range(0, len(x_u8), batch_size)])
    finally:
        model.train(was)


@torch.no_grad()
def _text_features(model: nn.Module, texts: Sequence[str]) -> torch.Tensor:
    was = model.training
    model.eval()
    try:
        return model.encode_text(tokenizer()(list(texts)).to(next(model.parameters()).device), normalize=True).cpu()
    finally:
        model.train(was)


def _param_groups(model: nn.Module, weight_decay: float, logit_scale_lr_mult: float = 1.0, text_lr_mult: float = 1.0
                  ) -> list[dict[str, Any]]:
    """AdamW groups: weights with decay, gains/biases/embeddings without, and the logit scale alone
    (no decay, ``lr_mult`` times the learning rate). With ``text_lr_mult`` != 1 the text tower's weights
    and gains get groups of their own (``text_mult``, applied from ``ClipTrainConfig.text_slow_from`` on by
    :func:`set_lr`); otherwise the groups are those of every earlier run, so their resume files still load."""
    split = float(text_lr_mult) != 1.0
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {(d, t): [] for d in (True, False) for t in (False, True)}
    scale = []
    for n, p in model.named_parameters():
        if n == "logit_scale":
            scale.append(p)
            continue
        decays = not (p.ndim < 2 or "positional_embedding" in n or n.endswith(".bias"))
        groups[(decays, split and not n.startswith("visual."))].append(p)
    out = [{"params": groups[(d, t)], "weight_decay": weight_decay if d else 0.0, "lr_mult": 1.0,
            **({"text_mult": float(text_lr_mult)} if t else {})}
           for t in ((False, True) if split else (False,)) for d in (True, False)]
    return out + [{"params": scale, "weight_decay": 0.0, "lr_mult": float(logit_scale_lr_mult)}]


def make_optimizer(model: nn.Module, cfg: ClipTrainConfig) -> torch.optim.Optimizer:
    """AdamW over :func:`_param_groups` as ``cfg`` says (each group's lr is set per step: :func:`set_lr`)."""
    return torch.optim.AdamW(_param_groups(model, cfg.weight_decay, cfg.logit_scale_lr_mult, cfg.text_lr_mult), lr=cfg.lr,
                             betas=tuple(cfg.betas), eps=1e-6)


def set_lr(opt: torch.optim.Optimizer, step: int, cfg: ClipTrainConfig) -> None:
    slow = step >= cfg.text_slow_from
    for g in opt.param_groups:
        g["lr"] = _lr_at(step, cfg) * float(g.get("lr_mult", 1.0)) * (float(g.get("text_mult", 1.0)) if slow else 1.0)


def _lr_at(step: int, cfg: ClipTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def caption_words(caption: str, vocabulary: frozenset[str]) -> frozenset[str]:
    """The words of ``caption`` that belong to ``vocabulary`` (lower case; ``"a photo of a car."`` -> {"car"})."""
    return frozenset(re.findall(r"[a-z]+", caption.lower())) & vocabulary


def contrastive_loss(logits: torch.Tensor, captions: Sequence[str], shared_positives: bool = True,
                     words: Sequence[frozenset[str]] | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of (images x captions) logits.

    With ``shared_positives`` identical captions are positives of each other (the target spreads over
    them), so "car." for a car and "car." for a car sign are not pushed apart. With ``words`` (the content
    words of each caption, :func:`caption_words`), two *different* captions that share a word are left out
    of each other's softmax: "car." (a car sign) is then never a negative of "a photo of a car on the
    road." (a car). With 18 classes in a batch of 128 such pairs meet in every batch, and contrasting them
    teaches the text tower to keep a written word apart from the object it names; in web-scale batches of
    many thousand concepts they rarely meet. The rule reads only the captions.
    """
    n = len(captions)
    if not shared_positives and words is None:   # plain InfoNCE with class-index targets (the shipped v1 recipe, as trained)
        target = torch.arange(n, device=logits.device)
        return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.t(), target))
    if shared_positives:
        ids = {c: k for k, c in enumerate(dict.fromkeys(captions))}
        lab = torch.tensor([ids[c] for c in captions], device=logits.device)
        same = lab[:, None] == lab[None, :]
    else:
        same = torch.eye(n, dtype=torch.bool, device=logits.device)
    if words is not None:
        if len(words) != n:
            raise ValueError(f"got {len(words)} word sets for {n} captions")
        share = torch.tensor([[bool(a & b) for b in words] for a in words], device=logits.device)
        # a large finite logit, not -inf: a zero target times log(0) would be nan
        logits = logits.masked_fill(share & ~same, -1e4)
    target = same.to(logits.dtype)
    target = target / target.sum(1, keepdim=True)
    return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.t(), target))
