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

An edit file is verified before anything is applied (:meth:`Edit.load`, and the ``apply`` command): the
format version (a known one), sha256 digests of the tensors file and of the JSON record (format 2; a
format-1 file has none and is read with a warning), every field's type, the method (a registered name,
:data:`EDIT_METHODS`), the operations (:data:`CHANGE_OPS`) and the tensors each one needs, the sites
against the parameters changed, the tensor names against the JSON, finiteness (no NaN/Inf), and, with a
model, the shapes against its parameters, the base weights' hashes (unless forced), and the applied values:
finite, and no parameter moved by more than :data:`MAX_CHANGE_RATIO` times its own norm. Anything wrong is
one ``ValueError`` sentence and the model is untouched; :meth:`Edit.apply` runs the same checks on edits
made in Python.

Example:
    >>> edit = rewrite(lm.model, site, exemplars)           # or finetune(...)
    >>> with edit.applied(lm.model):
    ...     logits = lm.predict(x)
    >>> edit.save("snow_fix")                                # snow_fix.safetensors + snow_fix.json
    >>> Edit.load("snow_fix", model=lm.model).apply(lm.model)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from modeledit.atomic import atomic_path, write_text_atomic
from modeledit.models import as_module
from modeledit.provenance import package_versions, tensor_hash, weights_record

log = logging.getLogger(__name__)

#: the format :meth:`Edit.save` writes: 2 adds sha256 digests of the tensors file and of the JSON record
EDIT_FORMAT = 2
#: the formats :meth:`Edit.load` reads (1: no digests, read with a warning)
READABLE_FORMATS = (1, 2)
#: an edit that moves a parameter by more than this many times the parameter's own norm is refused: no
#: rewrite or fine-tuning moves a weight that far, while a scaled or corrupted tensor does (the norm of a
#: near-zero parameter counts as at least ``MIN_PARAM_RMS`` per element)
MAX_CHANGE_RATIO = 1e6
MIN_PARAM_RMS = 1e-3
#: the top-level fields of an edit file's JSON record
RECORD_FIELDS = ("format", "method", "sites", "ops", "base_hashes", "config", "metrics", "versions", "weights", "digest")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
#: the tensors each operation takes, no more and no fewer
OP_TENSORS: dict[str, tuple[str, ...]] = {"lowrank": ("dir", "lam"), "delta": ("delta",), "replace": ("value",)}


def _lowrank_shape(t: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """The parameter shape factors ``lam`` (out, r, kh, kw) and ``dir`` (in, r) make: (out, in, kh, kw)."""
    lam, d = t["lam"], t["dir"]
    if lam.dim() != 4 or d.dim() != 2 or lam.shape[1] != d.shape[1] or lam.shape[1] < 1:
        raise ValueError(f"its lowrank factors do not fit each other (lam {tuple(lam.shape)}, dir {tuple(d.shape)}; expected "
                         "lam (out, r, kh, kw) and dir (in, r))")
    return (lam.shape[0], d.shape[0], lam.shape[2], lam.shape[3])


def _fits(op: str, t: dict[str, torch.Tensor], shape: tuple[int, ...]) -> bool:
    if op == "lowrank":
        o, i, kh, kw = _lowrank_shape(t)
        return shape == (o, i, kh, kw) or (len(shape) == 2 and shape == (o, i) and kh == kw == 1)
    return tuple(t[OP_TENSORS[op][0]].shape) == shape


@dataclass
class ParamChange:
    """How one parameter changes: an operation name from :data:`CHANGE_OPS` and its tensors."""

    op: str
    tensors: dict[str, torch.Tensor]

    def check(self, name: str) -> None:
        """ValueError (one sentence) unless the operation is known, has exactly its tensors, and they are
        finite floating-point tensors whose shapes fit each other."""
        if self.op not in CHANGE_OPS:
            raise ValueError(f"the change of {name!r} uses operation {self.op!r}, which is not one of {sorted(CHANGE_OPS)}")
        want = OP_TENSORS.get(self.op)
        if want is not None and tuple(sorted(self.tensors)) != tuple(sorted(want)):
            raise ValueError(f"the {self.op} change of {name!r} holds tensors {sorted(self.tensors)}, but the operation takes "
                             f"{sorted(want)}")
        for k, t in self.tensors.items():
            if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
                raise ValueError(f"tensor {k!r} of the change of {name!r} is not a floating-point tensor")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"tensor {k!r} of the change of {name!r} holds NaN or infinite values")
        if self.op == "lowrank":
            try:
                _lowrank_shape(self.tensors)
            except ValueError as exc:
                raise ValueError(f"the change of {name!r}: {exc}") from None

    def check_fits(self, name: str, base: torch.Tensor) -> None:
        """ValueError unless the change has the shape of the parameter ``base``."""
        self.check(name)
        if self.op in OP_TENSORS and not _fits(self.op, self.tensors, tuple(base.shape)):
            shapes = {k: tuple(t.shape) for k, t in sorted(self.tensors.items())}
            raise ValueError(f"the {self.op} change of {name!r} has shapes {shapes}, which do not fit the model's parameter of "
                             f"shape {tuple(base.shape)}; apply the edit to the model it was made for")

    def new_value(self, base: torch.Tensor) -> torch.Tensor:
        if self.op not in CHANGE_OPS:
            raise ValueError(f"unknown parameter operation {self.op!r}; known: {sorted(CHANGE_OPS)}")
        return CHANGE_OPS[self.op](base, self.tensors)


