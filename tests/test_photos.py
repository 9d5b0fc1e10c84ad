"""The photos study's pieces that need no model: the photo catalogue, crops, selection within the locality
budget and the pooled per-method table. (The study itself runs in `results/photos/` and in the demo.)"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modeledit.eval.photos import EXCLUDED, PHOTOS, PhotosConfig, load_photos, method_table, photo_cells, square_crop, summarize_photos


def test_catalogue_and_crops():
    photos = load_photos(["coffee", "motorcycle", "grace_hopper"])
    assert all(im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8 for im in photos.values())
    assert len(PHOTOS) == 11 and any("grayscale" in why for why in EXCLUDED.values())
    with pytest.raises(KeyError, match="closest"):
        load_photos(["cofee"])
    x = square_crop(photos["coffee"], 0.5, 0.0, 1.0, 64)        # a corner crop is moved inside the image
    assert x.shape == (3, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert np.allclose(square_crop(photos["coffee"], 0.5, 0.5, 0.5, 64, flip=True).flip(-1), square_crop(photos["coffee"], 0.5, 0.5, 0.5, 64))
    with pytest.raises(ValueError, match="smaller than every evaluation crop"):
        PhotosConfig(crops=[[0.4, 0.5, 0.5]])
    cells = photo_cells(PhotosConfig())
    assert {c["method"] for c in cells} == {"edit", "paint_local", "paint_global"}   # fine-tuning = PAINT's alpha 1 rows
    assert len(cells) == 2 * 2 * 1 * 3 * 2


def _rows(method, settings):
    base = dict(style="floral", n_exemplars=1, seed=0, method=method, exemplars="coffee", exemplar_labels="espresso", clean_n=20,
                val_n_pre=4, test_n_pre=10, heldout_n_pre=20, site_name="features.17")
    return [{**base, "setting": str(k), "val_n_post": v, "val_corrected": (4 - v) / 4, "test_n_post": t, "test_corrected": (10 - t) / 10,
             "heldout_n_post": h, "heldout_corrected": (20 - h) / 20, "locality": loc, "clean_changed": int(20 * loc)}
            for k, (v, t, h, loc) in enumerate(settings)]


def test_selection_within_the_locality_budget():
    table = pd.DataFrame(_rows("edit", [(3, 8, 18, 0.0), (1, 2, 10, 0.10)])      # the better setting changes 10% of clean views
                         + _rows("finetune_local", [(0, 0, 0, 0.5)])             # nothing within 5%
                         + _rows("paint_local", [(4, 10, 21, 0.0)]))             # within the budget, corrects nothing
    s = summarize_photos(table, 0.05).set_index("method")
    assert s.loc["edit", "changed"] and s.loc["edit", "test_corrected"] == pytest.approx(0.2) and s.loc["edit", "locality"] == 0.0
    assert not s.loc["finetune_local", "changed"] and s.loc["finetune_local", "choice"] == "no setting qualifies"
    assert s.loc["finetune_local", "test_corrected"] == 0.0 and s.loc["finetune_local", "locality"] == 0.0
    assert not s.loc["paint_local", "changed"] and s.loc["paint_local", "choice"] == "no setting beats no change"
    m = method_table(s.reset_index()).set_index("method")
    assert m.loc["finetune_local", "no_setting_within_budget"] and not m.loc["paint_local", "no_setting_within_budget"]
    assert m.loc["edit", "test_corrected"] == pytest.approx(0.2) and m.loc["edit", "test_errors_before"] == 10
    assert s2_loose(table).loc["edit", "test_corrected"] == pytest.approx(0.8)


def s2_loose(table):
    return summarize_photos(table, 0.2).set_index("method")
