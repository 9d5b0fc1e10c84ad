"""The benchmark world: procedural scenes with exact concept masks, deterministic by seed and version.

Each scene is one object of one of 18 classes, drawn from polygons in a random colour, size,
position and pose, in front of one *context* (road, grass, water, sky, sand, floor) whose region is
textured (real scikit-image textures for road, grass and floor; procedural ones for water, sky and
sand). Every class has a home context it appears in with probability ``WorldConfig.cooccurrence``
(default 0.85); otherwise one of the other contexts is drawn, so classifiers learn "road suggests a
vehicle" the way ImageNet models do. Every class also has a look-alike *twin* that lives in another
context (duck and bird, bus and ship, umbrella and lamp...): with probability ``WorldConfig.ambiguity``
(default 0.25) an object is drawn with its twin's appearance, as a far-away duck is hard to tell from
a bird. The object then leaves the class open between the twins and only the context decides, the
way fine-grained ImageNet classes are told apart by their surroundings. Two *part* concepts (``wheel``, ``window``) are shared by
several classes. A *text tag* (a word printed on a paper patch) is correlated with some classes when
``WorldConfig.text_tag_rate`` > 0, for the typographic experiment.

The image is composited layer by layer (context, object body, parts, text tag) and each pixel
remembers the concept that painted it last, so the masks are exactly the visible pixels of each
concept. ``render_with`` re-renders the same scene (same random draws) with another texture for one
or more concepts: the honest texture-swap counterfactual.

Example:
    >>> from modeledit.eval.world.scene import World, WorldConfig
    >>> w = World(WorldConfig(seed=0))
    >>> s = w.render(3)
    >>> s.image.shape, s.class_name, sorted(s.masks)[:2]
    ((64, 64, 3), 'cow', ['cow', 'sand'])
    >>> snowy = w.render_with(3, {"road": "snow"})
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from modeledit.eval.world.drawings import BODY_COLOURS, DEFAULT_COLOURS, DRAWINGS, FIXED_COLOURS
from modeledit.eval.world.textures import TextureBank, hsv_colour
from modeledit.config import JsonConfig

WORLD_VERSION = 1

#: context concept -> the classes that live there (their "home")
HOMES: dict[str, tuple[str, ...]] = {
    "road": ("car", "bus", "truck"),
    "grass": ("cow", "tree", "tractor"),
    "water": ("sailboat", "ship", "duck"),
    "sky": ("airplane", "bird", "balloon"),
    "sand": ("crab", "umbrella", "sandcastle"),
    "floor": ("chair", "table", "lamp"),
}
CONTEXTS: tuple[str, ...] = tuple(HOMES)
CLASSES: tuple[str, ...] = tuple(c for cs in HOMES.values() for c in cs)
HOME: dict[str, str] = {c: ctx for ctx, cs in HOMES.items() for c in cs}
_PAIRS = (("duck", "bird"), ("ship", "bus"), ("truck", "tractor"), ("tree", "balloon"), ("umbrella", "lamp"),
          ("cow", "table"), ("sailboat", "airplane"), ("car", "crab"), ("sandcastle", "chair"))
#: class -> its look-alike twin (always from another home context)
TWIN: dict[str, str] = {**{a: b for a, b in _PAIRS}, **{b: a for a, b in _PAIRS}}
PARTS: tuple[str, ...] = ("wheel", "window")
TEXT_TAG = "text"
#: every concept a mask can be asked for: contexts, object classes, parts, the text tag
CONCEPTS: tuple[str, ...] = CONTEXTS + CLASSES + PARTS + (TEXT_TAG,)
#: textures available besides the contexts' own (for counterfactual swaps)
EXTRA_TEXTURES: tuple[str, ...] = ("snow",)
#: words printed on tags of classes that are not tag-correlated (so a tag alone is no cue)
NEUTRAL_WORDS: tuple[str, ...] = ("note", "sale", "open", "exit", "info", "memo", "hello", "zone")


@dataclass
class WorldConfig(JsonConfig):
    """Everything that determines the world's images: same config + same index = same scene.

    ``cooccurrence``: probability that a class appears in front of its home context.
    ``ambiguity``: probability that an object is drawn with its look-alike twin's appearance.
    ``text_tag_rate``: probability that an image of a tag class (``text_tag_classes``) carries a tag
    with its class name; images of other classes carry a neutral word with ``neutral_tag_rate``.
    ``tag_decides_rate``: probability that a tagged image of a tag class shows another class's object in
    a random context, so that only the word names the class (what teaches a classifier to read).
    """

    version: int = WORLD_VERSION
    seed: int = 0
    image_size: int = 64
    cooccurrence: float = 0.85
    ambiguity: float = 0.25
    text_tag_rate: float = 0.0
    neutral_tag_rate: float = 0.0
    text_tag_classes: tuple[str, ...] = ("car", "cow", "duck", "bird", "crab", "lamp")
    tag_decides_rate: float = 0.0
    noise: float = 4.0

    def __post_init__(self) -> None:
        if self.version != WORLD_VERSION:
            raise ValueError(f"this code renders world version {WORLD_VERSION}, not {self.version}; install the matching modeledit release")
        if not 32 <= int(self.image_size) <= 256:
            raise ValueError(f"image_size must be between 32 and 256 pixels, got {self.image_size}")
        for name in ("cooccurrence", "ambiguity", "text_tag_rate", "neutral_tag_rate", "tag_decides_rate"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        self.text_tag_classes = tuple(self.text_tag_classes)
        unknown = [c for c in self.text_tag_classes if c not in CLASSES]
        if unknown:
            raise KeyError(f"text_tag_classes {unknown} are not world classes; valid: {list(CLASSES)}")

@dataclass
class Scene:
    """One rendered scene: ``image`` HxWx3 uint8, ``label``, ``class_name``, ``masks`` and ``record``.

    ``masks`` holds the visible pixels of every concept present (HxW bool); :meth:`mask` also
    answers for absent concepts (all False). ``record`` is JSON-able (no arrays).
    """

    image: np.ndarray
    label: int
    class_name: str
    masks: dict[str, np.ndarray]
    record: dict[str, Any] = field(default_factory=dict)

    def mask(self, concept: str) -> np.ndarray:
        if concept not in CONCEPTS:
            raise KeyError(f"unknown world concept {concept!r}; valid: {list(CONCEPTS)}")
        m = self.masks.get(concept)
        return m if m is not None else np.zeros(self.image.shape[:2], bool)


# ------------------------------------------------------------------------------------------------
# the world


def _polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.asarray(im, bool)


def _text_mask(word: str, box: tuple[int, int, int, int], size: int, font_px: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    im = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=font_px)
    x0, y0, x1, y1 = box
    l, t, r, b = draw.textbbox((0, 0), word, font=font)
    draw.text((x0 + (x1 - x0 - (r - l)) / 2 - l, y0 + (y1 - y0 - (b - t)) / 2 - t), word, font=font, fill=255)
    return np.asarray(im) > 127


@dataclass
class _Layer:
    concept: str  # the concept that owns these pixels when visible
    mask: np.ndarray
    fill: np.ndarray  # HxWx3 float, or RGB (3,)
    owners: tuple[str, ...]  # every concept these pixels belong to (e.g. ("wheel", "car"))


class World:
    """Renders scenes of the benchmark world.

    Example:
        >>> w = World()
        >>> scene = w.render(0)                      # Scene(image, label, class_name, masks, record)
        >>> w.cooccurrence()["car"]["road"]
        0.85
    """

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        self.textures = TextureBank()

    classes = CLASSES
    contexts = CONTEXTS
    parts = PARTS
    text_tag = TEXT_TAG

    def cooccurrence(self) -> dict[str, dict[str, float]]:
        """class -> context -> probability that the class is drawn in front of that context."""
        rate = self.config.cooccurrence
        other = (1.0 - rate) / (len(CONTEXTS) - 1)
        return {c: {ctx: round(rate if HOME[c] == ctx else other, 6) for ctx in CONTEXTS} for c in CLASSES}

    def label_of(self, index: int) -> int:
        """Classes are balanced: item ``index`` shows class ``index % len(CLASSES)``."""
        return int(index) % len(CLASSES)

    def render(self, index: int, *, label: int | str | None = None, context: str | None = None,
               text_tag: str | None | bool = None,
               texture_overrides: Mapping[str, str | np.ndarray] | None = None) -> Scene:
        """Render scene ``index``. Keyword overrides force the class, the context or the tag word
        (``text_tag=False`` removes the tag) while every other random draw stays the same.
        """
        cfg, size = self.config, int(self.config.image_size)
        if index < 0:
            raise ValueError(f"scene index must be >= 0, got {index}")
        rng = np.random.default_rng([cfg.seed, cfg.version, int(index)])
        # every random draw happens here, in a fixed order, whatever the overrides
        lab = self.label_of(index)
        u_ctx, other_ctx = rng.random(), int(rng.integers(0, len(CONTEXTS) - 1))
        tex_seed = int(rng.integers(0, 2**31))
        scale = rng.uniform(0.22, 0.36) * size
        angle = rng.uniform(-0.25, 0.25)
        flip = rng.random() < 0.5
        cx = rng.uniform(0.3, 0.7) * size
        cy = rng.uniform(0.35, 0.65) * size
        hsv_draws = rng.random((3, 3))
        shape_seed = int(rng.integers(0, 2**31))
        u_tag, tag_word_draw = rng.random(), int(rng.integers(0, len(NEUTRAL_WORDS)))
        tag_w, tag_h = int(rng.integers(int(size * 0.45), int(size * 0.55))), int(size * 0.22)
        tag_x = int(rng.integers(0, size - tag_w + 1))
        tag_y = int(rng.choice([rng.integers(0, int(size * 0.15) + 1), rng.integers(int(size * 0.75) - tag_h, size - tag_h + 1)]))
        paper = rng.uniform(220, 250)
        brightness = rng.uniform(0.85, 1.15)
        noise_seed = int(rng.integers(0, 2**31))
        u_twin = rng.random()
        u_decides, other_app, any_ctx = rng.random(), int(rng.integers(0, len(CLASSES) - 1)), int(rng.integers(0, len(CONTEXTS)))

        if label is not None:
            lab = CLASSES.index(label) if isinstance(label, str) else int(label)
            if not 0 <= lab < len(CLASSES):
                raise ValueError(f"label must be in 0..{len(CLASSES) - 1}, got {label}")
        cname = CLASSES[lab]
        tagged_by_config = text_tag is None and cname in cfg.text_tag_classes and u_tag < cfg.text_tag_rate
        decides = tagged_by_config and u_decides < cfg.tag_decides_rate
        if context is None and decides:
            context = CONTEXTS[any_ctx]
        elif context is None:
            home = HOME[cname]
            others = [c for c in CONTEXTS if c != home]
            context = home if u_ctx < cfg.cooccurrence else others[other_ctx]
        elif context not in CONTEXTS:
            raise KeyError(f"unknown context {context!r}; valid: {list(CONTEXTS)}")
        if text_tag is None:
            if cname in cfg.text_tag_classes:
                word = cname if u_tag < cfg.text_tag_rate else None
            else:
                word = NEUTRAL_WORDS[tag_word_draw] if u_tag < cfg.neutral_tag_rate else None
        else:
            word = str(text_tag) if text_tag else None

        appearance = TWIN[cname] if u_twin < cfg.ambiguity else cname
        if decides:
            appearance = [c for c in CLASSES if c != cname][other_app]
        overrides = dict(texture_overrides or {})
        unknown = [c for c in overrides if c not in CONCEPTS]
        if unknown:
            raise KeyError(f"texture overrides for unknown concepts {unknown}; valid: {list(CONCEPTS)}")

        layers = [_Layer(context, np.ones((size, size), bool), self.textures.draw(context, np.random.default_rng(tex_seed), size), (context,))]
        layers += self._object_layers(cname, appearance, np.random.default_rng(shape_seed), scale, angle, flip, cx, cy, hsv_draws)
        if word:
            box = (tag_x, tag_y, tag_x + tag_w, tag_y + tag_h)
            patch = np.zeros((size, size), bool)
            patch[tag_y:tag_y + tag_h, tag_x:tag_x + tag_w] = True
            layers.append(_Layer(TEXT_TAG, patch, np.array([paper, paper, paper * 0.93]), (TEXT_TAG,)))
            font_px = max(8, int(tag_h * 0.8))
            layers.append(_Layer(TEXT_TAG, _text_mask(word, box, size, font_px) & patch, np.array([15.0, 15.0, 20.0]), (TEXT_TAG,)))

        image = np.zeros((size, size, 3), np.float32)
        owner = np.full((size, size), -1, np.int16)
        for i, layer in enumerate(layers):
            fill = layer.fill
            for concept in layer.owners:
                if concept in overrides:
                    fill = self._texture(overrides[concept], tex_seed, size)
            fill = np.broadcast_to(np.asarray(fill, np.float32), (size, size, 3)) if np.ndim(fill) == 1 else fill
            image[layer.mask] = fill[layer.mask]
            owner[layer.mask] = i
        image = image * brightness + np.random.default_rng(noise_seed).normal(0, cfg.noise, image.shape)
        image = np.clip(image, 0, 255).round().astype(np.uint8)

        masks: dict[str, np.ndarray] = {}
        for i, layer in enumerate(layers):
            visible = owner == i
            for concept in layer.owners:
                masks[concept] = masks[concept] | visible if concept in masks else visible
        masks = {c: m for c, m in masks.items() if m.any()}
        record = {
            "index": int(index), "label": lab, "class_name": cname, "appearance": appearance, "context": context, "text_tag": word,
            "concepts": [c for c in CONCEPTS if c in masks], "seed": cfg.seed, "world_version": cfg.version,
            "image_size": size, "texture_overrides": sorted(overrides),
        }
        return Scene(image, lab, cname, masks, record)

    def render_with(self, index: int, texture_overrides: Mapping[str, str | np.ndarray], **kwargs: Any) -> Scene:
        """Re-render scene ``index`` with other textures for some concepts (names or HxWx3 arrays).

        Example:
            >>> World().render_with(0, {"road": "snow", "wheel": np.zeros((64, 64, 3), np.uint8)})
        """
        return self.render(index, texture_overrides=texture_overrides, **kwargs)

    def _texture(self, tex: str | np.ndarray, seed: int, size: int) -> np.ndarray:
        if isinstance(tex, str):
            return self.textures.draw(tex, np.random.default_rng(seed + 1), size)
        arr = np.asarray(tex)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"a texture override must be a texture name or an HxWx3 array, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            arr = np.clip(arr.astype(np.float64), 0, 1) * 255.0
        if arr.shape[:2] != (size, size):
            from PIL import Image

            arr = np.asarray(Image.fromarray(np.asarray(arr, np.uint8)).resize((size, size), Image.BILINEAR))
        return arr.astype(np.float32)

    def _object_layers(self, cname: str, appearance: str, rng: np.random.Generator, scale: float, angle: float, flip: bool,
                       cx: float, cy: float, hsv_draws: np.ndarray) -> list[_Layer]:
        """The object's layers: drawn as ``appearance`` (the class itself or its twin), owned by ``cname``."""
        size = int(self.config.image_size)
        (h0, h1), (s0, s1), (v0, v1) = BODY_COLOURS.get(appearance, DEFAULT_COLOURS)
        body = hsv_colour(h0 + (h1 - h0) * hsv_draws[0, 0], s0 + (s1 - s0) * hsv_draws[0, 1], v0 + (v1 - v0) * hsv_draws[0, 2])
        accent = hsv_colour(hsv_draws[1, 0], 0.4 + 0.5 * hsv_draws[1, 1], 0.4 + 0.5 * hsv_draws[1, 2])
        colours = {"body": body, "accent": accent, **{k: np.array(v, np.float32) for k, v in FIXED_COLOURS.items()}}
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s], [s, c]]) * scale
        layers = []
        for part, role, poly in DRAWINGS[appearance](rng):
            pts = np.asarray(poly, np.float64)
            if flip:
                pts[:, 0] = -pts[:, 0]
            pts = pts @ rot.T + np.array([cx, cy])
            shade = 1.0 + 0.12 * (hsv_draws[2, 0] - 0.5)
            owners = (part, cname) if part else (cname,)
            layers.append(_Layer(part or cname, _polygon_mask(pts, size), colours[role] * shade, owners))
        return layers


