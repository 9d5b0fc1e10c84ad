"""MediaPipe's selfie segmenter (segmenters/mediapipe_backend.py): people kept, a cup and small regions dropped."""
from __future__ import annotations

import pytest

from modeledit.segmenters import get_segmenter


def test_mediapipe_keeps_people_and_drops_a_cup(mediapipe, photos):
    person = mediapipe.segment(photos["astronaut"])
    assert [i.concept for i in person] == ["person"] and person[0].score >= mediapipe.min_score
    assert 0.3 < person[0].mask.mean() < 0.8
    # the selfie model lights up 19% of coffee() at p >= 0.5 (the cup); its mean score 0.86 is below 0.9
    assert mediapipe.segment(photos["coffee"]) == []
    assert mediapipe.segment(photos["rocket"]) == []


def test_mediapipe_drops_small_regions(mediapipe, photos):
    loose = get_segmenter("mediapipe", min_score=0.0, min_area=0.0).segment(photos["coffee"])
    strict_area = get_segmenter("mediapipe", min_score=0.0, min_area=0.5).segment(photos["coffee"])
    assert loose and loose[0].mask.mean() > 0.15 and strict_area == []


def test_mediapipe_thresholds_checked():
    with pytest.raises(ValueError, match="min_score"):
        get_segmenter("mediapipe", min_score=2)