def check_new_value(name: str, base: torch.Tensor, new: torch.Tensor) -> None:
    """ValueError unless ``new`` is finite and within :data:`MAX_CHANGE_RATIO` times ``base``'s norm of it."""
    if not bool(torch.isfinite(new).all()):
        raise ValueError(f"applying the edit would put NaN or infinite values into {name!r}; the edit is corrupt: make it again")
    change = float((new.detach().double() - base.detach().double()).norm())
    scale = max(float(base.detach().double().norm()), MIN_PARAM_RMS * math.sqrt(max(1, base.numel())))
    if change > MAX_CHANGE_RATIO * scale:
        raise ValueError(f"applying the edit would move {name!r} by {change:.3g}, {change / scale:.3g} times the parameter's own "
                         f"norm (at most {MAX_CHANGE_RATIO:g} is accepted); the edit is corrupt or scaled: make it again")


#: the methods whose edits are saved and loaded; the core's own, and others registered by their packages
#: (:func:`register_edit_method`; the harnesses' method catalogue registers its names)
EDIT_METHODS: dict[str, str] = {
    "rewrite": "rank-r rewrite of one layer (modeledit.rewrite)",
    "rewrite_rules": "several rules rewritten in one solve at one layer (modeledit.rules.rewrite_rules)",
    "finetune_local": "fine-tuning of the site's layer", "finetune_global": "fine-tuning from the site to the output",
    "paint_local": "PAINT interpolation of a local fine-tuning", "paint_global": "PAINT interpolation of a global fine-tuning",
    "rrr_local": "right-for-the-right-reasons fine-tuning of the site's layer",
    "rrr_global": "right-for-the-right-reasons fine-tuning from the site to the output",
}


