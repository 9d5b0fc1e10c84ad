"""Explanations before and after an edit: where the model looks, computed with captum.

Three attribution maps per image, each reduced to one (H, W) array at the image's size:

* ``gradcam``: Grad-CAM (captum ``LayerGradCam``) at the edit site's output module, ReLU'd and
  upsampled bilinearly to the input size (the site is where the edit acts, so this shows what the
  edited layer passes on);
* ``input_gradient``: |∂ logit / ∂x| summed over colour channels (captum ``Saliency``);
* ``integrated_gradients``: |integrated gradients| summed over channels (captum
  ``IntegratedGradients``; the baseline is the image of the model's mean colour, the zero of its
  normalised input space).

Like everywhere in the library, the model is a :class:`~modeledit.models.LoadedModel` and images are
[0, 1] tensors (N, 3, H, W); gradients are taken with respect to those pixels.

:func:`before_after` computes them for a model without and with an :class:`~modeledit.edit.Edit`
applied (for the same class, by default the unedited model's prediction, so the maps compare), and
:func:`explanation_figure` draws image | before | after per method as a PNG (with :func:`compare_edits`:
one column per edit), each method's maps of an image on one colour scale so a region that stops
lighting up looks darker. :func:`mask_share` gives the share of a
map's mass inside a concept mask (e.g. how much of the explanation sits on the text patch).

captum is an optional dependency: ``pip install 'modeledit[explain]'``.

Example:
    >>> from modeledit.eval.explain import before_after, explanation_figure
    >>> maps = before_after(lm, edit, x01)        # {"before": {...}, "after": {...}}
    >>> explanation_figure(x01, maps, "explain.png")
    >>> compare_edits(lm, {"edit": e1, "rrr_global": e2}, x01)   # one column per method
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from modeledit.config import JsonConfig
from modeledit.layers import EditSite, get_site, resolve_module
from modeledit.models import LoadedModel, as_loaded


def _captum_attr() -> Any:
    from modeledit.deps import optional_import

    return optional_import("captum.attr", "explain")


def _forward(lm: LoadedModel) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x01: lm.model(lm.normalize(x01))


def _gradcam(lm: LoadedModel, x: torch.Tensor, target: torch.Tensor, site: EditSite | None, cfg: "ExplainConfig") -> torch.Tensor:
    if site is None:
        raise ValueError("Grad-CAM needs an edit site (the layer whose output it explains); pass site= or an edit")
    ca = _captum_attr()
    gc = ca.LayerGradCam(_forward(lm), resolve_module(lm.model, site.output))
    a = gc.attribute(x, target=target, relu_attributions=True)
    if a.dim() == 3:  # token layouts (N, T, C) are not spatial maps
        raise ValueError(f"Grad-CAM needs a spatial (N, C, H, W) output at site {site.name}; use the gradient maps for token models")
    return F.interpolate(a.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def _input_gradient(lm: LoadedModel, x: torch.Tensor, target: torch.Tensor, site: EditSite | None, cfg: "ExplainConfig") -> torch.Tensor:
    return _captum_attr().Saliency(_forward(lm)).attribute(x, target=target, abs=True).float().sum(1)


def _integrated_gradients(lm: LoadedModel, x: torch.Tensor, target: torch.Tensor, site: EditSite | None, cfg: "ExplainConfig") -> torch.Tensor:
    ig = _captum_attr().IntegratedGradients(_forward(lm))
    mean = torch.tensor(lm.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1).expand_as(x).contiguous()
    a = ig.attribute(x, baselines=mean, target=target, n_steps=cfg.ig_steps, internal_batch_size=cfg.batch_size)
    return a.abs().float().sum(1)


#: name -> fn(lm, x01, target, site, config) -> (N, H, W) tensor. Register more by adding entries.
EXPLAINERS: dict[str, Callable[..., torch.Tensor]] = {
    "gradcam": _gradcam,
    "input_gradient": _input_gradient,
    "integrated_gradients": _integrated_gradients,
}


@dataclass
class ExplainConfig(JsonConfig):
    """Which maps (names from :data:`EXPLAINERS`), integrated-gradients steps and its internal batch size."""

    methods: list[str] = field(default_factory=lambda: ["gradcam", "input_gradient", "integrated_gradients"])
    ig_steps: int = 32
    batch_size: int = 64

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in EXPLAINERS]
        if unknown:
            raise KeyError(f"unknown explanation methods {unknown}; valid: {sorted(EXPLAINERS)}")
        if self.ig_steps < 1:
            raise ValueError(f"ig_steps must be at least 1, got {self.ig_steps}")


def _target_tensor(lm: LoadedModel, x: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    if target is None:
        with torch.no_grad():
            return lm.model(lm.normalize(x)).argmax(-1)
    t = torch.as_tensor(target, device=x.device).long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(len(x))
    if t.numel() != len(x):
        raise ValueError(f"{t.numel()} targets for {len(x)} images; give one class index or one per image")
    return t


def attribution_maps(
    model: Any,
    x: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    site: EditSite | int | str | None = None,
    config: ExplainConfig | None = None,
) -> dict[str, np.ndarray]:
    """Attribution maps of ``model`` (a :class:`~modeledit.models.LoadedModel`) for [0, 1] images ``x``
    (N, 3, H, W), towards ``target`` (class index, one per image, or None = the model's prediction):
    ``{method: (N, H, W)}``.

    The model runs in eval mode (its mode is restored); captum's hooks are removed when it returns.

    Example:
        >>> maps = attribution_maps(lm, x01, target=281, site=13)
        >>> maps["gradcam"].shape                                    # (N, H, W)
    """
    cfg = config or ExplainConfig()
    lm = as_loaded(model, "attribution_maps")
    x = x.to(lm.device)
    if x.dim() == 3:
        x = x[None]
    site_ = None if site is None else get_site(lm.model, site)
    was_training = lm.model.training
    lm.model.eval()
    try:
        t = _target_tensor(lm, x, target)
        out = {}
        for name in cfg.methods:
            with torch.enable_grad():
                m = EXPLAINERS[name](lm, x.detach().requires_grad_(True), t, site_, cfg)
            out[name] = m.detach().cpu().numpy().astype(np.float32)
    finally:
        lm.model.train(was_training)
    return out


def before_after(
    model: Any,
    edit: Any,
    x: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    site: EditSite | int | str | None = None,
    config: ExplainConfig | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """``{"before": maps, "after": maps}`` for ``model`` (a LoadedModel) without and with ``edit`` applied
    (reverted after), for [0, 1] images ``x``.

    Both use the same class per image (default: the unedited model's prediction) and the same site
    (default: the edit's first site).

    Example:
        >>> maps = before_after(lm, edit, x01, target=0)
        >>> maps["after"]["gradcam"].shape
    """
    out = compare_edits(model, {"after": edit}, x, target, site, config)
    return {"before": out["before"], "after": out["after"]}


def compare_edits(
    model: Any,
    edits: Mapping[str, Any],
    x: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    site: EditSite | int | str | None = None,
    config: ExplainConfig | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """``{"before": maps, name: maps, ...}``: the unedited model and each edit of ``edits`` applied in turn
    (and reverted), for the same class per image (default: the unedited prediction) and one Grad-CAM site
    (default: the first edit's first site), so every column compares with "before".

    Example:
        >>> maps = compare_edits(lm, {"edit": e1, "finetune_global": e2}, x01)
        >>> explanation_figure(x01, maps, "methods.png")
    """
    lm = as_loaded(model, "compare_edits")
    x = x.to(lm.device) if x.dim() == 4 else x[None].to(lm.device)
    if "before" in edits:
        raise ValueError("'before' names the unedited model; give the edits other names")
    if site is None:
        site = next((e.sites[0] for e in edits.values() if getattr(e, "sites", None)), None)
    was_training = lm.model.training
    lm.model.eval()
    try:
        t = _target_tensor(lm, x, target)
    finally:
        lm.model.train(was_training)
    out = {"before": attribution_maps(lm, x, t, site, config)}
    for name, edit in edits.items():
        with edit.applied(lm):
            out[name] = attribution_maps(lm, x, t, site, config)
    return out


def mask_share(maps: Mapping[str, np.ndarray], mask: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """Per method and image, the share of the map's (non-negative) mass inside ``mask`` ((N, H, W) or (H, W))."""
    m = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask, dtype=np.float32)
    out = {}
    for name, a in maps.items():
        a = np.clip(a, 0, None)
        mm = np.broadcast_to(m.reshape((-1,) + a.shape[-2:]) if m.ndim > 2 else m, a.shape)
        tot = a.sum(axis=(-2, -1))
        out[name] = np.where(tot > 0, (a * mm).sum(axis=(-2, -1)) / np.where(tot > 0, tot, 1), 0.0)
    return out


def _as_hwc(img: Any) -> np.ndarray:
    a = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255
    return np.clip(a, 0, 1)


def explanation_figure(
    images: torch.Tensor | Sequence[Any],
    maps: Mapping[str, Mapping[str, np.ndarray]],
    path: str | os.PathLike,
    row_titles: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
) -> Path:
    """Write a PNG: one row per image with the image, then before | after for each method.

    ``images`` are [0, 1] (N, 3, H, W) tensors or HxWx3 arrays; ``maps`` as :func:`before_after` returns
    or :func:`compare_edits` return (each key is one column per method). Each row's maps of one method share
    one colour scale, so a region that stops lighting up after an edit looks darker.

    Example:
        >>> explanation_figure(x01, before_after(lm, edit, x01), "explain.png", ["exemplar", "test 1"])
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    stages = list(maps)
    if not stages:
        raise ValueError("no maps to draw; pass the dict before_after returns")
    methods = list(methods or maps[stages[0]])
    imgs = [_as_hwc(im) for im in images]
    n = len(imgs)
    for s in stages:
        for m in methods:
            if m not in maps[s]:
                raise KeyError(f"no {m!r} map for {s!r}; available: {sorted(maps[s])}")
            if len(maps[s][m]) != n:
                raise ValueError(f"{len(maps[s][m])} {m} maps for {n} images; give the images the maps were computed on")
    cols = 1 + len(methods) * len(stages)
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 1.9 * n + 0.4), squeeze=False)
    for i, im in enumerate(imgs):
        axes[i, 0].imshow(im)
        axes[i, 0].set_title(row_titles[i] if row_titles else "image", fontsize=8)
        for j, m in enumerate(methods):
            vmax = max(float(np.clip(maps[s][m][i], 0, None).max()) for s in stages) or 1.0
            for k, s in enumerate(stages):
                ax = axes[i, 1 + j * len(stages) + k]
                ax.imshow(im.mean(-1), cmap="gray", vmin=0, vmax=1)
                ax.imshow(np.clip(maps[s][m][i], 0, None), cmap="inferno", alpha=0.7, vmin=0, vmax=vmax)
                ax.set_title(f"{m.replace('_', ' ')}\n{s}", fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out
