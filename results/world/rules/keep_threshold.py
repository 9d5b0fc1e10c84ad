"""The measurement behind modeledit.rules' preservation defaults (keep_threshold, max_norm): keep_threshold.json.

world_vgg, deepest site (features.15), statistics from world:train:512; six rules (world scenes of six classes whose
context is swapped for snow, three exemplars each, scenes 0-17) solved jointly (closed form); kept set: 64 images of
world:val (4,096 keys in 96 dimensions: full rank, so the null space is approximate). For each threshold and norm
bound: the null space's dimension, the kept images' relative change of site output, the fraction of their predictions
that change, and how much of the rules' objective reduction survives (mean of (before - after) / (before - after
without keep)). Held-out images: another 256 of world:val (does keeping 64 images protect unseen clean images?).

    .venv/bin/python results/world/rules/keep_threshold.py
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import torch

from modeledit import load_model
from modeledit.atomic import write_text_atomic
from modeledit.eval.datasets import load_dataset
from modeledit.exemplars import Exemplars
from modeledit.layers import capture_sites, get_site
from modeledit.rules import Rule, rewrite_rules
from modeledit.stats import second_moment

THRESHOLDS = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
NORMS = (None, 0.05, 0.1, 0.2)


def swapped(w, label, context, idx):
    to = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    return (to([w.render(i, label=label, context=context).image for i in idx]),
            to([w.render_with(i, {context: "snow"}, label=label, context=context).image for i in idx]))


def main() -> None:
    from modeledit.eval.world import World

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    lm = load_model("world_vgg")
    site = get_site(lm.model, -1)
    tr = load_dataset("world:train:512", class_names=lm.class_names, size=64)
    x = torch.stack([tr[i][0] for i in range(len(tr))])
    st = second_moment(lm, site, [x[i:i + 64] for i in range(0, len(x), 64)], progress=False)
    va = load_dataset("world:val:320", class_names=lm.class_names, size=64)
    v = torch.stack([va[i][0] for i in range(len(va))])
    kept, held = v[:64], v[64:]
    w = World()
    combos = [("car", "road"), ("cow", "grass"), ("ship", "water"), ("airplane", "sky"), ("crab", "sand"), ("chair", "floor")]
    rules = [Rule(f"{a}:{c}>snow", Exemplars(*swapped(w, a, c, range(3 * i, 3 * i + 3)))) for i, (a, c) in enumerate(combos)]

    def outputs(images):
        return capture_sites(lm.model, lm.normalize(images), [site])[site.name].value

    base_k, base_h = outputs(kept), outputs(held)
    pk, ph = lm.predict_labels(kept), lm.predict_labels(held)
    free = rewrite_rules(lm, rules, site, stats=st)
    gain0 = np.array([r["objective_before"] - r["objective_after"] for r in free.metrics["rules"]])
    rows = []
    for thr in (None, *THRESHOLDS):
        for mn in NORMS if thr in (None, 1e-2) else (None,):
            e = free if thr is None and mn is None else rewrite_rules(lm, rules, site, stats=st, keep=None if thr is None else kept,
                                                                       keep_threshold=thr or 0.0, max_norm=mn)
            with e.applied(lm.model):
                ok, oh = outputs(kept), outputs(held)
                qk, qh = lm.predict_labels(kept), lm.predict_labels(held)
            gain = np.array([r["objective_before"] - r["objective_after"] for r in e.metrics["rules"]])
            rows.append({"keep_threshold": thr, "max_norm": mn, "null_dim": e.metrics["keep"]["null_dim"],
                         "kept_output_rel_change": float((ok - base_k).norm() / base_k.norm()),
                         "kept_predictions_changed": float((qk != pk).mean()),
                         "heldout_output_rel_change": float((oh - base_h).norm() / base_h.norm()),
                         "heldout_predictions_changed": float((qh != ph).mean()),
                         "objective_gain_kept_fraction": float((gain / gain0).mean()), "update_norm": e.metrics["update_norm"]})
            print(rows[-1], flush=True)
    out = {"description": __doc__.split("\n\n")[0], "setup": __doc__.split("\n\n")[1], "rows": rows,
           "command": ".venv/bin/python results/world/rules/keep_threshold.py"}
    write_text_atomic("results/world/rules/keep_threshold.json", json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
