"""Figures from tidy result tables (matplotlib, Agg backend, PNG files).

Example:
    >>> plot_concept_classes(table, "road", "results/sens/road.png")
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from modeledit.atomic import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return p


#: a class counts toward a concept's headline, bars and table when the concept is in at least MIN_PRESENCE of its
#: images (the paper's 20% rule) and in at least MIN_IMAGES of them (one or two images are not a finding)
MIN_PRESENCE, MIN_IMAGES = 0.2, 5
#: bars measured on fewer images than this are hatched and say so
SMALL_N = 10


def ranked_drops(table: pd.DataFrame, concept: str | None = None, style: str | None = None,
                 min_presence: float = MIN_PRESENCE, min_images: int = MIN_IMAGES) -> pd.DataFrame:
    """The sensitivity table's (concept, style, class) rows that count (:data:`MIN_PRESENCE`, :data:`MIN_IMAGES`),
    largest drop first (ties: more images first, then by name). The headline, the bars and the table of
    the report all take their order from here, so they name the same class first."""
    t = table[table["drop"].notna() & (table["presence"] >= min_presence)]
    if "n_with_concept" in t.columns:
        t = t[t["n_with_concept"] >= min_images]
    if concept is not None:
        t = t[t["concept"] == concept]
    if style is not None:
        t = t[t["style"] == style]
    by = ["drop", *(["n_with_concept"] if "n_with_concept" in t.columns else []), "class_name"]
    return t.sort_values(by, ascending=[False] * (len(by) - 1) + [True], kind="stable")


def plot_concept_classes(table: pd.DataFrame, concept: str, path: str | os.PathLike, top: int = 10,
                         style: str | None = None) -> Path:
    """Figure 3-3a: the classes whose accuracy drops most when ``concept`` is restyled (with ``style``, else
    the mean over styles), among the classes :func:`ranked_drops` counts, in its order; each bar says its n
    (images of the class with the concept), hatched below :data:`SMALL_N`."""
    plt = _plt()
    t = ranked_drops(table, concept, style)
    n_col = "n_with_concept" if "n_with_concept" in t.columns else "presence"
    g = t.groupby("class_name", sort=False).agg(drop=("drop", "mean"), low=("drop_low", "mean"), high=("drop_high", "mean"),
                                                 n=(n_col, "min"))
    if style is None:
        g = g.sort_values("drop", ascending=False, kind="stable")
    g = g.head(top)
    fig, ax = plt.subplots(figsize=(6, 0.35 * max(len(g), 3) + 1))
    y = np.arange(len(g))[::-1]
    small = (g["n"] < SMALL_N).to_numpy() if n_col == "n_with_concept" else np.zeros(len(g), bool)
    bars = ax.barh(y, 100 * g["drop"], xerr=100 * np.vstack([g["drop"] - g["low"], g["high"] - g["drop"]]).clip(0),
                   color=["#e8b4b3" if s else "#c0504d" for s in small])
    for bar, s in zip(bars, small):
        if s:
            bar.set_hatch("//")
    ax.set_yticks(y, g.index)
    for k, (yy, (_, r)) in enumerate(zip(y, g.iterrows())):
        label = f"{100 * r['drop']:.0f} pp, n = {int(r['n'])}" if n_col == "n_with_concept" else f"{100 * r['drop']:.0f} pp"
        ax.text(max(100 * r["high"], 100 * r["drop"], 0) + 2, yy, label + (" (small n)" if small[k] else ""), va="center", fontsize=7)
    ax.set_xlim(min(0, 100 * float(g["low"].min()) if len(g) else 0) - 2, 145)
    ax.set_xlabel("accuracy drop (pp, 95% CI; higher = more sensitive)")
    ax.set_title(f"classes most affected by restyling '{concept}'" + (f" with {style}" if style else ""))
    return _save(fig, path)


def concept_style_matrix(table: pd.DataFrame, min_presence: float = 0.0) -> pd.DataFrame:
    """Mean per-class drop for each concept x style over classes where the concept is present."""
    t = table[table["drop"].notna() & (table["presence"] >= min_presence)]
    return t.pivot_table(index="concept", columns="style", values="drop", aggfunc="mean")


def plot_concept_style_heatmap(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Figure B-2: concept x style heatmap of the mean accuracy drop, each cell with its n (classes averaged)."""
    plt = _plt()
    m = concept_style_matrix(table)
    t = table[table["drop"].notna()]
    n = t.pivot_table(index="concept", columns="style", values="drop", aggfunc="count").reindex(index=m.index, columns=m.columns)
    fig, ax = plt.subplots(figsize=(1.1 * m.shape[1] + 2, 0.6 * m.shape[0] + 1.5))
    im = ax.imshow(100 * m.values, cmap="Reds", vmin=0)
    ax.set_xticks(range(m.shape[1]), m.columns, rotation=40, ha="right")
    ax.set_yticks(range(m.shape[0]), m.index)
    for (i, j), v in np.ndenumerate(m.values):
        if not np.isnan(v):   # each cell: the mean drop and its n (classes averaged)
            text = f"{100 * v:.0f}"
            text = "0" if text == "-0" else text
            dark = v > 0.6 * np.nanmax(m.values)
            ax.text(j, i, f"{text}\nn={int(n.values[i, j])}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label="mean accuracy drop (pp; higher = more sensitive)")
    ax.set_title("concept x style sensitivity")
    return _save(fig, path)


def plot_class_rules(table: pd.DataFrame, class_name: str, path: str | os.PathLike) -> Path:
    """Figures 3-3c / B-3: the concepts a class relies on (drop per concept, one bar per style)."""
    plt = _plt()
    t = table[(table["class_name"] == class_name) & table["drop"].notna()]
    m = t.pivot_table(index="concept", columns="style", values="drop", aggfunc="mean").fillna(0)
    m = m.loc[m.mean(axis=1).sort_values(ascending=False).index]
    n = t.groupby("concept")["n_with_concept"].min() if "n_with_concept" in t.columns else None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / max(m.shape[1], 1)
    for k, style in enumerate(m.columns):
        ax.bar(np.arange(len(m)) + k * width, 100 * m[style], width, label=style)
    ticks = [f"{c} (n = {int(n[c])})" if n is not None else c for c in m.index]
    ax.set_xticks(np.arange(len(m)) + 0.4 - width / 2, ticks, rotation=30, ha="right")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("accuracy drop (pp; higher = more sensitive)")
    ax.set_title(f"prediction rules of '{class_name}'")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _bars(ax, frame: pd.DataFrame, groups: list[str], series: list[tuple[str, str]], n: Mapping[str, int] | None = None) -> None:
    """Grouped bars (fractions shown as %); a series whose ``n`` is below :data:`SMALL_N` is hatched."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for k, (col, label) in enumerate(series):
        vals = [100 * frame.loc[g, col] if g in frame.index else np.nan for g in groups]
        small = n is not None and col in n and n[col] < SMALL_N
        ax.bar(x + k * width, vals, width, label=label, hatch="//" if small else None, edgecolor="white" if small else None)
    ax.set_xticks(x + 0.4 - width / 2, groups, rotation=20, ha="right")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=7)


def plot_methods(summary: pd.DataFrame, path: str | os.PathLike, title: str = "errors corrected (test)") -> Path:
    """Figure 6-3: errors corrected per method, target vs other classes, same style vs held-out style images;
    where the summary has each column's errors before the edit (``*_n_pre``), the legend says that n
    (summed over pairs; the same for every method) and bars below :data:`SMALL_N` are hatched."""
    plt = _plt()
    cols = ["test_target_corrected", "test_other_corrected", "heldout_target_corrected", "heldout_other_corrected"]
    m = summary.groupby("method")[cols].mean()
    n = {c: int(summary.groupby("method")[c.replace("_corrected", "_n_pre")].sum().max()) for c in cols
         if c.replace("_corrected", "_n_pre") in summary.columns}
    labels = ["target, same style image", "other classes, same style image", "target, held-out style images", "other classes, held-out"]
    labels = [f"{w} (n = {n[c]}{', small' if n[c] < SMALL_N else ''})" if c in n else w for c, w in zip(cols, labels)]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    _bars(ax, m, list(m.index), list(zip(cols, labels)), n)
    ax.set_ylabel("% of errors corrected (higher = better)")
    ax.set_title(title)
    return _save(fig, path)


def plot_budget(curve: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Figure 6-4: errors corrected on other classes vs the clean-accuracy drop allowed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for method, g in curve.groupby("method"):
        ax.plot(100 * g["budget"], 100 * g["test_other_corrected"], marker="o", label=method)
    ax.set_xlabel("allowed clean accuracy drop (pp)")
    ax.set_ylabel("% errors corrected (other classes)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_vs(summary: pd.DataFrame, by: str, path: str | os.PathLike, xlabel: str) -> Path:
    """Figures 6-7 / 6-8 / 6-9: errors corrected (other classes) against ``by`` (site, exemplars, ...), per method."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for method, g in summary.groupby("method"):
        s = g.groupby(by)["test_other_corrected"].mean()
        ax.plot([str(v) for v in s.index], 100 * s.values, marker="o", label=method)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("% errors corrected (other classes)")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=7)
    return _save(fig, path)


def save_examples(images: list[torch.Tensor], path: str | os.PathLike) -> None:
    """A horizontal strip of images, for reports."""
    from PIL import Image

    from modeledit.images import save_image, to_uint8

    strip = np.concatenate([to_uint8(x) for x in images], axis=1)
    save_image(Image.fromarray(strip), path)