def add_text_tag(image: np.ndarray, word: str, *, box: tuple[int, int, int, int] | None = None,
                 paper: tuple[int, int, int] = (240, 240, 224), ink: tuple[int, int, int] = (15, 15, 20)) -> tuple[np.ndarray, np.ndarray]:
    """Print ``word`` on a paper patch onto a copy of ``image`` (HxWx3 uint8); returns (image, patch mask).

    ``box`` is (x0, y0, x1, y1) in pixels; the default is a patch at the top left, as in the world's tags.

    Example:
        >>> tagged, mask = add_text_tag(World().render(5).image, "car")
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"add_text_tag takes an HxWx3 uint8 image, got shape {img.shape} and dtype {img.dtype}")
    h, w = img.shape[:2]
    if box is None:
        box = (int(w * 0.04), int(h * 0.04), int(w * 0.04) + int(w * 0.5), int(h * 0.04) + int(h * 0.22))
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"tag box {box} does not fit inside the {w}x{h} image")
    out = img.copy()
    patch = np.zeros((h, w), bool)
    patch[y0:y1, x0:x1] = True
    out[patch] = paper
    letters = _text_mask(word, box, max(h, w), max(8, int((y1 - y0) * 0.8)))[:h, :w] & patch
    out[letters] = ink
    return out, patch
