"""Exemplars of an edit and the keys/values they give at a site (the ``compute_k`` / ``compute_v`` step).

An exemplar is a pair (x original, x' transformed) and an optional binary mask m of the concept,
image-sized. The rewrite maps the keys the site sees at x' to the values it produced at x:

* keys k* = the rewritten layer's input at x' (for residual sites the skip branch also sees x');
* values v* = the site's output at x.

Two objective modes: ``"whole"`` (every output position, the paper's better-performing default) and
``"masked"`` (only positions covered by the mask, downsampled to each feature map by area averaging).
The update direction is always computed from the keys the objective uses.

Images are in [0, 1], as everywhere at the library's boundary (a value outside is refused: the usual
sign of an already normalised tensor); :func:`collect` normalises them with the
:class:`~modeledit.models.LoadedModel`'s statistics. :meth:`Exemplars.from_images` builds exemplars from
files, PIL images, arrays or tensors.

Example:
    >>> ex = Exemplars.from_images(lm, [original], [transformed], masks=[mask], size=128)
    >>> tens = collect(lm, site, ex, mode="whole")
    >>> tens.key.shape, tens.value.shape, tens.weight.shape     # (N,Cin,H,W) (N,Cout,H',W') (N,1,H',W')
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from modeledit.layers import EditSite, capture_sites
from modeledit.models import as_loaded

MODES = ("whole", "masked")
# below this correlation of the two pictures' coarse layouts, a transformed exemplar is warned about
SIMILARITY_WARN = 0.1


def picture_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Correlation of two images' coarse layouts (grayscale at 16x16, after removing each one's mean).

    A restyle keeps the layout (0.3-1.0 for Magenta or texture restyles of a region or the whole picture); two
    unrelated photos give about 0 (skimage chelsea vs coffee: -0.20)."""
    def small(t: torch.Tensor) -> torch.Tensor:
        g = t.float().mean(0, keepdim=True)[None]
        return F.adaptive_avg_pool2d(g, (16, 16)).flatten()

    u, v = small(a), small(b)
    u, v = u - u.mean(), v - v.mean()
    den = float(u.norm() * v.norm())
    return float((u @ v) / den) if den > 1e-12 else 1.0


