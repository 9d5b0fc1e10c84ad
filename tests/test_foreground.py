"""The generic foreground concept ``object``: GrabCut from a centre box, an ellipse when GrabCut fails."""
from __future__ import annotations

import numpy as np
import pytest

from modeledit.eval.photos import PHOTOS, load_photos
from modeledit.images import to_uint8
from modeledit.segmenters import available_segmenters, concept_mask, get_segmenter
from modeledit.segmenters.foreground import FALLBACK_SCORE, GRABCUT_SCORE


@pytest.fixture(scope="module")
def shipped(mobilenet):
    return {n: to_uint8(mobilenet.preprocess(im)) for n, im in load_photos().items()}


def test_object_mask_on_every_shipped_photo(shipped):
    assert "foreground" in available_segmenters()
    seg = get_segmenter("foreground")
    assert set(shipped) == set(PHOTOS) and len(shipped) >= 10
    sources = {}
    for name, img in shipped.items():
        inst = seg.segment(img, ["object"])
        assert len(inst) == 1 and inst[0].concept == "object", name
        share = inst[0].mask.mean()
        assert 0.02 < share < 0.95, (name, share)
        sources[name] = inst[0].score
    assert sources["coffee"] == GRABCUT_SCORE and sources["flower"] == GRABCUT_SCORE   # a cup, a flower: GrabCut finds them
    assert FALLBACK_SCORE in sources.values()                                           # and fails on some photos


def test_fallback_and_determinism(shipped, mobilenet):
    import skimage.data

    seg = get_segmenter("foreground")
    flat = np.full((120, 160, 3), 128, np.uint8)             # nothing to separate: GrabCut fails, the ellipse is used
    inst = seg.segment(flat)[0]
    assert inst.score == FALLBACK_SCORE and inst.mask[60, 80] and not inst.mask[0, 0]
    assert np.array_equal(seg.segment(shipped["coffee"])[0].mask, seg.segment(shipped["coffee"])[0].mask)   # seeded
    mask = concept_mask(mobilenet.preprocess(skimage.data.coffee()), "object")   # the default segmenter for 'object'
    assert mask.shape == (224, 224) and mask.any()
    with pytest.raises(ValueError, match="margin"):
        get_segmenter("foreground", margin=0.6)
