"""The benchmark world: procedural scenes with exact concept masks, and the classifiers trained on them.

It exists because ImageNet-scale data and pretrained VGG/ResNet weights cannot be fetched offline: it is
the embedded default of the main job and the place where the paper's claims are measured.

* :mod:`~modeledit.eval.world.scene`: the scene model, its constants (classes, contexts, concepts) and
  :class:`World` (render, render_with, text tags);
* :mod:`~modeledit.eval.world.drawings` and :mod:`~modeledit.eval.world.textures`: object polygons and
  context textures;
* :mod:`~modeledit.eval.world.data`: splits as torch datasets (``world:test:600``);
* :mod:`~modeledit.eval.world.nets`, :mod:`~modeledit.eval.world.train`,
  :mod:`~modeledit.eval.world.models`: the small nets, their training, the shipped checkpoints (``zoo/``);
* :mod:`~modeledit.eval.world.oracle`: the segmenter that returns the true masks;
* :mod:`~modeledit.eval.world.report`: the world's own measurements (context reliance, text tags).

The classifiers (``world_vgg``, ``world_resnet``, ``world_vgg_text``) and the ``oracle`` segmenter plug
into the core's registries through entry points (``pyproject.toml``), so the core never imports this package.

Example:
    >>> from modeledit.eval.world import World, WorldConfig
    >>> World(WorldConfig(seed=0)).render(3).class_name
    'cow'
"""
from modeledit.eval.world.data import WorldDataset
from modeledit.eval.world.scene import CLASSES, CONCEPTS, CONTEXTS, HOMES, World, WorldConfig, add_text_tag

__all__ = ["World", "WorldConfig", "WorldDataset", "CLASSES", "CONCEPTS", "CONTEXTS", "HOMES", "add_text_tag"]