@dataclass
class Exemplars:
    """Pairs (x, x') of shape (N, 3, H, W) in [0, 1] and an optional mask (N, 1, H, W) of the concept."""

    x: torch.Tensor
    x_prime: torch.Tensor
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.x.dim() == 3:
            self.x = self.x.unsqueeze(0)
        if self.x_prime.dim() == 3:
            self.x_prime = self.x_prime.unsqueeze(0)
        if self.x.dim() != 4 or self.x.shape != self.x_prime.shape:
            raise ValueError(
                f"original and transformed exemplars must have the same (N, C, H, W) shape, got "
                f"{tuple(self.x.shape)} and {tuple(self.x_prime.shape)}; resize them to one size"
            )
        from modeledit.images import check_batch01

        self.x = check_batch01(self.x, "original exemplar images")
        self.x_prime = check_batch01(self.x_prime, "transformed exemplar images")
        if self.mask is not None:
            m = (self.mask if isinstance(self.mask, torch.Tensor) else torch.as_tensor(self.mask, device=self.x.device)).float()
            if not bool(torch.isfinite(m).all()):
                raise ValueError("the mask holds NaN or infinite values; give a mask of 0 (background) and 1 (concept)")
            while m.dim() < 4:
                m = m.unsqueeze(0)
            if m.shape[0] == 1 and self.x.shape[0] > 1:
                m = m.expand(self.x.shape[0], -1, -1, -1)
            n, _, h, w = self.x.shape
            if m.shape[1] != 1 or m.shape[0] != n or m.shape[-2:] != (h, w):
                raise ValueError(
                    f"mask of shape {tuple(self.mask.shape)} does not fit exemplars of size {h}x{w} "
                    f"(N={n}); give one image-sized mask (H, W) per pair"
                )
            if float(m.sum()) <= 0:
                raise ValueError("the mask is empty (no pixel is set); mark the concept's pixels, or give no mask at all "
                                 "(the whole-image objective needs none)")
            self.mask = m.clamp(0, 1).contiguous()

    def __len__(self) -> int:
        return self.x.shape[0]

    @classmethod
    def from_images(
        cls, lm: Any, originals: Sequence[Any], transformed: Sequence[Any], masks: Sequence[Any] | None = None,
        size: int | None = None, resize_masks: bool = False,
    ) -> "Exemplars":
        """Exemplars from files, PIL images, arrays or [0, 1] tensors, in the model's geometry.

        Each picture is brought to ``size`` (default the model's input size) the way
        :meth:`~modeledit.models.LoadedModel.preprocess` does (shorter side resized, centre crop), and its
        mask with the same geometry; a picture already ``size`` x ``size`` is kept as it is. Masks:
        HxW arrays, tensors or files (non-zero = concept). Each transformed image must have its
        original's size (it is the same picture, restyled: a visibly different picture is warned about),
        and each mask its image's size unless ``resize_masks`` (then it is resized to the image first).
        """
        import numpy as np

        from modeledit.images import check_batch01, open_image, read_image, resize_crop, to_tensor01
        from modeledit.masks import mask_array

        size = size or lm.input_size
        resize = round(size * lm.resize_size / lm.input_size)

        def name(a: Any, what: str, i: int) -> str:
            return repr(str(a)) if isinstance(a, (str, os.PathLike)) else f"{what} {i}"

        def img(a: Any, what: str, i: int) -> torch.Tensor:
            if isinstance(a, torch.Tensor):     # refused, not clamped: 0-255, normalised, integer or NaN tensors
                return check_batch01(a, f"{what} {i}")[0] if a.dim() == 3 else check_batch01(a, f"{what} {i}")
            return to_tensor01(read_image(a) if isinstance(a, (str, os.PathLike)) else a).float()

        def msk(a: Any) -> torch.Tensor:
            if isinstance(a, (str, os.PathLike)):
                a = mask_array(open_image(a, "mask"), f"mask {str(a)!r}")  # the one mask rule (modeledit.read_mask)
            t = torch.as_tensor(np.array(a, dtype=np.float32))
            t = t.mean(-1) if t.dim() == 3 and t.shape[-1] in (3, 4) else t
            while t.dim() > 2 and t.shape[0] == 1:
                t = t[0]
            return (t > 0).float()

        def fit(t: torch.Tensor, mask: bool = False) -> torch.Tensor:
            if tuple(t.shape[-2:]) == (size, size):
                return t
            out = resize_crop(t, resize, size, mask=mask)
            return (out > 0.5).float() if mask else out

        if len(originals) != len(transformed):
            raise ValueError(f"{len(originals)} originals but {len(transformed)} transformed images; give one transformed image per original")
        if masks is not None and len(masks) != len(originals):
            raise ValueError(f"{len(masks)} masks for {len(originals)} exemplar pairs; give one mask per pair (or none)")
        xs, xps, ms = [], [], []
        for i, (a, b) in enumerate(zip(originals, transformed)):
            x, xp = img(a, "original", i), img(b, "transformed", i)
            (h, w), (h2, w2) = x.shape[-2:], xp.shape[-2:]
            if (h, w) != (h2, w2):
                raise ValueError(f"original {name(a, 'original', i)} is {w}x{h} but transformed {name(b, 'transformed', i)} is {w2}x{h2}; "
                                 "the transformed image must be the original picture restyled, at the same size")
            r = picture_similarity(x, xp)
            if r < SIMILARITY_WARN:
                warnings.warn(f"transformed {name(b, 'transformed', i)} looks like a different picture from original "
                              f"{name(a, 'original', i)} (layout correlation {r:.2f} < {SIMILARITY_WARN}); the edit maps the "
                              "transformed picture's keys to the original's values, so the two should show the same scene", stacklevel=2)
            xs.append(fit(x))
            xps.append(fit(xp))
            if masks is not None:
                m = msk(masks[i])
                if tuple(m.shape) != (h, w):
                    if not resize_masks:
                        raise ValueError(f"mask {name(masks[i], 'mask', i)} is {m.shape[-1]}x{m.shape[0]} but its image "
                                         f"{name(a, 'original', i)} is {w}x{h}; give a mask of the image's size, or ask for it to be "
                                         "resized (resize_masks=True; --resize-masks on the command line)")
                    m = (F.interpolate(m[None, None], size=(h, w), mode="area")[0, 0] > 0.5).float()
                ms.append(fit(m[None], mask=True))
        mask = torch.stack(ms) if masks is not None else None
        return cls(torch.stack(xs).clamp(0, 1), torch.stack(xps).clamp(0, 1), mask)


