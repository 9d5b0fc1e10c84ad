"""``modeledit edit MODEL --layer L --original X --transformed X2 [--mask M] ...``: compute and save a rewrite."""
from __future__ import annotations

import argparse
import json

from modeledit.commands.sites import add_site_search_arguments, recommend
from modeledit.commands.common import SITE_HELP, add_device_arguments, check_out, add_model_arguments, load_from_args, runtime_from_args, positive_float, positive_int, rank_value


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--layer", required=True, help=SITE_HELP + "; 'auto': the best site of `modeledit sites` (needs --images)")
    p.add_argument("--original", nargs="+", required=True, help="original image(s) x")
    p.add_argument("--transformed", nargs="+", required=True, help="transformed image(s) x', one per original")
    p.add_argument("--mask", nargs="+", default=None, help="concept mask image(s), non-zero = concept, one per pair")
    p.add_argument("--resize-masks", action="store_true", help="resize masks of another size than their image (refused otherwise)")
    from modeledit.commands.choices import add_registry_flag

    add_registry_flag(p, "--solver", "solver", "how the rewrite is solved", check=True, default="closed_form")
    p.add_argument("--rank", type=rank_value, default=1, help="rank of the update: a positive integer, or 'full' (unrestricted)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--whole-image", dest="mode", action="store_const", const="whole", help="objective on the whole image (default)")
    mode.add_argument("--masked", dest="mode", action="store_const", const="masked", help="objective on the mask only")
    p.set_defaults(mode="whole")
    p.add_argument("--images", default=None, help="folder of images for the key statistics C (cached); without it the editor uses "
                   "C = I and warns: the edit then moves unrelated images much more")
    p.add_argument("--stats", default=None, help="statistics already computed by `modeledit stats` (the file it prints as \"cache\"), "
                   "instead of --images (`stats` and `edit` with the same --images also share that file)")
    p.add_argument("--size", type=positive_int, default=None, help="exemplar size in pixels (default: the model's input size)")
    p.add_argument("--lr", type=positive_float, default=None, help="adam learning rate (default 1e-4)")
    p.add_argument("--steps", type=positive_int, default=None, help="adam steps (default 20000)")
    p.add_argument("--out", default=None, help="write the edit to OUT.safetensors + OUT.json (an existing edit there is kept unless --force)")
    p.add_argument("--force", action="store_true", help="replace an edit already at --out")
    add_site_search_arguments(p)
    add_device_arguments(p, precision=False, data=True)


#: flags that apply only in some modes (modeledit.commands.applies)
APPLIES = {
    "--lr": (lambda a: a.solver == "adam", "--solver adam (the closed form has no learning rate)"),
    "--steps": (lambda a: a.solver == "adam", "--solver adam (the closed form has no steps)"),
    "--resize-masks": (lambda a: bool(a.mask), "--mask"),
    "--force": (lambda a: bool(a.out), "--out"),
    "--mask": (lambda a: a.mode == "masked", "--masked (the whole-image objective, the default, uses no mask: the transformed "
                                             "image already holds the restyle)"),
    "--budget": (lambda a: a.layer == "auto", "--layer auto"),
    "--max-images": (lambda a: a.layer == "auto", "--layer auto"),
}


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from modeledit.exemplars import Exemplars
    from modeledit.layers import get_site
    from modeledit.editor import EditConfig, rewrite
    from modeledit.image_folder import ImageFolder
    from modeledit.stats import second_moment

    from modeledit.memory import check_forward_memory, check_input_size
    from modeledit.outdir import check_apart

    check_out(args.out, folder=False)
    if args.stats and args.images:
        raise ValueError("give statistics once: --stats FILE or --images DIR, not both")
    if args.out and not args.force:
        from modeledit.edit import edit_paths

        there = [str(f) for f in edit_paths(args.out) if f.exists()]
        if there:
            raise ValueError(f"--out {args.out} already holds an edit ({', '.join(there)}); pass --force to replace it, or choose another --out")
    if args.out:
        check_apart(args.out, {"--original": args.original, "--transformed": args.transformed, "--mask": args.mask,
                               "--images": args.images, "--stats": getattr(args, "stats", None)})
    rt = runtime_from_args(args)
    lm = load_from_args(args)
    site = get_site(lm.model, args.layer) if args.layer != "auto" else recommend(lm, None, args.images, check_only=True)
    cfg = EditConfig(solver=args.solver, rank=args.rank, mode=args.mode)
    if args.lr is not None:
        cfg.lr = args.lr
    if args.steps is not None:
        cfg.steps = args.steps
    check_input_size(lm, args.size)
    check_forward_memory(lm, args.size, max(len(args.original), 32 if args.images else 1))
    ex = Exemplars.from_images(lm, args.original, args.transformed, args.mask, size=args.size, resize_masks=args.resize_masks)
    for i, (a, b) in enumerate(zip(ex.x, ex.x_prime)):
        if torch.equal(a, b):
            raise ValueError(f"--transformed {args.transformed[i]!r} is the same picture as --original {args.original[i]!r}: the edit "
                             "would change nothing; give the restyled copy of the original as --transformed")
    ranking, stats = None, None
    if site is None:            # --layer auto: the top site, its edit at the strength the ranking validated, with its statistics
        ranking, site_stats = recommend(lm, ex, args.images, args.budget, args.max_images, config=cfg)
        top = ranking[0]
        from modeledit.rules import no_recommendation

        why = no_recommendation(ranking, args.budget)
        if why:
            raise ValueError(f"{why} (see `modeledit sites`); choose --layer by hand, raise --budget, or give other exemplars")
        site = get_site(lm.model, top["site"])
        stats = site_stats(site)
    elif args.stats:
        from modeledit.stats import SecondMoment

        stats = SecondMoment.load_for(args.stats, lm.model, site)
    elif args.images:
        data = ImageFolder(args.images, size=args.size or lm.input_size)
        stats = second_moment(lm.model, site, DataLoader(data, batch_size=rt.batch(32), **rt.loader()), dataset_id=data.identity, transform=lm.normalize)
    edit = rewrite(lm, site, ex, config=cfg, stats=stats)
    if ranking is not None and ranking[0]["strength"] != 1.0:
        from modeledit.rules import scale_edit

        edit = scale_edit(edit, ranking[0]["strength"])     # the strength whose clean drop was within --budget
    out = {"site_index": site.index, "site": site.name, **edit.metrics, **({"site_ranking": ranking} if ranking else {})}
    if args.out:
        st, js = edit.save(args.out)
        out["files"] = [str(st), str(js)]
    print(json.dumps(out, indent=1))
    return 0
