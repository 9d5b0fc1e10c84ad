"""The paper's figures 6-3, 6-4, 6-7, 6-8 and 6-9 with error bars, one set per world classifier.

Part of the science summary (:mod:`modeledit.eval.science`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from modeledit.eval.science.data import PAPER_BUDGET


def _main_exemplars(summary: pd.DataFrame) -> int:
    """The exemplar count of the main figures: the paper's 3 when run, else the most common."""
    counts = summary["n_exemplars"].value_counts()
    return 3 if 3 in counts.index else int(counts.index[0])


def _err(frame: pd.DataFrame, col: str) -> np.ndarray:
    v, lo, hi = frame[col].to_numpy(float), frame[f"{col}_lo"].to_numpy(float), frame[f"{col}_hi"].to_numpy(float)
    return 100 * np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])


def _budget_label(b: float) -> str:
    return "no budget" if math.isinf(b) else f"{100 * b:g} pp"


def write_figures(result: ScienceResult, out_dir: str | Path, budget: float = PAPER_BUDGET) -> list[Path]:
    """Figures 6-3, 6-4, 6-7, 6-8, 6-9 with 95% error bars for each model of ``result``."""
    from modeledit.eval.plots import _plt, _save

    plt = _plt()
    out = Path(out_dir)
    paths: list[Path] = []
    if result.summary.empty:
        return paths
    series = [("test_target_corrected", "target, same style"), ("test_other_corrected", "other classes, same style"),
              ("heldout_target_corrected", "target, held-out style"), ("heldout_other_corrected", "other classes, held-out style")]
    for model, s in result.summary.groupby("model", sort=True):
        nex = _main_exemplars(s)
        main = s[s["n_exemplars"] == nex]
        # 6-3: method x target/other x same/held-out style, at the budget
        at = main[np.isclose(main["budget"], budget)].set_index("method")
        if not at.empty:
            fig, ax = plt.subplots(figsize=(1.4 * len(at) + 2.5, 3.6))
            width = 0.8 / len(series)
            x = np.arange(len(at))
            for k, (col, label) in enumerate(series):
                ax.bar(x + k * width, 100 * at[col].to_numpy(float), width, yerr=_err(at, col), capsize=2, label=label)
            ax.set_xticks(x + 0.4 - width / 2, at.index, rotation=20, ha="right")
            ax.axhline(0, color="k", lw=0.6)
            ax.set_ylabel("% errors corrected (95% CI)")
            ax.set_title(f"{model}: {nex} exemplars, clean budget {_budget_label(budget)}")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            paths.append(_save(fig, out / f"fig6_3_{model}.png"))
        # 6-4: other classes vs the clean budget, one curve per method, with bands
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
        for ax, col, label in zip(axes, ("test_other_corrected", "heldout_other_corrected"), ("same style", "held-out style")):
            for method, g in main.groupby("method", sort=True):
                g = g.sort_values("budget")
                line, = ax.plot(100 * g["budget"], 100 * g[col], marker="o", label=method)
                ax.fill_between(100 * g["budget"], 100 * g[f"{col}_lo"], 100 * g[f"{col}_hi"], color=line.get_color(), alpha=0.15)
            ticks = sorted(100 * main["budget"].unique())
            ax.set_xscale("log")
            ax.set_xlim(ticks[0] / 1.3, ticks[-1] * 1.3)     # explicit: a panel without data has no limits of its own
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xlabel("clean accuracy budget (pp)")
            ax.set_title(f"other classes, {label}")
        axes[0].set_ylabel("% errors corrected (95% CI)")
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.suptitle(f"{model}: {nex} exemplars", y=1.02)
        paths.append(_save(fig, out / f"fig6_4_{model}.png"))
        # 6-7: vs site depth (best setting per site), unconstrained and at the budget
        bs = result.by_site[(result.by_site["model"] == model) & (result.by_site["n_exemplars"] == nex)] if not result.by_site.empty else None
        if bs is not None and not bs.empty:
            budgets = [b for b in sorted(bs["budget"].unique(), key=lambda v: (not math.isinf(v), v)) if math.isinf(b) or np.isclose(b, budget)]
            fig, axes = plt.subplots(1, len(budgets), figsize=(5 * len(budgets), 3.4), sharey=True, squeeze=False)
            for ax, b in zip(axes[0], budgets):
                for method, g in bs[np.isclose(bs["budget"], b) | (np.isinf(bs["budget"]) & math.isinf(b))].groupby("method", sort=True):
                    g = g.sort_values("site_index")
                    ax.errorbar(g["site_index"].astype(str) + ":" + g["site"], 100 * g["test_other_corrected"],
                                yerr=_err(g, "test_other_corrected"), marker="o", capsize=3, label=method)
                ax.axhline(0, color="k", lw=0.6)
                ax.set_xlabel("edit site (index: layer)")
                ax.set_title(_budget_label(b))
                ax.tick_params(axis="x", labelrotation=20)
            axes[0][0].set_ylabel("% errors corrected, other classes (95% CI)")
            axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            fig.suptitle(f"{model}: {nex} exemplars, best setting per site", y=1.02)
            paths.append(_save(fig, out / f"fig6_7_{model}.png"))
        # 6-8: vs exemplar count at the budget, on the units run at every count (by_exemplars)
        ex = result.by_exemplars
        at_b = ex[(ex["model"] == model) & np.isclose(ex["budget"], budget)] if not ex.empty else ex
        if not at_b.empty and at_b["n_exemplars"].nunique() > 1:
            fig, ax = plt.subplots(figsize=(5.5, 3.4))
            for method, g in at_b.groupby("method", sort=True):
                g = g.sort_values("n_exemplars")
                ax.errorbar(g["n_exemplars"], 100 * g["test_other_corrected"], yerr=_err(g, "test_other_corrected"),
                            marker="o", capsize=3, label=method)
            ax.axhline(0, color="k", lw=0.6)
            counts = sorted(at_b["n_exemplars"].unique())
            ax.set_xscale("log")
            ax.set_xlim(counts[0] / 1.3, counts[-1] * 1.3)
            ax.set_xticks(counts, [str(v) for v in counts])
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.set_xlabel("exemplars")
            ax.set_ylabel("% errors corrected, other classes (95% CI)")
            n_units = ", ".join(f"{m} {int(g['n_units'].iloc[0])}" for m, g in at_b.groupby("method", sort=True))
            ax.set_title(f"{model}: clean budget {_budget_label(budget)}\nunits run at every count: {n_units}", fontsize=9)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            paths.append(_save(fig, out / f"fig6_8_{model}.png"))
        # 6-9: rank and mask ablations at the budget
        abl = at[at.index.isin(["edit", "edit_full", "edit_masked"])]
        if len(abl) > 1:
            abl = abl.loc[[m for m in ("edit", "edit_full", "edit_masked") if m in abl.index]]
            fig, ax = plt.subplots(figsize=(6, 3.4))
            width = 0.8 / len(series)
            x = np.arange(len(abl))
            for k, (col, label) in enumerate(series):
                ax.bar(x + k * width, 100 * abl[col].to_numpy(float), width, yerr=_err(abl, col), capsize=2, label=label)
            ax.set_xticks(x + 0.4 - width / 2, ["rank 1, whole image" if m == "edit" else "full rank" if m == "edit_full"
                                                 else "rank 1, mask only" for m in abl.index])
            ax.axhline(0, color="k", lw=0.6)
            ax.set_ylabel("% errors corrected (95% CI)")
            ax.set_title(f"{model}: rank and mask, {nex} exemplars, {_budget_label(budget)}")
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            paths.append(_save(fig, out / f"fig6_9_{model}.png"))
    return paths
