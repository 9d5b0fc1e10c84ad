"""The oracle segmenter: the benchmark world's true masks, read from an item's record.

It answers for world images only: ``meta`` must be the meta dict a
:class:`~modeledit.eval.world.data.WorldDataset` item carries (its ``masks``), or a record with
``index`` (and optionally ``world``/``texture_overrides``) from which the scene is re-rendered.

Example:
    >>> from modeledit.eval.world.data import WorldDataset
    >>> from modeledit.segmenters import get_segmenter
    >>> x, y, meta = WorldDataset("test", n=10)[0]
    >>> image = (x.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    >>> [i.concept for i in get_segmenter("oracle").segment(image, ["sand", "wheel"], meta=meta)]
    ['sand', 'wheel']
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from modeledit.segmenters.base import Instance


class OracleSegmenter:
    """Returns the world's true mask of each concept present (score 1.0), in ``CONCEPTS`` order."""

    name = "oracle"

    def __init__(self, world_config: Any = None) -> None:
        from modeledit.eval.world.scene import CONCEPTS, World, WorldConfig
        from modeledit.segmenters.vocab import register_concepts

        if world_config is not None and not isinstance(world_config, WorldConfig):
            world_config = WorldConfig.from_json(world_config)
        self.world = World(world_config)
        self.concepts = CONCEPTS
        register_concepts(CONCEPTS, source="world")

    def _masks(self, meta: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
        if not isinstance(meta, Mapping) or ("masks" not in meta and "index" not in meta):
            raise ValueError(
                "the oracle segmenter needs the world record of the image as meta= (the meta of a WorldDataset item); "
                "it cannot segment other images"
            )
        if "masks" in meta:
            return dict(meta["masks"])
        world = self.world
        if "world" in meta:
            from modeledit.eval.world.scene import World, WorldConfig

            world = World(WorldConfig.from_json(meta["world"]))
        if meta.get("texture_overrides"):
            raise ValueError("re-rendering a record with texture overrides needs the textures; pass the item's meta with its masks")
        scene = world.render(int(meta["index"]), label=meta.get("label"), context=meta.get("context"),
                             text_tag=meta.get("text_tag") or False)
        return scene.masks

    def segment(self, image: np.ndarray, concepts: Sequence[str] | None = None, meta: Mapping[str, Any] | None = None) -> list[Instance]:
        """True masks of ``concepts`` (all present concepts when None) for the world image ``meta`` describes."""
        masks = self._masks(meta)
        h, w = np.asarray(image).shape[:2]
        if concepts is not None:
            unknown = [c for c in concepts if c not in self.concepts]
            if unknown:
                raise KeyError(f"the world has no concepts {unknown}; valid: {list(self.concepts)}")
        wanted = self.concepts if concepts is None else tuple(concepts)
        out = []
        for c in wanted:
            m = masks.get(c)
            if m is None or not np.asarray(m).any():
                continue
            m = np.asarray(m, bool)
            if m.shape != (h, w):
                raise ValueError(f"the record's {c!r} mask is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h}; pass the world image itself")
            out.append(Instance(m, c, 1.0))
        return out
