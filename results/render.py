"""Write the tables of ``results/README.md`` and ``benchmarks/README.md`` from the committed JSON and CSV files.

Each table sits between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` and is replaced whole; the prose
around it is left alone. ``--check`` changes nothing and fails (exit 1, naming the tables) where a committed
table differs from what the data gives, so a table cannot drift from its numbers (``tests/test_readme.py``
runs the check).

    python results/render.py            # rewrite the tables
    python results/render.py --check    # exit 1 if any table differs from the data
"""
from __future__ import annotations

import csv
import json
import math
import re
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "results"
SCI = RES / "world" / "science" / "summary"
CLIP = RES / "world" / "clip_typographic" / "clip_world-RN"
PAPER_BUDGET = "0.0025"


# ---------------------------------------------------------------------------------------------------
# reading and formatting


def _json(rel: str) -> dict:
    return json.loads((RES / rel).read_text())


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _f(r: dict, k: str) -> float:
    v = r.get(k, "")
    return float(v) if v not in ("", None) else math.nan


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct_ci(r: dict, k: str) -> str:
    """'63 [54, 72]': a fraction as % with its interval."""
    return f"{100 * _f(r, k):.0f} [{100 * _f(r, k + '_lo'):.0f}, {100 * _f(r, k + '_hi'):.0f}]"


def pp_ci(r: dict, k: str, digits: int = 1, sign: bool = True) -> str:
    """'+21.7 pp [18.5, 24.9]': a change in percentage points with its interval."""
    s = "+" if sign else ""
    return f"{100 * _f(r, k):{s}.{digits}f} pp [{100 * _f(r, k + '_lo'):.{digits}f}, {100 * _f(r, k + '_hi'):.{digits}f}]"


def num(v: float, digits: int) -> str:
    return f"{v:.{digits}f}"


# ---------------------------------------------------------------------------------------------------
# benchmarks (benchmarks/README.md)


def bench_solvers() -> str:
    d = _json("bench_edit.json")
    rows = []
    for r in d["solvers"]:
        model = r["model"] + (" (random init)" if r["model"] == "vgg16_bn" else "")
        rows.append([model, r["site"], r["activation"], r["key_dim"], num(r["objective_before"], 4), num(r["closed_form_objective"], 4),
                     num(r["adam_objective"], 4), f"{r['closed_form_seconds']:.4f} ({r['closed_form_cpu_seconds']:.4f})",
                     f"{r['adam_seconds']:.1f} ({r['adam_cpu_seconds']:.1f})", f"{r['speedup']:.0f}x", f"{r['speedup_cpu']:.0f}x"])
    return table(["model", "site", "act.", "key dim", "objective before", "closed form", "adam (20000 steps)", "closed form s (CPU s)",
                  "adam s (CPU s)", "speed-up wall", "speed-up CPU"], rows)


def bench_adam_speed() -> str:
    d = _json("bench_edit.json")
    rows = [[r["model"], r["site"], "x".join(map(str, r["kernel"])), r["mode"], f"{r['objective_positions']} of {r['positions']}",
             f"{r['before_steps_per_s']:.0f}", f"{r['after_steps_per_s']:.0f}", f"{r['speedup']:.1f}x"] for r in d["adam_speed"]]
    return table(["model", "site", "kernel", "mode", "objective positions", "before steps/s", "after steps/s", "speed-up"], rows)


def _small(v: float) -> str:
    return f"{v:.4f}" if v >= 1e-3 else f"{v:.1e}"


def bench_full_rank() -> str:
    d = _json("bench_edit.json")
    by = {(r["site"], r["mode"]): r for r in d["full_rank"]}
    sites = sorted({r["site"] for r in d["full_rank"]}, key=lambda s: int(s.split(".")[-1]))
    rows = []
    for s in sites:
        w, m = by[(s, "whole")], by[(s, "masked")]
        rows.append([s, w["key_dim"], _small(w["rank8_objective"]), _small(w["full_objective"]), f"{w['full_seconds']:.2f}",
                     _small(m["rank8_objective"]), _small(m["full_objective"]), f"{m['full_seconds']:.2f}"])
    return table(["site", "key dim", "whole: rank 8", "whole: full", "whole: full s", "masked: rank 8", "masked: full", "masked: full s"], rows)


