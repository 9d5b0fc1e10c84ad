"""Evaluate from the site on: cache what enters an edit site once, run only the rest per cell.

An edit, a local or a global fine-tune at site L changes nothing before L. :func:`split_at_site` traces
the model with :mod:`torch.fx` and cuts its graph at the site's rewritten layer: the *suffix* is every
operation that depends on that layer's output (and nothing else), the *prefix* everything else. The
tensors crossing the cut are the site's key and, where the network has them, its skip input (a ResNet
block's input or downsample output, a ViT block's residual stream), found from the graph rather than
from the site's description. Modules that do not contain the site stay opaque (leaves) while tracing, so
only the chain of modules around the site has to be traceable.

:class:`SuffixEvaluator` keeps the crossing tensors per (image set, site) on the model's device within a
memory budget; beyond it, on a GPU, the least recently used move to pinned host memory within a second
budget; beyond both they are spilled to disk or recomputed (float32 or float16 throughout). It predicts
with the model *as it currently is* from them. The cache is keyed by a sha256 over the prefix's parameters and buffers
(:func:`modeledit.provenance.tensor_hash`): an edit at or after the site keeps it, any change before
the site recomputes it, so a changed model never reuses stale inputs. :func:`suffix_forward` gives
fine-tuning the same saving: the exemplars' prefix once, the trainable suffix per step.

Where a model cannot be traced, or the split would not reproduce the full forward, the evaluator falls
back to the full forward pass (correct, no saving) and logs a warning once.

Example:
    >>> from modeledit import load_model, get_site
    >>> from modeledit.suffix import SuffixEvaluator
    >>> lm = load_model("world_vgg")
    >>> ev = SuffixEvaluator(lm.model, transform=lm.normalize)
    >>> clean = ev.image_set(x01)                      # (N, 3, H, W) in [0, 1]; identified by its hash
    >>> site = get_site(lm.model, -1)
    >>> with edit.applied(lm.model):
    ...     pred = ev.predict(clean, site)             # == lm.predict(x01).argmax(-1), from the site on
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import fx, nn

from modeledit.config import JsonConfig
from modeledit.layers import EditSite, get_site
from modeledit.provenance import tensor_hash

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16}
SPILLS = ("disk", "recompute")
#: the host tier's default budget (MB) beyond the device's (see :class:`SuffixEvaluator`)
HOST_BUDGET_MB = 8192.0


class SplitError(RuntimeError):
    """The model cannot be cut at the site (not traceable, or the rewritten layer is not called once)."""


# ---------------------------------------------------------------------------------------------
# the split


class _SiteTracer(fx.Tracer):
    """Traces through the modules that contain the site's layer; every other module is one opaque call."""

    def __init__(self, keep: set[str]) -> None:
        super().__init__()
        self.keep = keep

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name not in self.keep


