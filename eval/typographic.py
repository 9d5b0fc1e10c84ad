"""Typographic attacks and their one-exemplar fix (thesis 6.3.3, figures 6-11 and 6-12).

The attack pastes the name of an *attack class* on images of other classes and counts how often the
prediction flips to it. The fix uses a single exemplar: one image with the text (x') and the same image
with a blank patch in its place (x); the rewrite maps the text's keys to the blank patch's values.
Local and global fine-tuning train on the same exemplar towards its true class. For each method, site and
setting we report accuracy under attack, attack success (attacked images sent to the attack class), clean
accuracy, accuracy on clean images of the attack class itself (does the class still work without text?)
and the rate of a spurious rule "text means the exemplar's class". Settings are chosen on a validation
split of attacked images within the clean accuracy budget, as in the main protocol. With several fonts
(pasters ``typed`` and ``world_clip``) the attacked images take them in turn, and accuracy under attack is
also reported per font (``attack_acc_<font>``).

Pasters (:data:`PASTERS`): ``typed`` (a word in a DejaVu face at a random place), ``world_tag`` (the tag the
world's text classifier saw in training) and ``world_clip`` (the attack of ``modeledit world clip-eval``
on the world CLIP: fonts serif and hand held out from its training, sans, and ``world``, its tag as a band).

Example:
    >>> cfg = TypographicConfig(model="world_vgg_text", attack_class="car")
    >>> table, summary = run_typographic(cfg, out_dir="results/typographic")
    >>> cfg = TypographicConfig(model="clip:world-RN", paster="world_clip", fonts=["serif", "hand", "sans", "world"])
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modeledit.eval.methods import MethodGrid
from modeledit.eval.oneshot import Exemplar, OneShotStudy, run_study, summarize_oneshot
from modeledit.eval.results import ResultStore
from modeledit.counterfactuals.text import FONTS, TextSpec, paste_text

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class TypographicConfig(MethodGrid):
    model: str = "world_vgg_text"
    weights: str | None = None
    class_names: list[str] | None = None      # CLIP zero-shot head (default: the model's)
    dataset: str = "world:test:900"
    clean: str = "world:val:600"
    stats_dataset: str = "world:train:1500"   # images for the key statistics C (disjoint from dataset and clean)
    attack_class: str = "car"
    word: str | None = None                   # default: the attack class's name
    fonts: list[str] = field(default_factory=lambda: ["sans", "serif", "hand"])
    size: float = 0.2
    val_fraction: float = 0.3
    exemplar_font: str = "sans"
    paster: str = "typed"                     # "typed" (fonts, random placement), "world_tag" (the world's own tag) or
                                              # "world_clip" (the world CLIP's attack: fonts + "world", a band)
    seed: int = 0
    batch_size: int = 128


def _typed(x01: torch.Tensor, word: str, font: str, size: float, rng: np.random.Generator):
    return paste_text(x01, TextSpec(word, font=font, size=size), rng)


def _world_tag(x01: torch.Tensor, word: str, font: str, size: float, rng: np.random.Generator):
    """The benchmark world's own tag (a paper patch at the top left), as its text classifier saw in training."""
    from modeledit.eval.world.scene import add_text_tag
    from modeledit.images import to_tensor01, to_uint8

    image = to_uint8(x01)
    tagged, patch = add_text_tag(image, word)
    blank = image.copy()
    blank[patch] = tagged[patch].max(axis=0)  # the paper colour, without the ink
    return to_tensor01(tagged), to_tensor01(blank), torch.from_numpy(patch)


def _world_clip(x01: torch.Tensor, word: str, font: str, size: float, rng: np.random.Generator):
    """The world CLIP's own attack (:func:`modeledit.eval.world.clip.attack_images`, what ``modeledit world
    clip-eval`` measures): the word fitted to the image width in a typed font, or (font ``"world"``) the
    world's tag as a band at the top or the bottom; ``size`` is not used. The mask is the paper patch."""
    from modeledit.eval.world.clip import attack_images

    return attack_images(x01, word, font, rng)


#: how the attack text is put on an image: (image01, word, font, size, rng) -> (attacked, blank, patch mask)
PASTERS = {"typed": _typed, "world_tag": _world_tag, "world_clip": _world_clip}
#: the fonts each paster takes (None: it has one look and ignores ``fonts``)
PASTER_FONTS: dict[str, tuple[str, ...] | None] = {
    "typed": tuple(sorted(FONTS)), "world_tag": None, "world_clip": (*sorted(FONTS), "world"),
}


def check_paster(paster: str, fonts: list[str], exemplar_font: str) -> None:
    """KeyError, before any work, for an unknown paster or a font it does not have."""
    from modeledit.registry import close_matches

    if paster not in PASTERS:
        raise KeyError(f"unknown text paster {paster!r}; valid: {sorted(PASTERS)}")
    valid = PASTER_FONTS[paster]
    if not fonts:
        raise ValueError("give at least one attack font (--fonts)")
    for f in [*fonts, exemplar_font]:
        if valid is not None and f not in valid:
            raise KeyError(f"the {paster} paster has no font {f!r}; closest: {close_matches(f, valid) or '-'}; valid: {list(valid)}")


def font_groups(cfg: "TypographicConfig") -> bool:
    """Whether accuracy under attack is also reported per font (a paster with fonts, and more than one of them)."""
    return PASTER_FONTS[cfg.paster] is not None and len(set(cfg.fonts)) > 1