def bench_throughput() -> str:
    d = _json("bench_edit.json")
    rows = [[r["site"], f"{r['forward_images_per_s']:.1f}", f"{r['stats_images_per_s']:.1f}", f"{r['ratio']:.2f}"] for r in d["throughput"]]
    return table(["site", "forward images/s", "statistics images/s", "ratio"], rows)


def bench_sweep() -> str:
    d = _json("bench_sweep.json")
    rows = []
    for m in d["models"]:
        for s in m["sites"]:
            ft = s["finetune_global"]
            rows.append([m["model"], f"{s['position']} `{s['site']}`", f"{s['naive_cells_per_min']:.2f}", f"{s['cached_cells_per_min']:.2f}",
                         f"{s['ratio']:.1f}x", f"{s['predict_ratio']:.1f}x", f"{s['cache_mb']:.0f}",
                         f"{s['naive_peak_mb']:.0f} / {s['cached_peak_mb']:.0f}",
                         f"{ft['naive_steps_per_s']:.0f} -> {ft['suffix_steps_per_s']:.0f}"])
    return table(["model", "site", "full forward cells/min", "from the site cells/min", "ratio", "predictions alone", "cache MB",
                  "peak MB full / from the site", "global fine-tuning steps/s (full -> suffix)"], rows)


def bench_generator() -> str:
    d = _json("bench_generator.json")
    rows = [[r["size"], r["batch_size"], f"{r['stylizer_img_per_s']:.2f}", f"{r['generator_img_per_s']:.2f}", f"{r['ratio']:.3f}"]
            for r in d["rows"]]
    return table(["image size", "batch", "stylizer alone (img/s)", "generator (img/s)", "generator / stylizer-bound, same run"], rows)


def bench_demo_time() -> str:
    d = _json("demo_time.json")
    rows = [[r.get("command", d["command"]).split(" (")[0].split(",")[0], r["caches"].split(" (")[0], r["seconds"]] for r in d["runs"]]
    return table(["run", "caches", "seconds"], rows)


# ---------------------------------------------------------------------------------------------------
# results (results/README.md)


def world_context() -> str:
    d = _json("world_context.json")
    order = ["road", "grass", "water", "sky", "sand", "floor"]
    rows = []
    for model, m in d["models"].items():
        for swap, key, mean in (("texture: snow", "contexts", "mean_"), ("Magenta style: snow", "style_contexts", "style_mean_")):
            if key not in m:
                continue
            cs = m[key]
            cells = [f"{100 * cs[c]['cooccurring_drop']:.0f} / {100 * cs[c]['other_drop']:.0f}" for c in order]
            rows.append([f"`{model}`", swap, *cells, f"{100 * m[mean + 'cooccurring_drop']:.0f} / {100 * m[mean + 'other_drop']:.0f}"])
    return table(["model", "swap", *order, "mean"], rows)


def clip_eval() -> str:
    d = _json("world/clip/eval.json")
    a = d["attacks"]
    faces = ("typed_serif", "handwriting", "typed_sans", "world_tag")
    j = lambda k, fs=faces: " / ".join(f"{a[f][k]:.3f}" for f in fs)  # noqa: E731
    return table([f"measure ({d['n_test']} clean test scenes; {a['typed_serif']['n']} correctly classified for the attacks)", "value"], [
        [f"zero-shot clean accuracy (chance {d['chance']:.3f})", f"{d['clean_accuracy']:.3f}"],
        ["a pasted class name turns a correct prediction into that class: serif / handwriting (held out)", j("flip_to_word", faces[:2])],
        ["the same with the training fonts: sans / world tag", j("flip_to_word", faces[2:])],
        ["a blank patch sends a correct prediction to that class: serif / hand / sans / world", j("blank_to_word")],
        ["a blank patch changes a correct prediction (to any class): serif / hand / sans / world", j("blank_changed")],
        ["the pasted text changes a correct prediction (to any class): serif / hand / sans / world", j("changed")],
    ])


