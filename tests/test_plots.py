"""The report's figures: one ranking for the sensitivity headline, bars and table; bars carry their n."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from modeledit.eval.plots import MIN_IMAGES, MIN_PRESENCE, plot_concept_classes, plot_methods, ranked_drops

TABLE = Path(__file__).resolve().parent.parent / "results" / "world" / "sensitivity" / "table.csv"


def test_ranked_drops_is_the_order_of_headline_and_bars(tmp_path):
    """The committed world sensitivity table: rows that count have the concept common and in enough images, the
    largest drop first (ties: more images); the bars of the headline's concept and style start with its class."""
    t = pd.read_csv(TABLE)
    r = ranked_drops(t)
    assert len(r) and (r["presence"] >= MIN_PRESENCE).all() and (r["n_with_concept"] >= MIN_IMAGES).all()
    assert (np.diff(r["drop"].to_numpy()) <= 1e-12).all()
    lead = r.iloc[0]
    bars = ranked_drops(t, lead["concept"], lead["style"])
    assert bars.iloc[0]["class_name"] == lead["class_name"]
    # a class with the concept in two images never leads, however large its drop
    tiny = t.iloc[[0]].assign(class_name="tiny", n_with_concept=2, presence=1.0, drop=1.0, drop_low=1.0, drop_high=1.0)
    assert ranked_drops(pd.concat([t, tiny])).iloc[0]["class_name"] != "tiny"
    path = plot_concept_classes(t, lead["concept"], tmp_path / "c.png", style=lead["style"])
    assert Image.open(path).size[0] > 300


def test_methods_figure_marks_small_n(tmp_path):
    """The same bars drawn from 4 errors and from 40: the small-n figure differs (hatched bars, 'small' in the legend)."""
    def summary(n):
        return pd.DataFrame([{"method": m, "test_target_corrected": v, "test_other_corrected": v / 2, "heldout_target_corrected": v,
                              "heldout_other_corrected": 0.0, "test_target_n_pre": n, "test_other_n_pre": 40} for m, v in
                             [("edit", 0.75), ("finetune_global", 0.25)]])

    small = np.asarray(Image.open(plot_methods(summary(4), tmp_path / "small.png")).convert("L"), dtype=float)
    large = np.asarray(Image.open(plot_methods(summary(40), tmp_path / "large.png")).convert("L"), dtype=float)
    assert small.std() > 5 and (small.shape != large.shape or np.abs(small - large).mean() > 0.1)
