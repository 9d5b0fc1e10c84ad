"""What the world command reports: shipped-model index, sample files, picture grid, context reliance.

:func:`measure_context` is the committed measurement behind the README's claims: for every context
concept it renders test scenes of every class in front of that context, re-renders the *same* scenes
with the context's texture swapped (``World.render_with``), and reports per-class accuracy drops for
the classes that co-occur with the context versus the others; and it prints a class's text tag onto
images of other classes and counts how many predictions flip to that class.

Example:
    >>> result = measure_context(["world_vgg"], text_model="world_vgg_text", n_per_cell=20)
    >>> result["models"]["world_vgg"]["contexts"]["road"]["cooccurring_drop"]
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from modeledit.atomic import write_text_atomic
from modeledit.eval.world.scene import CLASSES, CONTEXTS, HOMES, PARTS, TEXT_TAG, World, WorldConfig
from modeledit.eval.world.data import SPLIT_OFFSETS, WorldDataset

log = logging.getLogger(__name__)

#: colours of the concept map in picture grids
_MAP_COLOURS = {
    "road": (110, 110, 110), "grass": (60, 170, 60), "water": (40, 90, 200), "sky": (150, 200, 250),
    "sand": (230, 200, 120), "floor": (150, 90, 50), "object": (250, 250, 250), "wheel": (20, 20, 20),
    "window": (0, 220, 220), TEXT_TAG: (230, 30, 200),
}


def shipped_index() -> dict[str, Any]:
    """The zoo's JSON index (clean accuracy, world version, command) for each shipped world classifier."""
    from modeledit.eval.world.models import SHIPPED, shipped_checkpoint_dir

    path = shipped_checkpoint_dir() / "world_models.json"
    index = json.loads(path.read_text()) if path.is_file() else {}
    return {name: {"present": (shipped_checkpoint_dir() / f"{name}.pt").is_file(), **index.get(name, {})} for name in SHIPPED}


def concept_map(masks: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """An HxWx3 uint8 picture of the masks: contexts, object (white), wheel, window and text tag in colours."""
    out = np.zeros((*shape, 3), np.uint8)
    for concept in CONTEXTS + CLASSES + PARTS + (TEXT_TAG,):
        m = masks.get(concept)
        if m is not None:
            out[m] = _MAP_COLOURS["object" if concept in CLASSES else concept]
    return out


def write_samples(dataset: WorldDataset, out: str | os.PathLike) -> list[Path]:
    """Write each item as ``NNNN_class.png``, one ``NNNN_class_concept.png`` mask per concept, ``NNNN.json``."""
    from modeledit.images import save_image

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(len(dataset)):
        scene = dataset.scene(i)
        stem = f"{i:04d}_{scene.class_name}"
        save_image(scene.image, root / f"{stem}.png")
        for concept, mask in scene.masks.items():
            save_image(np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2), root / f"{stem}_{concept}.png")
        write_text_atomic(root / f"{i:04d}.json", json.dumps(scene.record, indent=1))
        files.append(root / f"{stem}.png")
    return files


