"""The first recipe (the three-stage one of the first shipped checkpoint), kept to reproduce it.

Part of the world CLIP (:mod:`modeledit.eval.world.clip`)."""
from __future__ import annotations

from modeledit.eval.world.clip.config import ClipTrainConfig, V1_VALUES


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
