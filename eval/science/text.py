"""The summary as markdown.

Part of the science summary (:mod:`modeledit.eval.science`)."""
from __future__ import annotations

import pandas as pd

from modeledit.eval.science.figures import _budget_label


def _pp(frame: Mapping[str, Any], col: str) -> str:
    """'23.1 [12.0, 35.2]' (percent, or percentage points for the clean drop); '-' when undefined."""
    v = frame.get(col)
    if v is None or pd.isna(v):
        return "-"
    lo, hi = frame.get(f"{col}_lo"), frame.get(f"{col}_hi")
    f = lambda x: f"{round(100 * x, 1) + 0.0:.1f}"  # noqa: E731  (+ 0.0: no "-0.0")
    if lo is None or pd.isna(lo):
        return f(v)
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def sensitivity_markdown(table: pd.DataFrame) -> str:
    """One model's selection table (:func:`selection_table`) as a concept x style grid of mean drops (pp);
    a star marks the pairs the selection rule admits."""
    if table.empty:
        return ""
    styles = sorted(table["style"].unique())
    lines = ["", f"## {table['model'].iloc[0]}: pair selection on {table['dataset'].iloc[0]}", "",
             "Mean accuracy drop (pp) over the classes whose images contain the concept in at least the protocol's share; "
             "* = admitted by the selection rule", "", "| concept | " + " | ".join(styles) + " |", "|" + " --- |" * (len(styles) + 1)]
    for concept, g in table.groupby("concept", sort=True):
        cell = {r["style"]: f"{100 * r['mean_drop']:.0f}" + ("*" if r["admitted"] else "") for r in g.to_dict("records")}
        lines.append(f"| {concept} | " + " | ".join(cell.get(st, "-") for st in styles) + " |")
    return "\n".join(lines) + "\n"


def markdown_summary(result: ScienceResult) -> str:
    """The summary as markdown tables (percent, 95% intervals in brackets), for reading and the README."""
    cols = ["test_target_corrected", "test_other_corrected", "heldout_target_corrected", "heldout_other_corrected"]
    head = "| method | target, same style | other, same style | target, held-out | other, held-out | clean drop (pp) | units: changed / none qualifies / no gain | chosen |"
    lines = []
    for model, res in result.resolution.groupby("model", sort=True):
        r0 = res.iloc[0]
        lines += [f"## {model}", "",
                  f"Clean set: {int(r0['clean_n'])} images (unedited accuracy {100 * r0['clean_acc_pre']:.2f}%); one image = "
                  f"{r0['one_image_pp']:.3f} pp; budgets in images: "
                  + ", ".join(f"{b['budget_pp']:g} pp = {b['budget_images']:g}" for b in res.to_dict("records")), ""]
        s = result.summary[result.summary["model"] == model]
        for (nex, budget), g in s.groupby(["n_exemplars", "budget"], sort=True):
            lines += [f"### {nex} exemplars, clean budget {_budget_label(budget)}", "", head, "|" + " --- |" * 8]
            for r in g.to_dict("records"):
                lines.append(f"| {r['method']} | " + " | ".join(_pp(r, c) for c in cols) + f" | {_pp(r, 'clean_drop')} | "
                             f"{r['n_changed']} / {r['n_none_qualifies']} / {r['n_no_gain']} of {r['n_units']} | {r['chosen']} |")
            lines.append("")
        a = result.ablations[result.ablations["model"] == model] if not result.ablations.empty else result.ablations
        if not a.empty:
            lines += ["### ablations (variant - base, paired on the same units and images)", "",
                      "| ablation | exemplars | budget | target, same style | other, same style | target, held-out | other, held-out | clean drop (pp) | units |",
                      "|" + " --- |" * 9]
            for r in a.to_dict("records"):
                lines.append(f"| {r['ablation']}: {r['variant']} - {r['base']} | {r['n_exemplars']} | {_budget_label(r['budget'])} | "
                             + " | ".join(_pp(r, f"diff_{c}") for c in cols) + f" | {_pp(r, 'diff_clean_drop')} | {r['n_units']} |")
            lines.append("")
        ex = result.by_exemplars[result.by_exemplars["model"] == model] if not result.by_exemplars.empty else result.by_exemplars
        if not ex.empty:
            lines += ["### exemplar counts (on the units run at every count of the method)", "",
                      "| method | budget | exemplars | " + " | ".join(
                          ["target, same style", "other, same style", "target, held-out", "other, held-out", "clean drop (pp)", "units changed"])
                      + " |", "|" + " --- |" * 9]
            for r in ex.sort_values(["method", "budget", "n_exemplars"]).to_dict("records"):
                lines.append(f"| {r['method']} | {_budget_label(r['budget'])} | {r['n_exemplars']} | "
                             + " | ".join(_pp(r, c) for c in cols) + f" | {_pp(r, 'clean_drop')} | {r['n_changed']} of {r['n_units']} |")
            lines.append("")
        bs = result.by_site[result.by_site["model"] == model] if not result.by_site.empty else result.by_site
        if not bs.empty:
            lines += ["### best setting per site", "", "| method | exemplars | budget | site | " + " | ".join(
                ["target, same style", "other, same style", "target, held-out", "other, held-out", "clean drop (pp)", "units changed"])
                + " |", "|" + " --- |" * 10]
            for r in bs.sort_values(["method", "n_exemplars", "budget", "site_index"]).to_dict("records"):
                lines.append(f"| {r['method']} | {r['n_exemplars']} | {_budget_label(r['budget'])} | {r['site_index']}: {r['site']} | "
                             + " | ".join(_pp(r, c) for c in cols) + f" | {_pp(r, 'clean_drop')} | {r['n_changed']} of {r['n_units']} |")
            lines.append("")
    return "\n".join(lines)