def _sensitivity(model: str) -> str:
    rows = [r for r in _csv(SCI / "sensitivity.csv") if r["model"] == model]
    styles = sorted({r["style"] for r in rows})
    concepts = sorted({r["concept"] for r in rows})
    cell = {(r["concept"], r["style"]): f"{100 * _f(r, 'mean_drop'):.0f}" + ("*" if r["admitted"] == "True" else "") for r in rows}
    return table(["concept", *styles], [[c, *(cell[(c, s)] for s in styles)] for c in concepts])


def sensitivity_vgg() -> str:
    return _sensitivity("world_vgg")


def sensitivity_resnet() -> str:
    return _sensitivity("world_resnet")


MAIN_METHODS = ("edit", "edit_full", "edit_masked", "finetune_local", "finetune_global", "paint_local", "paint_global")


def main_comparison() -> str:
    rows = {(r["method"], r["model"]): r for r in _csv(SCI / "summary.csv") if r["budget"] == PAPER_BUDGET and r["n_exemplars"] == "3"}
    out = []
    for m in MAIN_METHODS:
        for model in ("world_vgg", "world_resnet"):
            r = rows[(m, model)]
            out.append([m, model, pct_ci(r, "test_target_corrected"), pct_ci(r, "test_other_corrected"), pct_ci(r, "heldout_target_corrected"),
                        pct_ci(r, "heldout_other_corrected"),
                        f"{100 * _f(r, 'clean_drop'):.2f} [{100 * _f(r, 'clean_drop_lo'):.2f}, {100 * _f(r, 'clean_drop_hi'):.2f}]",
                        f"{r['n_changed']} of {r['n_units']}"])
    return table(["method", "classifier", "target, same style", "other, same style", "target, held-out", "other, held-out",
                  "clean drop (pp)", "units changed"], out)


def _budget(b: str) -> str:
    return "unconstrained" if b in ("inf", "none") else f"{100 * float(b):g} pp"


def paired_sites() -> str:
    rows = []
    for r in _csv(SCI / "paired_sites.csv"):
        rows.append([r["model"], f"{r['variant']} - {r['base']}", _budget(r["budget"]), pp_ci(r, "diff_test_other_corrected", 0),
                     pp_ci(r, "diff_test_target_corrected", 0), f"{100 * _f(r, 'diff_clean_drop'):+.2f}", r["n_units"]])
    return table(["classifier", "site minus deepest", "budget", "other, same style", "target, same style", "clean drop (pp)", "units"], rows)


def paired_rank_by_site() -> str:
    rows = []
    for r in _csv(SCI / "paired_rank_by_site.csv"):
        rows.append([r["model"], r["site"], _budget(r["budget"]), pp_ci(r, "diff_test_other_corrected", 0),
                     pp_ci(r, "diff_test_target_corrected", 0), f"{100 * _f(r, 'diff_clean_drop'):+.2f}", r["n_units"]])
    return table(["classifier", "site", "budget", "other, same style", "target, same style", "clean drop (pp)", "units"], rows)


def paired_exemplars() -> str:
    rows = []
    for r in _csv(SCI / "paired_exemplars.csv"):
        rows.append([r["model"], f"{r['count_b']} - {r['count_a']}", _budget(r["budget"]), pp_ci(r, "diff_test_other_corrected", 0),
                     pp_ci(r, "diff_test_target_corrected", 0), r["n_units"]])
    return table(["classifier", "exemplars", "budget", "other, same style", "target, same style", "units"], rows)