@dataclass
class ExemplarTensors:
    """Canonical-layout tensors for the rewrite: keys and skip at x', values at x, per-position weights.

    ``weight`` (N, 1, H', W') weights value positions in the objective; ``key_weight`` (N, 1, H, W) selects
    the key positions that define the update direction.
    """

    key: torch.Tensor
    skip: torch.Tensor | None
    value: torch.Tensor
    weight: torch.Tensor
    key_weight: torch.Tensor


def downsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average an image-sized mask (N, 1, H, W) to a feature map's (h, w); token maps (T, 1) with
    T = g*g + 1 (a class token first) take the g x g grid and give the class token weight 0."""
    h, w = size
    if w == 1 and h > 1:
        g = int(round((h - 1) ** 0.5))
        grid = g * g
        if grid == h - 1 or grid == h:
            m = F.adaptive_avg_pool2d(mask, (g, g)).flatten(2).transpose(1, 2).unsqueeze(1)  # (N,1,g*g,1)
            if grid == h - 1:
                m = torch.cat([torch.zeros_like(m[:, :, :1]), m], dim=2)
            return m
        raise ValueError(f"cannot map an image mask onto {h} tokens; use the whole-image mode for this site")
    return F.adaptive_avg_pool2d(mask, (h, w))


def collect(model: Any, site: EditSite, exemplars: Exemplars, mode: str = "whole") -> ExemplarTensors:
    """Keys k* and skip at x', values v* at x, and the objective's position weights for ``mode``.

    ``model`` is a :class:`~modeledit.models.LoadedModel`: the [0, 1] exemplars are normalised with it.
    """
    lm = as_loaded(model, "collecting exemplar keys and values")
    model = lm.model
    if mode not in MODES:
        raise ValueError(f"unknown objective mode {mode!r}; choose from {MODES}")
    if mode == "masked" and exemplars.mask is None:
        raise ValueError("the masked mode needs a mask of the concept; pass one or use the whole-image mode")
    dev = next(model.parameters()).device
    at_x = capture_sites(model, lm.normalize(exemplars.x.to(dev)), [site], stop_after=True)[site.name]
    at_xp = capture_sites(model, lm.normalize(exemplars.x_prime.to(dev)), [site], stop_after=True)[site.name]
    value, key = at_x.value, at_xp.key
    if mode == "whole":
        weight = torch.ones_like(value[:, :1])
        key_weight = torch.ones_like(key[:, :1])
    else:
        mask = exemplars.mask.to(dev)
        weight = downsample_mask(mask, tuple(value.shape[-2:]))
        key_weight = downsample_mask(mask, tuple(key.shape[-2:]))
        if float(weight.sum()) <= 0 or float(key_weight.sum()) <= 0:
            raise ValueError(f"the mask covers no position of site {site.name}'s feature map; enlarge it or use the whole-image mode")
    return ExemplarTensors(key=key, skip=at_xp.skip, value=value, weight=weight, key_weight=key_weight)
