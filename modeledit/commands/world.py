"""``modeledit world``: the benchmark world (info, render, train, context).

    modeledit world info [--json]                 version, classes, concepts, co-occurrence, shipped accuracies
    modeledit world render --n 24 --out DIR       sample images with their masks (PNG) and records (JSON)
    modeledit world train vgg|resnet|vgg_text|clip   reproduce a shipped classifier into $MODELEDIT_CACHE/world/models/
                                                  (or --out; never into the package's zoo: the shipped ones stay)
                                                  (clip: the parrot recipe of the shipped one; --recipe v1: the first)
    modeledit world clip-eval --out results/world/clip   zero-shot accuracy and typographic attack of clip:world-RN
    modeledit world context --out results/world_context.json   texture-swap and text-tag measurements
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from modeledit.commands.common import add_force_argument, check_out, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="world_command", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="world version, classes, concepts, co-occurrence table, shipped accuracies")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    render = sub.add_parser("render", help="write sample images with their masks")
    render.add_argument("--n", type=positive_int, default=18, help="number of scenes (18: one per class)")
    render.add_argument("--out", required=True, help="output folder (PNG images, one mask PNG per concept, a JSON record per scene)")
    render.add_argument("--split", default="test", choices=["train", "val", "test"], help="which split's scenes")
    render.add_argument("--text-tags", action="store_true", help="render with the text-tag world (as world_vgg_text saw it)")
    render.add_argument("--grid", default=None, help="also write a picture grid of images and masks to this PNG path")
    add_force_argument(render)
    train = sub.add_parser("train", help="reproduce a shipped classifier")
    train.add_argument("arch", help="preset: vgg, resnet, vgg_text, or clip (the world CLIP, clip:world-RN)")
    train.add_argument("--out", default=None, help="checkpoint path, registered in world_models.json beside it (default: "
                       "$MODELEDIT_CACHE/world/models/world_ARCH.pt, i.e. ~/.cache/modeledit/...; load it with --weights PATH; "
                       "the shipped eval/world/zoo/ is never written)")
    train.add_argument("--epochs", type=positive_int, default=None, help="override the preset's epochs")
    train.add_argument("--n-train", type=positive_int, default=None, help="override the preset's number of training scenes")
    train.add_argument("--steps", type=positive_int, default=None, help="clip only: override the last stage's number of steps")
    train.add_argument("--resume", default=None, help="clip only: resumable state file, written every few minutes and continued from")
    train.add_argument("--recipe", default="parrot", choices=["parrot", "v1"],
                       help="clip only: parrot (docs/notes/clip_reading.md, the default) or v1 (the three-stage recipe of the first shipped checkpoint)")
    train.add_argument("--stop-on-gate", action="store_true",
                       help="clip only: stop (after writing the resume file) when a go/no-go gate fails, instead of logging a warning")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="clip only: override a field of the recipe's ClipTrainConfig (repeatable; e.g. --set both_rate=0.2); "
                            "recorded in the checkpoint's command")
    ce = sub.add_parser("clip-eval", help="zero-shot accuracy of clip:world-RN and the typographic attack on it")
    ce.add_argument("--out", default="results/world/clip", help="folder for eval.json, manifest.json, examples.png")
    ce.add_argument("--weights", default=None, help="world CLIP checkpoint (default: the shipped one)")
    ce.add_argument("--n-test", type=positive_int, default=1800, help="number of clean test scenes")
    ce.add_argument("--seed", type=int, default=0, help="seed of the attack words and placements")
    add_force_argument(ce)
    ctx = sub.add_parser("context", help="measure context reliance (texture swaps) and the text-tag flip rate")
    ctx.add_argument("--out", default="results/world_context.json", help="JSON result path")
    ctx.add_argument("--models", default="world_vgg,world_resnet", help="comma-separated models for the texture swaps")
    ctx.add_argument("--text-model", default="world_vgg_text", help="model for the text-tag flip rate ('' to skip)")
    ctx.add_argument("--n", type=positive_int, default=60, help="scenes per class and context")
    ctx.add_argument("--texture", default="snow", help="texture swapped into the context region (a world texture name)")
    ctx.add_argument("--style", default=None, help="also restyle the context with this style-bank style through Magenta (e.g. snow)")
    ctx.add_argument("--n-style", type=positive_int, default=20, help="scenes per class and context for --style")
    from modeledit.commands.common import add_device_arguments

    add_device_arguments(train, precision=False)
    add_device_arguments(ce)
    add_device_arguments(ctx)


def APPLIES(args: argparse.Namespace) -> dict:  # noqa: N802 - the flag table of modeledit.commands.applies
    if args.world_command == "context":
        return {"--n-style": (lambda a: a.style is not None, "--style (the Magenta restyle of the context)")}
    if args.world_command != "train":
        return {}
    clip = (lambda a: a.arch == "clip", "world train clip (the world CLIP's recipe)")
    return {"--steps": clip, "--resume": clip, "--recipe": clip, "--stop-on-gate": clip, "--set": clip,
            "--epochs": (lambda a: a.arch != "clip", "world train vgg, resnet or vgg_text (the world CLIP trains for --steps)")}


def _info(args: argparse.Namespace) -> int:
    from modeledit.eval.world.scene import CLASSES, CONTEXTS, HOME, PARTS, TEXT_TAG, World
    from modeledit.eval.world.report import shipped_index

    w = World()
    info = {
        "world_version": w.config.version, "config": json.loads(w.config.to_json()), "classes": list(CLASSES),
        "contexts": list(CONTEXTS), "parts": list(PARTS), "text_tag": TEXT_TAG, "home_context": dict(HOME),
        "cooccurrence": w.cooccurrence(), "shipped": shipped_index(),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"benchmark world version {info['world_version']} ({w.config.image_size}x{w.config.image_size} px, seed {w.config.seed})")
    print(f"parts: {', '.join(PARTS)}; text tag concept: {TEXT_TAG!r}")
    print(f"co-occurrence: each class appears in front of its home context with p={w.config.cooccurrence}, "
          f"otherwise uniformly in front of one of the other {len(CONTEXTS) - 1}")
    print(f"{'class':<12}" + "".join(f"{c:>8}" for c in CONTEXTS))
    for cname in CLASSES:
        print(f"{cname:<12}" + "".join(f"{info['cooccurrence'][cname][c]:>8.3f}" for c in CONTEXTS))
    print("shipped classifiers:")
    for name, rec in info["shipped"].items():
        acc = rec.get("clean_test_accuracy")
        print(f"  {name:<16} clean test accuracy {acc if acc is None else f'{acc:.3f}'}  world v{rec.get('world_version')}  ({rec.get('command')})")
    return 0


def _render(args: argparse.Namespace) -> int:
    from modeledit.eval.world.scene import WorldConfig
    from modeledit.eval.world.data import WorldDataset
    from modeledit.eval.world.report import picture_grid, write_samples

    from modeledit.outdir import check_apart, prepare_out

    check_out(args.out)
    check_out(args.grid, "--grid", folder=False)
    if args.grid:
        check_apart(args.grid, {}, "--grid")
    folder = prepare_out(args.out, command="world render", force=args.force,
                         config={"n": args.n, "split": args.split, "text_tags": bool(args.text_tags)})
    cfg = WorldConfig(text_tag_rate=1.0, neutral_tag_rate=0.5) if args.text_tags else WorldConfig()
    ds = WorldDataset(args.split, n=args.n, config=cfg)
    with folder:
        files = write_samples(ds, args.out)
    print(f"wrote {len(files)} scenes (image, masks, record) under {args.out}")
    if args.grid:
        picture_grid(ds, args.grid)
        print(f"wrote picture grid {args.grid}")
    return 0


def _train(args: argparse.Namespace) -> int:
    if args.arch == "clip":
        from modeledit.eval.world.clip import ClipRecipeRun, train_clip_recipe

        check_out(args.out, folder=False)
        if getattr(args, "epochs", None) is not None:
            raise ValueError("the world CLIP is trained for a number of steps: pass --steps instead of --epochs")
        result = train_clip_recipe(ClipRecipeRun(recipe=getattr(args, "recipe", None) or "parrot", steps=getattr(args, "steps", None),
                                                 n_train=args.n_train, overrides=list(getattr(args, "overrides", None) or []),
                                                 out=args.out, resume=getattr(args, "resume", None),
                                                 stop_on_gate=bool(getattr(args, "stop_on_gate", False))))
        failed = [g for g in result["gates"] if not g["passed"]]
        print(f"{result['config_name']}: zero-shot clean test accuracy {result['clean_test_accuracy']:.4f} on {result['n_test']} "
              f"scenes ({result['train_seconds']:.0f} s); saved {result['out']}"
              + (f"; failed gates at steps {[g['step'] for g in failed]}" if failed else ""))
        return 0
    import dataclasses

    from modeledit.eval.world.models import train_out
    from modeledit.eval.world.train import PRESETS, train, update_zoo_index

    if args.arch not in PRESETS:
        raise KeyError(f"unknown world classifier preset {args.arch!r}; valid: {sorted(PRESETS)}")
    cfg = PRESETS[args.arch]
    changes = {k: v for k, v in (("epochs", args.epochs), ("n_train", args.n_train)) if v is not None}
    cfg = dataclasses.replace(cfg, **changes)
    check_out(args.out, folder=False)
    out = train_out(args.out, cfg.name)
    command = f"modeledit world train {args.arch}" + "".join(f" --{k.replace('_', '-')} {v}" for k, v in changes.items())
    result = train(cfg, out=out, command=command)
    update_zoo_index(result, out.parent / "world_models.json")
    print(f"{cfg.name}: clean test accuracy {result['clean_test_accuracy']:.4f} on {result['n_test']} scenes "
          f"({result['train_seconds']:.0f} s); saved {out} (registered in {out.parent / 'world_models.json'}; "
          f"use it with --weights {out}; the shipped {cfg.name} is unchanged)")
    return 0


def _context(args: argparse.Namespace) -> int:
    from modeledit.eval.world.report import measure_context

    from modeledit.outdir import check_apart

    check_out(args.out, folder=False)
    check_apart(args.out, {})
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = measure_context(models, text_model=args.text_model or None, n_per_cell=args.n, texture=args.texture, out=args.out,
                              style=args.style, n_style=args.n_style)
    for row in result["summary"]:
        print(row)
    print(f"wrote {args.out}")
    return 0


def _clip_eval(args: argparse.Namespace) -> int:
    from modeledit.eval.world.clip import evaluate_clip

    from modeledit.outdir import prepare_out

    check_out(args.out)
    with prepare_out(args.out, command="world clip-eval", inputs={"--weights": args.weights}, force=args.force):
        r = evaluate_clip(weights=args.weights, n_test=args.n_test, seed=args.seed, out=args.out)
    print(f"clip:world-RN zero-shot clean accuracy {r['clean_accuracy']:.4f} on {r['n_test']} test scenes")
    for cond, a in r["attacks"].items():
        print(f"  {cond:<12} flip to word {a['flip_to_word']:.3f}  blank patch changed {a['blank_changed']:.3f}  (n={a['n']})")
    print(f"wrote {args.out}/eval.json")
    return 0


ACTIONS = {"info": _info, "render": _render, "train": _train, "clip-eval": _clip_eval, "context": _context}


def run(args: argparse.Namespace) -> int:
    return ACTIONS[args.world_command](args)
