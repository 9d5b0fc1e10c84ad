"""Instance segmentation with torchvision's Mask R-CNN (COCO's 80 thing categories).

Weights: a torchvision enum name (``"DEFAULT"``, ``"COCO_V1"``, downloaded through torchvision's cache
when the machine is online) or a local checkpoint path (a state dict of ``maskrcnn_resnet50_fpn``).
A pixel belongs to an instance when its mask probability is at least ``mask_threshold`` (the paper's
0.8 for COCO models); instances below ``score_threshold`` are dropped.

Example:
    >>> seg = get_segmenter("torchvision", weights="/ckpt/maskrcnn_resnet50_fpn_coco.pth")
    >>> [i.concept for i in seg.segment(img, concepts=["car"])]
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from modeledit.segmenters.base import PIXEL_THRESHOLD, Instance, check_image, filter_concepts
from modeledit.segmenters.vocab import COCO_TORCHVISION_LABELS, coco_label_name


def build_maskrcnn(weights: Any = "DEFAULT", **model_kwargs: Any) -> torch.nn.Module:
    """``maskrcnn_resnet50_fpn`` with weights from an enum name/member or a local checkpoint path.

    ``model_kwargs`` go to torchvision's builder (e.g. ``min_size=512`` for faster CPU inference)."""
    import torchvision.models.detection as det

    from modeledit.deps import require_network
    from modeledit.models import load_state_dict_file

    if weights is None:
        return det.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=len(COCO_TORCHVISION_LABELS), **model_kwargs)
    if isinstance(weights, (str, os.PathLike)) and (Path(weights).suffix in (".pt", ".pth", ".safetensors") or os.sep in str(weights)):
        model = det.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=len(COCO_TORCHVISION_LABELS), **model_kwargs)
        state = load_state_dict_file(weights)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint {str(weights)!r} is not a maskrcnn_resnet50_fpn state dict ({len(missing)} missing, {len(unexpected)} unexpected keys)")
        return model
    enum = det.MaskRCNN_ResNet50_FPN_Weights
    member = weights if isinstance(weights, enum) else (enum.DEFAULT if str(weights).split(".")[-1] == "DEFAULT" else enum.__members__.get(str(weights).split(".")[-1]))
    if member is None:
        raise KeyError(f"unknown Mask R-CNN weights {weights!r}; valid: {list(enum.__members__)}, 'DEFAULT' or a local checkpoint path")
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name
    if not cache.is_file():
        require_network("download.pytorch.org", f"torchvision weights {member}", f"download {member.url} elsewhere and pass its local path as weights=")
    return det.maskrcnn_resnet50_fpn(weights=member, **model_kwargs)


class TorchvisionSegmenter:
    """Mask R-CNN instances with COCO names; runs on ``device`` (default: CPU)."""

    name = "torchvision"

    @property
    def concepts(self) -> tuple[str, ...]:
        """The COCO object names Mask R-CNN can find (canonical spelling)."""
        from modeledit.segmenters.vocab import COCO_TORCHVISION_LABELS, canonical_concept

        return tuple(dict.fromkeys(canonical_concept(n, strict=False) for n in COCO_TORCHVISION_LABELS if n not in ("__background__", "N/A")))

    def __init__(self, weights: Any = "DEFAULT", score_threshold: float = 0.5, mask_threshold: float = PIXEL_THRESHOLD["coco"],
                 device: str | torch.device | None = None, **model_kwargs: Any) -> None:
        self.model = build_maskrcnn(weights, **model_kwargs).eval()
        if device is not None:
            self.model.to(device)
        self.score_threshold = float(score_threshold)
        self.mask_threshold = float(mask_threshold)

    @torch.no_grad()
    def segment(self, image: np.ndarray, concepts: Sequence[str] | None = None, meta: Mapping | None = None) -> list[Instance]:
        img = check_image(image)
        device = next(self.model.parameters()).device
        x = torch.from_numpy(img).permute(2, 0, 1).float().div(255).to(device)
        out = self.model([x])[0]
        found = []
        for mask, label, score in zip(out["masks"], out["labels"].tolist(), out["scores"].tolist()):
            if score < self.score_threshold or COCO_TORCHVISION_LABELS[label] in ("N/A", "__background__"):
                continue
            m = (mask[0] >= self.mask_threshold).cpu().numpy()
            if m.any():
                found.append(Instance(m, coco_label_name(label), score))
        return filter_concepts(found, concepts)