def picture_grid(dataset: WorldDataset, path: str | os.PathLike, columns: int = 9, scale: int = 2) -> Path:
    """A PNG grid: for every item its image, with its concept map underneath."""
    from PIL import Image

    from modeledit.images import save_image

    n = len(dataset)
    size = dataset.config.image_size
    rows = (n + columns - 1) // columns
    pad = 2
    grid = np.full((rows * (2 * size + 3 * pad), columns * (size + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        s = dataset.scene(i)
        r, c = divmod(i, columns)
        y, x = r * (2 * size + 3 * pad) + pad, c * (size + pad) + pad
        grid[y:y + size, x:x + size] = s.image
        grid[y + size + pad:y + 2 * size + pad, x:x + size] = concept_map(s.masks, s.image.shape[:2])
    pil = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    save_image(pil, path)
    return Path(path)


def _predict(lm: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
    return lm.predict_labels(x, batch_size)


def _context_scenes(world: World, context: str, n_per_class: int, texture: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Test scenes of every class forced in front of ``context``, the same scenes with its texture swapped,
    their labels and the context's masks."""
    base = SPLIT_OFFSETS["test"] + 5_000_000  # beyond the default test items, so nothing is reused
    clean, swapped, labels, masks = [], [], [], []
    for k in range(len(CLASSES)):
        for j in range(n_per_class):
            index = base + j * len(CLASSES) + k
            scene = world.render(index, label=k, context=context, text_tag=False)
            clean.append(scene.image)
            masks.append(scene.mask(context))
            swapped.append(world.render_with(index, {context: texture}, label=k, context=context, text_tag=False).image)
            labels.append(k)
    return np.stack(clean), np.stack(swapped), np.asarray(labels), np.stack(masks)


def _restyled(images: np.ndarray, masks: np.ndarray, style: str, batch_size: int = 64) -> np.ndarray:
    """The context regions restyled with a style-bank style through the counterfactual engine (Magenta)."""
    from modeledit.counterfactuals import restyle

    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).float().div(255.0)
        y = restyle(x, torch.from_numpy(masks[i:i + batch_size]), style)
        out.append((y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def _drops(p_clean: np.ndarray, p_swap: np.ndarray, labels: np.ndarray, context: str) -> dict[str, Any]:
    per_class = {}
    for k, cname in enumerate(CLASSES):
        sel = labels == k
        a, b = float(np.mean(p_clean[sel] == k)), float(np.mean(p_swap[sel] == k))
        per_class[cname] = {"clean": round(a, 4), "swapped": round(b, 4), "drop": round(a - b, 4)}
    home = [per_class[c]["drop"] for c in HOMES[context]]
    other = [per_class[c]["drop"] for c in CLASSES if c not in HOMES[context]]
    return {"cooccurring": list(HOMES[context]), "cooccurring_drop": round(float(np.mean(home)), 4),
            "other_drop": round(float(np.mean(other)), 4), "per_class": per_class}


def _text_tag_flips(lm: Any, world: World, n_per_class: int) -> dict[str, Any]:
    """Print each tag class's word onto test scenes of the other classes; count flips to the tag class."""
    base = SPLIT_OFFSETS["test"] + 6_000_000
    indices = [base + j * len(CLASSES) + k for j in range(n_per_class) for k in range(len(CLASSES))]
    clean = np.stack([world.render(i, text_tag=False).image for i in indices])
    labels = np.asarray([world.label_of(i) for i in indices])
    correct = _predict(lm, clean) == labels
    per_word = {}
    for word in world.config.text_tag_classes:
        target = CLASSES.index(word)
        keep = [i for i, ok, y in zip(indices, correct, labels) if ok and y != target]
        tagged = np.stack([world.render(i, text_tag=word).image for i in keep])
        flips = float(np.mean(_predict(lm, tagged) == target))
        per_word[word] = {"n": len(keep), "flip_rate": round(flips, 4)}
    rates = [v["flip_rate"] for v in per_word.values()]
    return {"clean_accuracy_untagged": round(float(correct.mean()), 4), "per_word": per_word, "mean_flip_rate": round(float(np.mean(rates)), 4)}


def measure_context(models: Sequence[str], text_model: str | None = "world_vgg_text", n_per_cell: int = 60,
                    texture: str = "snow", out: str | os.PathLike | None = None, config: WorldConfig | None = None,
                    style: str | None = None, n_style: int = 20) -> dict[str, Any]:
    """Texture-swap context reliance for ``models`` and the text-tag flip rate of ``text_model``.

    With ``style`` (a style-bank name such as ``"snow"``), the context regions of the first ``n_style``
    scenes per class are also restyled with the counterfactual engine's Magenta stylizer.

    Example:
        >>> r = measure_context(["world_vgg"], text_model=None, n_per_cell=10)
        >>> r["models"]["world_vgg"]["contexts"]["road"]["cooccurring_drop"] > 0.15
    """
    from modeledit.progress import tqdm

    from modeledit.models import load_model

    world = World(config)
    loaded = {m: load_model(m) for m in models}
    result: dict[str, Any] = {
        "world": json.loads(world.config.to_json()), "texture": texture, "n_per_class_and_context": n_per_cell,
        "style": style, "n_style_per_class_and_context": n_style if style else 0,
        "protocol": (
            "for each context, test scenes of every class are rendered in front of that context and re-rendered with the "
            f"context's texture replaced by '{texture}' (same scene, same random draws); drop = clean accuracy - swapped "
            "accuracy per class; co-occurring = the context's home classes, others = every other class shown in front of the "
            "same context"
        ),
        "models": {m: {"contexts": {}} for m in models}, "summary": [],
    }
    for context in tqdm(CONTEXTS, desc="contexts"):
        clean, swapped, labels, masks = _context_scenes(world, context, n_per_cell, texture)
        styled = None
        if style:
            keep = np.concatenate([np.flatnonzero(labels == k)[:n_style] for k in range(len(CLASSES))])
            styled = (_restyled(clean[keep], masks[keep], style), keep)
        for name, lm in loaded.items():
            p_clean = _predict(lm, clean)
            entry = _drops(p_clean, _predict(lm, swapped), labels, context)
            result["models"][name]["contexts"][context] = entry
            result["summary"].append(
                f"{name} {context}->{texture} texture: co-occurring classes drop {100 * entry['cooccurring_drop']:.1f} pp, "
                f"others {100 * entry['other_drop']:.1f} pp"
            )
            if styled is not None:
                images, keep = styled
                st = _drops(p_clean[keep], _predict(lm, images), labels[keep], context)
                result["models"][name].setdefault("style_contexts", {})[context] = st
                result["summary"].append(
                    f"{name} {context}->'{style}' style: co-occurring classes drop {100 * st['cooccurring_drop']:.1f} pp, "
                    f"others {100 * st['other_drop']:.1f} pp"
                )
    for name in models:
        ctxs = result["models"][name]["contexts"]
        result["models"][name]["mean_cooccurring_drop"] = round(float(np.mean([c["cooccurring_drop"] for c in ctxs.values()])), 4)
        result["models"][name]["mean_other_drop"] = round(float(np.mean([c["other_drop"] for c in ctxs.values()])), 4)
        if "style_contexts" in result["models"][name]:
            sc = result["models"][name]["style_contexts"].values()
            result["models"][name]["style_mean_cooccurring_drop"] = round(float(np.mean([c["cooccurring_drop"] for c in sc])), 4)
            result["models"][name]["style_mean_other_drop"] = round(float(np.mean([c["other_drop"] for c in sc])), 4)
        result["models"][name]["clean_test_accuracy"] = shipped_index().get(name, {}).get("clean_test_accuracy")
    if text_model:
        lm = load_model(text_model)
        if "world" not in lm.meta:
            raise ValueError(f"{text_model!r} is not a world classifier (its checkpoint has no world config); pass --text-model world_vgg_text")
        text_world = World(WorldConfig.from_json(lm.meta["world"]))
        result["text_tag"] = {text_model: _text_tag_flips(lm, text_world, max(4, n_per_cell // 3))}
        controls = [m for m in models if m != text_model]
        for m in controls:
            result["text_tag"][m] = _text_tag_flips(loaded[m], text_world, max(4, n_per_cell // 3))
        for m, r in result["text_tag"].items():
            result["summary"].append(f"{m} text tags: {100 * r['mean_flip_rate']:.1f}% of predictions flip to the tag's class")
    if out is not None:
        write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    return result