def register_edit_method(name: str, description: str = "") -> None:
    """Make edits whose ``method`` is ``name`` savable and loadable (a plug-in's own editing method)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an edit method needs a non-empty name, got {name!r}")
    EDIT_METHODS.setdefault(name, description)


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
    #: where the base model's weights came from (:func:`modeledit.provenance.weights_record`): "random" only if asked for
    weights: dict[str, str] = field(default_factory=dict)
    #: where the edit was computed (:meth:`from_changes`): the changed parameters' device, its name (the GPU's model or
    #: the processor) and dtype; always part of ``metrics`` (a method's own metrics of the same name keep their values)
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
        kwargs.setdefault("weights", weights_record(model))
        edit = cls(method=method, changes=changes, base_hashes={n: tensor_hash(p) for n, p in params.items()}, **kwargs)
        edit.metrics = {**_made_on(list(params.values())), **edit.metrics}   # where it was made; methods add theirs with update
        return edit

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

    def validate(self, record: bool = False) -> None:
        """ValueError (one sentence) unless the edit is well formed: at least one change, known operations
        with exactly their finite tensors, a base hash for every parameter, and sites that each own a changed
        parameter (a low-rank change lies under a site). ``record`` (saving, loading): also a registered
        method and at least one site."""
        if record and (not isinstance(self.method, str) or self.method not in EDIT_METHODS):
            raise ValueError(f"the edit's method {self.method!r} is not one modeledit knows ({', '.join(sorted(EDIT_METHODS))}); "
                             "register a plug-in's method with modeledit.edit.register_edit_method")
        if not self.changes:
            raise ValueError(f"this {self.method} edit changes no parameter")
        for name, change in self.changes.items():
            if not isinstance(change, ParamChange):
                raise ValueError(f"the change of {name!r} is not a ParamChange")
            change.check(name)
        missing = sorted(set(self.changes) - set(self.base_hashes))
        if missing:
            raise ValueError(f"this {self.method} edit records no base hash for {missing[0]!r}")
        if (record or self.sites) and not (self.sites and all(isinstance(x, str) and x for x in self.sites)):
            raise ValueError(f"this {self.method} edit names no site (sites {self.sites!r})")
        for site in self.sites:
            if not any(n.startswith(site + ".") for n in self.changes):
                raise ValueError(f"this {self.method} edit names site {site!r} but changes no parameter of it (it changes "
                                 f"{sorted(self.changes)[:3]}); its sites and its tensors disagree")
        for name, change in self.changes.items():
            if self.sites and change.op == "lowrank" and not any(name.startswith(site + ".") for site in self.sites):
                raise ValueError(f"this {self.method} edit rewrites {name!r}, which lies under none of its sites {self.sites}")

    def checked_values(self, model: nn.Module, force: bool = False) -> dict[str, torch.Tensor]:
        """The edited parameter tensors after every check (:meth:`validate`; the shapes against ``model``'s
        parameters; the base hashes unless ``force``; finite new values within :data:`MAX_CHANGE_RATIO`);
        the model is not changed."""
        model = as_module(model)
        self.validate()
        params = _params(model, list(self.changes))
        for name, p in params.items():
            self.changes[name].check_fits(name, p)
        if not force:
            self.check_base(model)
        new = {n: self.changes[n].new_value(p.detach()) for n, p in params.items()}
        for name, p in params.items():
            check_new_value(name, p, new[name])
        return new

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
        """Write the edit into ``model`` in place; returns the edit. Refuses a different base unless ``force``,
        and a malformed, non-finite or absurdly large edit always (:meth:`checked_values`), before any change."""
        model = as_module(model)
        if self.is_applied(model):
            raise ValueError(f"this {self.method} edit is already applied to the model; revert it first")
        new = self.checked_values(model, force=force)   # every check before the model is touched
        params = _params(model, list(self.changes))
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
            "format": EDIT_FORMAT,  # save() adds the digest
            "method": self.method,
            "sites": list(self.sites),
            "ops": {n: c.op for n, c in self.changes.items()},
            "base_hashes": dict(self.base_hashes),
            "config": self.config,
            "metrics": self.metrics,
            "versions": self.versions,
            "weights": self.weights,
        }

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``PATH.safetensors`` and ``PATH.json`` (a ``.safetensors``/``.json`` suffix is dropped); the
        JSON records sha256 digests of the tensors file and of itself, which :meth:`load` checks.

        Both are written atomically (see :mod:`modeledit.atomic`); an unwritable place raises ``OSError``
        naming the file. A malformed or non-finite edit is refused (:meth:`validate`)."""
        from safetensors.torch import save

        self.validate(record=True)
        st, js = edit_paths(path)
        tensors = {f"{n}::{k}": t.detach().cpu().contiguous() for n, c in self.changes.items() for k, t in c.tensors.items()}
        blob = save(tensors, metadata={"modeledit_edit": str(EDIT_FORMAT)})  # bytes: a bad place raises OSError naming it
        record = self.to_dict()
        record["digest"] = {"tensors": hashlib.sha256(blob).hexdigest(), "record": _record_digest(record)}
        text = json.dumps(record, indent=1, sort_keys=True)
        with atomic_path(st) as tmp:
            tmp.write_bytes(blob)
        write_text_atomic(js, text)
        return st, js

    @classmethod
    def load(cls, path: str | os.PathLike, model: nn.Module | None = None, force: bool = False) -> "Edit":
        """Read an edit, verified (module docstring); with ``model``, also against the model (shapes, base
        weights unless ``force``, the applied values). Anything wrong raises one ``ValueError`` sentence.

        Example:
            >>> edit = Edit.load("snow_fix", model=lm)      # refused if tampered, corrupt or for another model
        """
        from safetensors.torch import load as load_bytes

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
        _check_record(meta, js)
        blob = st.read_bytes()
        try:
            flat = load_bytes(blob)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for any bad file
            raise ValueError(f"edit tensors {str(st)!r} cannot be read ({exc}); the file is truncated or corrupt: save the edit again") from None
        if "digest" in meta and hashlib.sha256(blob).hexdigest() != meta["digest"]["tensors"]:
            raise ValueError(f"edit tensors {str(st)!r} do not match the digest {str(js)!r} records; the tensors were changed after "
                             "the edit was saved, or the two files belong to different edits: save the edit again")
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
                   config=meta.get("config", {}), metrics=meta.get("metrics", {}), versions=meta.get("versions", {}),
                   weights=meta.get("weights", {}))
        try:
            edit.validate(record=True)
            if model is not None:
                edit.checked_values(model, force=force)
        except ValueError as exc:
            raise ValueError(f"edit {str(js.with_suffix(''))!r}: {exc}") from None
        return edit


