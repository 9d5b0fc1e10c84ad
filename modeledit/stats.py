"""Second-moment statistics of a site's keys (the ``layer_stats`` step): C = sum over keys of k kᵀ.

For conv sites every spatial position gives one key in input-channel space (tokens for ViT sites).
The sum streams over a DataLoader, per batch in float32 and accumulated in float64, in O(d²) memory
whatever the dataset size, with a progress bar. Results are cached as safetensors under a key that
hashes the model's weights (every parameter and buffer), the site and the dataset's identity, so a
changed model or dataset never reuses a stale file. A cache file that cannot be read (or whose tensor
does not match its checksum) is reported in one warning and recomputed; a cache folder that cannot be
written is reported in one warning and the statistics are returned uncached.

For real use C comes from a large dataset (the paper uses ImageNet validation images); tests use a
few scikit-image photos with crops and flips.

Example:
    >>> data = ImageFolder("val_images/", size=224)      # modeledit.image_folder
    >>> st = second_moment(lm.model, site, DataLoader(data, batch_size=32), dataset_id=data.identity, transform=lm.normalize)
    >>> c = st.regularized()            # (d, d) float64, ridge added when ill-conditioned
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from modeledit.atomic import atomic_path
from modeledit.layers import EditSite, capture, get_site
from modeledit.provenance import model_hash

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch threads, restoring the caller's count after (torch's thread count is
    process-wide state: a function that changed it for good would change every later computation's
    numerics, e.g. a training resumed in the same process)."""
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run dense eigendecompositions on one thread (restored after): on a busy 2-core machine LAPACK's
    threaded ``eigh`` of a 960 x 960 matrix measured 15 s against 0.18 s single-threaded."""
    with torch_threads(1):
        yield


def cache_root() -> Path:
    """``$MODELEDIT_CACHE`` or ``~/.cache/modeledit``."""
    return Path(os.environ.get("MODELEDIT_CACHE") or Path.home() / ".cache" / "modeledit")


@dataclass
class SecondMoment:
    """C = ``total`` (sum of k kᵀ, float64, (d, d)) over ``count`` keys at ``site``."""

    site: str
    total: torch.Tensor
    count: int
    model_hash: str = ""
    dataset_id: str = ""

    @property
    def mean(self) -> torch.Tensor:
        """E[k kᵀ] = C / count."""
        return self.total / max(self.count, 1)

    def regularized(self, ridge: float = 1e-4, max_condition: float = 1e6) -> torch.Tensor:
        """E[k kᵀ] + λI (float64). λ = ``ridge`` x mean eigenvalue, raised (with a warning) until the
        condition number is at most ``max_condition`` when C is singular or ill-conditioned."""
        c = self.mean
        d = c.shape[0]
        c = 0.5 * (c + c.T)
        with single_threaded():
            eig = torch.linalg.eigvalsh(c)
        top = float(eig[-1].clamp_min(0))
        if top <= 0 or not torch.isfinite(eig).all():
            warnings.warn(f"statistics at {self.site} are zero or not finite; using the identity instead", RuntimeWarning, stacklevel=2)
            return torch.eye(d, dtype=torch.float64, device=c.device)
        lam = ridge * float(eig.clamp_min(0).mean())
        low = float(eig[0])
        if low + lam <= 0 or (top + lam) / (low + lam) > max_condition:
            lam = max(lam, top / max_condition - low, 0.0)
            warnings.warn(
                f"second moment at {self.site} is ill-conditioned (eigenvalues {low:.3g}..{top:.3g}, {self.count} keys for "
                f"d={d}); regularising with ridge {lam:.3g}. Use more images for better statistics.",
                RuntimeWarning,
                stacklevel=2,
            )
        return c + lam * torch.eye(d, dtype=c.dtype, device=c.device)

    def save(self, path: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        total = self.total.detach().cpu().contiguous()
        meta = {"site": self.site, "count": str(self.count), "model_hash": self.model_hash, "dataset_id": self.dataset_id,
                "format": str(CACHE_FORMAT), "sha256": _tensor_digest(total)}
        with atomic_path(path) as tmp:
            save_file({"total": total}, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SecondMoment":
        """Read a saved C; ValueError when its tensor does not match the checksum it was saved with."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            total = f.get_tensor("total")
        if meta.get("sha256") and meta["sha256"] != _tensor_digest(total):
            raise ValueError("the stored tensor does not match its checksum")
        return cls(site=meta.get("site", ""), total=total, count=int(meta.get("count", 0)),
                   model_hash=meta.get("model_hash", ""), dataset_id=meta.get("dataset_id", ""))

    @classmethod
    def load_for(cls, path: str | os.PathLike, model: Any, site: Any) -> "SecondMoment":
        """A saved C (:meth:`save`, or the cache file ``modeledit stats`` prints) checked against the weights and
        the site it is used for: anything else is refused (ValueError) before it can shape an edit."""
        how = "give a file saved by SecondMoment.save (the cache file `modeledit stats` prints)"
        if not Path(path).is_file():
            raise FileNotFoundError(f"statistics file {str(path)!r} does not exist; {how}")
        try:
            st = cls.load(path)
        except Exception as exc:   # noqa: BLE001 - safetensors reports a foreign file in several ways
            raise ValueError(f"{str(path)!r} is not a statistics file ({_one_line(exc)}); {how}") from None
        site = get_site(model, site)
        if st.site != site.name or tuple(st.total.shape) != (site.key_channels, site.key_channels):
            raise ValueError(f"statistics file {str(path)!r} holds site {st.site!r}, not {site.name!r}; compute them at this site with `modeledit stats`")
        if st.model_hash and st.model_hash != model_hash(model):
            raise ValueError(f"statistics file {str(path)!r} was computed on other weights than this model's; recompute them with `modeledit stats`")
        return st


