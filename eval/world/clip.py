"""A small CLIP trained on the benchmark world, which should learn to read from its captions.

open_clip's own classes build it (``CLIP`` with a ``ModifiedResNet`` image tower, the RN50 family's
architecture, and the text transformer, with open_clip's BPE tokenizer): the config ``world-RN``
(``eval/world/zoo/open_clip/world-RN.json``) is registered with ``open_clip.add_model_config`` and the
model comes from ``open_clip.create_model("world-RN")``, exactly as open_clip builds its own models.

Training is contrastive, on world scenes paired with captions. In a share of the scenes a paper tag
carries a word, drawn from the class names and from neutral words independently of the object shown.
Two recipes are kept (``ClipTrainConfig.recipe``):

* ``"parrot"`` (the default, :data:`PRESET`; docs/notes/clip_reading.md): captions of tagged scenes
  often *parrot* the tag without a role marker ("car."), as web alt texts parrot the text in a photo;
  20% of untagged scenes get the same bare captions for their own class, so "car." means the object and
  the written word alike; about 200 neutral words taken from the BPE vocabulary, length-matched to the
  class names; meme pairs (one scene, two words) as hard negatives; large letters first, then tag-size
  ones; seven training faces, 30% of tags with per-letter jitter and shear; one 6000-step cosine schedule
  with the logit scale at 10x the learning rate; early-check metrics every 100 steps and go/no-go gates
  at steps 300, 1000 and 2500 (:data:`GATES`).
* ``"v1"`` (:data:`V1_PRESET`): the three-stage recipe of the first shipped checkpoint, whose captions
  mark the word's role ("... with a sign that says 'car'."). Nothing forces a label onto the word in
  either recipe.

Tags are printed in the *training fonts* (:data:`TRAIN_FONTS`); every DejaVu Serif face and the oblique
DejaVu Sans faces (the base of the handwriting imitation, font ``"hand"`` of
``modeledit.counterfactuals.text``) are held out for the attack evaluation (:data:`HELD_OUT_FONT_FILES`).

Status of the shipped model (``results/world/clip/eval.json``; the parrot recipe, 6000 steps): zero-shot
accuracy 0.927 on clean test scenes; a pasted class name sends every correct prediction
(1668 of 1668 in each face) to that class (serif and handwriting faces held out from training included), a blank patch
0.2-0.5%. The first shipped model (``--recipe v1``) did not read (under 1%);
docs/notes/clip_reading.md says why, and what changed.

``modeledit world train clip`` trains the parrot recipe and reproduces the shipped
checkpoint ``eval/world/zoo/clip_world-RN.pt`` (fp16 state dict + the config, seed, data and time that
made it); ``load_model("clip:world-RN")`` loads it offline through the zero-shot path of
:mod:`modeledit.models` (class names x prompt templates through open_clip's tokenizer).

Example:
    >>> from modeledit import load_model
    >>> lm = load_model("clip:world-RN")            # offline, shipped weights
    >>> lm.class_names[:3], lm.input_size
    (['car', 'bus', 'truck'], 64)
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import json
import logging
import math
import os
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from modeledit.config import JsonConfig
from modeledit.eval.world.scene import CLASSES, CONTEXTS, NEUTRAL_WORDS, PARTS, WorldConfig
from modeledit.signals import defer_interrupts

log = logging.getLogger(__name__)

#: the open_clip model name of the world CLIP (its config file is ``<zoo>/open_clip/world-RN.json``)
CLIP_ARCH = "world-RN"
#: the world CLIP's open_clip configs (``<zoo>/open_clip/<arch>.json``): the same towers, the image tower at
#: 64 px (the world's own size) or run on the 64 px scene upsampled to 96 or 128 px (:func:`tower_input`),
#: which gives a letter 1.5x or 2x more cells after the stem (docs/notes/clip_reading.md, the fallback)
CLIP_ARCHS: tuple[str, ...] = ("world-RN", "world-RN-96", "world-RN-128")
#: the shipped checkpoint's file name (in the zoo folder, next to the other world models)
CHECKPOINT_NAME = "clip_world-RN.pt"
#: font name -> font file (matplotlib's ttf folder) of the faces only the CLIP's training uses; "sans",
#: "mono", "serif", "hand" are those of :mod:`modeledit.counterfactuals.text`, "world" the world's own tag font
EXTRA_FONT_FILES: dict[str, str] = {
    "sans_regular": "DejaVuSans.ttf", "mono_regular": "DejaVuSansMono.ttf", "cmss10": "cmss10.ttf", "cmtt10": "cmtt10.ttf",
}
#: fonts the tags are printed in during training (the parrot recipe): the world's tag font, DejaVu Sans
#: and Sans Mono (bold and regular), Computer Modern Sans and Typewriter
TRAIN_FONTS: tuple[str, ...] = ("world", "sans", "mono", "sans_regular", "mono_regular", "cmss10", "cmtt10")
#: the training fonts of the shipped (v1) recipe
V1_TRAIN_FONTS: tuple[str, ...] = ("world", "sans", "mono")
#: the attack fonts held out from training ("hand" is the oblique face with per-letter jitter)
HELD_OUT_FONTS: tuple[str, ...] = ("serif", "hand")
#: font files no training tag may use: every DejaVu Serif face, and the oblique DejaVu Sans faces ("hand")
HELD_OUT_FONT_FILES: tuple[str, ...] = (
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf", "DejaVuSerifDisplay.ttf",
    "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
)
#: words printed on tags besides the class names in the v1 recipe (more than the world's own neutral words)
EXTRA_NEUTRAL_WORDS: tuple[str, ...] = ("stop", "shop", "cafe", "park", "free", "push", "pull", "menu")
#: the open_clip BPE vocabulary file the neutral words are taken from (shipped in the open_clip wheel)
BPE_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"

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
#: how a caption mentions the tag's word after the scene ({w} the word; v1 recipe)
SIGN_SUFFIXES: tuple[str, ...] = (
    " with a sign that says '{w}'", ", and a note that reads '{w}'", " next to a paper tag saying {w}",
    " with the word '{w}' written on paper", " and a label: {w}",
)
#: captions that mention only the word, as web captions that transcribe a sign do
SIGN_ONLY_TEMPLATES: tuple[str, ...] = (
    "a sign that says '{w}'", "the word '{w}' on a piece of paper", "a note that reads {w}", "'{w}' written on a label",
)
#: captions of large signs that name them by their word, as "a stop sign" does (v1 recipe)
SIGN_NAME_TEMPLATES: tuple[str, ...] = ("a '{w}' sign", "a photo of a {w} sign", "a {w} sign", "a close-up photo of a '{w}' sign")
#: parrot captions: the word alone, without a role marker (parrot recipe; complete captions, no "." added)
BARE_FORMS: tuple[str, ...] = ("{w}", "{w}.", "{w}!", "{w} {w}")
#: web "alt | title" joins of the word and a scene caption ({s}, without its full stop; parrot recipe)
BOTH_TEMPLATES: tuple[str, ...] = ("{w} - {s}", "{s} | {w}", "{w}: {s}", "{s} - {w}")
#: prompt templates of the zero-shot classifier (the CLIP_TEMPLATES of modeledit.models)
ZERO_SHOT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.", "a bad photo of a {}.", "a photo of the large {}.", "a photo of the small {}.",
    "a close-up photo of a {}.", "itap of a {}.",
)
RECIPES: tuple[str, ...] = ("parrot", "v1")


#: ``ClipTrainConfig.negatives``: which other captions of a batch are negatives
NEGATIVES = ("all", "distinct_words")


@dataclass
class ClipTrainConfig(JsonConfig):
    """Everything that determines a world CLIP (``modeledit world train clip``); the defaults are the parrot recipe.

    Scenes: ``tag_rate``: share of training scenes that carry a paper tag with a word; ``blank_rate``:
    share that carry a blank paper patch (no word; the caption does not mention it, as unreadable notes
    in web photos); ``class_word_rate``: share of tag words that are class names (the rest are the
    ``n_neutral`` neutral words of :func:`neutral_vocabulary`, drawn with ``vocab_seed``);
    ``object_only_rate``: share of object captions that name the object without its context.

    Parrot-recipe captions of a tagged scene: ``word_only_rate`` mention only the word (``bare_rate`` of
    them as a bare form of :data:`BARE_FORMS`, the rest as sign transcriptions), ``both_rate`` join the
    word and the scene caption (only from step ``both_from * steps`` on; before, their share goes to the
    two others in proportion), the rest name the object only. ``shared_bare_rate``: share of untagged
    scenes (not blank patches) captioned by a bare form of their own class name. ``meme_rate``: share of
    batch slots taken by meme pairs (one scene painted with two different words, equal length half the
    time, each with a word-only caption). ``shared_positives``: identical captions in a batch count as
    positives of each other (bare captions repeat within a batch). ``negatives``: ``"all"`` (every other
    caption of the batch is a negative) or ``"distinct_words"`` (two different captions that mention the
    same tag-vocabulary word, a class name or a neutral word, are neither positives nor negatives of each
    other; see :func:`contrastive_loss`).

    Letter heights (fractions of the image): ``large_height`` for the first ``large_steps`` steps; then
    ``small_share`` of the tags are small, ``tag_height`` or (``fitting_share`` of the small ones) the
    attack's width-fitting size (:func:`fitting_size`), the rest large. ``jitter_rate``: share of tags
    whose letters get a rotation of up to ``jitter_rotate`` degrees and baseline jitter, the word a shear
    of up to ``jitter_shear``. ``pad_mode``: numpy padding of the random shift (edge: reflect mirrors
    glyph fragments at the borders).

    Optimisation: AdamW (``betas``, ``weight_decay``), linear warmup then one cosine to 0 over ``steps``;
    the logit scale in its own parameter group at ``logit_scale_lr_mult`` times the learning rate
    (clamped at 100). ``text_lr_mult``: the text tower's learning rate times this from step
    ``text_slow_from`` on (1: the same as the image tower's), so a shared word meaning formed early is
    kept while the image tower goes on learning (docs/notes/clip_reading.md, fifth trial).

    ``arch``: one of :data:`CLIP_ARCHS`; the 96 and 128 px towers see the 64 px scenes (tags painted at 64
    px) upsampled (:func:`tower_input`), and so does the zero-shot model loaded from their checkpoints.

    v1 only (``recipe="v1"``, the shipped checkpoint): ``mention_rate``, ``sign_only_rate``, ``sign_rate``,
    ``sign_height``, ``sign_name_rate``. ``stop_at`` and ``init`` chain stages: the shipped model is a
    third stage that starts from the weights of a second one (see :data:`V1_PRESET`).
    ``threads``: torch threads; 1 because on the shared 2-core machine (other jobs running) a niced
    run with 1 thread took 7-8 s per step against 18-23 s with 2 (OpenMP barriers stall under contention).
    """

    name: str = "clip_world-RN"
    arch: str = CLIP_ARCH
    recipe: str = "parrot"
    world: WorldConfig = field(default_factory=WorldConfig)
    n_train: int = 40_000
    n_val: int = 540
    n_test: int = 1800
    steps: int = 6000
    batch_size: int = 128
    lr: float = 1.5e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.1
    warmup: int = 200
    logit_scale_lr_mult: float = 10.0
    text_lr_mult: float = 1.0        # the text tower's learning rate x this from step text_slow_from on
    text_slow_from: int = 0
    shift: int = 4
    pad_mode: str = "edge"
    tag_rate: float = 0.6
    blank_rate: float = 0.08
    class_word_rate: float = 0.4
    n_neutral: int = 200
    vocab_seed: int = 0
    # tagged scenes: 80% word-only, 20% word and object, none by the object alone (on the web ~90% of the
    # captions of images with text parrot it, Lin et al. 2023): an object-only caption of a tagged scene
    # trains against the attack (docs/notes/clip_reading.md, trials 4 and 5)
    word_only_rate: float = 0.8
    bare_rate: float = 0.7
    both_rate: float = 0.2
    both_from: float = 0.0
    shared_bare_rate: float = 0.5
    meme_rate: float = 0.25
    shared_positives: bool = True
    negatives: str = "distinct_words"
    object_only_rate: float = 0.35
    tag_height: tuple[float, float] = (0.12, 0.22)
    large_height: tuple[float, float] = (0.25, 0.45)
    large_steps: int = 1000
    small_share: float = 0.6
    fitting_share: float = 0.5
    jitter_rate: float = 0.3
    jitter_rotate: float = 10.0
    jitter_shear: float = 0.3
    fonts: tuple[str, ...] = TRAIN_FONTS
    mention_rate: float = 0.95
    sign_only_rate: float = 0.35
    #: v1: share of tagged scenes whose tag is a large sign (letters ``sign_height`` of the image) captioned by
    #: the sign alone, as web photos of signs are; ``sign_name_rate`` of those captions name it "a '{w}' sign"
    sign_rate: float = 0.0
    sign_height: tuple[float, float] = (0.3, 0.45)
    sign_name_rate: float = 0.5
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
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; valid: {list(RECIPES)}")
        if self.arch not in CLIP_ARCHS:
            raise KeyError(f"unknown world CLIP architecture {self.arch!r}; valid: {list(CLIP_ARCHS)}")
        if self.stop_at is not None and not 1 <= int(self.stop_at) <= self.steps:
            raise ValueError(f"stop_at must be between 1 and steps={self.steps}, got {self.stop_at}")
        self.fonts = tuple(self.fonts)
        for name in ("betas", "tag_height", "large_height", "sign_height"):
            setattr(self, name, tuple(getattr(self, name)))
        for name in ("tag_rate", "blank_rate", "sign_rate", "sign_name_rate", "class_word_rate", "mention_rate", "sign_only_rate",
                     "object_only_rate", "word_only_rate", "bare_rate", "both_rate", "both_from", "shared_bare_rate", "meme_rate",
                     "small_share", "fitting_share", "jitter_rate"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        valid = ("world",) + tuple(sorted(set(TRAIN_FONTS + HELD_OUT_FONTS + V1_TRAIN_FONTS)))
        unknown = [f for f in self.fonts if f not in valid]
        if unknown:
            raise KeyError(f"unknown tag fonts {unknown}; valid: {list(valid)}")
        if self.recipe == "parrot" and set(self.fonts) & set(HELD_OUT_FONTS):
            raise ValueError(f"the fonts {sorted(set(self.fonts) & set(HELD_OUT_FONTS))} are held out for the attack evaluation; "
                             f"train with {list(TRAIN_FONTS)}")
        if self.tag_rate + self.blank_rate > 1.0:
            raise ValueError(f"tag_rate + blank_rate must be at most 1, got {self.tag_rate} + {self.blank_rate}")
        if self.word_only_rate + self.both_rate > 1.0:
            raise ValueError(f"word_only_rate + both_rate must be at most 1, got {self.word_only_rate} + {self.both_rate}")
        if not self.text_lr_mult >= 0 or not 0 <= self.text_slow_from <= self.steps:
            raise ValueError(f"text_lr_mult must be >= 0 and text_slow_from in [0, steps={self.steps}], "
                             f"got {self.text_lr_mult} and {self.text_slow_from}")
        if self.negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {NEGATIVES}, got {self.negatives!r}")
        if self.pad_mode not in ("edge", "reflect", "constant"):
            raise ValueError(f"pad_mode must be 'edge', 'reflect' or 'constant', got {self.pad_mode!r}")
        if self.steps < 1 or self.batch_size < 2 or self.n_train < len(CLASSES):
            raise ValueError("steps must be >= 1, batch_size >= 2 and n_train at least one scene per class")
        if self.n_neutral < 1 or self.logit_scale_lr_mult <= 0:
            raise ValueError(f"n_neutral must be >= 1 and logit_scale_lr_mult > 0, got {self.n_neutral}, {self.logit_scale_lr_mult}")

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> "ClipTrainConfig":
        """The config of a JSON text or mapping; a mapping without ``recipe`` is a v1 record (the shipped
        checkpoint's), whose missing fields take the v1 values of :data:`V1_VALUES`."""
        data = json.loads(text) if isinstance(text, str) else dict(text)
        if "recipe" not in data:
            data = {**V1_VALUES, **data}
        return super().from_json(data)


#: the values of the fields the v1 recipe did not have (what the v1 code did), and its defaults that changed
V1_VALUES: dict[str, Any] = {
    "recipe": "v1", "steps": 1600, "warmup": 100, "betas": (0.9, 0.98), "logit_scale_lr_mult": 1.0, "pad_mode": "reflect",
    "blank_rate": 0.05, "class_word_rate": 0.75, "n_neutral": len(NEUTRAL_WORDS + EXTRA_NEUTRAL_WORDS), "vocab_seed": 0,
    "word_only_rate": 0.0, "bare_rate": 0.0, "both_rate": 0.0, "both_from": 0.0, "shared_bare_rate": 0.0, "meme_rate": 0.0,
    "shared_positives": False, "negatives": "all", "tag_height": (0.16, 0.26), "large_height": (0.3, 0.45), "large_steps": 0, "small_share": 1.0,
    "fitting_share": 0.0, "jitter_rate": 0.0, "jitter_rotate": 0.0, "jitter_shear": 0.0, "fonts": V1_TRAIN_FONTS,
}


def v1_config(**changes: Any) -> ClipTrainConfig:
    """A config of the shipped (v1) recipe: :data:`V1_VALUES` with ``changes``."""
    return ClipTrainConfig(**{**V1_VALUES, **changes})


#: the first shipped model (``modeledit world train clip --recipe v1``), three stages, each starting from the
#: previous one's weights: (1) 492 steps of a 1600-step cosine schedule that learn objects and contexts with
#: a moderate reading signal; (2) 290 steps of a 600-step schedule with a stronger one (more tagged scenes,
#: more captions that transcribe only the sign, larger tags, blank paper patches); (3) 550 steps in which
#: 30% of the tags are large signs captioned by the sign alone. Stages 1 and 2 were stopped where they were
#: because the model had not begun to read (see the README); the stop points are part of the recipe.
_STAGE1 = v1_config(steps=1600, stop_at=492, warmup=100, lr=1.5e-3, tag_rate=0.5, blank_rate=0.0, mention_rate=0.9,
                    sign_only_rate=0.2, tag_height=(0.14, 0.22), seed=0)
_STAGE2 = v1_config(steps=600, stop_at=290, warmup=50, lr=1e-3, seed=1, init=_STAGE1)
V1_PRESET = v1_config(steps=550, warmup=30, lr=1e-3, seed=2, sign_rate=0.3, init=_STAGE2)
#: the revised recipe of docs/notes/clip_reading.md: one stage, one 6000-step schedule (the defaults)
PRESET = ClipTrainConfig()
#: ``--recipe`` of ``modeledit world train clip`` -> preset
PRESETS: dict[str, ClipTrainConfig] = {"parrot": PRESET, "v1": V1_PRESET}

#: go/no-go gates of the parrot recipe (docs/notes/clip_reading.md): step -> {metric: lower bound}
GATES: dict[int, dict[str, float]] = {
    300: {"bind_gap": 0.2, "paper_read": 0.15},
    1000: {"read4": 0.35, "paper_read": 0.4, "sign_serif_flip_to_word": 0.2},
    2500: {"serif_flip_to_word": 0.25, "val_accuracy": 0.8},
}


# ------------------------------------------------------------------------------------------------
# tag words: class names and a neutral vocabulary from the BPE vocabulary


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def is_class_twin(word: str, class_name: str) -> bool:
    """True when ``word`` is the class name, one edit away from it ("cat" for "car"), or a short
    extension or stem of it ("cars", "buses", "birdie")."""
    if word == class_name or (abs(len(word) - len(class_name)) <= 1 and _levenshtein(word, class_name) <= 1):
        return True
    return (word.startswith(class_name) or class_name.startswith(word)) and abs(len(word) - len(class_name)) <= 2


def _caption_words() -> frozenset[str]:
    """Words of the caption templates, zero-shot prompts, contexts and parts: a tag word is none of them."""
    import re

    texts = (SCENE_TEMPLATES + OBJECT_TEMPLATES + SIGN_SUFFIXES + SIGN_ONLY_TEMPLATES + SIGN_NAME_TEMPLATES + ZERO_SHOT_TEMPLATES
             + tuple(p for pair in CONTEXT_PHRASES.values() for p in pair) + CONTEXTS + PARTS + ("sign", "word", "text", "label"))
    return frozenset(w for t in texts for w in re.findall(r"[a-z]+", t.lower()))


@functools.lru_cache(maxsize=1)
def bpe_words() -> tuple[str, ...]:
    """Whole words of open_clip's BPE vocabulary, lowest merge rank (most frequent) first.

    A word is an alphabetic lower-case ``</w>`` entry of 3-10 letters (so it is one token on its own) that
    never ends a longer merge: suffix pieces such as "ing</w>" or "ght</w>" are dropped that way.
    """
    open_clip = register_open_clip_config()
    path = Path(open_clip.__file__).parent / BPE_VOCAB_FILE
    if not path.is_file():
        raise FileNotFoundError(f"open_clip's BPE vocabulary {path} is missing; reinstall open_clip (pip install 'modeledit[clip]')")
    lines = gzip.open(str(path)).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]  # as open_clip's SimpleTokenizer reads them
    ends_longer = {b for _, b in merges}  # tokens that end a longer merge ("k" + "ing</w>")
    out: list[str] = []
    seen: set[str] = set()
    for a, b in merges:
        t = a + b
        if not t.endswith("</w>") or t in ends_longer:
            continue
        w = t[:-4]
        if w.isascii() and w.isalpha() and w.islower() and 3 <= len(w) <= 10 and w not in seen:
            seen.add(w)
            out.append(w)
    return tuple(out)


def _length_quota(n: int) -> dict[int, int]:
    """``n`` words split over the lengths of the class names in proportion (largest remainder)."""
    counts: dict[int, int] = {}
    for c in CLASSES:
        counts[len(c)] = counts.get(len(c), 0) + 1
    exact = {k: n * v / len(CLASSES) for k, v in counts.items()}
    quota = {k: int(math.floor(v)) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - quota[k]), k))[: n - sum(quota.values())]:
        quota[k] += 1
    return quota


