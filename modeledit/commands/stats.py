"""``modeledit stats MODEL --layer L --images DIR``: precompute (and cache) a site's key second moment."""
from __future__ import annotations

import argparse
import json
import time

from modeledit.commands.common import SITE_HELP, add_device_arguments, add_model_arguments, runtime_from_args, load_from_args, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--layer", required=True, help=SITE_HELP)
    p.add_argument("--images", required=True, help="folder of images the statistics are computed over (searched recursively)")
    p.add_argument("--size", type=positive_int, default=None, help="input size (default: the model's)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--cache-dir", default=None, help="cache folder (default $MODELEDIT_CACHE or ~/.cache/modeledit)")
    add_device_arguments(p, precision=False, data=True)


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from modeledit.layers import get_site
    from modeledit.image_folder import ImageFolder
    from modeledit.stats import cache_path, second_moment
    from modeledit.provenance import model_hash

    from modeledit.memory import check_forward_memory, check_input_size
    from modeledit.commands.common import check_out
    from modeledit.outdir import check_apart

    check_out(args.cache_dir, "--cache-dir")   # the cache is this command's only output: a file or an unwritable place is refused
    if args.cache_dir:
        check_apart(args.cache_dir, {"--images": args.images}, "--cache-dir")
    rt = runtime_from_args(args)
    lm = load_from_args(args)
    site = get_site(lm.model, args.layer)
    check_input_size(lm, args.size)
    check_forward_memory(lm, args.size or lm.input_size, args.batch_size)
    data = ImageFolder(args.images, size=args.size or lm.input_size)
    ident = data.identity
    path = cache_path(model_hash(lm.model), site, ident, args.cache_dir)
    before = path.stat().st_mtime_ns if path.is_file() else None
    t0 = time.perf_counter()
    st = second_moment(lm.model, site, DataLoader(data, batch_size=args.batch_size, **rt.loader()),
                       dataset_id=ident, transform=lm.normalize, cache_dir=args.cache_dir)
    after = path.stat().st_mtime_ns if path.is_file() else None
    # read from the cache only if the file was there and was not rewritten (a corrupt one is recomputed);
    # no cache path when nothing could be written there
    print(json.dumps({"site_index": site.index, "site": site.name, "layer": site.layer, "images": len(data), "keys": st.count, "dim": site.key_channels,
                      "cache": str(path) if after is not None else None, "from_cache": before is not None and before == after,
                      "seconds": round(time.perf_counter() - t0, 3)}, indent=1))
    return 0
