"""What each segmenter can find, and what it does outside that (segmenters/base.py: resolve_concepts)."""
from __future__ import annotations

import numpy as np
import pytest

from modeledit.segmenters import get_segmenter
from modeledit.segmenters.base import resolve_concepts


def test_segmenter_says_what_it_can_find(mediapipe):
    assert resolve_concepts(mediapipe, ["person", "person"]) == ["person"]
    with pytest.raises(KeyError, match=r"cannot find 'road'; it finds: \['person'\]"):
        resolve_concepts(mediapipe, ["road"])


@pytest.mark.parametrize("name", ["object", "foreground", "my mug"])
def test_grabcut_takes_any_concept_name(photos, name):
    img = photos["chelsea"]
    seg = get_segmenter("grabcut", box=(120, 40, 400, 290))
    assert resolve_concepts(seg, [name]) == [name]
    inst = seg.segment(img, [name])
    assert [i.concept for i in inst] == [name]
    assert 0.1 < inst[0].mask.mean() < 0.6
    named = get_segmenter("grabcut", concept=name, box=(120, 40, 400, 290)).segment(img)
    a, b = named[0].mask, inst[0].mask  # GrabCut's GMM initialisation is random: the same region, up to a few pixels
    assert named[0].concept == name and (a & b).sum() / (a | b).sum() > 0.9


def test_files_segmenter_takes_the_users_names(tmp_path):
    from modeledit.segmenters.files import write_mask_png

    for stem, name in (("a", "foreground"), ("b", "my_label")):
        (tmp_path / stem).mkdir()
        write_mask_png(np.ones((8, 8), bool), tmp_path / stem / f"{name}.png")
    seg = get_segmenter("files", root=tmp_path)
    assert resolve_concepts(seg, ["foreground", "my label"]) == ["foreground", "my label"]
    with pytest.raises(KeyError, match="cannot find 'foregruond'; it finds: \\['foreground', 'my label'\\]"):
        resolve_concepts(seg, ["foregruond"])


def test_vocabulary_segmenters_still_check_spelling():
    seg = get_segmenter("oracle")
    assert resolve_concepts(seg, ["road"]) == ["road"]
    with pytest.raises(KeyError, match="cannot find 'person'"):
        resolve_concepts(seg, ["person"])
