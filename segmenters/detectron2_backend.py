"""LVIS instance segmentation with detectron2, as the paper used (model-zoo config names, BGR input).

detectron2 is not on PyPI: install it by hand (``pip install
'git+https://github.com/facebookresearch/detectron2.git'`` where that host is reachable, or a build
matching your torch). Without it, building this backend raises an ImportError that says so.
Instances are kept when their score is at least ``score_threshold`` (the paper's 0.15 for LVIS).

Example:
    >>> seg = get_segmenter("detectron2", config="LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml")
    >>> [i.concept for i in seg.segment(img, concepts=["wheel"])]
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping, Sequence

import numpy as np

from modeledit.segmenters.base import PIXEL_THRESHOLD, Instance, check_image, filter_concepts
from modeledit.segmenters.vocab import canonical_concept

DEFAULT_CONFIG = "LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"
INSTALL_HINT = (
    "detectron2 is not installed and is not on PyPI; install it by hand: "
    "`pip install 'git+https://github.com/facebookresearch/detectron2.git'` "
    "(see https://detectron2.readthedocs.io/en/latest/tutorials/install.html)"
)


def import_detectron2() -> Any:
    """Import detectron2 or raise an ImportError with the manual install instructions."""
    try:
        return importlib.import_module("detectron2")
    except ImportError:
        raise ImportError(INSTALL_HINT) from None


def lvis_name(raw: str) -> str:
    """LVIS category spelling (``car_(automobile)``) to a canonical concept name."""
    return canonical_concept(raw.replace("_", " "), strict=False)


class Detectron2Segmenter:
    """A detectron2 model-zoo instance segmenter (LVIS by default); weights from the zoo or a path."""

    name = "detectron2"

    def __init__(self, config: str = DEFAULT_CONFIG, weights: str | None = None, score_threshold: float = PIXEL_THRESHOLD["lvis"],
                 device: str = "cpu") -> None:
        import_detectron2()
        from detectron2 import model_zoo
        from detectron2.config import get_cfg
        from detectron2.data import MetadataCatalog
        from detectron2.engine import DefaultPredictor

        cfg = get_cfg()
        cfg.merge_from_file(model_zoo.get_config_file(config))
        cfg.MODEL.WEIGHTS = weights or model_zoo.get_checkpoint_url(config)
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(score_threshold)
        cfg.MODEL.DEVICE = device
        self.cfg = cfg
        self.predictor = DefaultPredictor(cfg)
        self.class_names = [lvis_name(n) for n in MetadataCatalog.get(cfg.DATASETS.TEST[0]).thing_classes]

    def segment(self, image: np.ndarray, concepts: Sequence[str] | None = None, meta: Mapping | None = None) -> list[Instance]:
        img = check_image(image)
        inst = self.predictor(img[:, :, ::-1].copy())["instances"].to("cpu")  # detectron2 takes BGR
        masks = inst.pred_masks.numpy()
        found = [Instance(m, self.class_names[c], s) for m, c, s in zip(masks, inst.pred_classes.tolist(), inst.scores.tolist()) if m.any()]
        return filter_concepts(found, concepts)
