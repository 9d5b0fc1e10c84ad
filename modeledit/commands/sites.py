"""``modeledit sites MODEL --original X --transformed X2 --images DIR [...]``: rank the edit sites for one rule.

Each site gets the rule's closed-form rewrite, tried at a few strengths; the site's score is its best correction of
validation errors whose clean-accuracy drop stays within ``--budget`` (clean images and the key statistics come from
``--images``; labels are the model's own predictions on the originals). ``modeledit edit --layer auto`` edits at the
first site of this ranking.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from modeledit.commands.common import add_device_arguments, add_model_arguments, load_from_args, positive_int, split_list

#: clean images read from --images at most (the first ones, sorted by path)
MAX_IMAGES = 500


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--original", nargs="+", required=True, help="original image(s) x of the rule")
    p.add_argument("--transformed", nargs="+", required=True, help="transformed image(s) x', one per original")
    p.add_argument("--mask", nargs="+", default=None, help="concept mask image(s), one per pair (used by --masked)")
    p.add_argument("--masked", dest="mode", action="store_const", const="masked", default="whole",
                   help="rank with the objective on the mask only (default: the whole image, which needs no mask)")
    p.add_argument("--resize-masks", action="store_true", help="resize masks of another size than their image (refused otherwise)")
    p.add_argument("--val-original", nargs="+", default=None, help="validation originals (default: the rule's own exemplars)")
    p.add_argument("--val-transformed", nargs="+", default=None, help="validation transformed images, one per validation original")
    p.add_argument("--images", required=True, help="folder of clean images: the budget's clean set and the key statistics C")
    add_site_search_arguments(p)
    p.add_argument("--sites", default=None, help="comma-separated site indices or names to rank (default: every site)")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON")
    add_device_arguments(p, precision=False)


def add_site_search_arguments(p: argparse.ArgumentParser) -> None:
    """The flags the site ranking reads (shared with ``modeledit edit --layer auto``)."""
    p.add_argument("--budget", type=float, default=0.0025, help="largest clean-accuracy drop a site's edit may cost (0.0025 = 0.25 pp)")
    p.add_argument("--max-images", type=positive_int, default=MAX_IMAGES, help="clean images read from --images at most")


def _folder_images(lm: Any, folder: str, limit: int) -> tuple[Any, Any]:
    import torch

    from modeledit.image_folder import ImageFolder

    data = ImageFolder(folder, size=lm.input_size)
    x = torch.stack([data.load(i) for i in range(min(limit, len(data)))])
    return data, x


#: flags that apply only in some modes (modeledit.commands.applies)
APPLIES = {
    "--mask": (lambda a: a.mode == "masked", "--masked (the whole-image objective, the default, uses no mask)"),
    "--resize-masks": (lambda a: bool(a.mask), "--mask"),
}


def recommend(lm: Any, exemplars: Any, images: str | None, budget: float = 0.0025, max_images: int = MAX_IMAGES,
              val: Any = None, sites: Any = None, check_only: bool = False,
              config: Any = None) -> tuple[list[dict[str, Any]], Any] | None:
    """The site ranking for one rule (:func:`modeledit.rules.rank_sites` with the edit's ``config``), with clean images
    and statistics from a folder; returns (rows, the statistics function site -> C the ranking used).
    ``check_only``: refuse a missing or empty folder (before any work) and return None."""
    from modeledit.image_folder import ImageFolder
    from modeledit.rules import Rule, rank_sites
    from modeledit.stats import second_moment

    if not images:
        raise ValueError("ranking sites needs clean images for the budget and the statistics: pass --images FOLDER")
    if check_only:
        ImageFolder(images, size=None)
        return None
    data, x = _folder_images(lm, images, max_images)

    def stats(site: Any) -> Any:
        return second_moment(lm, site, [x[i:i + 64] for i in range(0, len(x), 64)], dataset_id=f"{data.identity}:{len(x)}", progress=False)

    return rank_sites(lm, Rule("rule", exemplars), clean=x, val=val, stats=stats, sites=sites, budget=budget, config=config), stats


def run(args: argparse.Namespace) -> int:
    from modeledit.exemplars import Exemplars

    if (args.val_original is None) != (args.val_transformed is None):
        raise ValueError("give both --val-original and --val-transformed (one transformed image per original), or neither")
    lm = load_from_args(args)
    recommend(lm, None, args.images, check_only=True)      # an empty or missing folder is refused before any work
    ex = Exemplars.from_images(lm, args.original, args.transformed, args.mask, resize_masks=args.resize_masks)
    val = None
    if args.val_original is not None:
        v = Exemplars.from_images(lm, args.val_original, args.val_transformed)
        val = (v.x, v.x_prime, None)
    sites = split_list(args.sites) if args.sites else None
    from modeledit.editor import EditConfig

    rows, _ = recommend(lm, ex, args.images, args.budget, args.max_images, val=val, sites=sites, config=EditConfig(mode=args.mode))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{lm.name}: sites ranked by validation correction within a clean drop of {args.budget * 100:.2f} pp "
          f"(on {rows[0]['n_clean']} clean images)")
    print(f"{'rank':>4}  {'index':>5}  {'site':<24} {'val corrected':>13} {'strength':>8} {'clean drop (pp)':>15}")
    for r in rows:
        print(f"{r['rank']:>4}  {r['site_index']:>5}  {r['site']:<24} {r['val_corrected']:>13.3f} {r['strength']:>8.2f} "
              f"{r['clean_drop'] * 100:>15.2f}")
    from modeledit.rules import no_recommendation

    why = no_recommendation(rows, args.budget)
    if why:
        print(f"{why}: no recommendation (raise --budget, or give other exemplars)")
    return 0
