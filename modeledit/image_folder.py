"""One image-folder dataset for the whole package: statistics, harnesses and the command line.

:class:`ImageFolder` lists every image file under ``root`` (recursively, hidden files skipped). Items
are ``(image01, label, meta)``: a (3, S, S) float tensor in [0, 1], the class index when the file lies
in a sub-folder named like one of ``class_names`` (or by a class index; otherwise -1), and
``{"path", "index"}``. ``fit`` says how an image becomes S x S: ``"crop"`` (resize the short side, centre
crop: the classifiers' evaluation transform) or ``"stretch"`` (resize both sides: no pixel is lost, so
masks stay aligned).

:attr:`ImageFolder.identity` names exactly what the dataset yields: it hashes the preprocessing, the
class names and, per file, its relative path, size and modification time. Caches (second-moment
statistics) key on it, so a changed, added or removed file never reuses a stale result.

Example:
    >>> ds = ImageFolder("val_images/", size=224)
    >>> x, label, meta = ds[0]
    >>> ds.identity[:12]
    '3f1c0a9e2b7d'
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FITS = ("crop", "stretch")


class ImageFolder(torch.utils.data.Dataset):
    """Images under ``root``; see the module docstring."""

    def __init__(self, root: str | os.PathLike, class_names: Sequence[str] | None = None, size: int | None = 224,
                 fit: str = "crop") -> None:
        if fit not in FITS:
            raise ValueError(f"unknown fit {fit!r}; choose from {FITS}")
        self.root = Path(root)
        if self.root.is_file():
            raise ValueError(f"{str(self.root)!r} is a file; pass the folder that holds the images")
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist; pass a folder of images")
        self.files = sorted(p for p in self.root.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {str(self.root)!r}; pass a folder of images")
        self.class_names = list(class_names) if class_names else []
        lookup = {n.lower(): i for i, n in enumerate(self.class_names)}
        self.labels = []
        for f in self.files:
            folder = f.parent.name if f.parent != self.root else ""
            self.labels.append(lookup.get(folder.lower(), int(folder) if folder.isdigit() else -1))
        self.size, self.fit = size, fit

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> torch.Tensor:
        """Image ``i`` as a (3, S, S) tensor in [0, 1] (or its own size when ``size`` is None)."""
        import torchvision.transforms.functional as TF

        from modeledit.images import read_image

        im = read_image(self.files[i])
        if self.size:
            if self.fit == "crop":
                im = TF.center_crop(TF.resize(im, self.size, antialias=True), [self.size, self.size])
            else:
                im = im.resize((self.size, self.size))
        return TF.to_tensor(im)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, dict[str, Any]]:
        return self.load(i), self.labels[i], {"path": str(self.files[i]), "index": i}

    @property
    def identity(self) -> str:
        """A hash naming exactly these items (preprocessing, classes, and each file's path, size, mtime)."""
        from modeledit.images import READER_VERSION

        # the reader's version too: caches made when a file read differently (16-bit PNGs before version 2) are not reused
        h = hashlib.sha256(f"ImageFolder:{self.fit}:{self.size}:{self.class_names}:reader{READER_VERSION}".encode())
        for p in self.files:
            s = p.stat()
            h.update(f"{p.relative_to(self.root)}:{s.st_size}:{s.st_mtime_ns}".encode())
        return h.hexdigest()
