"""Tag words: class names and a neutral vocabulary from the BPE vocabulary.

Part of the world CLIP (:mod:`modeledit.eval.world.clip`)."""
from __future__ import annotations

import functools
import gzip
import hashlib
import math
import re
from pathlib import Path

import numpy as np

from modeledit.eval.world.scene import CLASSES, CONTEXTS, NEUTRAL_WORDS, PARTS
from modeledit.eval.world.clip.config import BPE_VOCAB_FILE, CONTEXT_PHRASES, EXTRA_NEUTRAL_WORDS, OBJECT_TEMPLATES, PRESET, SCENE_TEMPLATES, SIGN_NAME_TEMPLATES, SIGN_ONLY_TEMPLATES, SIGN_SUFFIXES, ZERO_SHOT_TEMPLATES
from modeledit.eval.world.clip.model_io import register_open_clip_config


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
