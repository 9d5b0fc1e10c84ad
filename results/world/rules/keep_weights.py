"""The measurement behind modeledit.rules' preservation defaults (NORM_WEIGHT, KEEP_WEIGHT, PAST_WEIGHT): keep_weights.json.

world_vgg, deepest site (features.15), statistics C from world:train:512. Part 1, one joint solve of six rules (world
scenes whose context is swapped for snow, three exemplars each) keeping 64 world:val images (4,096 keys in 96
dimensions: full rank, so the projection's null space is only approximate): for each setting, the kept images' relative
change of site output, their predictions changed, 256 held-out world:val images' predictions changed, and the share of
the rules' objective reduction that survives. (The sequences' settings were chosen on the world study's own rules:
keep_grid_15/, the study's ``keep_grid`` variant, because these snow rules conflict with each other in a sequence:
each maps snow to another context.)

    .venv/bin/python results/world/rules/keep_weights.py
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

COMBOS = [("car", "road"), ("cow", "grass"), ("ship", "water"), ("airplane", "sky"), ("crab", "sand"), ("chair", "floor"),
          ("bus", "road"), ("tractor", "grass"), ("duck", "water"), ("bird", "sky"), ("sandcastle", "sand"), ("table", "floor")]


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
    rules = [Rule(f"{a}:{c}>snow", Exemplars(*swapped(w, a, c, range(3 * i, 3 * i + 3)))) for i, (a, c) in enumerate(COMBOS)]

    def outputs(images):
        return capture_sites(lm.model, lm.normalize(images), [site])[site.name].value

    # part 1: one joint solve keeping 64 images
    base_k = outputs(kept)
    pk, ph = lm.predict_labels(kept), lm.predict_labels(held)
    free = rewrite_rules(lm, rules[:6], site, stats=st, solver="linear")
    gain0 = np.array([r["objective_before"] - r["objective_after"] for r in free.metrics["rules"]])
    joint = []
    settings = [dict(keep=None), dict(keep_threshold=1e-2, keep_weight=0.0, norm_weight=0.0)]
    settings += [dict(keep_threshold=thr, keep_weight=kw, norm_weight=nw) for thr in (None, 1e-2) for kw in (0.0, 1.0, 10.0)
                 for nw in (1e-3, 1e-2, 1e-1)]
    for s in settings:
        e = free if s.get("keep", 0) is None else rewrite_rules(lm, rules[:6], site, stats=st, solver="linear", keep=kept, **s)
        with e.applied(lm.model):
            ok = outputs(kept)
            qk, qh = lm.predict_labels(kept), lm.predict_labels(held)
        gain = np.array([r["objective_before"] - r["objective_after"] for r in e.metrics["rules"]])
        joint.append({**{k: v for k, v in s.items() if k != "keep"}, "keep": s.get("keep", 0) is not None,
                      "kept_output_rel_change": float((ok - base_k).norm() / base_k.norm()),
                      "kept_predictions_changed": float((qk != pk).mean()), "heldout_predictions_changed": float((qh != ph).mean()),
                      "objective_gain_kept_fraction": float((gain / gain0).mean()), "update_norm": e.metrics["update_norm"]})
        print(joint[-1], flush=True)

    out = {"description": __doc__.split("\n\n")[0], "setup": __doc__.split("\n\n")[1], "joint": joint,
           "command": ".venv/bin/python results/world/rules/keep_weights.py"}
    write_text_atomic("results/world/rules/keep_weights.json", json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