class _Root(nn.Module):
    """Holds the model as ``model`` while tracing, so what fx adds (tensor constants) lands here, not on it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)


_ROOT = "model."


def _ancestors(path: str) -> set[str]:
    parts = (_ROOT + path).split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _module_tensors(root: nn.Module, target: str) -> dict[str, torch.Tensor]:
    """Parameters and buffers reached by a ``call_module``/``get_attr`` target, by the model's state-dict
    name (tensor constants fx made while tracing keep their own names)."""
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    name = target.removeprefix(_ROOT) if target != _ROOT.rstrip(".") else ""
    if isinstance(obj, nn.Module):
        prefix = f"{name}." if name else ""
        out = {prefix + n: p for n, p in obj.named_parameters()}
        out.update({prefix + n: b for n, b in obj.named_buffers()})
        return out
    return {name: obj} if isinstance(obj, torch.Tensor) else {}


class SiteSplit:
    """A model cut at an edit site: ``prefix(x)`` gives the tensors crossing the cut, ``suffix(*those)``
    the logits. Both share the model's modules and parameters, so they always compute with its current
    weights (edits are written in place).

    Build with :func:`split_at_site`. ``inputs`` names the crossing values (fx node names),
    ``prefix_tensors`` / ``suffix_tensors`` are the parameters and buffers each side uses (by
    state-dict name; one tensor may appear on both sides when a module is shared).
    """

    def __init__(self, root: nn.Module, site: EditSite, prefix_graph: fx.Graph, suffix_graph: fx.Graph,
                 inputs: list[str], prefix_targets: list[str], suffix_targets: list[str]) -> None:
        self._root = root
        self.model = root.model
        self.site = site
        self.inputs = inputs
        self._graphs = (prefix_graph, suffix_graph)
        self._targets = (prefix_targets, suffix_targets)
        self._build()

    def _build(self) -> None:
        self.prefix = fx.GraphModule(self._root, self._graphs[0], class_name="SitePrefix")
        self.suffix = fx.GraphModule(self._root, self._graphs[1], class_name="SiteSuffix")
        self._objects = {t: self._resolve(self._root, t) for t in {*self._targets[0], *self._targets[1]}}

    @staticmethod
    def _resolve(root: nn.Module, target: str) -> Any:
        obj: Any = root
        for part in target.split("."):
            obj = getattr(obj, part)
        return obj

    def refresh(self) -> None:
        """Rebuild the two graph modules if the model's submodules or tensors were replaced (not just
        written in place) since the split was made."""
        if any(self._resolve(self._root, t) is not o for t, o in self._objects.items()):
            self._build()

    @property
    def prefix_tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for t in self._targets[0]:
            out.update(_module_tensors(self._root, t))
        return out

    @property
    def suffix_tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for t in self._targets[1]:
            out.update(_module_tensors(self._root, t))
        return out

    def prefix_hash(self) -> str:
        """sha256 over the prefix's parameters and buffers by name: what the cached tensors depend on."""
        h = hashlib.sha256(self.site.name.encode())
        for name, t in sorted(self.prefix_tensors.items()):
            h.update(name.encode())
            h.update(tensor_hash(t).encode())
        return h.hexdigest()

    def can_train(self, names: Iterable[str]) -> bool:
        """True when none of the parameters ``names`` is used before the cut (their gradient through the
        suffix alone is then their whole gradient)."""
        params = dict(self.model.named_parameters())
        before = {id(t) for t in self.prefix_tensors.values()}
        return all(n in params and id(params[n]) not in before for n in names)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.suffix(*self.prefix(x))


def split_at_site(model: nn.Module, site: EditSite | int | str) -> SiteSplit:
    """Cut ``model`` at ``site`` (see the module docstring); raises :class:`SplitError` when it cannot.

    Example:
        >>> split = split_at_site(lm.model, "layer3.0")
        >>> crossing = split.prefix(x)                 # key, skip input, ...
        >>> torch.allclose(split.suffix(*crossing), lm.model(x), atol=1e-5)
        True
    """
    site = get_site(model, site)
    root = _Root(model)
    was_training = model.training
    model.eval()
    try:
        graph = _SiteTracer(_ancestors(site.layer)).trace(root)
    except Exception as exc:  # fx raises many kinds of errors on untraceable code
        raise SplitError(f"torch.fx cannot trace {type(model).__name__} around {site.layer}: {exc}") from exc
    finally:
        model.train(was_training)
    nodes = list(graph.nodes)
    cut = [n for n in nodes if n.op == "call_module" and n.target == _ROOT + site.layer]
    if len(cut) != 1:
        raise SplitError(f"{site.layer} is called {len(cut)} times in the traced {type(model).__name__}; need exactly once")
    out_node = next(n for n in nodes if n.op == "output")

    after: set[fx.Node] = set()                         # everything the site's layer output reaches
    stack = [cut[0]]
    while stack:
        n = stack.pop()
        if n not in after:
            after.add(n)
            stack.extend(n.users)
    if out_node not in after:
        raise SplitError(f"the output of {type(model).__name__} does not depend on {site.layer}")

    batch: set[fx.Node] = set()                         # depends on the input images
    for n in nodes:
        if n.op == "placeholder" or any(a in batch for a in n.all_input_nodes):
            batch.add(n)

    # the suffix: the site's descendants, plus the input-independent nodes they use (parameter reads and
    # transforms: recomputed per call, so they follow the live weights and are never cached)
    suffix_set = set(after)
    stack = [a for n in after for a in n.all_input_nodes]
    while stack:
        n = stack.pop()
        if n in suffix_set or n in batch:
            continue
        suffix_set.add(n)
        stack.extend(n.all_input_nodes)
    crossing: list[fx.Node] = []
    for n in nodes:
        if n in suffix_set:
            for a in n.all_input_nodes:
                if a not in suffix_set and a not in crossing:
                    crossing.append(a)
    prefix_set: set[fx.Node] = set()
    stack = list(crossing)
    while stack:
        n = stack.pop()
        if n not in prefix_set:
            prefix_set.add(n)
            stack.extend(n.all_input_nodes)

    pg = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in nodes:
        if n.op == "placeholder" or (n in prefix_set and n.op != "output"):
            env[n] = pg.node_copy(n, lambda a: env[a])
    pg.output(tuple(env[c] for c in crossing))
    sg = fx.Graph()
    senv: dict[fx.Node, fx.Node] = {}
    for c in crossing:
        senv[c] = sg.placeholder(c.name.removeprefix("model_"))
    for n in nodes:
        if n in suffix_set:
            senv[n] = sg.node_copy(n, lambda a: senv[a])
    for g in (pg, sg):
        g.lint()

    def targets(g: fx.Graph) -> list[str]:
        return sorted({str(n.target) for n in g.nodes if n.op in ("call_module", "get_attr")})

    return SiteSplit(root, site, pg, sg, [senv[c].name for c in crossing], targets(pg), targets(sg))


