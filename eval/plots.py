"""Figures from tidy result tables (matplotlib, Agg backend, PNG files).

Example:
    >>> plot_concept_classes(table, "road", "results/sens/road.png")
"""
from __future__ import annotations

import os
from pathlib import Path

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


def plot_concept_classes(table: pd.DataFrame, concept: str, path: str | os.PathLike, top: int = 10) -> Path:
    """Figure 3-3a: the classes whose accuracy drops most when ``concept`` is restyled (mean over styles)."""
    plt = _plt()
    t = table[(table["concept"] == concept) & table["drop"].notna()]
    g = t.groupby("class_name").agg(drop=("drop", "mean"), low=("drop_low", "mean"), high=("drop_high", "mean"))
    g = g.sort_values("drop", ascending=False).head(top)
    fig, ax = plt.subplots(figsize=(6, 0.35 * max(len(g), 3) + 1))
    y = np.arange(len(g))[::-1]
    ax.barh(y, 100 * g["drop"], xerr=100 * np.vstack([g["drop"] - g["low"], g["high"] - g["drop"]]).clip(0), color="#c0504d")
    ax.set_yticks(y, g.index)
    ax.set_xlabel("accuracy drop (percentage points, 95% CI)")
    ax.set_title(f"classes most affected by restyling '{concept}'")
    return _save(fig, path)


def concept_style_matrix(table: pd.DataFrame, min_presence: float = 0.0) -> pd.DataFrame:
    """Mean per-class drop for each concept x style over classes where the concept is present."""
    t = table[table["drop"].notna() & (table["presence"] >= min_presence)]
    return t.pivot_table(index="concept", columns="style", values="drop", aggfunc="mean")


def plot_concept_style_heatmap(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Figure B-2: concept x style heatmap of the mean accuracy drop."""
    plt = _plt()
    m = concept_style_matrix(table)
    fig, ax = plt.subplots(figsize=(1.1 * m.shape[1] + 2, 0.5 * m.shape[0] + 1.5))
    im = ax.imshow(100 * m.values, cmap="Reds", vmin=0)
    ax.set_xticks(range(m.shape[1]), m.columns, rotation=40, ha="right")
    ax.set_yticks(range(m.shape[0]), m.index)
    for (i, j), v in np.ndenumerate(m.values):
        if not np.isnan(v):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label="mean accuracy drop (pp)")
    ax.set_title("concept x style sensitivity")
    return _save(fig, path)


def plot_class_rules(table: pd.DataFrame, class_name: str, path: str | os.PathLike) -> Path:
    """Figures 3-3c / B-3: the concepts a class relies on (drop per concept, one bar per style)."""
    plt = _plt()
    t = table[(table["class_name"] == class_name) & table["drop"].notna()]
    m = t.pivot_table(index="concept", columns="style", values="drop", aggfunc="mean").fillna(0)
    m = m.loc[m.mean(axis=1).sort_values(ascending=False).index]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / max(m.shape[1], 1)
    for k, style in enumerate(m.columns):
        ax.bar(np.arange(len(m)) + k * width, 100 * m[style], width, label=style)
    ax.set_xticks(np.arange(len(m)) + 0.4 - width / 2, m.index, rotation=30, ha="right")
    ax.set_ylabel("accuracy drop (pp)")
    ax.set_title(f"prediction rules of '{class_name}'")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _bars(ax, frame: pd.DataFrame, groups: list[str], series: list[tuple[str, str]]) -> None:
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for k, (col, label) in enumerate(series):
        vals = [100 * frame.loc[g, col] if g in frame.index else np.nan for g in groups]
        ax.bar(x + k * width, vals, width, label=label)
    ax.set_xticks(x + 0.4 - width / 2, groups, rotation=20, ha="right")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=7)


def plot_methods(summary: pd.DataFrame, path: str | os.PathLike, title: str = "errors corrected (test)") -> Path:
    """Figure 6-3: errors corrected per method, target vs other classes, same style vs held-out style images."""
    plt = _plt()
    cols = ["test_target_corrected", "test_other_corrected", "heldout_target_corrected", "heldout_other_corrected"]
    m = summary.groupby("method")[cols].mean()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    _bars(ax, m, list(m.index), [(cols[0], "target, same style image"), (cols[1], "other classes, same style image"),
                                 (cols[2], "target, held-out style images"), (cols[3], "other classes, held-out")])
    ax.set_ylabel("% of errors corrected")
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
