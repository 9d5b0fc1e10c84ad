"""Tags and captions: the tag painter, the letter size that fits, the caption recipes.

Part of the world CLIP (:mod:`modeledit.eval.world.clip`)."""
from __future__ import annotations

import functools
import math
from pathlib import Path
import torch

import numpy as np

from modeledit.eval.world.clip.config import BARE_FORMS, BOTH_TEMPLATES, CONTEXT_PHRASES, EXTRA_FONT_FILES, OBJECT_TEMPLATES, SCENE_TEMPLATES, SIGN_NAME_TEMPLATES, SIGN_ONLY_TEMPLATES, SIGN_SUFFIXES, TRAIN_FONTS


def font_file(font: str) -> Path | None:
    """The font file of a tag font name (None for "world", PIL's default face, the world's own tag font)."""
    if font == "world":
        return None
    if font in EXTRA_FONT_FILES:
        import matplotlib

        return Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / EXTRA_FONT_FILES[font]
    from modeledit.counterfactuals.text import font_path

    return font_path(font)


@functools.lru_cache(maxsize=1024)
def _font(font: str, px: int) -> Any:
    from PIL import ImageFont

    if font == "world":  # the font the world prints its own tags in
        return ImageFont.load_default(size=px)
    return ImageFont.truetype(str(font_file(font)), px)


