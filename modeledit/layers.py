"""Edit sites, layer lookup by dotted name, and hooks that never leak.

An *edit site* (thesis appendix E.1.3) is one layer whose weight is rewritten together with the
few operations after it that the rewrite must see through:

* VGG: a conv-BN-ReLU block; the conv is rewritten, the value is the ReLU output.
* ResNet (torchvision, timm, CLIP's ModifiedResNet): the last conv of each residual block; the value is
  the block output, skip connection included.
* MobileNetV2: the linear 1x1 projection of each inverted-residual block (+ skip where it has one).
* ViT (open_clip, timm): each block's MLP output projection; tokens play the role of pixels.

Keys (the rewritten module's input) and values (the site's output) are always given in a canonical
(N, C, H, W) layout; a token sequence becomes (N, C, T, 1), so a linear layer is a 1x1 conv.

Example:
    >>> from modeledit import load_model, list_sites, capture_sites
    >>> lm = load_model("mobilenet_v2")
    >>> site = list_sites(lm.model)[-1]
    >>> acts = capture_sites(lm.model, x, [site])[site.name]   # acts.key, acts.value, acts.skip
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from modeledit.models import as_module
from modeledit.registry import close_matches

# ---------------------------------------------------------------------------------------------
# names


def resolve_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule at dotted path ``name``; a KeyError lists the closest valid names."""
    return _lookup(dict(model.named_modules()), model, name)


# ---------------------------------------------------------------------------------------------
# sites


@dataclass(frozen=True)
class EditSite:
    """One rewritable layer and the operations between it and the site's output.

    ``layer`` is rewritten (its input is the key); the value is ``activation(norm(layer(key)) + skip)``
    and equals the output of module ``output``. ``skip`` is ``None``, ``"input:PATH"`` (the input of
    module PATH) or ``"output:PATH"`` (the output of module PATH, e.g. a downsample branch).
    """

    index: int
    name: str
    kind: str
    layer: str
    output: str
    norm: str | None
    activation: str
    skip: str | None
    key_channels: int
    value_channels: int
    token_layout: str = "NCHW"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def bind(self, model: nn.Module) -> "BoundSite":
        """This site resolved once on ``model``: modules, weight, folded affine, geometry, forward (:class:`BoundSite`)."""
        return BoundSite(model, self)


@dataclass(frozen=True)
class SiteRule:
    """How to find the edit sites of one model family."""

    name: str
    match: Callable[[nn.Module], bool]
    find: Callable[[nn.Module], list[dict[str, Any]]]
    priority: int = 0


_RULES: list[SiteRule] = []
#: the priority of the catch-all ``vgg`` rule (any Conv-ReLU ``nn.Sequential``): below every other rule
CATCH_ALL_PRIORITY = -10


def register_site_rule(name: str, match: Callable[[nn.Module], bool], find: Callable[[nn.Module], list[dict[str, Any]]],
                       priority: int = 0) -> None:
    """Add a family rule. Rules are tried from the highest ``priority`` down, in registration order within one
    priority, and the first that matches is used: a rule registered later with the default priority (0) wins over
    the catch-all ``vgg`` rule (:data:`CATCH_ALL_PRIORITY`); give a higher one to win over a built-in family.

    Example:
        >>> register_site_rule("mynet", lambda m: type(m).__name__ == "MyNet", my_sites)
    """
    if any(r.name == name for r in _RULES):
        raise ValueError(f"an edit-site rule named {name!r} is already registered; unregister_site_rule({name!r}) first")
    _RULES.append(SiteRule(name, match, find, priority))


def unregister_site_rule(name: str) -> None:
    """Remove the rule ``name`` (nothing if there is none)."""
    _RULES[:] = [r for r in _RULES if r.name != name]


def site_rule_for(model: nn.Module) -> SiteRule:
    for rule in sorted(_RULES, key=lambda r: -r.priority):   # stable: registration order within a priority
        if rule.match(model):
            return rule
    raise ValueError(
        f"no edit-site rule knows {type(model).__name__}; register one with modeledit.layers.register_site_rule "
        f"(known families: {[r.name for r in _RULES]})"
    )


def list_sites(model: nn.Module) -> list[EditSite]:
    """The model's edit sites in forward order, following the paper's definition per family.

    ``model``: an ``nn.Module`` or a :class:`~modeledit.models.LoadedModel` (as everywhere in this module).
    """
    model = as_module(model)
    rule = site_rule_for(model)
    return [EditSite(index=i, **spec) for i, spec in enumerate(rule.find(model))]


