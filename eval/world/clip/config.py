"""The world CLIP's training recipe: :class:`ClipTrainConfig`, the parrot preset and the go/no-go gates.

Part of the world CLIP (:mod:`modeledit.eval.world.clip`)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping

from modeledit.config import JsonConfig
from modeledit.eval.world.scene import CLASSES, NEUTRAL_WORDS, WorldConfig


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


#: the revised recipe of docs/notes/clip_reading.md: one stage, one 6000-step schedule (the defaults)
PRESET = ClipTrainConfig()


#: go/no-go gates of the parrot recipe (docs/notes/clip_reading.md): step -> {metric: lower bound}
GATES: dict[int, dict[str, float]] = {
    300: {"bind_gap": 0.2, "paper_read": 0.15},
    1000: {"read4": 0.35, "paper_read": 0.4, "sign_serif_flip_to_word": 0.2},
    2500: {"serif_flip_to_word": 0.25, "val_accuracy": 0.8},
}