# ---------------------------------------------------------------------------------------------
# fine-tuning: the trainable suffix only


def suffix_forward(model: nn.Module, site: EditSite | int | str, x: torch.Tensor,
                   trainable: Sequence[str]) -> Callable[[], torch.Tensor]:
    """A zero-argument function giving ``model(x)`` with gradients for the parameters ``trainable``,
    computing what enters ``site`` once (without gradients) and only the suffix per call.

    Falls back to the full forward pass when the model cannot be split there or when a trainable
    parameter is used before the cut. The model must be in eval mode while the function is used.

    Example:
        >>> forward = suffix_forward(model, site, x_prime, ["features.17.conv.2.weight"])
        >>> loss = F.cross_entropy(forward(), y); loss.backward()
    """
    site = get_site(model, site)
    try:
        split = split_at_site(model, site)
    except SplitError as exc:
        log.info("fine-tuning runs the whole network: %s", exc)
        return lambda: model(x)
    if not split.can_train(trainable):
        log.info("fine-tuning runs the whole network: a trained parameter is used before %s", site.layer)
        return lambda: model(x)
    with torch.no_grad():
        crossing = tuple(v.detach() if isinstance(v, torch.Tensor) else v for v in split.prefix(x))
        reference = model(x[:2])
    if not torch.allclose(split.suffix(*(_take(v, 2, len(x)) for v in crossing)).detach(), reference, rtol=1e-4, atol=1e-5):
        log.warning("the split at %s does not reproduce %s's forward pass; fine-tuning runs the whole network",
                    site.layer, type(model).__name__)
        return lambda: model(x)
    return lambda: split.suffix(*crossing)


def _take(v: Any, k: int, n: int) -> Any:
    """The first ``k`` rows of a batch-shaped value (tensors whose first dimension is the batch ``n``)."""
    return v[:k] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n else v


# ---------------------------------------------------------------------------------------------
# the evaluator and its cache


@dataclass
class SuffixCacheConfig(JsonConfig):
    """How the crossing tensors are kept.

    ``budget_mb``: memory on the model's device for cached tensors over all (image set, site) entries; beyond
    it, on a GPU, the least recently used entries move to host memory within the evaluator's ``host_budget_mb``
    (:class:`SuffixEvaluator`). On the CPU the device's memory is the host's, so there is no second tier
    (nothing is counted twice): least recently used entries are dropped. Beyond the memory tiers new chunks go to ``spill``:
    ``"disk"`` (files under ``cache_dir``, default a temporary folder removed with the evaluator) or
    ``"recompute"`` (the prefix runs again on every call for them). ``dtype``: ``"float32"`` (predictions identical to the full forward) or
    ``"float16"`` (half the memory; logits within about 1e-3, a near-tie can flip). ``batch_size``:
    images per prefix/suffix call.
    """

    budget_mb: float = 2048.0
    dtype: str = "float32"
    spill: str = "disk"
    cache_dir: str | None = None
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown cache dtype {self.dtype!r}; choose from {sorted(DTYPES)}")
        if self.spill not in SPILLS:
            raise ValueError(f"unknown spill policy {self.spill!r}; choose from {SPILLS}")
        if self.batch_size < 1 or self.budget_mb < 0:
            raise ValueError(f"batch_size must be positive and budget_mb non-negative, got {self.batch_size}, {self.budget_mb}")