def get_site(model: nn.Module, spec: int | str | EditSite | "BoundSite") -> EditSite:
    """A site by index (``3``, ``"3"``, ``-1``), by site name, or by the rewritten layer's dotted path."""
    if isinstance(spec, EditSite):
        return spec
    if isinstance(spec, BoundSite):
        return spec.site
    model = as_module(model)
    sites = list_sites(model)
    if isinstance(spec, int) or (isinstance(spec, str) and spec.lstrip("-").isdigit()):
        i = int(spec)
        if not -len(sites) <= i < len(sites):
            raise KeyError(f"site index {i} out of range: {type(model).__name__} has {len(sites)} edit sites (0..{len(sites) - 1})")
        return sites[i]
    for s in sites:
        if spec in (s.name, s.layer):
            return s
    names = [s.name for s in sites] + [s.layer for s in sites]
    raise KeyError(f"no edit site named {spec!r}; closest: {close_matches(str(spec), names) or '-'}; see `modeledit layers`")


def _cls(m: nn.Module) -> str:
    return type(m).__name__


def _has_blocks(model: nn.Module, names: set[str]) -> bool:
    return any(_cls(m) in names for m in model.modules())


def _channels(mod: nn.Module) -> tuple[int, int]:
    if isinstance(mod, nn.Conv2d):
        return mod.in_channels, mod.out_channels
    if isinstance(mod, nn.Linear):
        return mod.in_features, mod.out_features
    raise TypeError(f"cannot rewrite a {_cls(mod)}")


def _residual_sites(model: nn.Module) -> list[dict[str, Any]]:
    out = []
    for name, block in model.named_modules():
        if _cls(block) not in ("BasicBlock", "Bottleneck"):
            continue
        last = "conv3" if hasattr(block, "conv3") else "conv2"
        norm = "bn3" if last == "conv3" else "bn2"
        se = getattr(block, "se", None)
        if se is not None and not isinstance(se, nn.Identity):
            continue  # squeeze-excitation is not affine: not a site
        conv = getattr(block, last)
        down = getattr(block, "downsample", None)
        skip = f"output:{name}.downsample" if isinstance(down, nn.Module) and not isinstance(down, nn.Identity) else f"input:{name}"
        cin, cout = _channels(conv)
        out.append(dict(name=name, kind="conv", layer=f"{name}.{last}", output=name, norm=f"{name}.{norm}",
                        activation="relu", skip=skip, key_channels=cin, value_channels=cout))
    return out


def _mobilenet_sites(model: nn.Module) -> list[dict[str, Any]]:
    out = []
    for name, block in model.named_modules():
        if _cls(block) != "InvertedResidual" or not hasattr(block, "conv"):
            continue
        seq = block.conv
        n = len(seq)
        conv, bn = seq[n - 2], seq[n - 1]
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
            continue
        cin, cout = _channels(conv)
        out.append(dict(name=name, kind="conv", layer=f"{name}.conv.{n - 2}", output=name, norm=f"{name}.conv.{n - 1}",
                        activation="identity", skip=f"input:{name}" if getattr(block, "use_res_connect", False) else None,
                        key_channels=cin, value_channels=cout))
    return out


def _vit_sites(model: nn.Module) -> list[dict[str, Any]]:
    out = []
    batch_first = {}
    for name, mod in model.named_modules():
        if hasattr(mod, "resblocks"):
            batch_first[name] = bool(getattr(mod, "batch_first", True))
    for name, block in model.named_modules():
        mlp = getattr(block, "mlp", None)
        if mlp is None or _cls(block) not in ("ResidualAttentionBlock", "Block"):
            continue
        proj = "c_proj" if hasattr(mlp, "c_proj") else "fc2"
        lin = getattr(mlp, proj)
        parent = max((p for p in batch_first if name.startswith(p + ".") or p == ""), key=len, default=None)
        layout = "NTC" if parent is None or batch_first[parent] else "TNC"
        cin, cout = _channels(lin)
        out.append(dict(name=name, kind="linear", layer=f"{name}.mlp.{proj}", output=f"{name}.mlp.{proj}", norm=None,
                        activation="identity", skip=None, key_channels=cin, value_channels=cout, token_layout=layout))
    return out


