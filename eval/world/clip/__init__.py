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

The package, one module per concern: ``config`` (the recipe, its presets' fields, the gates), ``v1`` (the first
recipe), ``model_io`` (open_clip registration, checkpoints, the tokenizer), ``vocabulary`` (tag words), ``captions``
(tag painting, captions), ``data`` (rendered scenes, batches, the loss), ``monitor`` (probes and go/no-go gates),
``training`` (training a recipe, loading the shipped model: the ``clip:world-RN`` entry point) and ``evaluation``
(zero-shot accuracy and the typographic attack). Every name is re-exported here.
"""
from __future__ import annotations

from modeledit.eval.world.clip.config import (BARE_FORMS, BOTH_TEMPLATES, BPE_VOCAB_FILE, CHECKPOINT_NAME, CLIP_ARCH,
                                              CLIP_ARCHS, CONTEXT_PHRASES, ClipTrainConfig, EXTRA_FONT_FILES,
                                              EXTRA_NEUTRAL_WORDS, GATES, HELD_OUT_FONTS, HELD_OUT_FONT_FILES,
                                              NEGATIVES, OBJECT_TEMPLATES, PRESET, RECIPES, SCENE_TEMPLATES,
                                              SIGN_NAME_TEMPLATES, SIGN_ONLY_TEMPLATES, SIGN_SUFFIXES, TRAIN_FONTS,
                                              V1_TRAIN_FONTS, V1_VALUES, ZERO_SHOT_TEMPLATES)
from modeledit.eval.world.clip.v1 import (V1_PRESET, _STAGE1, _STAGE2, v1_config)  # noqa: F401
from modeledit.eval.world.clip.model_io import (checkpoint_path, config_path, create_clip, load_clip_checkpoint,
                                                register_open_clip_config, save_clip_checkpoint, tokenizer,
                                                tower_input, tower_size, zoo_dir)
from modeledit.eval.world.clip.vocabulary import (_caption_words, _length_quota, _levenshtein, bpe_words,
                                                  is_class_twin, neutral_vocabulary, tag_words, vocabulary_record)  # noqa: F401
from modeledit.eval.world.clip.captions import (TagPainter, _fitting_size, _font, _pick, _scene_caption, caption,
                                                fitting_size, font_file, parrot_caption)  # noqa: F401
from modeledit.eval.world.clip.data import (_image_features, _lr_at, _make_batch_v1, _param_groups, _shift,
                                            _text_features, caption_words, contrastive_loss, make_batch,
                                            make_optimizer, normalize, render_scenes, set_lr, zero_shot_head,
                                            zero_shot_predict)  # noqa: F401
from modeledit.eval.world.clip.monitor import (FALLBACK_CHECK_STEP, GateFailed, PAPER, PROBE_N, READ4_WORDS,
                                               _monitor, _monitor_set, check_gates, gate_advice)  # noqa: F401
from modeledit.eval.world.clip.training import (ClipRecipeRun, PRESETS, _n_stages, _train_stage, load_clip_world,
                                                train_clip, train_clip_recipe)  # noqa: F401
from modeledit.eval.world.clip.evaluation import (ATTACK_FONTS, attack_images, evaluate_clip)

__all__ = ["ATTACK_FONTS", "BARE_FORMS", "BOTH_TEMPLATES", "BPE_VOCAB_FILE", "CHECKPOINT_NAME", "CLIP_ARCH",
           "CLIP_ARCHS", "CONTEXT_PHRASES", "ClipRecipeRun", "ClipTrainConfig", "EXTRA_FONT_FILES",
           "EXTRA_NEUTRAL_WORDS", "FALLBACK_CHECK_STEP", "GATES", "GateFailed", "HELD_OUT_FONTS",
           "HELD_OUT_FONT_FILES", "NEGATIVES", "OBJECT_TEMPLATES", "PAPER", "PRESET", "PRESETS", "PROBE_N",
           "READ4_WORDS", "RECIPES", "SCENE_TEMPLATES", "SIGN_NAME_TEMPLATES", "SIGN_ONLY_TEMPLATES",
           "SIGN_SUFFIXES", "TRAIN_FONTS", "TagPainter", "V1_PRESET", "V1_TRAIN_FONTS", "V1_VALUES",
           "ZERO_SHOT_TEMPLATES", "attack_images", "bpe_words", "caption", "caption_words", "check_gates",
           "checkpoint_path", "config_path", "contrastive_loss", "create_clip", "evaluate_clip", "fitting_size",
           "font_file", "gate_advice", "is_class_twin", "load_clip_checkpoint", "load_clip_world", "make_batch",
           "make_optimizer", "neutral_vocabulary", "normalize", "parrot_caption", "register_open_clip_config",
           "render_scenes", "save_clip_checkpoint", "set_lr", "tag_words", "tokenizer", "tower_input", "tower_size",
           "train_clip", "train_clip_recipe", "v1_config", "vocabulary_record", "zero_shot_head",
           "zero_shot_predict", "zoo_dir"]
