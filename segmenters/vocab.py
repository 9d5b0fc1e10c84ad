"""Concept vocabularies (COCO things, COCO-stuff, a curated part of LVIS) and synonyms.

``canonical_concept("motorbike") == "motorcycle"``; unknown names raise ``KeyError`` with close
matches. Other parts of the project (the benchmark world) add their own names with
:func:`register_concepts`.

Example:
    >>> canonical_concept("Automobile")
    'car'
"""
from __future__ import annotations

from typing import Iterable

#: the 80 COCO thing categories, in the order of their contiguous ids 1..80 (torchvision's Mask R-CNN)
COCO_THINGS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)

#: torchvision's Mask R-CNN label ids 0..90 (COCO's original ids, with "N/A" gaps and background at 0)
COCO_TORCHVISION_LABELS = (
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet",
    "N/A", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "N/A", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

#: COCO-stuff's 91 stuff categories (names without the "-other"/"-merged" suffixes)
COCO_STUFF = (
    "banner", "blanket", "branch", "bridge", "building", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling", "tile ceiling", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk", "dirt",
    "door", "fence", "marble floor", "floor", "stone floor", "tile floor", "wood floor", "flower", "fog",
    "food", "fruit", "furniture", "grass", "gravel", "ground", "hill", "house", "leaves", "light", "mat",
    "metal", "mirror", "moss", "mountain", "mud", "napkin", "net", "paper", "pavement", "pillow", "plant",
    "plastic", "platform", "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug",
    "salad", "sand", "sea", "shelf", "sky", "skyscraper", "snow", "solid", "stairs", "stone", "straw",
    "structural", "table", "tent", "textile", "towel", "tree", "vegetable", "brick wall", "concrete wall",
    "wall", "panel wall", "stone wall", "tile wall", "wood wall", "water", "waterdrops", "blind window",
    "window", "wood",
)

#: a curated part of LVIS v1's 1203 categories: the object parts and materials concept tests use most.
#: The detectron2 backend reads the full list from the model's metadata at run time.
LVIS_CURATED = (
    "wheel", "tire", "headlight", "windshield", "windshield wiper", "license plate", "mirror", "steering wheel",
    "seat", "saddle (on an animal)", "bicycle", "car (automobile)", "bus (vehicle)", "truck", "motorcycle",
    "train (railroad vehicle)", "airplane", "boat", "person", "dog", "cat", "horse", "cow", "sheep", "bird",
    "tree", "flower arrangement", "grass", "road map", "street sign", "traffic light", "pole", "fence",
    "bench", "umbrella", "hat", "shirt", "jacket", "trousers", "shoe", "glove", "helmet", "backpack", "bottle",
    "cup", "bowl", "plate", "fork", "knife", "spoon", "chair", "table", "sofa", "bed", "pillow", "blanket",
    "lamp", "clock", "book", "television set", "laptop computer", "cellular telephone", "keyboard",
    "window", "curtain", "doorknob", "door", "sign", "flag", "kite", "balloon", "ball", "water bottle",
)

#: synonyms and spellings users write -> canonical names
SYNONYMS = {
    "people": "person", "human": "person", "man": "person", "woman": "person", "pedestrian": "person",
    "automobile": "car", "car (automobile)": "car", "auto": "car", "motorbike": "motorcycle",
    "bike": "bicycle", "aeroplane": "airplane", "plane": "airplane", "tvmonitor": "tv", "television": "tv",
    "television set": "tv", "sofa": "couch", "pottedplant": "potted plant", "diningtable": "dining table",
    "laptop computer": "laptop", "cellular telephone": "cell phone", "phone": "cell phone",
    "bus (vehicle)": "bus", "train (railroad vehicle)": "train", "tyre": "tire", "wheels": "wheel",
    "trees": "tree", "street": "road", "roads": "road", "lawn": "grass", "ocean": "sea", "floor-wood": "wood floor",
    "wall-brick": "brick wall", "sidewalk": "pavement", "trousers": "pants", "puppy": "dog", "kitten": "cat",
}

_BASE: tuple[str, ...] = tuple(dict.fromkeys(COCO_THINGS + COCO_STUFF + LVIS_CURATED + ("pants",)))

# registry of concept names other parts of the project add (e.g. the benchmark world's concepts)
_EXTRA: dict[str, str] = {}


def register_concepts(names: Iterable[str], source: str = "user") -> None:
    """Add concept names (canonical as written, lower-cased) to the vocabulary."""
    for n in names:
        _EXTRA.setdefault(_norm(n), source)


def all_concepts() -> list[str]:
    """Every canonical concept name known (COCO things, COCO-stuff, curated LVIS, registered)."""
    return sorted(set(_BASE) | set(_EXTRA))


def _norm(name: str) -> str:
    return " ".join(str(name).strip().lower().replace("_", " ").split())


def canonical_concept(name: str, strict: bool = True) -> str:
    """Map a concept name or synonym to its canonical vocabulary name; KeyError with close matches if unknown.

    ``strict=False`` (for names read from a model's or a file's own category list) registers an unknown
    name instead of raising.

    Example:
        >>> canonical_concept("tvmonitor")
        'tv'
    """
    if not isinstance(name, str):
        raise TypeError(f"a concept name must be a string, got {type(name).__name__}")
    n = _norm(name)
    n = SYNONYMS.get(n, n)
    if n in _BASE or n in _EXTRA:
        return n
    if not strict:
        register_concepts([n], source="data")
        return n
    from modeledit.registry import close_matches

    close = close_matches(n, list(dict.fromkeys(all_concepts() + list(SYNONYMS))))
    raise KeyError(f"unknown concept {name!r}; closest: {close or '-'}; see modeledit.segmenters.vocab.all_concepts()")


def coco_label_name(label_id: int) -> str:
    """Canonical concept for a torchvision Mask R-CNN COCO label id (1..90)."""
    if not 0 < label_id < len(COCO_TORCHVISION_LABELS) or COCO_TORCHVISION_LABELS[label_id] == "N/A":
        raise KeyError(f"COCO label id {label_id} is not a category")
    return COCO_TORCHVISION_LABELS[label_id]