def clean_heldout_half() -> str:
    rows = []
    for r in _csv(SCI / "clean_heldout_half.csv"):
        if r["method"] not in MAIN_METHODS:
            continue
        rows.append([r["method"], r["model"], f"{100 * _f(r, 'clean_drop_selection'):.2f} [{100 * _f(r, 'clean_drop_selection_lo'):.2f}, "
                     f"{100 * _f(r, 'clean_drop_selection_hi'):.2f}]", f"{100 * _f(r, 'clean_drop_heldout'):.2f} "
                     f"[{100 * _f(r, 'clean_drop_heldout_lo'):.2f}, {100 * _f(r, 'clean_drop_heldout_hi'):.2f}]",
                     f"{r['n_changed']} of {r['n_units']}", r["same_choice_as_full_selection"]])
    return table(["method", "classifier", "clean drop (pp), selection half", "clean drop (pp), held-out half", "units changed",
                  "same setting as the full-set selection"], rows)


def _setting(r: dict) -> str:
    s = json.loads(r["setting"]) if r.get("setting", "").startswith("{") else {}
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items())


def _oneshot(rows: list[dict], cols: Sequence[tuple[str, str]]) -> list[list[str]]:
    out = []
    for r in rows:
        if r["changed"] != "True":
            out.append([r["method"], "no change", *("" for _ in cols)])
            continue
        cells = []
        for key, kind in cols:
            if kind == "acc":
                cells.append(f"{_f(r, 'post_' + key):.3f}: {pp_ci(r, 'change_' + key)}")
            else:
                cells.append(pp_ci(r, "change_" + key, 2 if key == "clean" else 1))
        out.append([r["method"], _setting(r), *cells])
    return out


def typographic() -> str:
    cols = [("attack_acc", "acc"), ("attack_success", "acc"), ("clean", "pp"), ("own_class_acc", "pp"), ("to_exemplar_class", "pp")]
    rows = _csv(RES / "world/science/typographic/summary.csv") + _csv(RES / "world/science/typographic_rrr/summary.csv")
    return table(["method", "chosen setting", "accuracy under attack", "attack success", "clean (10,000)", "attack class, no text",
                  "sent to the exemplar's class"], _oneshot(rows, cols))


def snow() -> str:
    cols = [("snowy_vehicles", "acc"), ("vehicles_clean", "pp"), ("clean", "pp"), ("to_exemplar_class", "pp")]
    rows = _csv(RES / "world/science/snow/summary.csv") + _csv(RES / "world/science/snow_rrr/summary.csv")
    return table(["method", "chosen setting", "snowy vehicles (300)", "clean vehicles", "clean (10,000)", "snowy vehicles sent to \"cow\""],
                 _oneshot(rows, cols))


def clip_typographic() -> str:
    cols = [("attack_acc", "acc"), ("attack_success", "acc"), ("clean", "pp"), ("own_class_acc", "pp"), ("to_exemplar_class", "pp")]
    out = []
    for word in ("car", "airplane"):
        for folder in (word, f"{word}_rrr", f"{word}_layer3"):
            for row in _oneshot(_csv(CLIP / folder / "summary.csv"), cols):
                site = "visual.layer3.0" if folder.endswith("layer3") else "visual.layer4.0"
                out.append([word, f"`{site}`", *row])
    return table(["attack class", "site", "method", "chosen setting", "accuracy under attack (594)", "attack success (594)",
                  "clean (10,000)", "attack class, no text (50)", "sent to the exemplar's class"], out)


