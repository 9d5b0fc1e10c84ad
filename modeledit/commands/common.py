"""Arguments shared by several subcommands, and the value types every command parses flags with.

One convention for lists: a plural flag (``--concepts``, ``--styles``, ``--methods``, ...) takes a
comma-separated list and may also be repeated (``--concepts road --concepts grass`` equals
``--concepts road,grass``); where a singular spelling existed it stays as an alias. A flag that takes
one value has a singular name. A bad value is an argparse error: one line naming the flag.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

from modeledit.models import LoadedModel, load_model

SITE_HELP = ("edit site: the site index as `modeledit layers MODEL` numbers them (0, 1, ..., -1 = last; not the module "
             "index N in a path such as features.N), the site name, or the rewritten layer's dotted path")


def split_list(text: Any) -> list[str]:
    """Items of a comma-separated string, or of a list of such strings (a repeated flag)."""
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        return [t for part in text for t in split_list(part)]
    return [t.strip() for t in str(text).split(",") if t.strip()]


def _typed(name: str, conv: Callable[[str], Any], check: Callable[[Any], bool] = lambda v: True, need: str = "") -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = conv(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}{need}")
        return value

    parse.__name__ = name
    return parse


positive_int = _typed("a positive integer", int, lambda v: v >= 1)
nonneg_int = _typed("a non-negative integer", int, lambda v: v >= 0)
fraction = _typed("a fraction between 0 and 1", float, lambda v: 0.0 <= v <= 1.0)
positive_float = _typed("a positive number", float, lambda v: v > 0)


def csv_list(item: Callable[[str], Any] = str, what: str = "item") -> Callable[[str], list[Any]]:
    """An argparse type: a non-empty comma-separated list whose items parse with ``item``."""

    def parse(text: str) -> list[Any]:
        items = split_list(text)
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} is an empty list; give one or more {what}s separated by commas")
        out = []
        for it in items:
            try:
                out.append(item(it))
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                where = f" in {text!r}" if len(items) > 1 else ""
                raise argparse.ArgumentTypeError(f"{it!r}{where} is not a valid {what} ({exc})") from None
        return out

    parse.__name__ = f"list of {what}s"
    return parse


class ListAction(argparse.Action):
    """A repeated list flag: the first occurrence replaces the default, later ones extend it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        seen = f"_given_{self.dest}"
        current = list(getattr(namespace, self.dest) or []) if getattr(namespace, seen, False) else []
        setattr(namespace, self.dest, current + list(values))
        setattr(namespace, seen, True)


def add_list(p: argparse.ArgumentParser, *flags: str, item: Callable[[str], Any] = str, what: str = "name", default: Any = None,
             **kwargs: Any) -> argparse.Action:
    """A plural, comma-separated, repeatable flag (see the module docstring)."""
    if default is not None and not isinstance(default, list):
        default = csv_list(item, what)(default)
    action = p.add_argument(*flags, type=csv_list(item, what), action=ListAction, default=None, **kwargs)
    dest = kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")
    p.set_defaults(**{dest: default})
    return action


def rank_value(text: str) -> int | str:
    """``--rank``: a positive integer or ``full``."""
    if text == "full":
        return text
    try:
        r = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a positive integer nor 'full'") from None
    if r < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer (or 'full')")
    return r


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model name (see `modeledit models`), e.g. mobilenet_v2, world_vgg, timm:resnet18, clip:RN50")
    add_weights_argument(p)
    p.add_argument("--classes", default=None, help="comma-separated class names (CLIP zero-shot head, or a custom checkpoint)")


def add_weights_argument(p: argparse.ArgumentParser, extra: str = "") -> None:
    """The one ``--weights`` flag of every command that loads a model (``extra``: a command's own note)."""
    p.add_argument("--weights", default=None,
                   help="the model's weights: omit for its offline weights (mobilenet_v2, efficientnet_lite0, the world models; a "
                        "model without any, e.g. resnet50 or clip:RN50, is refused); a torchvision enum name (IMAGENET1K_V1) or "
                        "open_clip tag where the network is open; a local checkpoint path; or 'random' for random init "
                        "(recorded as such in manifests and edit files)" + (f"; {extra}" if extra else ""))


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    """The model of ``args``, on ``--device`` at ``--precision`` where the command has those flags."""
    kwargs = {}
    if getattr(args, "classes", None) is not None:   # an empty list is refused by load_model, not ignored
        kwargs["class_names"] = split_list(args.classes)
    lm = load_model(args.model, weights=args.weights, **kwargs)
    from modeledit.device import current_runtime

    if hasattr(args, "device") and current_runtime() is None:   # called outside the command line's command_runtime
        runtime_from_args(args).place(lm)
    return lm