def _tensor_digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


def _load_cached(path: Path, digest: str, dataset_id: str, site: EditSite) -> SecondMoment | None:
    """The cached C at ``path`` if it is there, readable and for this (weights, dataset, site); None otherwise."""
    from safetensors import SafetensorError

    try:
        if not path.is_file():
            return None
        st = SecondMoment.load(path)
        d = site.key_channels
        if tuple(st.total.shape) != (d, d) or st.total.dtype != torch.float64 or st.count <= 0:
            raise ValueError(f"it holds a {tuple(st.total.shape)} {st.total.dtype} sum over {st.count} keys, not ({d}, {d}) float64")
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        log.warning("statistics cache %s is corrupt or unreadable (%s); recomputing", path, _one_line(exc))
        return None
    if st.model_hash == digest and st.dataset_id == dataset_id and st.site == site.name:
        return st
    return None


def cache_path(model_digest: str, site: EditSite, dataset_id: str, root: str | os.PathLike | None = None) -> Path:
    """Where the statistics of (weights, site, dataset) live; any change of the three changes the file."""
    h = hashlib.sha256(json.dumps([CACHE_FORMAT, model_digest, site.name, site.layer, dataset_id]).encode()).hexdigest()
    return Path(root or cache_root()) / "stats" / f"{site.name.replace('/', '_')}-{h[:24]}.safetensors"


def _batches(data: Iterable[Any]) -> Iterable[torch.Tensor]:
    for b in data:
        if isinstance(b, (tuple, list)):
            b = b[0]
        if isinstance(b, dict):
            b = b.get("image", b.get("x"))
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"statistics batches must be image tensors (or (image, label) pairs), got {type(b).__name__}")
        yield b


def second_moment(
    model: Any,
    site: EditSite,
    data: Iterable[Any],
    dataset_id: str | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> SecondMoment:
    """Stream C = Σ k kᵀ over the keys ``data`` produces at ``site``.

    ``model`` is a :class:`~modeledit.models.LoadedModel` and ``data`` yields batches (or (image, label)
    pairs) of [0, 1] images (a map-style dataset of single images is batched), normalised with the model's statistics; with a bare ``nn.Module`` the
    batches are fed as they are unless ``transform`` maps them to its input space. With a ``dataset_id`` (a string that changes whenever the
    data does, e.g. :attr:`modeledit.image_folder.ImageFolder.identity`) the result is cached on disk; without one it is not.

    Example:
        >>> st = second_moment(lm, site, loader, dataset_id="imagenet-val")
    """
    from safetensors import SafetensorError

    from modeledit.models import LoadedModel
    from modeledit.progress import tqdm

    images01 = isinstance(model, LoadedModel)        # batches of [0, 1] images: checked (0-255 or NaN gave a wrong C)
    if images01:
        transform = transform or model.normalize
        model = model.model
    site = get_site(model, site)
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        data = torch.utils.data.DataLoader(data, batch_size=32)   # a dataset of single images: batch it

    digest = model_hash(model)
    path = cache_path(digest, site, dataset_id, cache_dir) if (cache and dataset_id) else None
    if path is not None and (st := _load_cached(path, digest, dataset_id, site)) is not None:
        log.info("statistics for %s from cache %s", site.name, path)
        return st
    dev = next(model.parameters()).device
    d = site.key_channels
    total = torch.zeros(d, d, dtype=torch.float64, device=dev)
    count = 0
    total_len = len(data) if hasattr(data, "__len__") else None
    with capture(model, [site], stop_after=True) as rec:
        for batch in tqdm(_batches(data), total=total_len, desc=f"stats {site.name}", disable=not progress, leave=False):
            batch = batch.to(dev)
            if images01:
                from modeledit.images import check_batch01

                batch = check_batch01(batch, "statistics images", allow_empty=True)
            if transform is not None:
                batch = transform(batch)
            rec.run(batch)  # the forward pass stops once the site is reached
            k = rec.keys[site.name].transpose(0, 1).reshape(d, -1)   # (d, keys): one key per position
            total += (k @ k.T).double()
            count += k.shape[1]
    if count == 0:
        raise ValueError("the statistics dataset produced no images; check the folder or loader")
    st = SecondMoment(site=site.name, total=total.cpu(), count=count, model_hash=digest, dataset_id=dataset_id or "")
    if path is not None:
        try:
            st.save(path)
            log.info("statistics for %s cached at %s", site.name, path)
        except (OSError, SafetensorError) as exc:   # safetensors reports I/O errors as SafetensorError
            log.warning("cannot write the statistics cache under %s (%s); continuing without caching", path.parent, _one_line(exc))
    return st