def _vgg_sites(model: nn.Module) -> list[dict[str, Any]]:
    out = []
    for name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        mods = list(seq.named_children())
        for i, (cname, conv) in enumerate(mods):
            if not isinstance(conv, nn.Conv2d):
                continue
            j, norm = i + 1, None
            if j < len(mods) and isinstance(mods[j][1], nn.BatchNorm2d):
                norm, j = mods[j][0], j + 1
            if j < len(mods) and isinstance(mods[j][1], nn.ReLU):
                prefix = f"{name}." if name else ""
                cin, cout = _channels(conv)
                out.append(dict(name=f"{prefix}{cname}", kind="conv", layer=f"{prefix}{cname}", output=f"{prefix}{mods[j][0]}",
                                norm=f"{prefix}{norm}" if norm else None, activation="relu", skip=None,
                                key_channels=cin, value_channels=cout))
    return out


register_site_rule("mobilenet_v2", lambda m: _has_blocks(m, {"InvertedResidual"}) and bool(_mobilenet_sites(m)), _mobilenet_sites)
register_site_rule("resnet", lambda m: _has_blocks(m, {"BasicBlock", "Bottleneck"}), _residual_sites)
register_site_rule("vit", lambda m: _has_blocks(m, {"ResidualAttentionBlock", "Block"}) and bool(_vit_sites(m)), _vit_sites)
def _mbconv_sites(model: nn.Module) -> list[dict[str, Any]]:
    """EfficientNet(-Lite) MBConv blocks (``efficientnet-lite-pytorch``): the 1x1 ``_project_conv`` + ``_bn2`` (+ the
    skip where the block adds its input), as MobileNetV2's projections."""
    out = []
    for name, block in model.named_modules():
        if _cls(block) != "MBConvBlock" or not isinstance(getattr(block, "_project_conv", None), nn.Conv2d):
            continue
        args = block._block_args
        residual = bool(args.id_skip) and args.stride in (1, [1], (1,), [1, 1], (1, 1)) and args.input_filters == args.output_filters
        cin, cout = _channels(block._project_conv)
        out.append(dict(name=name, kind="conv", layer=f"{name}._project_conv", output=name, norm=f"{name}._bn2",
                        activation="identity", skip=f"input:{name}" if residual else None, key_channels=cin, value_channels=cout))
    return out


register_site_rule("efficientnet", lambda m: _has_blocks(m, {"MBConvBlock"}) and bool(_mbconv_sites(m)), _mbconv_sites)
register_site_rule("vgg", lambda m: bool(_vgg_sites(m)), _vgg_sites, priority=CATCH_ALL_PRIORITY)


# ---------------------------------------------------------------------------------------------
# the site as a function of the rewritten weight


def to_canonical(t: torch.Tensor, site: EditSite) -> torch.Tensor:
    """Site tensor -> (N, C, H, W); tokens (N, T, C) or (T, N, C) -> (N, C, T, 1)."""
    if site.kind == "conv":
        return t
    if site.token_layout == "TNC":
        t = t.transpose(0, 1)
    return t.permute(0, 2, 1).unsqueeze(-1)


def _lookup(modules: dict[str, nn.Module], model: nn.Module, name: str) -> nn.Module:
    if name in modules:
        return modules[name]
    close = close_matches(name, [n for n in modules if n])
    raise KeyError(f"no layer named {name!r} in {type(model).__name__}; closest: {close or '-'}")


