"""Evaluation: zero-shot accuracy and the typographic attack.

Part of the world CLIP (:mod:`modeledit.eval.world.clip`)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
import torch

import numpy as np

from modeledit.eval.world.scene import CLASSES, WorldConfig
from modeledit.eval.world.clip.config import CLIP_ARCH, HELD_OUT_FONTS
from modeledit.eval.world.clip.captions import fitting_size
from modeledit.eval.world.clip.data import render_scenes

log = logging.getLogger(__name__)


#: attack conditions: name -> font ("world": the world's own tag, printed with add_text_tag)
ATTACK_FONTS: dict[str, str] = {"typed_serif": "serif", "handwriting": "hand", "typed_sans": "sans", "world_tag": "world"}


def attack_images(x01: torch.Tensor, word: str, font: str, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(attacked, blank, mask) for one [0, 1] image (3, H, W): ``word`` on a paper patch, the same patch without
    text, and the patch (H, W) bool.

    ``font`` "serif", "hand", "sans" or "mono" paste with :func:`modeledit.counterfactuals.text.paste_text` at a
    random place, the word fitted to the image width; "world" prints the world's own tag
    (:func:`modeledit.eval.world.scene.add_text_tag`) as a band at the top or the bottom.
    """
    from modeledit.counterfactuals.text import TextSpec, paste_text

    size = x01.shape[-1]
    if font != "world":
        return paste_text(x01, TextSpec(word, font=font, size=fitting_size(word, font, size)), rng=rng)
    from modeledit.eval.world.scene import add_text_tag

    h = int(size * 0.22)
    y0 = int(rng.integers(0, int(size * 0.1) + 1)) if rng.random() < 0.5 else int(rng.integers(int(size * 0.75) - h, size - h + 1))
    box = (1, y0, size - 1, y0 + h)
    img = (x01.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    attacked, patch = add_text_tag(img, word, box=box)
    blank = img.copy()
    blank[patch] = (240, 240, 224)
    to01 = lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255.0  # noqa: E731
    return to01(attacked), to01(blank), torch.from_numpy(patch)


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
        >>> r["clean_accuracy"], r["attacks"]["typed_serif"]["flip_to_word"], r["attacks"]["typed_serif"]["blank_changed"]
    """
    from modeledit.progress import tqdm

    from modeledit.models import load_model
    from modeledit.provenance import model_hash, package_versions, weights_record

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
            a, b, _ = attack_images(x01[i], CLASSES[targets[i]], font, crng)
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
            "harness": "clip-eval",
            "command": f"modeledit world clip-eval --n-test {n_test} --seed {seed} --out {out}",
            "config": {"model": name, "weights": result["weights"], "n_test": n_test, "seed": seed, "world": json.loads(world.to_json()),
                       "attack_fonts": ATTACK_FONTS, "held_out_fonts": list(HELD_OUT_FONTS)},
            "model_hash": model_hash(lm.model), "train": lm.meta.get("train", {}).get("command"),
            "weights": weights_record(lm), "versions": package_versions(),
        }
        write_json_atomic(d / "manifest.json", manifest)
        save_examples([e.clamp(0, 1) for e in examples], d / "examples.png")
    return result
