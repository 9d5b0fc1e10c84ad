"""The main job: the whole story on the embedded default, written as a browsable report.

1. *Which concepts does each class rely on?* Concept sensitivity of the world VGG (oracle masks,
   Magenta styles) as a concept x style heatmap and per-concept bars.
2. *Rewrite one rule from a few exemplars* and compare with local and global fine-tuning on the pair
   the sensitivity run flags first (errors corrected on the target and other classes, clean accuracy).
3. *A typographic attack and its fix* on the world CLIP (``clip:world-RN``, zero-shot; a class name pasted
   on images of other classes), then the same on the world's text-tag classifier as a second example.
4. *Real photos*: the real MobileNetV2 and EfficientNet-Lite0 (``--quick``: MobileNetV2 only) on every
   colour photo that ships offline (and crops), its own predictions as labels, the generic 'object' (GrabCut) restyled with Magenta; the rewrite and the
   fine-tuning baselines edited from one exemplar photo, measured on the other photos (the study of
   :mod:`modeledit.eval.photos` in a smaller size; ``modeledit photos`` runs the whole one).

Every section writes its own results folder (resumable) with a ``summary.json``; the report is then
built from those folders, so ``modeledit report`` rebuilds the same page.

Example:
    >>> run_demo("report/", DemoConfig())
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modeledit.config import JsonConfig

log = logging.getLogger(__name__)


@dataclass
class DemoConfig(JsonConfig):
    model: str = "world_vgg"
    text_model: str = "world_vgg_text"
    clip_model: str = "clip:world-RN"       # the typographic section's first study ("" to skip it)
    clip_fonts: list[str] = field(default_factory=lambda: ["serif", "hand"])   # attack faces held out from its training
    sensitivity_images: int = 540
    concepts: list[str] = field(default_factory=lambda: ["road", "grass", "water", "sky", "sand", "floor"])
    styles: list[str] = field(default_factory=lambda: ["snow", "wooden", "graffiti"])
    bench_images: int = 900
    clean_images: int = 600
    typographic_images: int = 720
    stats_images: int = 1500                # training scenes for the key statistics C (bench and typographic)
    n_exemplars: int = 3
    sites: list[str] = field(default_factory=lambda: ["-3", "-1"])
    methods: list[str] = field(default_factory=lambda: ["edit", "finetune_local", "finetune_global", "paint_global", "rrr_global"])
    finetune_grid: list[list[float]] = field(default_factory=lambda: [[1e-2, 300], [1e-3, 300]])
    # the paper's 0.25 pp budget is 1.5 images of the demo's 600 clean images, below what that set resolves
    # (results/world/science measures it on 10,000); the demo allows 2 pp (`--max-clean-drop` in `modeledit bench`)
    max_clean_drop: float = 0.02
    photo_style: str = "floral"
    # the real ImageNet models that ship offline: section 4 runs the photos study on each
    photo_models: list[str] = field(default_factory=lambda: ["mobilenet_v2", "efficientnet_lite0"])
    photos_quick: bool = False
    seed: int = 0

    @classmethod
    def quick(cls) -> "DemoConfig":
        """A small version (about two minutes) for tests and a first look; the numbers are noisy."""
        return cls(sensitivity_images=180, concepts=["road", "grass", "water"], styles=["snow"], bench_images=270,
                   clean_images=180, typographic_images=180, stats_images=300, sites=["-1"], finetune_grid=[[1e-2, 20]], max_clean_drop=0.02,
                   photos_quick=True, photo_models=["mobilenet_v2"])


def _step(title: str) -> float:
    log.info("== %s", title)
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def prediction_figure(images: list[torch.Tensor], captions: list[str], path: Path, ncols: int | None = None) -> Path:
    """A grid of images with captions (predictions) under each."""
    from modeledit.eval.plots import _plt, _save

    plt = _plt()
    n = len(images)
    ncols = ncols or n
    nrows = -(-n // ncols)
    lines = max((c.count("\n") + 1 for c in captions), default=1)   # room for the longest caption above each row
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, (2.1 + 0.15 * lines) * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, im, cap in zip(axes.flat, images, captions):
        ax.imshow(im.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
        ax.set_title(cap, fontsize=8)   # shown at up to 760 px wide: about 10 px
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- 1


def sensitivity_section(cfg: DemoConfig, out: Path) -> pd.DataFrame:
    from modeledit.eval.datasets import load_dataset
    from modeledit.eval.plots import MIN_IMAGES, MIN_PRESENCE, plot_class_rules, plot_concept_classes, plot_concept_style_heatmap, ranked_drops
    from modeledit.eval.report import write_summary
    from modeledit.eval.sensitivity import SensitivityConfig, concept_sensitivity
    from modeledit.models import load_model

    lm = load_model(cfg.model)
    ds = load_dataset(f"world:test:{cfg.sensitivity_images}", class_names=lm.class_names)
    scfg = SensitivityConfig(concepts=cfg.concepts, styles=cfg.styles, n_boot=500, seed=cfg.seed)
    table = concept_sensitivity(lm, ds, scfg, out_dir=str(out))
    table.to_csv(out / "table.csv", index=False)
    figs = [(str(plot_concept_style_heatmap(table, out / "heatmap.png").name), "concept x style: mean accuracy drop (pp) over classes with the concept")]
    # the headline, the bars and the table share one ranking (classes where the concept is common, the paper's
    # 20% presence rule, and in at least MIN_IMAGES images, so one image is not a headline)
    top = ranked_drops(table)
    lead = top.iloc[0]
    concept, cls, style = lead["concept"], lead["class_name"], lead["style"]
    figs.append((plot_concept_classes(table, concept, out / f"concept_{concept}.png", style=style).name,
                 f"classes most affected by restyling '{concept}' with {style} (each bar's n: the class's images with {concept})"))
    figs.append((plot_class_rules(table, cls, out / f"class_{cls}.png").name, f"the concepts '{cls}' relies on"))
    shown = top.head(10)
    finding = (f"Restyling only the {concept} with {style} costs '{cls}' the most accuracy: {100 * float(lead['drop']):.1f} pp "
               f"[{100 * float(lead['drop_low']):.1f}, {100 * float(lead['drop_high']):.1f}], n = {int(lead['n_with_concept'])} images; "
               f"where a concept is common in a class the mean drop is {100 * float(top['drop'].mean()):.1f} pp "
               f"(n = {len(top)} class-style pairs).")
    write_summary(out, "sensitivity", f"1. Which concepts does each class rely on? ({lm.name})",
                  {"largest drop, concept in >= 20% of the class (pp)": 100 * float(lead["drop"]), "concept": concept, "class": cls,
                   "mean drop where concept is common (pp)": 100 * float(top["drop"].mean())},
                  n={"largest drop, concept in >= 20% of the class (pp)": int(lead["n_with_concept"]),
                     "mean drop where concept is common (pp)": len(top)},
                  text=("Only the concept's pixels are restyled (oracle masks, Magenta arbitrary style transfer, blended at 0.8); "
                        "the drop is the class's accuracy on the images containing the concept, before minus after, with 95% bootstrap "
                        f"intervals; n = those images. Classes count where the concept is in at least {100 * MIN_PRESENCE:.0f}% "
                        f"of their images and in at least {MIN_IMAGES}."),
                  tables=[{"title": "largest per-class drops (classes with the concept in at least 20% of their images)",
                           "columns": ["concept", "style", "class_name", "presence", "acc_clean", "acc_transformed", "drop"],
                           "rows": shown.to_dict("records"), "intervals": {"drop": ["drop_low", "drop_high"]},
                           "n": {"presence": "n_class_images", "acc_clean": "n_with_concept", "acc_transformed": "n_with_concept",
                                 "drop": "n_with_concept"}}],
                  figures=figs, config=asdict(scfg), finding=finding)
    return table


# ---------------------------------------------------------------------------------------------- 2


def bench_section(cfg: DemoConfig, out: Path, sensitivity_csv: Path) -> pd.DataFrame:
    from modeledit.eval.bench import BenchConfig, run_bench, summarize
    from modeledit.eval.plots import plot_methods
    from modeledit.eval.protocol import ProtocolConfig
    from modeledit.eval.report import write_summary

    bcfg = BenchConfig(model=cfg.model, dataset=f"world:test:{cfg.bench_images}", clean=f"world:val:{cfg.clean_images}", sensitivity=str(sensitivity_csv), max_pairs=1,
                       protocol=ProtocolConfig(max_clean_drop=cfg.max_clean_drop), n_exemplars=[cfg.n_exemplars],
                       seeds=[cfg.seed], methods=list(cfg.methods), sites=cfg.sites,
                       finetune_grid=cfg.finetune_grid, stats_dataset=f"world:train:{cfg.stats_images}")
    table = run_bench(bcfg, str(out)).table
    table.to_csv(out / "cells.csv", index=False)
    summary = summarize(table, cfg.max_clean_drop)
    summary.to_csv(out / "summary.csv", index=False)
    from modeledit.eval.report import BENCH_N, NO_SETTING, budget_rows, with_pair_n

    shown = with_pair_n(summary, table)   # each estimate's n: errors before the edit, clean images
    figs = [(plot_methods(shown, out / "methods.png").name, "errors corrected per method (6-3): target vs other classes, same vs held-out "
                                                            "style images (n in the legend: errors before the edit)")]
    more_figs, more_tables = _before_after(bcfg, summary, table, out)
    figs += more_figs
    row = shown.set_index("method")
    pair = f"{summary.iloc[0]['concept']} -> {summary.iloc[0]['style']}"
    numbers = {"pair": pair, "target class": summary.iloc[0]["target_class"]}
    n = {}
    for m in row.index:
        none = not bool(row.loc[m, "changed"]) and row.loc[m, "choice"] == "no setting qualifies"
        numbers[f"{m}: errors corrected, other classes"] = NO_SETTING if none else float(row.loc[m, "test_other_corrected"])
        numbers[f"{m}: clean accuracy change (pp)"] = NO_SETTING if none else -100 * float(row.loc[m, "clean_drop"])
        n[f"{m}: errors corrected, other classes"] = int(row.loc[m, "test_other_n_pre"])
        n[f"{m}: clean accuracy change (pp)"] = int(row.loc[m, "clean_n"])
    cols = ["method", "target_class", "test_target_corrected", "test_other_corrected", "heldout_target_corrected",
            "heldout_other_corrected", "clean_drop", "site_name", "setting"]
    ranked = shown[shown["changed"].astype(bool)].sort_values("test_other_corrected", ascending=False)
    if len(ranked) and float(ranked.iloc[0]["test_other_corrected"]) <= 0:
        b = ranked.iloc[0]
        finding = (f"On {pair}, no method corrects errors on other classes within the clean-accuracy budget (best: {b['method']}, "
                   f"{100 * float(b['test_other_corrected']):.1f}%, n = {int(b['test_other_n_pre'])} errors, for "
                   f"{100 * float(b['clean_drop']):.1f} pp of clean accuracy, n = {int(b['clean_n'])} images).")
    elif len(ranked):
        b = ranked.iloc[0]
        finding = (f"On {pair}, {b['method']} corrects the most errors on other classes ({100 * float(b['test_other_corrected']):.1f}%, "
                   f"n = {int(b['test_other_n_pre'])} errors; {100 * float(b['heldout_other_corrected']):.1f}% in held-out style images, "
                   f"n = {int(b['heldout_other_n_pre'])}) for {100 * float(b['clean_drop']):.1f} pp of clean accuracy "
                   f"(n = {int(b['clean_n'])} images).")
    else:
        finding = f"On {pair}, no method finds a setting that corrects errors within the clean-accuracy budget."
    finding = finding.replace("-0.0", "0.0")
    write_summary(out, "bench", f"2. Rewrite a rule from {cfg.n_exemplars} exemplars vs fine-tuning ({pair})", numbers, n=n,
                  text=("Errors corrected = (N_pre - N_post) / N_pre over transformed test images whose original the unedited model got right "
                        "(n = N_pre, the errors before the edit); hyperparameters (site x setting) chosen on validation among those losing at most "
                        f"{100 * cfg.max_clean_drop:.2f} pp of clean accuracy (none qualifying: no change)."),
                  tables=[{"title": "selected settings, test numbers", "columns": cols,
                           "rows": budget_rows(shown[cols + ["changed", "choice", *[c for c in BENCH_N.values() if c in shown.columns]]]
                                               .to_dict("records"), cols),
                           "n": {c: k for c, k in BENCH_N.items() if k in shown.columns}}, *more_tables],
                  figures=figs, config=asdict(bcfg), finding=finding)
    return summary


def _before_after(bcfg: Any, summary: pd.DataFrame, table: pd.DataFrame, out: Path) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Test images of other classes: original, transformed, and each method's prediction on the transformed one;
    then where the model looks on the exemplar and three of them, before and after each method (figures, tables)."""
    from modeledit.eval.bench import BenchRunner
    from modeledit.eval.methods import method_edit
    from modeledit.layers import get_site

    runner = BenchRunner(bcfg)
    first = table.iloc[0]
    p = runner.pair(first["concept"], first["style"], first["candidates"].split(","), int(first["n_exemplars"]), int(first["seed"]))
    names = runner.lm.class_names
    same = bcfg.exemplar_style_image
    idx = [i for i in p.test if p.labels[i] != p.target_class][:4]
    x = torch.stack([p.originals[i] for i in idx])
    xt = torch.stack([p.transformed[same][i] for i in idx])
    preds = {"before": runner.predict(xt)}
    edits = {}
    for r in summary.itertuples():
        if not r.changed:
            preds[r.method] = preds["before"]
            continue
        site = get_site(runner.lm.model, r.site_name)
        edit = method_edit(runner.lm, r.method, json.loads(r.setting), site,
                           torch.stack([p.originals[i] for i in p.exemplars]), torch.stack([p.transformed[same][i] for i in p.exemplars]),
                           torch.stack([torch.as_tensor(p.masks[i]) for i in p.exemplars]), [p.target_class] * len(p.exemplars),
                           stats=runner.statistics)
        with edit.applied(runner.lm.model):
            preds[r.method] = runner.predict(xt)
        edits[r.method] = edit
    clean = runner.predict(x)
    images, caps = [], []
    for k, i in enumerate(idx):
        images += [x[k], xt[k]]
        caps.append(f"original\ntrue {names[p.labels[i]]}\npred {names[clean[k]]}")
        caps.append("\n".join([f"{p.style} {p.concept}"] + [f"{m}: {names[v[k]]}" for m, v in preds.items()]))
    ex = [torch.stack([p.originals[i] for i in p.exemplars]), torch.stack([p.transformed[same][i] for i in p.exemplars])]
    for k in range(len(p.exemplars)):
        images += [ex[0][k], ex[1][k]]
        caps += [f"exemplar {k + 1} (x)\n{names[p.labels[p.exemplars[k]]]}", f"exemplar {k + 1} (x')"]
    path = prediction_figure(images, caps, out / "before_after.png", ncols=4)
    figs = [(path.name, "test images of other classes (original | transformed with each method's prediction) and the exemplars")]
    more_figs, tables = _explanations(runner.lm, p, edits, [p.exemplars[0], *idx[:3]], same, out)
    return figs + more_figs, tables