def clip_seeds() -> str:
    dest = json.loads((CLIP / "destinations.json").read_text())
    out = []
    for word in ("car", "airplane"):
        for layer, site in (("layer4", "visual.layer4.0"), ("layer3", "visual.layer3.0")):
            for method, label in (("edit", "whole image"), ("edit_masked", "mask only")):
                cells: list[list[str]] = [[], [], [], []]
                for seed in (0, 1, 2):
                    folder = (word if layer == "layer4" else f"{word}_layer3") if seed == 0 else f"{word}_{layer}_seed{seed}"
                    r = next(x for x in _csv(CLIP / folder / "summary.csv") if x["method"] == method)
                    if r["changed"] != "True":
                        cells[0].append("no strength qualifies")
                        cells[1].append("-")
                        cells[2].append("-")
                        cells[3].append(dest[folder]["exemplar_class"])
                        continue
                    cells[0].append(f"{_f(r, 'post_attack_acc'):.2f} [{_f(r, 'change_attack_acc_lo'):.2f}, {_f(r, 'change_attack_acc_hi'):.2f}]")
                    lo, hi = _f(r, "pre_attack_success") + _f(r, "change_attack_success_lo"), _f(r, "pre_attack_success") + _f(r, "change_attack_success_hi")
                    cells[1].append(f"{_f(r, 'post_attack_success'):.2f} [{lo:.2f}, {hi:.2f}]")
                    cells[2].append(f"{100 * _f(r, 'change_to_exemplar_class'):.1f}")
                    cells[3].append(dest[folder]["exemplar_class"])
                out.append([word, f"`{site}`", label, *(" / ".join(c) for c in cells)])
    return table(["attack class", "site", "objective", "accuracy under attack (594): seed 0 / 1 / 2", "attack success (594): seed 0 / 1 / 2",
                  "sent to the exemplar's class, pp: seed 0 / 1 / 2", "exemplar's class: seed 0 / 1 / 2"], out)


def clip_destinations() -> str:
    dest = json.loads((CLIP / "destinations.json").read_text())
    rows = []
    for folder, d in dest.items():
        for method, e in d["edits"].items():
            a = e["after"]
            top = ", ".join(f"{c} {n}" for c, n in a["top_other"][:3])
            rows.append([folder, d["exemplar_class"], method, f"`{e['site']}`", f"{a['own']:.3f}", f"{a['attack_class']:.3f}",
                         f"{a['exemplar_class']:.3f}", f"{a['other']:.3f}", top, "yes" if a.get("matches_summary") else "no"])
    return table(["folder", "exemplar", "method", "site", "own class", "attack class", "exemplar's class", "third classes",
                  f"most frequent third classes (of {next(iter(dest.values()))['before']['n']})", "matches summary"], rows)