class BoundSite:
    """An edit site resolved once on one model: its modules, its weight in conv layout, the folded affine
    of its bias and BatchNorm, its conv geometry, and its forward function.

    Every :class:`EditSite` attribute (``name``, ``layer``, ``activation``, ...) reads through. The
    weight is the live parameter (an edit applied later is seen); the affine (bias, BN) is folded at
    binding time, so bind again after changing a BN or bias. Solvers, the adam loop, statistics and
    fine-tuning use it instead of looking modules up by name on every call.

    Example:
        >>> b = bind_site(lm.model, "features.14")          # or get_site(lm.model, 13).bind(lm.model)
        >>> v = b.forward(acts.key, acts.skip)              # == the site's output
        >>> b.weight.shape, b.scale.shape, b.geometry["padding"]
    """

    def __init__(self, model: nn.Module, site: EditSite) -> None:
        modules = dict(model.named_modules())
        self.model = model
        self.site = site
        self.layer_module = _lookup(modules, model, site.layer)
        self.output_module = _lookup(modules, model, site.output)
        self.norm_module = _lookup(modules, model, site.norm) if site.norm else None
        self.skip_where: str | None = None
        self.skip_module: nn.Module | None = None
        if site.skip:
            self.skip_where, path = site.skip.split(":", 1)
            self.skip_module = _lookup(modules, model, path)
        layer = self.layer_module
        if not isinstance(getattr(layer, "weight", None), torch.Tensor):
            raise TypeError(f"cannot rewrite a {type(layer).__name__} at {site.layer}: it has no weight")
        if isinstance(layer, nn.Conv2d):
            self.geometry: dict[str, Any] = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
        else:
            self.geometry = dict(stride=1, padding=0, dilation=1, groups=1)
        self.scale, self.shift = self._fold_affine()
        self.relu = site.activation == "relu"
        self.pointwise = tuple(self.weight.shape[-2:]) == (1, 1) and self.geometry["stride"] in (1, (1, 1)) and \
            self.geometry["padding"] in (0, (0, 0)) and self.geometry["groups"] == 1

    def __getattr__(self, name: str) -> Any:          # EditSite fields read through
        if name == "site":
            raise AttributeError(name)
        return getattr(self.site, name)

    def __repr__(self) -> str:
        return f"BoundSite({self.site.name!r}, layer={self.site.layer!r}, weight={tuple(self.weight.shape)})"

    @property
    def weight(self) -> torch.Tensor:
        """The rewritten weight as a conv kernel (out, in, kh, kw); a linear weight is (out, in, 1, 1)."""
        w = self.layer_module.weight
        return w if w.dim() == 4 else w[:, :, None, None]

    def _fold_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        layer, cout = self.layer_module, self.site.value_channels
        dev, dt = layer.weight.device, layer.weight.dtype
        with torch.no_grad():
            scale = torch.ones(cout, device=dev, dtype=dt)
            shift = layer.bias.detach().clone() if getattr(layer, "bias", None) is not None else torch.zeros(cout, device=dev, dtype=dt)
            bn = self.norm_module
            if bn is not None:
                s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
                b = bn.bias.detach() if bn.affine else torch.zeros_like(s)
                shift = s * (shift - bn.running_mean) + b
                scale = s
        return scale.detach(), shift.detach()

    def preactivation(self, key: torch.Tensor, skip: torch.Tensor | None, weight: torch.Tensor | None = None) -> torch.Tensor:
        """scale * conv_W(key) + shift (+ skip), canonical layout, before the activation."""
        w = self.weight if weight is None else weight
        z = F.conv2d(key, w, None, **self.geometry)
        z = z * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)
        return z + skip if skip is not None else z

    def forward(self, key: torch.Tensor, skip: torch.Tensor | None, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The site's value (canonical layout) from keys with ``weight`` (conv layout; default the current one).

        Differentiable in ``weight``.
        """
        z = self.preactivation(key, skip, weight)
        return F.relu(z) if self.relu else z

    __call__ = forward


def bind_site(model: nn.Module, site: int | str | EditSite | BoundSite) -> BoundSite:
    """``site`` (index, name, :class:`EditSite`) resolved once on ``model``; a site already bound to it is returned as is."""
    model = as_module(model)
    if isinstance(site, BoundSite):
        if site.model is model:
            return site
        site = site.site
    return BoundSite(model, get_site(model, site))


def site_forward(
    model: nn.Module, site: EditSite | BoundSite, key: torch.Tensor, skip: torch.Tensor | None, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """The site's value (canonical layout) computed from keys with ``weight`` (default: the current one).

    ``weight`` is in conv layout (out, in, kh, kw). Differentiable in ``weight``. In loops, bind the
    site once (:func:`bind_site`) and call its ``forward``; an :class:`EditSite` is resolved on every call.
    """
    return bind_site(model, site).forward(key, skip, weight)


# ---------------------------------------------------------------------------------------------
# capture


@dataclass
class SiteTensors:
    """What one forward pass showed at a site, canonical layout: key (N, Cin, H, W), value, skip or None."""

    key: torch.Tensor
    value: torch.Tensor
    skip: torch.Tensor | None


class _StopForward(Exception):
    """Cuts a forward pass short once every captured site is recorded; never leaves this module."""


class Recorder:
    """Filled by :func:`capture`: ``keys``, ``values``, ``skips`` by site name.

    :meth:`run` runs one forward pass of the captured model; with ``stop_after`` it returns as soon as
    every site is recorded (the rest of the network is skipped).
    """

    def __init__(self, model: nn.Module | None = None) -> None:
        self.keys: dict[str, torch.Tensor] = {}
        self.values: dict[str, torch.Tensor] = {}
        self.skips: dict[str, torch.Tensor] = {}
        self._model = model

    def run(self, x: Any) -> Any:
        """``model(x)`` with the hooks on; ``None`` when the pass was stopped after the last site."""
        if self._model is None:
            raise RuntimeError("this Recorder was not made by capture(); run the model yourself")
        try:
            return self._model(x)
        except _StopForward:
            return None

    def tensors(self, site: EditSite) -> SiteTensors:
        if site.name not in self.keys:
            raise RuntimeError(f"site {site.name!r} was not reached by the forward pass")
        return SiteTensors(self.keys[site.name], self.values[site.name], self.skips.get(site.name))


def _first_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], torch.Tensor):
        return x[0]
    raise TypeError(f"expected a tensor at a hooked module, got {type(x).__name__}")


@contextlib.contextmanager
def capture(
    model: nn.Module, sites: Sequence[EditSite], stop_after: bool = False, grad: bool = False
) -> Iterator[Recorder]:
    """Record keys, values and skips at ``sites`` during the forward passes run inside the block.

    Runs in eval mode and under ``no_grad`` (unless ``grad``); on exit, even after an exception, every
    hook handle is removed and the model's train/eval mode is restored. With ``stop_after`` the forward
    pass is cut short once every site's value is recorded (statistics need nothing later): run the
    passes with ``rec.run(x)``, which returns early instead of raising.

    Example:
        >>> with capture(model, [site], stop_after=True) as rec:
        ...     for x in batches:
        ...         rec.run(x)                       # model(x), stopped after the site
        ...         rec.keys[site.name].shape
    """
    model = as_module(model)
    rec = Recorder(model)
    handles: list[Any] = []
    pending: set[str] = set()
    names = {s.name for s in sites}

    def keep(t: torch.Tensor) -> torch.Tensor:
        return t if grad else t.detach().clone()

    def on_key(site: EditSite) -> Callable:
        def hook(mod: nn.Module, args: tuple) -> None:
            rec.keys[site.name] = to_canonical(keep(_first_tensor(args)), site)
        return hook

    def on_value(site: EditSite) -> Callable:
        def hook(mod: nn.Module, args: tuple, out: Any) -> None:
            rec.values[site.name] = to_canonical(keep(_first_tensor(out)), site)
            pending.discard(site.name)
            if stop_after and not pending:
                raise _StopForward
        return hook

    def on_skip(site: EditSite, where: str) -> Callable:
        if where == "input":
            def pre(mod: nn.Module, args: tuple) -> None:
                rec.skips[site.name] = to_canonical(keep(_first_tensor(args)), site)
            return pre

        def post(mod: nn.Module, args: tuple, out: Any) -> None:
            rec.skips[site.name] = to_canonical(keep(_first_tensor(out)), site)
        return post

    was_training = model.training
    grad_ctx = contextlib.nullcontext() if grad else torch.no_grad()
    def reset(mod: nn.Module, args: tuple) -> None:
        pending.update(names)

    try:
        handles.append(model.register_forward_pre_hook(reset))
        modules = dict(model.named_modules())
        for site in sites:
            site = site.site if isinstance(site, BoundSite) else site
            handles.append(_lookup(modules, model, site.layer).register_forward_pre_hook(on_key(site)))
            handles.append(_lookup(modules, model, site.output).register_forward_hook(on_value(site)))
            if site.skip:
                where, path = site.skip.split(":", 1)
                mod = _lookup(modules, model, path)
                h = mod.register_forward_pre_hook(on_skip(site, "input")) if where == "input" else mod.register_forward_hook(on_skip(site, "output"))
                handles.append(h)
        model.eval()
        with grad_ctx:
            yield rec
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def capture_sites(model: nn.Module, x: torch.Tensor, sites: Sequence[EditSite], stop_after: bool = False) -> dict[str, SiteTensors]:
    """Keys, values and skips at ``sites`` for one batch ``x`` (already normalised), by site name."""
    with capture(model, sites, stop_after=stop_after) as rec:
        rec.run(x)
    return {s.name: rec.tensors(s) for s in sites}
