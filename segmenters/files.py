"""Masks read from files: PNG masks, or a COCO-format JSON (polygons and RLE, via pycocotools).

PNG layout: ``root/<image stem>/<concept>.png`` (one file per concept; nonzero = inside), or
``root/<image stem>.png`` for a single ``concept`` given at construction. The image is identified by
``meta["path"]`` (or ``meta["name"]``). COCO JSON: the image is found by ``meta["file_name"]``
(or the basename of ``meta["path"]``) or ``meta["image_id"]``.

Example:
    >>> seg = get_segmenter("files", coco_json="instances_val.json")
    >>> seg.segment(img, meta={"file_name": "000000397133.jpg"})
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from modeledit.atomic import finished_files
from modeledit.segmenters.base import Instance, check_image, filter_concepts
from modeledit.segmenters.vocab import canonical_concept


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    """A mask file as HxW bool, by the one mask rule of :func:`modeledit.masks.read_mask` (non-zero = inside)."""
    from modeledit.images import open_image
    from modeledit.masks import mask_array

    return mask_array(open_image(path, what="mask"), f"mask {str(path)!r}")


def write_mask_png(mask: np.ndarray, path: str | os.PathLike) -> None:
    """Write an HxW bool mask as an 8-bit PNG (0/255), atomically."""
    from modeledit.images import save_image

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {m.shape}")
    save_image(np.where(m.astype(bool), 255, 0).astype(np.uint8), path)


def _decode_ann(ann: Mapping[str, Any], h: int, w: int) -> np.ndarray:
    from modeledit.deps import optional_import

    mask_utils = optional_import("pycocotools.mask", "segment")
    seg = ann["segmentation"]
    if isinstance(seg, list):  # polygons
        rles = mask_utils.frPyObjects(seg, h, w)
        rle = mask_utils.merge(rles)
    elif isinstance(seg.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = dict(seg)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode()
    return mask_utils.decode(rle).astype(bool)


class FileSegmenter:
    """Masks from PNG files under ``root`` or from a COCO-format ``coco_json``."""

    name = "files"

    def __init__(self, root: str | os.PathLike | None = None, coco_json: str | os.PathLike | None = None, concept: str | None = None) -> None:
        if (root is None) == (coco_json is None):
            raise ValueError("pass exactly one of root= (a folder of PNG masks) or coco_json= (a COCO-format file)")
        self.root = Path(root) if root is not None else None
        self.concept = canonical_concept(concept, strict=False) if concept else None  # any name: the user's label
        self._coco: dict[str, Any] | None = None
        if self.root is not None and not self.root.is_dir():
            raise FileNotFoundError(f"mask folder {str(self.root)!r} does not exist")
        if coco_json is not None:
            p = Path(coco_json)
            if not p.is_file():
                raise FileNotFoundError(f"COCO annotation file {str(p)!r} does not exist")
            try:
                data = json.loads(p.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(p)!r} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
            cats = {c["id"]: c["name"] for c in data.get("categories", [])}
            anns: dict[int, list] = {}
            for a in data.get("annotations", []):
                anns.setdefault(a["image_id"], []).append(a)
            self._coco = {
                "images": {im["id"]: im for im in data.get("images", [])},
                "by_name": {im["file_name"]: im["id"] for im in data.get("images", [])},
                "cats": cats, "anns": anns,
            }

    @property
    def concepts(self) -> tuple[str, ...]:
        """What these files can give: the mask file names (``root/<image>/<concept>.png``), the ``concept``
        given for single-mask files, or the COCO file's categories."""
        if self._coco is not None:
            return tuple(sorted({canonical_concept(n, strict=False) for n in self._coco["cats"].values()}))
        assert self.root is not None
        names = {canonical_concept(p.stem, strict=False) for p in finished_files(self.root, "*/*.png")}
        if self.concept is not None:
            names.add(self.concept)
        return tuple(sorted(names))

    def _image_key(self, meta: Mapping | None) -> str:
        meta = meta or {}
        for k in ("path", "name", "file_name"):
            if meta.get(k):
                return str(meta[k])
        raise ValueError("the files segmenter needs meta={'path': ...} (or 'file_name'/'image_id') to find an image's masks")

    def segment(self, image: np.ndarray, concepts: Sequence[str] | None = None, meta: Mapping | None = None) -> list[Instance]:
        img = check_image(image)
        h, w = img.shape[:2]
        out = self._from_coco(h, w, meta) if self._coco is not None else self._from_pngs(meta)
        # the caller may have shrunk the image (the generator's max_size): meta["original_size"] is its size on disk,
        # and a mask made for that size is resized with the image
        orig = tuple(int(v) for v in meta["original_size"]) if meta and meta.get("original_size") else (h, w)
        for inst in out:
            if inst.mask.shape == (h, w):
                continue
            if inst.mask.shape == orig:
                import cv2

                inst.mask = cv2.resize(inst.mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
                continue
            shown = f" (processed at {w}x{h})" if orig != (h, w) else ""
            raise ValueError(f"mask for {inst.concept!r} is {inst.mask.shape[1]}x{inst.mask.shape[0]} but the image is "
                             f"{orig[1]}x{orig[0]}{shown}; masks must match their image's size")
        return filter_concepts(out, concepts)

    def _from_pngs(self, meta: Mapping | None) -> list[Instance]:
        assert self.root is not None
        stem = Path(self._image_key(meta)).stem
        folder = self.root / stem
        if folder.is_dir():
            return [Instance(read_mask_png(p), canonical_concept(p.stem, strict=False), 1.0) for p in finished_files(folder, "*.png")]
        single = self.root / f"{stem}.png"
        if single.is_file():
            if self.concept is None:
                raise ValueError(f"{single} holds one unnamed mask; pass concept= to the files segmenter")
            return [Instance(read_mask_png(single), self.concept, 1.0)]
        return []

    def _from_coco(self, h: int, w: int, meta: Mapping | None) -> list[Instance]:
        coco = self._coco
        assert coco is not None
        meta = meta or {}
        if "image_id" in meta:
            image_id = meta["image_id"]
        else:
            key = Path(self._image_key(meta)).name
            if key not in coco["by_name"]:
                return []
            image_id = coco["by_name"][key]
        info = coco["images"].get(image_id)
        if info is None:
            raise KeyError(f"image id {image_id!r} is not in the COCO file")
        ih, iw = int(info.get("height", h)), int(info.get("width", w))
        out = []
        for a in coco["anns"].get(image_id, []):
            out.append(Instance(_decode_ann(a, ih, iw), canonical_concept(coco["cats"][a["category_id"]], strict=False), float(a.get("score", 1.0))))
        return out
