"""Reading and converting images, with one clear error for each kind of bad input."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from modeledit.atomic import atomic_path


def open_image(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """Open and load an image file as it is (any mode); one clear error when it is missing or unreadable."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} {str(p)!r} is a folder, not an image file; pass image files (e.g. {str(p).rstrip('/')}/*.png)")
    if not p.is_file():
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"{what} {str(p)!r} cannot be read ({exc.__class__.__name__}); is the file corrupt?") from None


def read_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB. Grayscale is expanded; RGBA is composited on white."""
    return _to_rgb(open_image(path))


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def to_pil(image: Any) -> Image.Image:
    """PIL image, path, HxW / HxWx{1,3,4} array (uint8 or float in [0, 1]) or CxHxW tensor -> RGB PIL."""
    if isinstance(image, Image.Image):
        return _to_rgb(image)
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"image tensor must be (3, H, W) or (1, H, W), got {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"image array must be HxW or HxWx{{1,3,4}}, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0, 1) * 255).round().astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    mode = "RGBA" if arr.shape[2] == 4 else "RGB"
    return _to_rgb(Image.fromarray(arr, mode))


def to_tensor01(image: Any) -> torch.Tensor:
    """Any accepted image -> float tensor (3, H, W) in [0, 1]."""
    arr = np.asarray(to_pil(image), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def to_uint8(x01: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor in [0, 1] -> HxWx3 uint8 array."""
    return (x01.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def save_image(x: Any, path: str | os.PathLike) -> None:
    """Write an image atomically (temp file then rename), so a crash never leaves a half-written PNG."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pil = to_pil(to_uint8(x) if isinstance(x, torch.Tensor) and x.dtype.is_floating_point else x)
    with atomic_path(p) as tmp:
        pil.save(tmp, format=(p.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))


def resize_crop(t: torch.Tensor, resize: int, crop: int, mask: bool = False) -> torch.Tensor:
    """torchvision's evaluation geometry on a (C, H, W) tensor: the shorter side to ``resize``, then the
    centre ``crop`` x ``crop``. Images use antialiased bilinear resizing; ``mask`` uses area averaging
    (threshold it afterwards), so an image and its mask stay aligned."""
    import torch.nn.functional as F

    h, w = t.shape[-2:]
    s = resize / min(h, w)
    nh, nw = max(crop, round(h * s)), max(crop, round(w * s))
    x = t[None].float()
    x = F.interpolate(x, size=(nh, nw), mode="area") if mask else F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - crop) // 2, (nw - crop) // 2
    return x[0, :, top:top + crop, left:left + crop]


def read_tensor(image: Any, lm: Any = None) -> torch.Tensor:
    """Any accepted image (path, PIL, array, tensor) as a (3, H, W) float tensor in [0, 1]; with a
    :class:`~modeledit.models.LoadedModel`, preprocessed for it (resized and centre-cropped).

    Example:
        >>> x = read_tensor("cat.png", lm)[None]          # (1, 3, 224, 224) for mobilenet_v2
    """
    if lm is not None:
        return lm.preprocess(image)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3 or not image.dtype.is_floating_point:
            raise ValueError(f"an image tensor must be float (3, H, W) in [0, 1], got {tuple(image.shape)} {image.dtype}")
        return image
    return to_tensor01(image)
