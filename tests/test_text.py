from __future__ import annotations

import numpy as np
import pytest
import torch

from modeledit.counterfactuals.text import TextSpec, paste_text


@pytest.mark.parametrize("font", ["sans", "serif", "hand"])
def test_paste_text_changes_only_the_patch(photos, font):
    from modeledit.images import to_tensor01

    x = to_tensor01(photos["chelsea"][::4, ::4].copy())
    attacked, blank, mask = paste_text(x, TextSpec("ipod", font=font, size=0.25), np.random.default_rng(1))
    outside = ~mask
    assert torch.equal(attacked[:, outside], x[:, outside]) and torch.equal(blank[:, outside], x[:, outside])
    # the patch is paper-coloured in the blank version and carries dark ink in the attacked one
    assert blank[:, mask].std(dim=1).max() < 1e-6
    assert (attacked[:, mask].mean(0) < 0.3).sum() > 20
    assert mask.sum() < 0.5 * mask.numel()


def test_paste_text_is_deterministic_and_validates():
    x = torch.rand(3, 64, 64)
    a1 = paste_text(x, TextSpec("car", font="hand"), np.random.default_rng(3))[0]
    a2 = paste_text(x, TextSpec("car", font="hand"), np.random.default_rng(3))[0]
    assert torch.equal(a1, a2)
    with pytest.raises(ValueError, match="empty"):
        TextSpec(" ")
    with pytest.raises(KeyError, match="valid"):
        TextSpec("car", font="comic")
    with pytest.raises(ValueError, match="one \\(3, H, W\\)"):
        paste_text(torch.rand(1, 3, 8, 8), TextSpec("car"))