@functools.lru_cache(maxsize=8)
def neutral_vocabulary(n: int = 200, seed: int = 0) -> tuple[str, ...]:
    """``n`` neutral tag words: common single-token words of the BPE vocabulary, length-matched to the class names.

    Class names, their twins (:func:`is_class_twin`) and words of the captions and prompts are excluded;
    for each length the words are drawn (``seed``) from the ``3 * quota`` most frequent candidates of that
    length, so the list is fixed by (n, seed) and the vocabulary file.

    Example:
        >>> words = neutral_vocabulary()
        >>> len(words), "car" in words
        (200, False)
    """
    banned = set(CLASSES) | _caption_words()
    cands = [w for w in bpe_words() if w not in banned and not any(is_class_twin(w, c) for c in CLASSES)]
    rng = np.random.default_rng([int(seed), 15])
    chosen: list[str] = []
    for length, q in sorted(_length_quota(int(n)).items()):
        pool = [w for w in cands if len(w) == length][: 3 * q]
        if len(pool) < q:
            raise ValueError(f"only {len(pool)} candidate words of {length} letters for a quota of {q}; ask for fewer neutral words")
        chosen += sorted(pool[int(k)] for k in rng.choice(len(pool), size=q, replace=False))
    return tuple(chosen)


def tag_words(cfg: "ClipTrainConfig | None" = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(class-name words, neutral words) printed on the training tags of ``cfg`` (default: :data:`PRESET`)."""
    cfg = cfg or PRESET
    if cfg.recipe == "v1":
        return tuple(CLASSES), tuple(NEUTRAL_WORDS) + EXTRA_NEUTRAL_WORDS
    return tuple(CLASSES), neutral_vocabulary(cfg.n_neutral, cfg.vocab_seed)


def vocabulary_record(cfg: "ClipTrainConfig") -> dict[str, Any]:
    """The tag words of ``cfg`` as the checkpoint record keeps them."""
    class_words, neutral = tag_words(cfg)
    source = ("v1: the world's neutral words and EXTRA_NEUTRAL_WORDS" if cfg.recipe == "v1" else
              f"open_clip {BPE_VOCAB_FILE}: whole-word merges of 3-10 letters, class names, twins and caption words "
              f"excluded, length-matched to the class names, drawn with vocab_seed={cfg.vocab_seed}")
    return {"class_words": list(class_words), "neutral_words": list(neutral), "class_word_rate": cfg.class_word_rate,
            "source": source, "sha1": hashlib.sha1(" ".join(neutral).encode()).hexdigest()}


# ------------------------------------------------------------------------------------------------
# open_clip registration and the zoo files


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


# ------------------------------------------------------------------------------------------------
# tags and captions


def font_file(font: str) -> Path | None:
    """The font file of a tag font name (None for "world", PIL's default face, the world's own tag font)."""
    if font == "world":
        return None
    if font in EXTRA_FONT_FILES:
        import matplotlib

        return Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / EXTRA_FONT_FILES[font]
    from modeledit.counterfactuals.text import font_path

    return font_path(font)


@functools.lru_cache(maxsize=1024)
def _font(font: str, px: int) -> Any:
    from PIL import ImageFont

    if font == "world":  # the font the world prints its own tags in
        return ImageFont.load_default(size=px)
    return ImageFont.truetype(str(font_file(font)), px)


class TagPainter:
    """Prints a word on a paper patch onto uint8 image tensors (3, H, W), in the training fonts.

    Glyph masks are rendered once per (word, font, size) and kept by the painter; jittered glyphs
    (per-letter rotation and baseline jitter, a shear of the word) are drawn anew each time.
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

    def jittered_glyph(self, word: str, font: str, px: int, rng: np.random.Generator, rotate: float = 10.0,
                       shear: float = 0.3) -> np.ndarray:
        """As :meth:`glyph`, each letter turned by up to ``rotate`` degrees about its centre and moved up or
        down by up to px/8, then the word sheared by up to ``shear`` (x moves by shear * y)."""
        from PIL import Image, ImageDraw

        f = _font(font, px)
        m = max(2, px // 2)
        width, height = int(math.ceil(f.getlength(word))) + 2 * m, 2 * px + 2 * m
        ink = np.zeros((height, width), np.float32)
        x = float(m)
        for ch in word:
            layer = Image.new("L", (width, height), 0)
            ImageDraw.Draw(layer).text((x, m), ch, font=f, fill=255)
            l, t, r, b = f.getbbox(ch)
            dy = int(rng.integers(-(px // 8), px // 8 + 1))
            layer = layer.rotate(float(rng.uniform(-rotate, rotate)), resample=Image.BILINEAR,
                                 center=(x + (l + r) / 2, m + (t + b) / 2), translate=(0, dy))
            ink = np.maximum(ink, np.asarray(layer, np.float32))
            x += f.getlength(ch)
        s = float(rng.uniform(-shear, shear))
        extra = int(math.ceil(abs(s) * height / 2)) + 1
        im = Image.fromarray(ink.astype(np.uint8)).transform(
            (width + 2 * extra, height), Image.AFFINE, (1, s, -extra - s * height / 2, 0, 1, 0), resample=Image.BILINEAR)
        return np.asarray(im.crop(im.getbbox() or (0, 0, 1, 1)), np.float32) / 255.0

    def paint(self, image: torch.Tensor, word: str, rng: np.random.Generator, ink: bool = True,
              height: tuple[float, float] | None = None, font: str | None = None,
              jitter: tuple[float, float] | None = None) -> torch.Tensor:
        """A copy of ``image`` (uint8 (3, H, W)) with ``word`` on a paper patch at a random place
        (``ink=False``: the patch the word would take, left blank; ``height``: letter heights instead of the
        painter's; ``font``: this font instead of a random one of the painter's; ``jitter``: (rotate, shear)
        of :meth:`jittered_glyph`)."""
        if font is None:
            font = self.fonts[int(rng.integers(0, len(self.fonts)))]
        px = int(round(rng.uniform(*(height or self.height)) * self.size))
        pad = max(1, int(rng.integers(1, 4)))
        g = self.glyph(word, font, px)
        while g.shape[1] + 2 * pad > self.size and px > 6:
            px -= 1
            g = self.glyph(word, font, px)
        if jitter is not None:  # shear and tilt widen the word: shrink it again until it fits
            g = self.jittered_glyph(word, font, px, rng, *jitter)
            while g.shape[1] + 2 * pad > self.size and px > 6:
                px -= 1
                g = self.jittered_glyph(word, font, px, rng, *jitter)
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


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(0, len(options)))]


def _scene_caption(class_name: str, context: str, cfg: "ClipTrainConfig", rng: np.random.Generator) -> str:
    """A caption naming the object (and its context), without a full stop."""
    on, the = CONTEXT_PHRASES[context]
    if rng.random() < cfg.object_only_rate:
        return _pick(OBJECT_TEMPLATES, rng).format(c=class_name)
    return _pick(SCENE_TEMPLATES, rng).format(c=class_name, on=on, the=the)


def parrot_caption(class_name: str, context: str, word: str | None, cfg: "ClipTrainConfig", rng: np.random.Generator,
                   step: int, blank: bool = False, word_only: bool = False) -> tuple[str, str]:
    """(caption, kind) of a scene in the parrot recipe (docs/notes/clip_reading.md).

    Kinds: tagged scenes ``"bare"`` (the word alone, :data:`BARE_FORMS`), ``"sign"`` (a sign transcription
    naming only the word), ``"both"`` (word and scene joined as a web alt text and title, from step
    ``both_from * steps`` on), ``"object"`` (the object only); untagged scenes ``"shared_bare"`` (a bare
    form of their own class name) or ``"object"``; blank patches ``"object"``. ``word_only``: a word-only
    caption (meme pairs).

    Example:
        >>> parrot_caption("cow", "grass", "car", ClipTrainConfig(), np.random.default_rng(2), step=0)
        ('car.', 'bare')
    """
    if word is None:
        if not blank and rng.random() < cfg.shared_bare_rate:
            return _pick(BARE_FORMS, rng).format(w=class_name), "shared_bare"
        return _scene_caption(class_name, context, cfg, rng) + ".", "object"
    both = cfg.both_rate if step >= cfg.both_from * cfg.steps else 0.0
    p_word = cfg.word_only_rate if both else cfg.word_only_rate / max(1e-9, 1.0 - cfg.both_rate)
    u = 0.0 if word_only else rng.random()
    if u < p_word:
        if rng.random() < cfg.bare_rate:
            return _pick(BARE_FORMS, rng).format(w=word), "bare"
        return _pick(SIGN_ONLY_TEMPLATES, rng).format(w=word) + ".", "sign"
    scene = _scene_caption(class_name, context, cfg, rng)
    if u < p_word + both:
        return _pick(BOTH_TEMPLATES, rng).format(w=word, s=scene), "both"
    return scene + ".", "object"


def caption(class_name: str, context: str, word: str | None, cfg: ClipTrainConfig, rng: np.random.Generator,
            sign: bool = False, step: int | None = None) -> str:
    """One training caption for a scene (``word``: the tag's word, or None for an untagged scene).

    The parrot recipe's come from :func:`parrot_caption` (``step`` defaults to the end of the schedule);
    the v1 recipe's mark the word's role ("... with a sign that says 'car'.").

    Example:
        >>> caption("cow", "grass", "car", v1_config(), np.random.default_rng(0))
        "the word 'car' on a piece of paper."
    """
    if cfg.recipe != "v1":
        return parrot_caption(class_name, context, word, cfg, rng, cfg.steps if step is None else step)[0]
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


# ------------------------------------------------------------------------------------------------
# monitor: val accuracy, the serif attack and the early checks of docs/notes/clip_reading.md

#: scenes of the early-check probes (the first val scenes)
PROBE_N = 216
#: the 4-letter words of the read4 probe: class names and the v1 neutral words (length cannot help among them)
READ4_WORDS: tuple[str, ...] = tuple(sorted({w for w in CLASSES + NEUTRAL_WORDS + EXTRA_NEUTRAL_WORDS if len(w) == 4}))
PAPER = (245, 243, 232)


def fitting_size(word: str, font: str, image_size: int, largest: float = 0.2, margin: float = 0.9) -> float:
    """The largest letter height (fraction of the image, at most ``largest``) at which ``word`` fits across the image."""
    return _fitting_size(word, font, int(image_size), float(largest), float(margin))


@functools.lru_cache(maxsize=8192)
def _fitting_size(word: str, font: str, image_size: int, largest: float, margin: float) -> float:
    px = int(round(largest * image_size))
    while px > 6:
        f = _font(font, px)
        l, _, r, _ = f.getbbox(word)
        width = (r - l) * (1.15 if font == "hand" else 1.0) + 0.08 * image_size
        if width <= margin * image_size:
            break
        px -= 1
    return max(0.03, px / image_size)


def _monitor_set(cfg: ClipTrainConfig) -> dict[str, torch.Tensor]:
    """Val scenes; the same scenes with another class's name pasted in the held-out serif font (at the
    attack's size); and the probes of the early checks on the first :data:`PROBE_N` val scenes: class
    names on plain paper (sans and serif), 4-letter words in sans at tag and sign size, and another
    class's name in serif at sign size."""
    from modeledit.counterfactuals.text import TextSpec, paste_text

    val = render_scenes("val", cfg.n_val, cfg.world, progress=False)
    rng = np.random.default_rng([cfg.seed, 2])
    size = int(val["x"].shape[-1])
    to_u8 = lambda t: (t * 255).round().to(torch.uint8)  # noqa: E731
    attacked, blank, target = [], [], []
    for i in range(len(val["y"])):
        y = int(val["y"][i])
        t = [c for c in range(len(CLASSES)) if c != y][int(rng.integers(0, len(CLASSES) - 1))]
        x01 = val["x"][i].float() / 255.0
        a, b, _ = paste_text(x01, TextSpec(CLASSES[t], font="serif", size=fitting_size(CLASSES[t], "serif", size)), rng=rng)
        attacked.append(to_u8(a))
        blank.append(to_u8(b))
        target.append(t)
    prng = np.random.default_rng([cfg.seed, 12])
    n_probe = min(PROBE_N, len(val["y"]))
    paper, paper_y, read4, read4_y, read4_sign, sign, sign_target = [], [], [], [], [], [], []
    plain = torch.tensor(PAPER, dtype=torch.float32).view(3, 1, 1).expand(3, size, size) / 255.0
    for i in range(n_probe):
        c = i % len(CLASSES)
        font = ("sans", "serif")[(i // len(CLASSES)) % 2]
        paper.append(to_u8(paste_text(plain.clone(), TextSpec(CLASSES[c], font=font, size=fitting_size(CLASSES[c], font, size, 0.3)),
                                      rng=prng)[0]))
        paper_y.append(c)
        w, big = READ4_WORDS[i % len(READ4_WORDS)], (i // len(READ4_WORDS)) % 2 == 1
        x01 = val["x"][i].float() / 255.0
        read4.append(to_u8(paste_text(x01, TextSpec(w, font="sans", size=fitting_size(w, "sans", size, 0.45 if big else 0.2)),
                                      rng=prng)[0]))
        read4_y.append(i % len(READ4_WORDS))
        read4_sign.append(big)
        t = int(target[i])
        sign.append(to_u8(paste_text(x01, TextSpec(CLASSES[t], font="serif", size=fitting_size(CLASSES[t], "serif", size, 0.45)),
                                     rng=prng)[0]))
        sign_target.append(t)
    return {"x": val["x"], "y": val["y"], "attacked": torch.stack(attacked), "blank": torch.stack(blank), "target": torch.tensor(target),
            "paper": torch.stack(paper), "paper_y": torch.tensor(paper_y), "read4": torch.stack(read4), "read4_y": torch.tensor(read4_y),
            "read4_sign": torch.tensor(read4_sign), "sign": torch.stack(sign), "sign_target": torch.tensor(sign_target)}


def _monitor(model: nn.Module, mon: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Val accuracy, serif flips at the attack's size and blank changes (all val scenes); the early checks:
    ``paper_read`` (a class name on plain paper classified zero-shot as that class), ``read4`` (retrieval of
    pasted 4-letter words against "{w}." captions; ``read4_tag``/``read4_sign`` by size), ``bind_gap`` (mean
    diagonal minus off-diagonal cosine between "{c}." and the class prompts), ``sign_serif_flip_to_word``
    (a class name in serif at sign size flips correct predictions to it)."""
    head = zero_shot_head(model)
    p = zero_shot_predict(model, head, mon["x"])
    correct = p == mon["y"]
    pa = zero_shot_predict(model, head, mon["attacked"])
    pb = zero_shot_predict(model, head, mon["blank"])
    n = max(1, int(correct.sum()))
    row = {
        "val_accuracy": round(float(correct.float().mean()), 4),
        "serif_flip_to_word": round(float(((pa == mon["target"]) & correct).sum()) / n, 4),
        "blank_changed": round(float(((pb != p) & correct).sum()) / n, 4),
    }
    if "paper" not in mon:
        return row
    n_probe = len(mon["sign"])
    row["paper_read"] = round(float((zero_shot_predict(model, head, mon["paper"]) == mon["paper_y"]).float().mean()), 4)
    hit = (_image_features(model, mon["read4"]) @ _text_features(model, [f"{w}." for w in READ4_WORDS]).t()).argmax(1) == mon["read4_y"]
    big = mon["read4_sign"]
    row["read4"] = round(float(hit.float().mean()), 4)
    row["read4_tag"] = round(float(hit[~big].float().mean()), 4) if bool((~big).any()) else float("nan")
    row["read4_sign"] = round(float(hit[big].float().mean()), 4) if bool(big.any()) else float("nan")
    cos = _text_features(model, [f"{c}." for c in CLASSES]) @ head.t()
    off = ~torch.eye(len(CLASSES), dtype=torch.bool)
    row["bind_gap"] = round(float(cos.diagonal().mean() - cos[off].mean()), 4)
    ok = correct[:n_probe]
    ps = zero_shot_predict(model, head, mon["sign"])
    row["sign_serif_flip_to_word"] = round(float(((ps == mon["sign_target"]) & ok).sum()) / max(1, int(ok.sum())), 4)
    return row


# ------------------------------------------------------------------------------------------------
# go/no-go gates

#: after this step, read4 still about chance-level reading with bind_gap healthy means the image side is the limit
FALLBACK_CHECK_STEP = 1500


class GateFailed(RuntimeError):
    """A go/no-go gate failed and the run was asked to stop there (``--stop-on-gate``)."""


def gate_advice(row: Mapping[str, Any]) -> list[str]:
    """What the early-check values of a monitor row mean when a gate fails (docs/notes/clip_reading.md)."""
    g = lambda k: float(row.get(k, float("nan")))  # noqa: E731
    advice = []
    roles = ("text roles are separating again (trials 1-4 of docs/notes/clip_reading.md): keep object-only captions of tagged scenes "
             "rare (1 - word_only_rate - both_rate about 0.1), captions that share a word out of each other's negatives "
             "(negatives='distinct_words'), and raise shared_bare_rate")
    if g("bind_gap") <= 0.2:
        advice.append(f"bind_gap {g('bind_gap'):.3f} <= 0.2: the text tower keeps bare words apart from the class prompts; {roles}")
    if g("read4") > 0.35 and (g("paper_read") <= 0.4 or g("bind_gap") <= 0.2):
        advice.append(f"read4 {g('read4'):.3f} rises but paper_read {g('paper_read'):.3f} / bind_gap {g('bind_gap'):.3f} lag: {roles}")
    if row["step"] >= 1000 and g("read4") <= 0.35 and g("bind_gap") > 0.2:
        advice.append(f"read4 {g('read4'):.3f} with bind_gap healthy ({g('bind_gap'):.3f}): letters are not read; if read4 is still "
                      f"flat at about 0.2 after step {FALLBACK_CHECK_STEP}, the image side is the limit: switch to the 128 px "
                      "or 96 px tower (--set arch=world-RN-128 or world-RN-96: the 64 px scene upsampled inside the model, in training and evaluation)")
    if row["step"] < 1000 and g("paper_read") <= 0.15 and g("bind_gap") > 0.2:
        advice.append(f"paper_read {g('paper_read'):.3f} <= 0.15 with bind_gap healthy: reading has not reached the class prompts yet; "
                      "it should move first: watch read4 at the next monitors")
    if row["step"] >= 2500 and g("val_accuracy") <= 0.8:
        advice.append(f"val_accuracy {g('val_accuracy'):.3f} < 0.8: parrot captions are crowding out objects (the trade-off Lin et al. "
                      "report): move part of word_only_rate to both_rate (word and object), not to object-only captions")
    if row["step"] >= 2500 and g("serif_flip_to_word") <= 0.25:
        advice.append(f"tag-size serif flips {g('serif_flip_to_word'):.3f} <= 0.25: the attack at the attack's text size is not "
                      f"reproduced (large-sign flips {g('sign_serif_flip_to_word'):.3f}, read4_tag {g('read4_tag'):.3f})")
    if row["step"] >= 1000 and g("sign_serif_flip_to_word") <= 0.2:
        advice.append(f"large-sign serif flips {g('sign_serif_flip_to_word'):.3f} <= 0.2: reading does not move the image toward the "
                      "class prompts even for large letters; with read4 high it is binding (see bind_gap, paper_read), with read4 low reading")
    return advice or ["no recipe change is prescribed for this combination; read the history rows"]


def check_gates(row: Mapping[str, Any], history: Sequence[Mapping[str, Any]], gates: Mapping[int, Mapping[str, float]] = GATES
                ) -> list[dict[str, Any]]:
    """Gates not yet evaluated in ``history`` whose step this monitor ``row`` has reached, evaluated on it
    (a metric passes when it is above its bound), plus the step-:data:`FALLBACK_CHECK_STEP` advisory."""
    done = {(int(g["step"]), bool(g.get("advisory"))) for r in history for g in r.get("gates", [])}
    out = []
    for step, bounds in sorted(gates.items()):
        if (step, False) in done or row["step"] < step:
            continue
        values = {k: row.get(k) for k in bounds}
        failed = sorted(k for k, b in bounds.items() if values[k] is None or not float(values[k]) > b)
        out.append({"step": step, "at_step": int(row["step"]), "passed": not failed, "failed": failed, "bounds": dict(bounds),
                    "values": values, "advice": gate_advice(row) if failed else []})
    if (FALLBACK_CHECK_STEP, True) not in done and row["step"] >= FALLBACK_CHECK_STEP and "read4" in row:
        flat = float(row["read4"]) < 0.25 and float(row["bind_gap"]) > 0.2
        out.append({"step": FALLBACK_CHECK_STEP, "at_step": int(row["step"]), "advisory": True, "passed": not flat,
                    "failed": ["read4"] if flat else [], "bounds": {"read4": 0.25}, "values": {"read4": row["read4"], "bind_gap": row["bind_gap"]},
                    "advice": ["read4 flat at about 0.2 with bind_gap healthy: the image side is the limit; switch to the 128 px fallback "
                               "(--set arch=world-RN-128)"] if flat else []})
    return out


# ------------------------------------------------------------------------------------------------
# training


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


# ------------------------------------------------------------------------------------------------
# evaluation: zero-shot accuracy and the typographic attack

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