def _explanations(lm: Any, p: Any, edits: dict[str, Any], show: list[int], style_image: int, out: Path) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Attribution maps (captum) of the true class on transformed images, before and with each method's
    edit: one figure per map kind, and the share of each map inside the concept mask."""
    from modeledit.eval.explain import ExplainConfig, compare_edits, explanation_figure, mask_share

    names = lm.class_names
    x01 = torch.stack([p.transformed[style_image][i] for i in show])
    masks = np.stack([np.asarray(p.masks[i], dtype=np.float32) for i in show])
    targets = [p.labels[i] for i in show]
    site = next((e.sites[0] for e in edits.values() if e.sites), None)  # Grad-CAM needs a site: none when no method changed
    cfg = ExplainConfig(methods=[k for k in ExplainConfig().methods if site or k != "gradcam"], ig_steps=16)
    maps = compare_edits(lm, edits, x01, target=targets, site=site, config=cfg)
    rows = [f"{'exemplar' if k == 0 else 'test'}: {names[t]}" for k, t in enumerate(targets)]
    titles = {"gradcam": f"Grad-CAM at {site}" if site else "Grad-CAM", "input_gradient": "input gradient", "integrated_gradients": "integrated gradients"}
    figs = []
    for kind in cfg.methods:
        path = explanation_figure(x01, {stage: {kind: m[kind]} for stage, m in maps.items()}, out / f"explain_{kind}.png", rows)
        figs.append((path.name, f"where the model looks ({titles[kind]}, true class) on the exemplar and test images with {p.style} "
                                f"{p.concept}: before and with each method's edit (one colour scale per row)"))
    # the share of each map inside the mask, and the mass inside relative to before (a map can shrink
    # everywhere, as the input-gradient penalty makes it, while its share inside stays put)
    share = {stage: mask_share(m, masks) for stage, m in maps.items()}
    inside = {stage: {k: float(np.mean((np.clip(a, 0, None) * masks).sum(axis=(-2, -1)))) for k, a in m.items()} for stage, m in maps.items()}
    kinds = list(cfg.methods)
    cols = [c for k in kinds for c in (f"{k} share", f"{k} inside / before")]
    rows = [{"model": stage, **{c: v for k in kinds for c, v in ((f"{k} share", float(np.mean(share[stage][k]))),
                                                               (f"{k} inside / before", inside[stage][k] / max(inside["before"][k], 1e-12)))}}
            for stage in maps]
    table = {"title": f"explanations inside the {p.concept} mask (mean over the {len(show)} images shown): share of each map, "
                      "and its mass there relative to the unedited model", "columns": ["model", *cols], "rows": rows,
             "n": {c: len(show) for c in cols}}
    return figs, [table]


# ---------------------------------------------------------------------------------------------- 3


def typographic_section(cfg: DemoConfig, out: Path) -> list[pd.DataFrame]:
    """The world CLIP's study (folder ``<out>_clip``, shown first), then the text-tag classifier's (``<out>``,
    the folder earlier versions of the demo wrote, with the same configuration, so it resumes)."""
    from modeledit.eval.typographic import TypographicConfig

    common = dict(dataset=f"world:test:{cfg.typographic_images}", clean=f"world:val:{cfg.clean_images}", finetune_grid=cfg.finetune_grid,
                  max_clean_drop=cfg.max_clean_drop, seed=cfg.seed, stats_dataset=f"world:train:{cfg.stats_images}")
    studies = []
    if cfg.clip_model:
        studies.append((TypographicConfig(model=cfg.clip_model, sites=["visual.layer4.0"], paster="world_clip", fonts=list(cfg.clip_fonts),
                                          **common), out.parent / f"{out.name}_clip", "3. A typographic attack on the world CLIP", -1))
    studies.append((TypographicConfig(model=cfg.text_model, sites=cfg.sites, paster="world_tag", **common), out,
                    "3b. The same attack on the world's text-tag classifier" if cfg.clip_model else "3. A typographic attack", 0))
    return [_typographic_study(tcfg, folder, title, order) for tcfg, folder, title, order in studies]


def _typographic_study(tcfg: Any, out: Path, title: str, order: int = 0) -> pd.DataFrame:
    from modeledit.eval.report import _group_n, budget_rows, write_summary
    from modeledit.eval.typographic import build_study, run_typographic

    built = build_study(tcfg)          # once: its cells and the labelled examples below share it (and its statistics)
    table, summary = run_typographic(tcfg, out, build=lambda _cfg: built)
    table.to_csv(out / "cells.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    n_of = _group_n(out)   # the images each group was measured on
    row = summary.set_index("method")
    numbers = {"accuracy under attack, before": float(summary.iloc[0]["pre_attack_acc"]),
               "attack success, before": float(summary.iloc[0]["pre_attack_success"])}
    n = {"accuracy under attack, before": n_of["attack_acc"], "attack success, before": n_of["attack_success"]}
    for m in row.index:
        numbers[f"{m}: accuracy under attack"] = float(row.loc[m, "post_attack_acc"])
        numbers[f"{m}: spurious 'text -> exemplar class'"] = float(row.loc[m, "spurious_rule"])
        n[f"{m}: accuracy under attack"], n[f"{m}: spurious 'text -> exemplar class'"] = n_of["attack_acc"], n_of["to_exemplar_class"]
    cols = ["method", "pre_attack_acc", "post_attack_acc", "post_attack_success", "pre_clean", "post_clean",
            "post_own_class_acc", "spurious_rule", "site_name", "setting"]
    col_n = {"pre_attack_acc": n_of["attack_acc"], "post_attack_acc": n_of["attack_acc"], "post_attack_success": n_of["attack_success"],
             "pre_clean": n_of["clean"], "post_clean": n_of["clean"], "post_own_class_acc": n_of["own_class_acc"],
             "spurious_rule": n_of["to_exemplar_class"]}
    changed = summary[summary["changed"].astype(bool)].sort_values("post_attack_acc", ascending=False)
    pre_acc, pre_success = float(summary.iloc[0]["pre_attack_acc"]), float(summary.iloc[0]["pre_attack_success"])
    attack = f"The attack succeeds on {100 * pre_success:.1f}% and leaves {100 * pre_acc:.1f}% accuracy (n = {n_of['attack_acc']} images)"
    if len(changed):
        b = changed.iloc[0]
        finding = (f"{attack}; {b['method']}'s one-exemplar fix brings it to {100 * float(b['post_attack_acc']):.1f}% at "
                   f"{-100 * float(b['clean_drop']):.1f} pp clean accuracy (n = {n_of['clean']}).").replace("-0.0 pp", "0.0 pp")
    else:
        finding = f"{attack}; no method fixes it within the clean-accuracy budget."
    examples = _attack_examples(built[0], changed, out)
    write_summary(out, "typographic", f"{title} ({tcfg.model}; '{tcfg.attack_class}' pasted on other classes) and its one-exemplar fix",
                  numbers, n=n, text=("The fix uses one image of another class with the text (x') and with a blank patch (x). "
                                      "own_class_acc: clean images of the attack class, which must still be recognised."),
                  tables=[{"title": "per method (setting chosen on validation within the clean budget)", "columns": cols,
                           "rows": budget_rows(summary[cols + ["changed"]].to_dict("records"), cols), "percent": ["pre_clean", "post_clean"],
                           "n": col_n}],
                  figures=[(examples.name, "the exemplar (x: blank patch, x': text) and attacked test images: the true class, the model's "
                                           "prediction without the text, with it, and with the best method's edit")],
                  config=asdict(tcfg), finding=finding, order=order)
    return summary


def _attack_examples(study: Any, changed: pd.DataFrame, out: Path, k: int = 4) -> Path:
    """The exemplar pair and ``k`` attacked test images of ``study`` (the typographic study that ran), each labelled with
    the true class and the model's prediction on the image without the text, with it, and with the edit of ``changed``'s
    first method (its chosen setting); a tick marks a right prediction."""
    from modeledit.eval.methods import method_edit
    from modeledit.layers import get_site

    lm, names, ex = study.lm, study.lm.class_names, study.ex
    attacked, y = study.groups["attack_acc"]
    plain = study.groups["orig_acc"][0]
    idx = list(range(min(k, len(y))))
    said = {"no text": lm.predict_labels(plain[idx]), "attacked": lm.predict_labels(attacked[idx])}
    if len(changed):
        r = changed.iloc[0]
        edit = method_edit(lm, r["method"], json.loads(r["setting"]), get_site(lm.model, r["site_name"]), ex.x[None],
                           ex.x_prime[None], ex.mask[None], [ex.label], stats=study.statistics)
        with edit.applied(lm.model):
            said[f"{r['method']}"] = lm.predict_labels(attacked[idx])
    images = [ex.x, ex.x_prime, *[attacked[i] for i in idx]]
    caps = [f"exemplar x (blank)\n{names[ex.label]}", f"exemplar x' (text)\n{names[ex.label]}"]
    for j, i in enumerate(idx):
        caps.append("\n".join([f"true: {names[y[i]]}"] + [f"{w}: {names[v[j]]}{' ✓' if v[j] == y[i] else ' ✗'}" for w, v in said.items()]))
    return prediction_figure(images, caps, out / "examples_predictions.png", ncols=len(images))


# ---------------------------------------------------------------------------------------------- 4


def photo_section(cfg: DemoConfig, out: Path) -> pd.DataFrame:
    """The photos study (:mod:`modeledit.eval.photos`) in the demo's size, on each real ImageNet model of
    ``cfg.photo_models`` (MobileNetV2 and EfficientNet-Lite0): every shipped colour photo (and a crop of each),
    the model's own predictions as labels, the GrabCut 'object' restyled with Magenta, each method edited from
    one exemplar photo and measured on the other photos. The first model writes ``out``, the others
    ``out`` + ``_MODEL``; the methods tables are returned one after the other."""
    import dataclasses

    from modeledit.eval.photos import PhotosConfig, run_photos

    base = PhotosConfig.quick() if cfg.photos_quick else PhotosConfig.demo()
    tables = []
    for k, model in enumerate(cfg.photo_models):
        pcfg = dataclasses.replace(base, model=model, styles=[cfg.photo_style], seed=cfg.seed)
        folder = out if k == 0 else out.with_name(f"{out.name}_{model}")
        _, _, methods = run_photos(pcfg, folder, title=(f"4.{k + 1} Real photos: {model} (real ImageNet weights) edited "
                                                        f"from one exemplar photo, {cfg.photo_style} foreground"))
        tables.append(methods.assign(model=model))
    return pd.concat(tables, ignore_index=True)


SECTIONS = ("sensitivity", "bench", "typographic", "photos")


def run_demo(out_dir: str | Path, cfg: DemoConfig | None = None, sections: tuple[str, ...] = SECTIONS) -> Path:
    """Run the demo's sections into ``out_dir`` (each resumable) and build ``index.html``."""
    from modeledit.eval.report import build_report

    cfg = cfg or DemoConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    steps = {
        "sensitivity": ("concept sensitivity of the world classifier", lambda: sensitivity_section(cfg, out / "sensitivity")),
        "bench": ("editing vs fine-tuning on the most sensitive concept-style pair",
                  lambda: bench_section(cfg, out / "bench", out / "sensitivity" / "table.csv")),
        "typographic": ("typographic attack and its fix (world CLIP, then the text-tag classifier)",
                        lambda: typographic_section(cfg, out / "typographic")),
        "photos": ("real photos with the real MobileNetV2 and EfficientNet-Lite0", lambda: photo_section(cfg, out / "photos")),
    }
    timings = {}
    chosen = [name for name in SECTIONS if name in sections]
    for k, name in enumerate(chosen, 1):
        t = _step(f"{k}/{len(chosen)} {steps[name][0]}")
        steps[name][1]()
        timings[name] = time.perf_counter() - t
    page = build_report(out, title="modeledit demo: measuring and rewriting prediction rules")
    log.info("demo finished in %.0fs (%s)", time.perf_counter() - t0, timings)
    return page
