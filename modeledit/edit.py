"""The ``Edit`` value: what any editing method (rank-one rewrite, local or global fine-tuning) returns.

An edit is a set of parameter changes, each stored in the smallest faithful form and applied by a
registered operation: ``lowrank`` (W + Λ dᵀ per kernel tap: factors ``lam`` (out, r, kh, kw) and
``dir`` (in, r)), ``delta`` (W + Δ) or ``replace`` (new values). Beside the tensors it records the
site(s), the method's config, package versions, metrics and a sha256 hash of every base parameter
it was computed on.

* :meth:`Edit.apply` changes the model in place (refused on a different base unless ``force``),
  keeping a copy of the original tensors so :meth:`Edit.revert` restores them bit for bit.
* :meth:`Edit.applied` is a context manager for temporary use.
* :class:`EditSequence` composes edits in order (each can be measured right after it is applied)
  and reverts them in reverse order.
* :meth:`Edit.save` / :meth:`Edit.load` write ``NAME.safetensors`` (tensors) + ``NAME.json`` (the rest).

Example:
    >>> edit = rewrite(lm.model, site, exemplars)           # or finetune(...)
    >>> with edit.applied(lm.model):
    ...     logits = lm.predict(x)
    >>> edit.save("snow_fix")                                # snow_fix.safetensors + snow_fix.json
    >>> Edit.load("snow_fix", model=lm.model).apply(lm.model)
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from modeledit.atomic import atomic_path, write_text_atomic
from modeledit.models import as_module
from modeledit.provenance import package_versions, tensor_hash

EDIT_FORMAT = 1


# ---------------------------------------------------------------------------------------------
# parameter-change operations (registry)


def _lowrank(base: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
    lam, d = t["lam"].to(base.device), t["dir"].to(base.device)
    delta = torch.einsum("orij,dr->odij", lam.to(torch.float32), d.to(torch.float32))
    return (base.to(torch.float32) + delta.reshape(base.shape)).to(base.dtype)


def _delta(base: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
    return (base + t["delta"].to(base.device, base.dtype)).to(base.dtype)


def _replace(base: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
    if t["value"].shape != base.shape:
        raise ValueError(f"replacement of shape {tuple(t['value'].shape)} does not fit a parameter of shape {tuple(base.shape)}")
    return t["value"].to(base.device, base.dtype).clone()


CHANGE_OPS: dict[str, Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]] = {
    "lowrank": _lowrank,
    "delta": _delta,
    "replace": _replace,
}


@dataclass
class ParamChange:
    """How one parameter changes: an operation name from :data:`CHANGE_OPS` and its tensors."""

    op: str
    tensors: dict[str, torch.Tensor]

    def new_value(self, base: torch.Tensor) -> torch.Tensor:
        if self.op not in CHANGE_OPS:
            raise KeyError(f"unknown parameter operation {self.op!r}; known: {sorted(CHANGE_OPS)}")
        return CHANGE_OPS[self.op](base, self.tensors)


def _params(model: nn.Module, names: Sequence[str]) -> dict[str, torch.nn.Parameter]:
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"the model has no parameter {missing[0]!r}; this edit was made for another architecture: apply it to "
                         "the model it was computed on")
    return {n: params[n] for n in names}


# ---------------------------------------------------------------------------------------------
# the edit


@dataclass
class Edit:
    """Parameter changes + provenance. Build with :func:`modeledit.editor.rewrite` or
    :func:`modeledit.finetuning.finetune`; see the module docstring for use."""

    method: str
    changes: dict[str, ParamChange]
    base_hashes: dict[str, str]
    sites: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    _backups: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        """One line: method, sites, the config's defining fields, the objective, the base weights' hash."""
        parts = [self.method, "sites=" + ",".join(self.sites) if self.sites else ""]
        keys = ["solver", "rank", "mode", "scope", "alpha", "lam"]
        if self.config.get("solver", "adam") == "adam":  # closed-form rewrites take no learning rate or steps
            keys += ["lr", "steps"]
        for k in keys:
            if k in self.config:
                parts.append(f"{k}={self.config[k]}")
        m = self.metrics
        if "objective_before" in m and "objective_after" in m:
            parts.append(f"objective {m['objective_before']:.4g}->{m['objective_after']:.4g}")
        kinds = sorted({c.op for c in self.changes.values()})
        parts.append(f"{len(self.changes)} param(s) [{','.join(kinds)}]")
        base = next(iter(self.base_hashes.values()), "")
        parts.append(f"base {base[:12]}" if base else "")
        return "Edit(" + ", ".join(p for p in parts if p) + ")"

    @classmethod
    def from_changes(cls, model: nn.Module, method: str, changes: dict[str, ParamChange], **kwargs: Any) -> "Edit":
        """An edit of ``model``'s current parameters (their hashes become the edit's base)."""
        params = _params(as_module(model), list(changes))
        return cls(method=method, changes=changes, base_hashes={n: tensor_hash(p) for n, p in params.items()}, **kwargs)

    # -- checking and computing

    def check_base(self, model: nn.Module) -> None:
        """Raise ValueError when the model's parameters are not the ones the edit was computed on."""
        for name, p in _params(as_module(model), list(self.changes)).items():
            h = tensor_hash(p)
            if h != self.base_hashes.get(name):
                raise ValueError(
                    f"this {self.method} edit was computed on a different base weight for {name!r} "
                    f"(sha256 {self.base_hashes.get(name, '?')[:12]} expected, {h[:12]} found); apply it to the model it was "
                    "made for, or pass force=True (--force on the command line)"
                )

    def new_values(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The edited parameter tensors, without changing the model."""
        model = as_module(model)
        return {n: self.changes[n].new_value(p.detach()) for n, p in _params(model, list(self.changes)).items()}

    def deltas(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """New minus current value, per changed parameter."""
        model = as_module(model)
        params = _params(model, list(self.changes))
        return {n: v - params[n].detach() for n, v in self.new_values(model).items()}

    # -- applying

    def is_applied(self, model: nn.Module) -> bool:
        return id(as_module(model)) in self._backups

    def apply(self, model: nn.Module, force: bool = False) -> "Edit":
        """Write the edit into ``model`` in place; returns the edit. Refuses a different base unless ``force``."""
        model = as_module(model)
        if self.is_applied(model):
            raise ValueError(f"this {self.method} edit is already applied to the model; revert it first")
        if not force:
            self.check_base(model)
        params = _params(model, list(self.changes))
        new = self.new_values(model)
        self._backups[id(model)] = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(new[n])
        return self

    def revert(self, model: nn.Module) -> None:
        """Restore every parameter the edit changed, bit for bit."""
        model = as_module(model)
        backup = self._backups.pop(id(model), None)
        if backup is None:
            raise ValueError(f"this {self.method} edit is not applied to the model; nothing to revert")
        params = _params(model, list(backup))
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(backup[n])

    @contextlib.contextmanager
    def applied(self, model: nn.Module, force: bool = False) -> Iterator[nn.Module]:
        """Apply for the duration of a ``with`` block; reverted on exit, also after an error."""
        model = as_module(model)
        self.apply(model, force=force)
        try:
            yield model
        finally:
            self.revert(model)

    # -- files

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": EDIT_FORMAT,
            "method": self.method,
            "sites": list(self.sites),
            "ops": {n: c.op for n, c in self.changes.items()},
            "base_hashes": dict(self.base_hashes),
            "config": self.config,
            "metrics": self.metrics,
            "versions": self.versions,
        }

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``PATH.safetensors`` and ``PATH.json`` (a ``.safetensors``/``.json`` suffix is dropped).

        Both are written atomically (see :mod:`modeledit.atomic`); an unwritable place raises ``OSError``
        naming the file."""
        from safetensors.torch import save

        st, js = edit_paths(path)
        tensors = {f"{n}::{k}": t.detach().cpu().contiguous() for n, c in self.changes.items() for k, t in c.tensors.items()}
        blob = save(tensors, metadata={"modeledit_edit": str(EDIT_FORMAT)})  # bytes: a bad place raises OSError naming it
        with atomic_path(st) as tmp:
            tmp.write_bytes(blob)
        write_text_atomic(js, json.dumps(self.to_dict(), indent=1, sort_keys=True))
        return st, js

    @classmethod
    def load(cls, path: str | os.PathLike, model: nn.Module | None = None, force: bool = False) -> "Edit":
        """Read an edit; with ``model``, refuse (ValueError) a model whose base weights differ unless ``force``."""
        from safetensors.torch import load_file

        st, js = edit_paths(path)
        for p in (st, js):
            if not p.is_file():
                raise FileNotFoundError(f"edit file {str(p)!r} does not exist; pass the path given to Edit.save")
        try:
            meta = json.loads(js.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"edit file {str(js)!r} is not valid JSON ({exc}); it is truncated or corrupt: save the edit again") from None
        missing = [k for k in ("method", "ops", "base_hashes") if not isinstance(meta, dict) or k not in meta]
        if missing:
            raise ValueError(f"edit file {str(js)!r} lacks {missing}: it is not a modeledit edit (write edits with Edit.save "
                             "or `modeledit edit --out`)")
        try:
            flat = load_file(str(st))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for any bad file
            raise ValueError(f"edit tensors {str(st)!r} cannot be read ({exc}); the file is truncated or corrupt: save the edit again") from None
        changes: dict[str, ParamChange] = {n: ParamChange(op, {}) for n, op in meta["ops"].items()}
        for key, t in flat.items():
            n, _, k = key.rpartition("::")
            if n not in changes:
                raise ValueError(f"edit tensors {str(st)!r} hold {key!r}, which {str(js)!r} does not list; the two files belong "
                                 "to different edits: keep NAME.safetensors and NAME.json of one save together")
            changes[n].tensors[k] = t
        empty = [n for n, c in changes.items() if not c.tensors]
        if empty:
            raise ValueError(f"edit tensors {str(st)!r} hold nothing for {empty[0]!r}; the two files belong to different edits")
        edit = cls(method=meta["method"], changes=changes, base_hashes=meta["base_hashes"], sites=meta.get("sites", []),
                   config=meta.get("config", {}), metrics=meta.get("metrics", {}), versions=meta.get("versions", {}))
        if model is not None and not force:
            edit.check_base(model)
        return edit


def edit_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


class EditSequence:
    """Edits applied one after another (each computed on the model the previous ones left).

    Example:
        >>> seq = EditSequence([e1, e2])
        >>> for i, e in seq.steps(model):        # measure after each edit
        ...     acc[i] = evaluate(model)
        >>> seq.revert(model)                    # every parameter back, bit for bit
    """

    def __init__(self, edits: Sequence[Edit] = ()) -> None:
        self.edits = list(edits)
        self._applied: dict[int, int] = {}

    def append(self, edit: Edit) -> None:
        self.edits.append(edit)

    def steps(self, model: nn.Module, force: bool = False) -> Iterator[tuple[int, Edit]]:
        """Apply the edits in order, yielding after each one (the model then carries edits 0..i)."""
        model = as_module(model)
        done = self._applied.get(id(model), 0)
        for i in range(done, len(self.edits)):
            self.edits[i].apply(model, force=force)
            self._applied[id(model)] = i + 1
            yield i, self.edits[i]

    def apply(self, model: nn.Module, force: bool = False) -> "EditSequence":
        model = as_module(model)
        for _ in self.steps(model, force=force):
            pass
        return self

    def revert(self, model: nn.Module) -> None:
        model = as_module(model)
        n = self._applied.pop(id(model), 0)
        for e in reversed(self.edits[:n]):
            e.revert(model)

    @contextlib.contextmanager
    def applied(self, model: nn.Module, force: bool = False) -> Iterator[nn.Module]:
        model = as_module(model)
        try:
            self.apply(model, force=force)
            yield model
        finally:
            self.revert(model)