def headline() -> str:
    """The README's short table: one line per headline, each linking to its full reading."""
    main = {(r["method"], r["model"]): r for r in _csv(SCI / "summary.csv") if r["budget"] == PAPER_BUDGET and r["n_exemplars"] == "3"}
    base = [m for m in MAIN_METHODS if not m.startswith("edit")]

    def other(m: str, model: str) -> str:
        return f"{100 * _f(main[(m, model)], 'test_other_corrected'):.0f}%"

    best = {model: max(base, key=lambda m: _f(main[(m, model)], "test_other_corrected")) for model in ("world_vgg", "world_resnet")}
    typo = next(r for r in _csv(RES / "world/science/typographic/summary.csv") if r["method"] == "edit")
    sn = next(r for r in _csv(RES / "world/science/snow/summary.csv") if r["method"] == "edit")
    e, s = _json("bench_edit.json"), _json("bench_sweep.json")
    sp = [r["speedup"] for r in e["solvers"]]
    deep = [x["ratio"] for m in s["models"] for x in m["sites"] if x["position"] == "deepest"]
    runs = _json("demo_time.json")["runs"]
    res, bench = "results/README.md", "benchmarks/README.md"
    return table(["measure", "value", "where"], [
        ["other-class errors corrected within 0.25 pp of clean accuracy, 3 exemplars: edit vs the best baseline "
         f"(`world_vgg` / `world_resnet`, {main[('edit', 'world_vgg')]['n_units']} / {main[('edit', 'world_resnet')]['n_units']} units)",
         f"{other('edit', 'world_vgg')} vs {other(best['world_vgg'], 'world_vgg')} / {other('edit', 'world_resnet')} vs "
         f"{other(best['world_resnet'], 'world_resnet')}", f"[main comparison]({res}#the-main-comparison)"],
        ["typographic attack on `world_vgg_text`, one exemplar: attack success before -> after the edit",
         f"{_f(typo, 'pre_attack_success'):.2f} -> {_f(typo, 'post_attack_success'):.2f}",
         f"[typographic]({res}#typographic-attack-and-its-one-exemplar-fix)"],
        ["snowy roads from one synthetic exemplar: `world_vgg`'s accuracy on snowy vehicles before -> after the edit",
         f"{_f(sn, 'pre_snowy_vehicles'):.2f} -> {_f(sn, 'post_snowy_vehicles'):.2f}", f"[snow]({res}#snow-adaptation-from-one-synthetic-exemplar)"],
        ["closed-form rewrite vs 20000 adam steps (wall-clock speed-up)", f"{min(sp):.0f}x-{max(sp):.0f}x", f"[benchmarks]({bench}#closed-form-vs-adam)"],
        ["a sweep cell evaluated from the edit site on, deepest site", f"{min(deep):.1f}x-{max(deep):.1f}x",
         f"[benchmarks]({bench}#sweeps-from-the-site-on)"],
        ["`make demo` once installed (2-core CPU)", f"{runs[0]['seconds']} s, warm caches", f"[benchmarks]({bench}#the-demo)"],
    ])


TABLES: dict[str, dict[str, Callable[[], str]]] = {
    "benchmarks/README.md": {"solvers": bench_solvers, "adam_speed": bench_adam_speed, "full_rank": bench_full_rank,
                             "throughput": bench_throughput, "sweep": bench_sweep, "generator": bench_generator,
                             "demo_time": bench_demo_time},
    "results/README.md": {"world_context": world_context, "clip_eval": clip_eval, "sensitivity_world_vgg": sensitivity_vgg,
                          "sensitivity_world_resnet": sensitivity_resnet, "main": main_comparison, "paired_sites": paired_sites,
                          "paired_rank_by_site": paired_rank_by_site, "paired_exemplars": paired_exemplars,
                          "clean_heldout_half": clean_heldout_half, "typographic": typographic, "clip_typographic": clip_typographic,
                          "clip_seeds": clip_seeds, "clip_destinations": clip_destinations, "snow": snow},
    "README.md": {"headline": headline},
}
MARKER = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)\n?(<!-- /table:(?P=name) -->)", re.S)


def render(text: str, tables: dict[str, Callable[[], str]], where: str) -> tuple[str, list[str]]:
    """``text`` with every marked table rewritten; the names of tables that changed. A marker without a
    renderer, or a renderer without its marker, is an error."""
    found = [m.group("name") for m in MARKER.finditer(text)]
    unknown = sorted(set(found) - set(tables))
    missing = sorted(set(tables) - set(found))
    if unknown or missing:
        raise ValueError(f"{where}: tables without a renderer {unknown}, renderers without a table {missing}")
    changed: list[str] = []

    def sub(m: re.Match) -> str:
        new = tables[m.group("name")]()
        if new != m.group("body"):
            changed.append(m.group("name"))
        return m.group(1) + new + "\n" + m.group(4)

    return MARKER.sub(sub, text), changed


def main(argv: Sequence[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    stale = []
    for rel, tables in TABLES.items():
        path = ROOT / rel
        text = path.read_text()
        new, changed = render(text, tables, rel)
        stale += [f"{rel}: {n}" for n in changed]
        if not check and new != text:
            path.write_text(new)
    if check and stale:
        print("tables differ from the committed data (run python results/render.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