class TagPainter:
    """Prints a word on a paper patch onto uint8 image tensors (3, H, W), in the training fonts.

    Glyph masks are rendered once per (word, font, size) and kept by the painter; jittered glyphs
    (per-letter rotation and baseline jitter, a shear of the word) are drawn anew each time.
    """

    def __init__(self, image_size: int, fonts: Sequence[str] = TRAIN_FONTS, height: tuple[float, float] = (0.14, 0.22)) -> None:
        self.size = int(image_size)
        self.fonts = tuple(fonts)
        self.height = height
        self._glyphs: dict[tuple[str, str, int], np.ndarray] = {}

    def glyph(self, word: str, font: str, px: int) -> np.ndarray:
        """The word's ink coverage in [0, 1], (h, w), cropped to its bounding box."""
        key = (word, font, px)
        if key not in self._glyphs:
            from PIL import Image, ImageDraw

            f = _font(font, px)
            l, t, r, b = f.getbbox(word)
            im = Image.new("L", (r - l + 2, b - t + 2), 0)
            ImageDraw.Draw(im).text((1 - l, 1 - t), word, font=f, fill=255)
            self._glyphs[key] = np.asarray(im, np.float32) / 255.0
        return self._glyphs[key]

    def jittered_glyph(self, word: str, font: str, px: int, rng: np.random.Generator, rotate: float = 10.0,
                       shear: float = 0.3) -> np.ndarray:
        """As :meth:`glyph`, each letter turned by up to ``rotate`` degrees about its centre and moved up or
        down by up to px/8, then the word sheared by up to ``shear`` (x moves by shear * y)."""
        from PIL import Image, ImageDraw

        f = _font(font, px)
        m = max(2, px // 2)
        width, height = int(math.ceil(f.getlength(word))) + 2 * m, 2 * px + 2 * m
        ink = np.zeros((height, width), np.float32)
        x = float(m)
        for ch in word:
            layer = Image.new("L", (width, height), 0)
            ImageDraw.Draw(layer).text((x, m), ch, font=f, fill=255)
            l, t, r, b = f.getbbox(ch)
            dy = int(rng.integers(-(px // 8), px // 8 + 1))
            layer = layer.rotate(float(rng.uniform(-rotate, rotate)), resample=Image.BILINEAR,
                                 center=(x + (l + r) / 2, m + (t + b) / 2), translate=(0, dy))
            ink = np.maximum(ink, np.asarray(layer, np.float32))
            x += f.getlength(ch)
        s = float(rng.uniform(-shear, shear))
        extra = int(math.ceil(abs(s) * height / 2)) + 1
        im = Image.fromarray(ink.astype(np.uint8)).transform(
            (width + 2 * extra, height), Image.AFFINE, (1, s, -extra - s * height / 2, 0, 1, 0), resample=Image.BILINEAR)
        return np.asarray(im.crop(im.getbbox() or (0, 0, 1, 1)), np.float32) / 255.0

    def paint(self, image: torch.Tensor, word: str, rng: np.random.Generator, ink: bool = True,
              height: tuple[float, float] | None = None, font: str | None = None,
              jitter: tuple[float, float] | None = None) -> torch.Tensor:
        """A copy of ``image`` (uint8 (3, H, W)) with ``word`` on a paper patch at a random place
        (``ink=False``: the patch the word would take, left blank; ``height``: letter heights instead of the
        painter's; ``font``: this font instead of a random one of the painter's; ``jitter``: (rotate, shear)
        of :meth:`jittered_glyph`)."""
        if font is None:
            font = self.fonts[int(rng.integers(0, len(self.fonts)))]
        px = int(round(rng.uniform(*(height or self.height)) * self.size))
        pad = max(1, int(rng.integers(1, 4)))
        g = self.glyph(word, font, px)
        while g.shape[1] + 2 * pad > self.size and px > 6:
            px -= 1
            g = self.glyph(word, font, px)
        if jitter is not None:  # shear and tilt widen the word: shrink it again until it fits
            g = self.jittered_glyph(word, font, px, rng, *jitter)
            while g.shape[1] + 2 * pad > self.size and px > 6:
                px -= 1
                g = self.jittered_glyph(word, font, px, rng, *jitter)
        g = g[: self.size - 2 * pad, : self.size - 2 * pad]
        ph, pw = g.shape[0] + 2 * pad, g.shape[1] + 2 * pad
        y0, x0 = int(rng.integers(0, self.size - ph + 1)), int(rng.integers(0, self.size - pw + 1))
        paper = rng.uniform(215, 252) * np.array([1.0, 1.0, rng.uniform(0.9, 1.0)])
        ink_rgb = rng.uniform(0, 60, size=3)
        out = image.numpy().astype(np.float32)  # numpy: tiny torch ops pay thread start-up costs per call
        out[:, y0:y0 + ph, x0:x0 + pw] = paper.reshape(3, 1, 1)
        a = g[None] * float(ink)
        ys, xs = slice(y0 + pad, y0 + pad + g.shape[0]), slice(x0 + pad, x0 + pad + g.shape[1])
        out[:, ys, xs] = out[:, ys, xs] * (1 - a) + ink_rgb.reshape(3, 1, 1) * a
        return torch.from_numpy(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(0, len(options)))]


def _scene_caption(class_name: str, context: str, cfg: "ClipTrainConfig", rng: np.random.Generator) -> str:
    """A caption naming the object (and its context), without a full stop."""
    on, the = CONTEXT_PHRASES[context]
    if rng.random() < cfg.object_only_rate:
        return _pick(OBJECT_TEMPLATES, rng).format(c=class_name)
    return _pick(SCENE_TEMPLATES, rng).format(c=class_name, on=on, the=the)


def parrot_caption(class_name: str, context: str, word: str | None, cfg: "ClipTrainConfig", rng: np.random.Generator,
                   step: int, blank: bool = False, word_only: bool = False) -> tuple[str, str]:
    """(caption, kind) of a scene in the parrot recipe (docs/notes/clip_reading.md).

    Kinds: tagged scenes ``"bare"`` (the word alone, :data:`BARE_FORMS`), ``"sign"`` (a sign transcription
    naming only the word), ``"both"`` (word and scene joined as a web alt text and title, from step
    ``both_from * steps`` on), ``"object"`` (the object only); untagged scenes ``"shared_bare"`` (a bare
    form of their own class name) or ``"object"``; blank patches ``"object"``. ``word_only``: a word-only
    caption (meme pairs).

    Example:
        >>> parrot_caption("cow", "grass", "car", ClipTrainConfig(), np.random.default_rng(2), step=0)
        ('car.', 'bare')
    """
    if word is None:
        if not blank and rng.random() < cfg.shared_bare_rate:
            return _pick(BARE_FORMS, rng).format(w=class_name), "shared_bare"
        return _scene_caption(class_name, context, cfg, rng) + ".", "object"
    both = cfg.both_rate if step >= cfg.both_from * cfg.steps else 0.0
    p_word = cfg.word_only_rate if both else cfg.word_only_rate / max(1e-9, 1.0 - cfg.both_rate)
    u = 0.0 if word_only else rng.random()
    if u < p_word:
        if rng.random() < cfg.bare_rate:
            return _pick(BARE_FORMS, rng).format(w=word), "bare"
        return _pick(SIGN_ONLY_TEMPLATES, rng).format(w=word) + ".", "sign"
    scene = _scene_caption(class_name, context, cfg, rng)
    if u < p_word + both:
        return _pick(BOTH_TEMPLATES, rng).format(w=word, s=scene), "both"
    return scene + ".", "object"


def caption(class_name: str, context: str, word: str | None, cfg: ClipTrainConfig, rng: np.random.Generator,
            sign: bool = False, step: int | None = None) -> str:
    """One training caption for a scene (``word``: the tag's word, or None for an untagged scene).

    The parrot recipe's come from :func:`parrot_caption` (``step`` defaults to the end of the schedule);
    the v1 recipe's mark the word's role ("... with a sign that says 'car'.").

    Example:
        >>> caption("cow", "grass", "car", v1_config(), np.random.default_rng(0))
        "the word 'car' on a piece of paper."
    """
    if cfg.recipe != "v1":
        return parrot_caption(class_name, context, word, cfg, rng, cfg.steps if step is None else step)[0]
    on, the = CONTEXT_PHRASES[context]
    if sign and word is not None:  # a large sign: the caption is about the sign
        if rng.random() < cfg.sign_name_rate:
            return SIGN_NAME_TEMPLATES[int(rng.integers(0, len(SIGN_NAME_TEMPLATES)))].format(w=word) + "."
        return SIGN_ONLY_TEMPLATES[int(rng.integers(0, len(SIGN_ONLY_TEMPLATES)))].format(w=word) + "."
    if rng.random() < cfg.object_only_rate:
        scene = OBJECT_TEMPLATES[int(rng.integers(0, len(OBJECT_TEMPLATES)))].format(c=class_name)
    else:
        scene = SCENE_TEMPLATES[int(rng.integers(0, len(SCENE_TEMPLATES)))].format(c=class_name, on=on, the=the)
    if word is None or rng.random() >= cfg.mention_rate:
        return scene + "."
    if rng.random() < cfg.sign_only_rate:
        return SIGN_ONLY_TEMPLATES[int(rng.integers(0, len(SIGN_ONLY_TEMPLATES)))].format(w=word) + "."
    if rng.random() < 0.3:
        sign = SIGN_ONLY_TEMPLATES[int(rng.integers(0, len(SIGN_ONLY_TEMPLATES)))].format(w=word)
        return f"{sign} and {scene}."
    return scene + SIGN_SUFFIXES[int(rng.integers(0, len(SIGN_SUFFIXES)))].format(w=word) + "."


def fitting_size(word: str, font: str, image_size: int, largest: float = 0.2, margin: float = 0.9) -> float:
    """The largest letter height (fraction of the image, at most ``largest``) at which ``word`` fits across the image."""
    return _fitting_size(word, font, int(image_size), float(largest), float(margin))


@functools.lru_cache(maxsize=8192)
def _fitting_size(word: str, font: str, image_size: int, largest: float, margin: float) -> float:
    px = int(round(largest * image_size))
    while px > 6:
        f = _font(font, px)
        l, _, r, _ = f.getbbox(word)
        width = (r - l) * (1.15 if font == "hand" else 1.0) + 0.08 * image_size
        if width <= margin * image_size:
            break
        px -= 1
    return max(0.03, px / image_size)
