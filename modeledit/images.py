"""Reading and converting images, with one clear error for each kind of bad input.

Every image the library reads goes through :func:`open_image` (a file, as it is, turned upright by its
EXIF orientation) and :func:`to_pil` / :func:`read_image` (8-bit RGB), so all commands see one picture.
Each PIL mode is read by its real range:

* ``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: converted to RGB;
* ``LA``, ``PA``, ``RGBA`` (and premultiplied ``La``/``RGBa``), or a ``transparency`` entry: composited on white
  (an image transparent at every pixel, blank on white, is refused);
* ``I;16`` (any byte order): 16-bit, divided by 65535;
* ``I``: the range its file declares: PGM/PPM (Pillow scales them to 16 bits) and PNG by 65535, an
  unsigned TIFF of ``b`` <= 16 bits by 2^b - 1; 32-bit or signed integers have no agreed range and are
  refused, as is an ``I`` image in memory (give 8/16-bit or float data);
* ``F``: floats taken as they are; they must lie in [0, 1] (NaN or values outside, beyond rounding of
  1e-3, are refused).

16-bit RGB(A) PNG and TIFF files are read by Pillow as 8-bit RGB(A) (the high byte of each value), which
is their 8-bit equivalent. Arrays follow the same rule by dtype: ``uint8`` as it is, ``uint16`` divided by
65535, ``bool`` as 0/255, other integers must lie in [0, 255], floats in [0, 1] (a resampling overshoot of
less than 0.5 is clipped; anything further is another range, such as 0-255 or a normalised tensor, and is
refused).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from modeledit.atomic import atomic_path

#: bumped whenever reading a file gives other pixels (2: 16-bit, 32-bit and float modes by their real range,
#: EXIF orientation), so caches keyed by image folders (statistics) are not reused across the change
READER_VERSION = 2
#: ``Image.info`` keys :func:`open_image` sets: the file's format (lost when the EXIF orientation is applied)
#: and the full-scale value of an ``I`` (32-bit integer) image, from its file's header
FORMAT_KEY = "modeledit.format"
RANGE_KEY = "modeledit.range"

GREY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
PLAIN_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
#: float arrays and tensors this far outside [0, 1] are another range (0-255, normalised), not a
#: resampling overshoot (which is clipped); float image files (mode F) must lie in [0, 1] up to rounding
FLOAT_SLACK = 0.5
FILE_FLOAT_SLACK = 1e-3


def _declared_range(im: Image.Image) -> float | None:
    """The full-scale value of an ``I`` image as its file states it, or None where no header says."""
    if im.format in ("PPM", "PNG"):  # Pillow scales PGM/PPM maxval > 255 to 16 bits; PNG has 16-bit grey at most
        return 65535.0
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        bits, fmt = tags.get(258, (None,)), tags.get(339, (1,))
        bits = bits[0] if isinstance(bits, tuple) else bits
        fmt = fmt[0] if isinstance(fmt, tuple) else fmt
        if isinstance(bits, int) and 1 <= bits <= 16 and fmt == 1:
            return float(2 ** bits - 1)
    return None


def open_image(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """Open and load an image file as it is (any mode), turned upright by its EXIF orientation; one clear
    error when it is missing or unreadable. ``info`` records the file's format and, for 32-bit integer
    (``I``) images, the range its header declares (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} {str(p)!r} is a folder, not an image file; pass image files (e.g. {str(p).rstrip('/')}/*.png)")
    if not p.is_file():
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist")
    try:
        with Image.open(p) as im:
            im.load()
            fmt, full = im.format, _declared_range(im) if im.mode == "I" else None
            out = ImageOps.exif_transpose(im)
            out = out.copy() if out is im else out
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{what} {str(p)!r} cannot be read ({exc.__class__.__name__}); is the file corrupt, or in a format Pillow "
                         "does not read (save it as PNG)?") from None
    out.info[FORMAT_KEY] = fmt
    out.info["modeledit.source"] = str(p)
    if full is not None:
        out.info[RANGE_KEY] = full
    return out


def read_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as 8-bit RGB by its mode's real range (module docstring); alpha is composited on white.

    Example:
        >>> read_image("gray16.png").mode       # a 16-bit greyscale PNG, divided by 65535
        'RGB'
    """
    return _to_rgb(open_image(path))


def _name(im: Image.Image) -> str:
    src = im.info.get("modeledit.source")
    return f"image {src!r}" if src else "the image"


def _grey01(im: Image.Image) -> np.ndarray:
    """A 16-bit, 32-bit integer or float single-channel image as floats in [0, 1], by its real range."""
    arr = np.asarray(im)
    if im.mode in GREY16_MODES:
        return arr.astype(np.float64) / 65535.0
    if im.mode == "I":
        full = im.info.get(RANGE_KEY)
        if full is None:
            raise ValueError(f"{_name(im)} holds 32-bit or signed integers (PIL mode 'I'), which have no agreed range; save it as an "
                             "8- or 16-bit PNG, or as a float TIFF in [0, 1]")
        arr = arr.astype(np.float64)
        if arr.size and (arr.min() < 0 or arr.max() > full):
            raise ValueError(f"{_name(im)} has values in [{arr.min():g}, {arr.max():g}], outside the range [0, {full:g}] its file "
                             "declares; save it as an 8- or 16-bit PNG")
        return arr / full
    return float01(arr.astype(np.float64), _name(im), FILE_FLOAT_SLACK)


def float01(arr: np.ndarray, name: str, slack: float = FLOAT_SLACK) -> np.ndarray:
    """Floats that must lie in [0, 1]: a slight overshoot is clipped, NaN/Inf or another range refused."""
    if arr.size == 0:
        return arr
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values; give finite values in [0, 1]")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -slack or hi > 1.0 + slack:
        raise ValueError(f"{name} holds floats in [{lo:g}, {hi:g}], but float images must lie in [0, 1]; divide 8-bit values "
                         "by 255 (or pass uint8), and undo any normalisation")
    return np.clip(arr, 0.0, 1.0)


def _check_visible(im: Image.Image, visible: bool) -> None:
    """Refuse a picture whose alpha is 0 everywhere: composited on white it would be a blank white image, read
    as if it were the picture."""
    if not visible:
        raise ValueError(f"{_name(im)} is fully transparent (alpha 0 at every pixel): on white it is a blank picture; "
                         "save it with its alpha, or without transparency")


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode in GREY16_MODES or mode in ("I", "F"):
        grey = (_grey01(im) * 255.0).round().astype(np.uint8)
        clear = im.info.get("transparency")
        if isinstance(clear, int) and mode != "F":   # a PNG tRNS grey value: transparent, so it shows white
            hidden = np.asarray(im) == clear
            _check_visible(im, hidden.size == 0 or not hidden.all())
            grey[hidden] = 255
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ALPHA_MODES or (mode in PLAIN_MODES and "transparency" in im.info):
        rgba = im.convert("LA").convert("RGBA") if mode == "La" else im.convert("RGBA")
        _check_visible(im, rgba.getextrema()[3][1] > 0)
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if mode == "RGB":
        return im
    if mode in PLAIN_MODES:
        return im.convert("RGB")
    raise ValueError(f"{_name(im)} has PIL mode {mode!r}, which modeledit does not read; save it as an 8-bit RGB PNG")


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    """An HxWx{1,3,4} array -> PIL by its dtype's range (module docstring)."""
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 65535.0 * 255.0).round().astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"an integer image array ({arr.dtype}) holds values in [{arr.min()}, {arr.max()}], outside 0-255; pass "
                             "uint16 for 16-bit data or floats in [0, 1]")
        arr = arr.astype(np.uint8)
    elif arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"an image array must hold numbers, got dtype {arr.dtype}")
        arr = (float01(arr.astype(np.float64), "the image array") * 255).round().astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(arr), "RGBA" if arr.shape[2] == 4 else "RGB")


def to_pil(image: Any) -> Image.Image:
    """PIL image (any mode), path, HxW / HxWx{1,3,4} array or CxHxW tensor -> 8-bit RGB PIL, by the
    input's real range (module docstring: uint8, uint16, floats in [0, 1])."""
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
    return _to_rgb(_array_to_pil(arr))


#: how far a [0, 1] tensor given to the API may overshoot (float rounding of a resize); anything further is refused
TENSOR_SLACK = 1e-4


def check_batch01(x: Any, what: str, allow_empty: bool = False) -> torch.Tensor:
    """A batch of images at the API, checked once: (N, 3, H, W) (or one (3, H, W)) finite floats in [0, 1], returned as
    float32 on its own device (float64 / half are cast; integer or bool tensors, NaN, infinities and another range
    such as 0-255 or a normalised tensor are refused in one sentence naming ``what``)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"the {what} must be a tensor of images (N, 3, H, W) in [0, 1], got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"the {what} must be images (N, 3, H, W) in [0, 1], got shape {tuple(x.shape)}")
    if x.shape[0] == 0 and not allow_empty:
        raise ValueError(f"no {what} given (an empty batch); give at least one image")
    if not x.is_floating_point():
        raise ValueError(f"the {what} are {str(x.dtype).replace('torch.', '')} tensors; give float images in [0, 1] "
                         "(e.g. x.float() / 255 for 8-bit values)")
    if x.dtype != torch.float32:
        x = x.float()
    if x.numel() and x.device.type != "meta":          # meta tensors (shape checks) hold no values
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"the {what} hold NaN or infinite values; give finite images in [0, 1]")
        lo, hi = float(x.min()), float(x.max())
        if lo < -TENSOR_SLACK or hi > 1 + TENSOR_SLACK:
            raise ValueError(f"the {what} hold values in [{lo:.2f}, {hi:.2f}]; give images in [0, 1] "
                             "(not 0-255, not normalised: the model's normalisation is applied inside)")
    return x


def check_labels(y: Any, n: int, num_classes: int, what: str) -> np.ndarray:
    """Labels for ``n`` images of ``what``: whole numbers in [0, num_classes), one per image; returned as int64."""
    arr = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"the {what} labels must be one class index per image ({n}), got shape {arr.shape}")
    if arr.size and (not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise ValueError(f"the {what} labels must be whole class indices; got {arr[:5].tolist()}...")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= num_classes)]
    if bad.size:
        raise ValueError(f"the {what} labels hold {int(bad[0])}, not a class index of this model (0..{num_classes - 1})")
    return arr


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
    fmt = Image.registered_extensions().get(p.suffix.lower(), None) if p.suffix else "PNG"
    if fmt is None:
        raise ValueError(f"cannot save an image as {str(p)!r}: {p.suffix!r} is not an image format; use .png (or .jpg, .tif, .webp)")
    if isinstance(x, torch.Tensor) and x.dtype.is_floating_point:   # refused, not clamped: 0-255, normalised, NaN
        if x.dim() != 3:
            raise ValueError(f"the image to save as {p.name!r} must be one (C, H, W) tensor in [0, 1], got shape {tuple(x.shape)}; "
                             "save a batch's images one by one")
        float01(x.detach().float().cpu().numpy(), f"the image to save as {p.name!r}", TENSOR_SLACK)   # as tensors at the API
        x = to_uint8(x)
    pil = to_pil(x)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        pil.save(tmp, format=fmt)


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
