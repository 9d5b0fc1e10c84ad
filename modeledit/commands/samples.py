"""``modeledit samples --out DIR``: files to try every command on, made from photos that ship offline.

Writes into ``DIR``:

* ``photos/``: real photographs from scikit-image (astronaut, chelsea, coffee, rocket, motorcycle), short
  side 256 px: for ``predict``, ``apply`` and ``counterfactuals --images photos/``;
* ``astronaut.png`` (224 x 224), ``astronaut_mask.png`` (the person, found by the MediaPipe segmenter) and
  ``astronaut_snow.png`` (the person restyled with the style bank's snow by the Magenta stylizer, every other
  pixel unchanged): an exemplar pair for ``edit --original --transformed --mask``;
* ``stats_images/``: flipped and shifted 224 px crops of the photos, a small stand-in for the large image
  folder (ImageNet validation in the paper) that ``stats`` and ``edit --images`` compute statistics over.

Running it again writes the same bytes and skips files that are already there with them; a file of the same
name with other content is never overwritten (refused, or replaced with ``--force``).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

from modeledit.commands.common import check_out, positive_int

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
PHOTO_SIZE = 256        # short side of the photos
EXEMPLAR_SIZE = 224     # the exemplar pair: MobileNetV2's input size
STYLE = "snow"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder to write into (created; may hold other files, none is overwritten)")
    p.add_argument("--n-stats", type=positive_int, default=48, help="crops written to stats_images/")
    p.add_argument("--force", action="store_true", help="replace files of the same names that hold something else")


def _photo(name: str):
    import numpy as np
    import skimage.data

    if name == "motorcycle":
        return np.ascontiguousarray(skimage.data.stereo_motorcycle()[0])
    return getattr(skimage.data, name)()


def _png(image) -> bytes:
    """PNG bytes of a PIL image, written without time stamps so the same picture gives the same bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _short_side(im, size: int):
    from PIL import Image

    w, h = im.size
    s = size / min(w, h)
    return im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BICUBIC)


def sample_files(n_stats: int) -> dict[str, bytes]:
    """Every file the command writes: relative path -> PNG bytes (deterministic)."""
    import numpy as np
    import torch
    from PIL import Image

    from modeledit import concept_mask, restyle
    from modeledit.images import to_uint8

    files: dict[str, bytes] = {}
    photos = {n: Image.fromarray(_photo(n)).convert("RGB") for n in PHOTOS}
    for n, im in photos.items():
        files[f"photos/{n}.png"] = _png(_short_side(im, PHOTO_SIZE))
    astro = photos["astronaut"].resize((EXEMPLAR_SIZE, EXEMPLAR_SIZE), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.array(astro)).permute(2, 0, 1).float() / 255.0
    mask = concept_mask(x, "person")
    if not bool(mask.any()):
        raise RuntimeError("the person segmenter found no person on the astronaut photo; this is a bug")
    snowy = restyle(x, mask, STYLE, 0)
    files["astronaut.png"] = _png(astro)
    files["astronaut_mask.png"] = _png(Image.fromarray((mask.numpy() * 255).astype(np.uint8)))
    files["astronaut_snow.png"] = _png(Image.fromarray(to_uint8(snowy)))
    rng = np.random.default_rng(0)
    names = list(PHOTOS)
    for i in range(n_stats):
        im = _short_side(photos[names[i % len(names)]], int(rng.integers(EXEMPLAR_SIZE, 2 * EXEMPLAR_SIZE)))
        w, h = im.size
        x0, y0 = int(rng.integers(0, w - EXEMPLAR_SIZE + 1)), int(rng.integers(0, h - EXEMPLAR_SIZE + 1))
        crop = im.crop((x0, y0, x0 + EXEMPLAR_SIZE, y0 + EXEMPLAR_SIZE))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        files[f"stats_images/crop_{i:03d}.png"] = _png(crop)
    return files


def _digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def run(args: argparse.Namespace) -> int:
    from modeledit.atomic import atomic_path

    check_out(args.out)
    root = Path(args.out)
    files = sample_files(args.n_stats)
    clashes = [rel for rel, data in files.items()
               if (root / rel).exists() and (not (root / rel).is_file() or _digest((root / rel).read_bytes()) != _digest(data))]
    if clashes and not args.force:
        raise ValueError(f"--out {args.out!r} already holds {len(clashes)} file(s) of the same names with other content "
                         f"(e.g. {clashes[0]}); choose another --out or pass --force to replace them")
    written, kept = [], []
    for rel, data in files.items():
        path = root / rel
        if path.is_file() and _digest(path.read_bytes()) == _digest(data):
            kept.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
        written.append(rel)
    print(json.dumps({"out": str(root), "written": len(written), "already there": len(kept),
                      "photos": f"{root / 'photos'}/", "original": str(root / "astronaut.png"),
                      "mask": str(root / "astronaut_mask.png"), "transformed": str(root / "astronaut_snow.png"),
                      "statistics images": f"{root / 'stats_images'}/"}, indent=1))
    return 0
