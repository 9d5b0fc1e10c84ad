"""World exemplars for the baseline tests (patching, RRR, explanations): cars on a road whose road is
swapped for snow (world_vgg calls most of them crab or bird), with the exact road mask."""
from __future__ import annotations

import numpy as np
import torch

CAR = 0


def snowy_cars(indices=(0,)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, x', mask) in [0, 1] at the world's 64 x 64: originals, road -> snow, road masks (N, H, W)."""
    from modeledit.eval.world import World

    world = World()
    xs, xps, ms = [], [], []
    for i in indices:
        s = world.render(i, label="car", context="road")
        t = world.render_with(i, {"road": "snow"}, label="car", context="road")
        xs.append(s.image)
        xps.append(t.image)
        ms.append(s.mask("road"))
    to = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    return to(xs), to(xps), torch.from_numpy(np.stack(ms)).float()