def add_device_arguments(p: argparse.ArgumentParser, precision: bool = True, data: bool = False, batch: bool = False) -> None:
    """``--device`` and ``--deterministic`` (every command that runs a model), ``--precision`` (those that
    evaluate predictions); with ``batch`` (or ``data``) ``--batch-size``, images per batch on the device, and
    with ``data`` the DataLoader worker count for image folders. Each only where the command does not define
    that flag itself. Read back with :func:`runtime_from_args`.

    One name, one meaning: ``--loader-workers`` is always the DataLoader's worker processes. A command that
    loads image folders and runs no cells (stats, edit, sensitivity) also spells it ``--workers``; on the
    commands that run cells (bench, typographic, snow, photos) ``--workers`` is the Ray worker count
    (:func:`add_executor_arguments`), so there the loader's is only ``--loader-workers``."""
    from modeledit.device import DEVICE_CHOICES, PRECISIONS

    have = p._option_string_actions  # noqa: SLF001 - a command's own --workers/--batch-size stays
    p.add_argument("--device", default="auto", help=f"where the model runs: {DEVICE_CHOICES} (auto: a CUDA GPU when one is "
                   "visible, else the CPU)")
    if precision:
        p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                       help="autocast on prediction passes only (statistics, solvers and training stay in float32)")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (cuDNN's too) and seeded generators")
    if data and "--loader-workers" not in have:
        ray = "--executor" in have   # a command that runs cells: its --workers is the Ray worker count
        p.add_argument(*(["--loader-workers"] if ray else ["--workers", "--loader-workers"]), dest="loader_workers", metavar="N", type=nonneg_int,
                       default=0, help="DataLoader worker processes for image folders (pinned memory on CUDA)"
                       + ("" if ray else "; not Ray workers (the --workers of the commands that run cells)"))
    if (data or batch) and "--batch-size" not in have:
        p.add_argument("--batch-size", type=positive_int, default=None, help="images per batch on the device (default: the command's own)")


#: ``APPLIES`` entries of :func:`add_executor_arguments`: Ray's flags are refused with the local executor
EXECUTOR_APPLIES = {"--address": (lambda a: a.executor == "ray", "--executor ray"),
                    "--workers": (lambda a: a.executor == "ray", "--executor ray")}


def add_executor_arguments(p: argparse.ArgumentParser) -> None:
    """``--executor`` (from the executor registry), ``--address`` and ``--workers`` (Ray workers) of every
    command that runs cells; read back with :func:`executor_from_args`, refused in the wrong mode by
    :data:`EXECUTOR_APPLIES`."""
    from modeledit.commands.choices import add_registry_flag

    add_registry_flag(p, "--executor", "executor", "where the cells run", check=True, default="local")
    p.add_argument("--address", default=None, help="with --executor ray: the Ray cluster, ray://HOST:PORT (default: a local Ray instance)")
    p.add_argument("--workers", type=positive_int, default=2,
                   help="with --executor ray: Ray workers, each running one cell at a time (one GPU each with a CUDA --device); "
                        "not the DataLoader's worker processes (--loader-workers of the commands that load image folders)")


def executor_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``executor=`` and its options for a harness's run function; with ``--executor ray`` and ``--address``,
    a cluster that does not answer is a one-line error here, before any work."""
    if args.executor != "ray":
        return {"executor": args.executor}
    from modeledit.eval.executors import check_ray_address

    check_ray_address(args.address)
    return {"executor": "ray", "address": args.address, "workers": args.workers}


def runtime_from_args(args: argparse.Namespace) -> Any:
    """The :class:`modeledit.device.Runtime` of the flags :func:`add_device_arguments` added (``--device auto``
    resolved; a CUDA device that is not visible is a one-line ValueError); seeds set with ``--deterministic``."""
    from modeledit.device import Runtime

    rt = Runtime.resolve(getattr(args, "device", "auto"), getattr(args, "precision", "fp32"), getattr(args, "deterministic", False),
                         getattr(args, "loader_workers", 0) or 0, getattr(args, "batch_size", None))
    rt.begin(seed=int(getattr(args, "seed", 0) or 0))
    return rt


def command_runtime(args: argparse.Namespace) -> Any:
    """The context a command runs in: its ``--device``/``--precision`` for every model it loads
    (:func:`modeledit.device.using`); nothing for a command without those flags."""
    import contextlib

    from modeledit.device import using

    if not hasattr(args, "device"):
        return contextlib.nullcontext()
    return using(runtime_from_args(args))


def add_label_arguments(p: argparse.ArgumentParser) -> None:
    """``--labels given|predicted`` and ``--min-confidence`` (sensitivity, bench): labels from the dataset, or the
    model's own top-1 on each original (for unlabelled photos; recorded in the results' manifest)."""
    p.add_argument("--labels", default="given", choices=["given", "predicted"],
                   help="given: the dataset's labels (ImageFolder sub-folders, the world's); predicted: the model's own top-1 on "
                        "each original (any image folder: every original then counts as correct)")
    p.add_argument("--min-confidence", type=fraction, default=0.0,
                   help="with --labels predicted: keep only images whose top-1 probability is at least this")


def add_method_arguments(p: argparse.ArgumentParser, sites: str = "-1") -> None:
    """The comparison's methods, edit sites and clean-accuracy budget (bench, typographic, snow)."""
    from modeledit.commands.choices import RegistryNames

    add_list(p, "--methods", default="edit,finetune_local,finetune_global", what="method",
             help="comma-separated methods of the comparison (any of: "
                  "%(registry_names)s)").registry_names = RegistryNames("method")
    add_list(p, "--sites", default=sites, what="site",
             help="comma-separated edit sites: site index as `modeledit layers` numbers them (not a module index), or site name")
    p.add_argument("--max-clean-drop", type=fraction, default=0.0025,
                   help="clean accuracy budget for choosing hyperparameters (a fraction: 0.0025 = 0.25 pp)")
    p.add_argument("--finetune-grid", default=None, help="fine-tuning lr:steps,... (default: the harness's grid)")
    p.add_argument("--adam-grid", default=None, help="lr:steps,... for edit_adam (default: the harness's grid)")
    p.add_argument("--alpha-grid", default=None, help="interpolation coefficients for paint_*, e.g. 0.25,0.5,0.75,1 (each fine-tuning is "
                   "interpolated at every alpha in the same cell; its alpha = 1 row is the plain fine-tuning)")
    p.add_argument("--strength-grid", default=None, help="fractions of the rewrite's update for edit, edit_full, edit_masked, e.g. "
                   "0.25,0.5,1 (evaluated in the same cell; default 1: the full closed-form edit)")
    p.add_argument("--lambda-grid", default=None, help="relative penalty weights for rrr_*, e.g. 1,10,100 (crossed with the fine-tuning grid)")