@dataclass(frozen=True)
class ImageSet:
    """Images in [0, 1] (N, 3, H, W) and the identity the cache knows them by (their sha256 by default)."""

    x: torch.Tensor
    identity: str

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class _Host:
    """A chunk's values in host memory (the second tier; pinned when they go back to a CUDA device)."""

    values: tuple


@dataclass
class _Entry:
    prefix_hash: str
    chunks: dict[int, Any] = dataclasses.field(default_factory=dict)   # index -> values (device), _Host or Path (disk)
    dtypes: tuple = ()                                                  # the prefix's own dtypes, restored for the suffix


def _nbytes(values: Sequence[Any]) -> int:
    return sum(v.numel() * v.element_size() for v in values if isinstance(v, torch.Tensor))


def _restore(v: Any, dtype: torch.dtype | None) -> Any:
    """A fresh copy in the prefix's dtype (the suffix may write into its inputs; the cache must not change)."""
    if not isinstance(v, torch.Tensor):
        return v
    return v.to(dtype) if v.dtype != dtype else v.clone()


class SuffixEvaluator:
    """Predictions of ``model`` (as it currently is) on image sets, from cached site inputs.

    ``transform`` maps [0, 1] images to the model's input (e.g. ``LoadedModel.normalize``). See the module
    docstring; :attr:`stats` counts cache hits (device, host), prefix runs, disk reads and fallbacks.
    ``host_budget_mb``: the host tier beyond the device's ``config.budget_mb``: the least recently used entries
    move to host memory (pinned on CUDA, copied back without blocking) within this budget (0: no host tier).
    ``host_tier``: keep that tier; None (the default) keeps one exactly when the model's device is not the CPU.
    (The host budget is the machine's, not the computation's: it is not part of :class:`SuffixCacheConfig`,
    which results manifests record.)

    Example:
        >>> ev = SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(budget_mb=512, dtype="float16"))
        >>> logits = ev.logits(ev.image_set(x01), site)
    """

    def __init__(self, model: nn.Module, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 config: SuffixCacheConfig | None = None, precision: str | None = None, host_budget_mb: float = HOST_BUDGET_MB,
                 host_tier: bool | None = None) -> None:
        """``precision``: autocast of the prediction passes (fp32, bf16, fp16), as ``LoadedModel.precision``; None:
        the command's ``--precision`` (:func:`modeledit.device.current_runtime`), else fp32."""
        self.model = model
        self.transform = transform
        from modeledit.device import runtime_batch_size

        self.config = config or SuffixCacheConfig()
        self.batch_size = runtime_batch_size(self.config.batch_size)   # the command's --batch-size, where given
        self.precision = precision
        if host_budget_mb < 0:
            raise ValueError(f"host_budget_mb must be non-negative, got {host_budget_mb}")
        self.host_budget_mb = float(host_budget_mb)
        self.host_tier = host_tier
        self._splits: dict[str, SiteSplit | None] = {}
        self._verified: set[str] = set()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._mem = 0
        self._host = 0
        self._dir: Path | None = None
        self._finalizer: Any = None
        self.stats = {"chunks_cached": 0, "chunks_to_host": 0, "chunks_spilled": 0, "chunks_from_memory": 0, "chunks_from_host": 0,
                      "chunks_from_disk": 0, "chunks_recomputed": 0, "prefix_runs": 0, "invalidations": 0, "fallbacks": 0}

    # -- image sets and sites

    def image_set(self, x01: torch.Tensor, identity: str | None = None) -> ImageSet:
        """Wrap images for repeated use; ``identity`` (any string naming exactly these images) skips hashing."""
        if x01.dim() != 4:
            raise ValueError(f"expected images (N, 3, H, W), got shape {tuple(x01.shape)}")
        return ImageSet(x01, identity or tensor_hash(x01))

    def split(self, site: EditSite | int | str) -> SiteSplit | None:
        """The model split at ``site``, or None when it cannot be split (full forward then)."""
        site = get_site(self.model, site)
        if site.name not in self._splits:
            try:
                self._splits[site.name] = split_at_site(self.model, site)
            except SplitError as exc:
                log.warning("evaluating from the full forward at %s: %s", site.name, exc)
                self._splits[site.name] = None
        sp = self._splits[site.name]
        if sp is not None:
            sp.refresh()
        return sp

    @property
    def memory_bytes(self) -> int:
        """Bytes of cached tensors held in the model's device memory."""
        return self._mem

    @property
    def host_bytes(self) -> int:
        """Bytes of cached tensors held in the host tier (0 without one)."""
        return self._host

    def has_host_tier(self) -> bool:
        """Whether entries beyond the device's budget move to host memory (see ``host_tier``)."""
        on = self.host_tier if self.host_tier is not None else self._device().type != "cpu"
        return bool(on) and self.host_budget_mb > 0

    def disk_bytes(self) -> int:
        """Bytes of cached tensors spilled to disk."""
        return sum(p.stat().st_size for e in self._entries.values() for p in e.chunks.values() if isinstance(p, Path))

    # -- predictions

    def logits(self, images: ImageSet | torch.Tensor, site: EditSite | int | str) -> torch.Tensor:
        """Logits (N, classes) of the model as it is now, computed from the inputs of ``site`` on."""
        if not isinstance(images, ImageSet):
            images = self.image_set(images)
        site = get_site(self.model, site)
        outs = [o.float() for o in self._run(images, site)]
        return torch.cat(outs) if outs else torch.zeros(0, device=images.x.device)

    def predict(self, images: ImageSet | torch.Tensor, site: EditSite | int | str) -> torch.Tensor:
        """Arg-max class per image (N,), on the CPU."""
        if not isinstance(images, ImageSet):
            images = self.image_set(images)
        site = get_site(self.model, site)
        outs = [o.argmax(-1).cpu() for o in self._run(images, site)]
        return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.long, device="cpu")

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _input(self, x01: torch.Tensor) -> torch.Tensor:
        x = x01.to(self._device())
        return self.transform(x) if self.transform is not None else x

    def _run(self, images: ImageSet, site: EditSite) -> list[torch.Tensor]:
        was_training = self.model.training
        self.model.eval()
        try:
            from modeledit.device import autocast, current_runtime

            rt = current_runtime()
            precision = self.precision or (rt.precision if rt is not None else "fp32")
            with torch.inference_mode(), autocast(precision, self._device()):
                return self._run_eval(images, site)
        finally:
            self.model.train(was_training)

    def _run_eval(self, images: ImageSet, site: EditSite) -> list[torch.Tensor]:
        bs = self.batch_size
        starts = range(0, len(images), bs)
        split = self.split(site)
        if split is not None and site.name not in self._verified and len(images):
            split = self._verify(split, images.x[:2])
        if split is None:
            self.stats["fallbacks"] += 1
            return [self.model(self._input(images.x[s:s + bs])) for s in starts]
        key = (images.identity, site.name)
        h = split.prefix_hash()
        entry = self._entries.get(key)
        if entry is not None and entry.prefix_hash != h:
            self.stats["invalidations"] += 1
            self._drop(key)
            entry = None
        if entry is None:
            entry = self._entries[key] = _Entry(h)
        self._entries.move_to_end(key)
        outs = []
        for i, s in enumerate(starts):
            values = self._chunk(entry, key, i, split, images.x[s:s + bs])
            outs.append(split.suffix(*(_restore(v, d) for v, d in zip(values, entry.dtypes))))
        return outs

    def _chunk(self, entry: _Entry, key: tuple[str, str], i: int, split: SiteSplit, x01: torch.Tensor) -> tuple:
        stored = entry.chunks.get(i)
        if isinstance(stored, Path):
            self.stats["chunks_from_disk"] += 1
            return tuple(v.to(self._device()) if isinstance(v, torch.Tensor) else v
                         for v in torch.load(str(stored), weights_only=True))
        if isinstance(stored, _Host):
            self.stats["chunks_from_host"] += 1
            return self._from_host(stored.values)
        if stored is not None:
            self.stats["chunks_from_memory"] += 1
            return stored
        self.stats["prefix_runs"] += 1
        raw = split.prefix(self._input(x01))
        entry.dtypes = tuple(v.dtype if isinstance(v, torch.Tensor) else None for v in raw)
        dt = DTYPES[self.config.dtype]
        values = tuple(v.to(dt).contiguous() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in raw)
        nbytes = _nbytes(values)
        budget = self.config.budget_mb * 2**20
        host = self.has_host_tier()
        for other in [k for k in self._entries if k != key]:      # least recently used first
            if self._mem + nbytes <= budget:
                break
            if host:
                self._demote(other)    # its device chunks to the host tier (as far as it has room), the rest dropped
            else:
                self._drop(other)
        if self._mem + nbytes <= budget:
            entry.chunks[i] = values
            self._mem += nbytes
            self.stats["chunks_cached"] += 1
        elif host and self._host_room(nbytes, key):
            entry.chunks[i] = _Host(self._to_host(values))
            self._host += nbytes
            self.stats["chunks_to_host"] += 1
        elif self.config.spill == "disk":
            path = self._spill_dir() / f"{uuid.uuid4().hex}.pt"
            torch.save(tuple(v.cpu() if isinstance(v, torch.Tensor) else v for v in values), str(path))
            entry.chunks[i] = path
            self.stats["chunks_spilled"] += 1
        else:
            self.stats["chunks_recomputed"] += 1
        return values

    def _verify(self, split: SiteSplit, x01: torch.Tensor) -> SiteSplit | None:
        """Once per site: the suffix on the prefix's values must reproduce the full forward pass."""
        x = self._input(x01)
        with torch.autocast(x.device.type, enabled=False):   # the split must reproduce the full forward in full precision
            full, part = self.model(x), split(x)
        self._verified.add(split.site.name)
        if part.shape == full.shape and torch.allclose(part, full, rtol=1e-4, atol=1e-5):
            return split
        log.warning("the split of %s at %s does not reproduce its forward pass; evaluating with the full forward there",
                    type(self.model).__name__, split.site.layer)
        self._splits[split.site.name] = None
        return None

    # -- storage

    def _spill_dir(self) -> Path:
        if self._dir is None:
            if self.config.cache_dir:
                base = Path(self.config.cache_dir)
                base.mkdir(parents=True, exist_ok=True)
                self._dir = Path(tempfile.mkdtemp(prefix=f"suffix-{os.getpid()}-", dir=base))
            else:
                self._dir = Path(tempfile.mkdtemp(prefix="modeledit-suffix-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        return self._dir

    def _pinned(self) -> bool:
        return self._device().type == "cuda" and torch.cuda.is_available()

    def _to_host(self, values: tuple) -> tuple:
        """The values in host memory: pinned for a CUDA device (so they go back without blocking); values already
        in unpinned host memory (a CPU model) stay as they are."""
        pin = self._pinned()

        def host(v: Any) -> Any:
            if not isinstance(v, torch.Tensor) or (v.device.type == "cpu" and not pin):
                return v
            out = torch.empty(v.shape, dtype=v.dtype, device="cpu", pin_memory=pin)
            return out.copy_(v)

        return tuple(host(v) for v in values)

    def _from_host(self, values: tuple) -> tuple:
        """The host tier's values on the model's device (a non-blocking copy from pinned memory)."""
        dev = self._device()
        return tuple(v.to(dev, non_blocking=v.is_pinned()) if isinstance(v, torch.Tensor) else v for v in values)

    def _host_room(self, nbytes: int, key: tuple[str, str]) -> bool:
        """Make room for ``nbytes`` in the host tier by dropping the host chunks of entries used before ``key``
        (least recently used first); whether they fit."""
        budget = self.host_budget_mb * 2**20
        for other, entry in self._entries.items():
            if self._host + nbytes <= budget or other == key:
                break
            for i, v in list(entry.chunks.items()):
                if isinstance(v, _Host):
                    del entry.chunks[i]
                    self._host -= _nbytes(v.values)
        return self._host + nbytes <= budget

    def _demote(self, key: tuple[str, str]) -> None:
        """Move an entry's device chunks to the host tier where it has room; drop the others (recomputed on use)."""
        entry = self._entries[key]
        for i, v in list(entry.chunks.items()):
            if isinstance(v, (Path, _Host)):
                continue
            n = _nbytes(v)
            self._mem -= n
            if self._host_room(n, key):
                entry.chunks[i] = _Host(self._to_host(v))
                self._host += n
                self.stats["chunks_to_host"] += 1
            else:
                del entry.chunks[i]

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for v in entry.chunks.values():
            if isinstance(v, Path):
                v.unlink(missing_ok=True)
            elif isinstance(v, _Host):
                self._host -= _nbytes(v.values)
            else:
                self._mem -= _nbytes(v)

    def clear(self) -> None:
        """Drop every cached tensor (device, host and disk)."""
        for key in list(self._entries):
            self._drop(key)

    def close(self) -> None:
        """Drop the cache and remove its spill folder."""
        self.clear()
        if self._finalizer is not None:
            self._finalizer()
            self._dir = self._finalizer = None

    def __enter__(self) -> "SuffixEvaluator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