def _made_on(params: Sequence[torch.Tensor]) -> dict[str, str]:
    """Where an edit of ``params`` is computed: their device, its name, their dtype (the edit's precision)."""
    from modeledit.device import describe_device

    if not params:
        return {}
    p = params[0]
    return {"device": str(p.device), "device_name": describe_device(p.device), "dtype": str(p.dtype).removeprefix("torch.")}


def _record_digest(record: dict[str, Any]) -> str:
    """sha256 of an edit's JSON record without its digest field (canonical: sorted keys, no spaces)."""
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_record(meta: dict[str, Any], js: Path) -> None:
    """The JSON record of an edit file: its format, digest and the type of every field (ValueError, one sentence)."""
    where = f"edit file {str(js)!r}"
    fmt = meta.get("format")
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt not in READABLE_FORMATS:
        raise ValueError(f"{where} has format {fmt!r}, but this modeledit reads formats {list(READABLE_FORMATS)}; save the edit "
                         "again with this version (or upgrade modeledit)")
    unknown = sorted(set(meta) - set(RECORD_FIELDS))
    if unknown:
        raise ValueError(f"{where} holds unknown field(s) {unknown}; it was edited by hand or by another program: save the edit again")
    if fmt >= 2:
        d = meta.get("digest")
        if not (isinstance(d, dict) and set(d) == {"tensors", "record"} and all(isinstance(v, str) and _SHA256.fullmatch(v)
                                                                                 for v in d.values())):
            raise ValueError(f"{where} (format {fmt}) has no valid digest of its tensors and record; save the edit again")
    elif "digest" in meta:
        raise ValueError(f"{where} is format 1, which has no digest, yet holds one; the file was edited: save the edit again")
    else:
        log.warning("%s is format 1 and carries no digest, so changes to it cannot be detected; save it again to add one", where)
    if not isinstance(meta["method"], str) or meta["method"] not in EDIT_METHODS:
        raise ValueError(f"{where} names method {meta['method']!r}, which modeledit does not know ({', '.join(sorted(EDIT_METHODS))})")
    ops = meta["ops"]
    if not isinstance(ops, dict) or not ops or not all(isinstance(n, str) and n for n in ops):
        raise ValueError(f"{where} lists no parameter changes under 'ops'; save the edit again")
    bad = {n: op for n, op in ops.items() if op not in CHANGE_OPS}
    if bad:
        n, op = next(iter(bad.items()))
        raise ValueError(f"{where} changes {n!r} by operation {op!r}, which is not one of {sorted(CHANGE_OPS)}")
    hashes = meta["base_hashes"]
    if not (isinstance(hashes, dict) and set(hashes) == set(ops) and all(isinstance(h, str) and _SHA256.fullmatch(h) for h in hashes.values())):
        raise ValueError(f"{where} does not record one sha256 base hash for each changed parameter under 'base_hashes'; save the edit again")
    sites = meta.get("sites")
    if not (isinstance(sites, list) and sites and all(isinstance(x, str) and x for x in sites)):
        raise ValueError(f"{where} names no site under 'sites' (found {sites!r}); save the edit again")
    for site in sites:
        if not any(n.startswith(site + ".") for n in ops):
            raise ValueError(f"{where} names site {site!r}, but none of the parameters it changes ({sorted(ops)[:3]}) belongs to it; "
                             "its sites were edited: save the edit again")
    for key in ("config", "metrics", "versions", "weights"):
        if key in meta and not isinstance(meta[key], dict):
            raise ValueError(f"{where} has {key!r} of type {type(meta[key]).__name__}, not an object; save the edit again")
    if fmt >= 2 and _record_digest(meta) != meta["digest"]["record"]:
        raise ValueError(f"{where} does not match the digest it records; it was changed after the edit was saved: save the edit again")


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
        params = dict(model.named_parameters())
        for e in self.edits[done:]:   # well formed and of the model's shapes, before the first one is applied
            e.validate()
            for name in _params(model, list(e.changes)):
                e.changes[name].check_fits(name, params[name])
        for i in range(done, len(self.edits)):
            self.edits[i].apply(model, force=force)
            self._applied[id(model)] = i + 1
            yield i, self.edits[i]

    def apply(self, model: nn.Module, force: bool = False) -> "EditSequence":
        """Apply every edit in order; if one is refused, those already applied are reverted (nothing applied)."""
        model = as_module(model)
        before = self._applied.get(id(model), 0)
        try:
            for _ in self.steps(model, force=force):
                pass
        except BaseException:
            n = self._applied.get(id(model), 0)
            for e in reversed(self.edits[before:n]):
                e.revert(model)
            if before:
                self._applied[id(model)] = before
            else:
                self._applied.pop(id(model), None)
            raise
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