def build_study(cfg: TypographicConfig) -> tuple[OneShotStudy, dict[str, torch.Tensor]]:
    """The attacked sets and the single exemplar, as a :class:`OneShotStudy` (+ example images)."""
    from modeledit.eval.datasets import dataset_key, images_and_labels, load_dataset
    from modeledit.models import load_model
    from modeledit.registry import close_matches

    lm = load_model(cfg.model, weights=cfg.weights, **({"class_names": cfg.class_names} if cfg.class_names else {}))
    names = lm.class_names
    if cfg.attack_class not in names:
        raise KeyError(f"attack class {cfg.attack_class!r} is not a class of {cfg.model}; closest: {close_matches(cfg.attack_class, names)}")
    attack, word = names.index(cfg.attack_class), cfg.word or cfg.attack_class
    data = load_dataset(cfg.dataset, class_names=names, size=lm.input_size)
    clean = load_dataset(cfg.clean, class_names=names, size=lm.input_size)
    stats_ds = load_dataset(cfg.stats_dataset, class_names=names, size=lm.input_size)   # read only if C is not cached
    rng = np.random.default_rng(cfg.seed)
    x, y = images_and_labels(data)
    clean_x, clean_y = images_and_labels(clean)
    others = np.flatnonzero(y != attack)
    rng.shuffle(others)
    ex_i, rest = int(others[0]), others[1:]            # the single exemplar comes from another class
    check_paster(cfg.paster, cfg.fonts, cfg.exemplar_font)
    paste = PASTERS[cfg.paster]
    ex_attacked, ex_blank, ex_mask = paste(x[ex_i], word, cfg.exemplar_font, cfg.size, rng)
    fonts = np.array([cfg.fonts[k % len(cfg.fonts)] for k in range(len(rest))])
    attacked = torch.stack([paste(x[i], word, str(fonts[k]), cfg.size, rng)[0] for k, i in enumerate(rest)])
    yr = y[rest]
    val = np.arange(len(rest)) < int(round(cfg.val_fraction * len(rest)))
    test = ~val
    ex_label = int(y[ex_i])
    not_ex = test & (yr != ex_label)
    attacked_test = attacked[test]   # one tensor for both of its groups: predicted once per evaluation
    groups = {
        "val": (attacked[val], yr[val]),
        "attack_acc": (attacked_test, yr[test]),                        # accuracy under attack
        "orig_acc": (x[rest][test], yr[test]),                          # the same images without text
        "attack_success": (attacked_test, np.full(int(test.sum()), attack)),
        "own_class_acc": (x[y == attack], y[y == attack]),              # the attack class, no text
        "to_exemplar_class": (attacked[not_ex], np.full(int(not_ex.sum()), ex_label)),  # spurious "text -> exemplar class"
    }
    if font_groups(cfg):   # accuracy under attack per font (e.g. fonts held out from a CLIP's training)
        for f in dict.fromkeys(cfg.fonts):
            sel = test & (fonts == f)
            groups[f"attack_acc_{f}"] = (attacked[sel], yr[sel])
    study = OneShotStudy(lm, Exemplar(ex_blank, ex_attacked, ex_mask, ex_label), groups, (clean_x, clean_y),
                         batch_size=cfg.batch_size, stats_images=stats_ds, stats_id=dataset_key(cfg.stats_dataset, stats_ds), grid=cfg)
    return study, {"blank": ex_blank, "attacked": ex_attacked, "examples": attacked[:4]}


def summarize_typographic(table: pd.DataFrame, max_clean_drop: float) -> pd.DataFrame:
    """:func:`summarize_oneshot` plus ``spurious_rule``: the rise in attacked images sent to the exemplar's class."""
    s = summarize_oneshot(table, max_clean_drop)
    s["spurious_rule"] = s["post_to_exemplar_class"] - s["pre_to_exemplar_class"]
    return s


def run_typographic(cfg: TypographicConfig, out_dir: str | Path, executor: str = "local",
                    build: Any = build_study, **executor_kwargs: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every (method, site, setting) cell not yet in ``out_dir``, through ``executor`` (local or ray, with
    ``address``/``workers``); returns (cells table, summary). ``build(cfg) -> (study, images)`` makes the study
    (:func:`build_study`; a caller that needs the study afterwards, like the demo's labelled examples, builds it once
    and passes ``lambda cfg: built``)."""
    from modeledit.eval.datasets import check_stats_disjoint
    from modeledit.eval.validate import check_names

    check_paster(cfg.paster, cfg.fonts, cfg.exemplar_font)
    lm = check_names(values=cfg, model=cfg.model, weights=cfg.weights, sites=cfg.sites, methods=cfg.methods, class_names=cfg.class_names,
                     datasets={"--dataset": cfg.dataset, "--clean": cfg.clean, "--stats-dataset": cfg.stats_dataset})
    if cfg.attack_class not in lm.class_names:
        from modeledit.registry import close_matches

        raise KeyError(f"--attack-class {cfg.attack_class!r} is not a class of {cfg.model}; closest: "
                       f"{close_matches(cfg.attack_class, lm.class_names) or '-'}")
    check_stats_disjoint(cfg.stats_dataset, {"--dataset": cfg.dataset, "--clean": cfg.clean})
    store = ResultStore(out_dir, config=asdict(cfg), harness="typographic", model=lm)
    table, images = run_study(store, cfg, build, executor, **executor_kwargs)
    if images is not None:
        from modeledit.eval.plots import save_examples

        save_examples([images["blank"], images["attacked"], *list(images["examples"])], Path(out_dir) / "examples.png")
    return table, summarize_typographic(table, cfg.max_clean_drop)