def grid_overrides(args: argparse.Namespace, config: type | None = None) -> dict[str, list]:
    """Config fields for the --finetune-grid / --adam-grid / --alpha-grid / --lambda-grid flags that were
    given; with ``config`` (a dataclass), a ValueError for a flag that config has no field for."""
    out: dict[str, list] = {}
    for flag, key in (("finetune_grid", "finetune_grid"), ("adam_grid", "adam_grid")):
        text = getattr(args, flag, None)
        if text:
            try:
                out[key] = [[float(a), int(b)] for a, b in (item.split(":") for item in split_list(text))]
                if any(lr <= 0 or steps < 1 for lr, steps in out[key]):
                    raise ValueError
            except ValueError:
                raise ValueError(f"--{flag.replace('_', '-')} takes lr:steps pairs (lr > 0, steps >= 1) separated by commas, "
                                 f"e.g. 1e-3:500,1e-4:500; got {text!r}") from None
    for flag in ("alpha_grid", "lambda_grid", "strength_grid"):
        text = getattr(args, flag, None)
        if text:
            try:
                out[flag] = [float(v) for v in split_list(text)]
            except ValueError:
                raise ValueError(f"--{flag.replace('_', '-')} takes numbers separated by commas, e.g. 0.25,0.5,1; got {text!r}") from None
    if config is not None:
        import dataclasses

        known = {f.name for f in dataclasses.fields(config)}
        for key in out:
            if key not in known:
                raise ValueError(f"--{key.replace('_', '-')} is not supported by this command (its config has no {key}); "
                                 "drop the flag to use the method's default grid")
    return out


def add_force_argument(p: argparse.ArgumentParser) -> None:
    """``--force`` for commands that write a folder (see :mod:`modeledit.outdir`)."""
    p.add_argument("--force", action="store_true",
                   help="start over in --out: an earlier modeledit output there (another command's, or other settings) is moved "
                        "aside and removed once the new run has finished; a folder modeledit did not write is never replaced")


def check_out(path: str | None, flag: str = "--out", folder: bool = True) -> None:
    """Refuse, before any work, an output place that cannot be written: a folder (``folder=True``) or
    a file prefix whose folder is ``path``'s parent. Nothing is created here."""
    import os
    import tempfile
    from pathlib import Path

    if not path:
        return
    p = Path(path).expanduser().absolute()
    if folder and p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {path!r} is a file, not a folder; choose another {flag}")
    if not folder and p.is_dir():
        raise ValueError(f"{flag} {path!r} is a folder; give a file name (e.g. {path.rstrip('/')}/my_edit)")
    start = p if folder else p.parent
    probe = start
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{flag} {path!r} lies under {str(probe)!r}, which is a file, not a folder; choose another {flag}")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ValueError(f"{flag} {path!r}: cannot write in {str(probe)!r} ({exc.strerror or exc.__class__.__name__}); "
                         f"choose another {flag}") from None
    if probe != start and not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path!r}: cannot create folders in {str(probe)!r}; choose another {flag}")
