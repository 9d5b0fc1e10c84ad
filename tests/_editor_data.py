"""Real photos (scikit-image) prepared for the editor tests: exemplars with a restyled concept region
and a small statistics set (photos, flips, crops). Imported by test_stats/test_rewrite/test_edit/test_finetune."""
from __future__ import annotations

import functools

import pytest

import torch
import torch.nn.functional as F

SIZE = 128


def as01(image, size: int = SIZE) -> torch.Tensor:
    from modeledit.images import to_tensor01

    x = to_tensor01(image)
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    return F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


@functools.lru_cache(maxsize=4)
def photos(size: int = SIZE) -> torch.Tensor:
    """chelsea, coffee, astronaut, rocket, camera as (5, 3, size, size) in [0, 1]."""
    import skimage.data as d

    return torch.stack([as01(a, size) for a in (d.chelsea(), d.coffee(), d.astronaut(), d.rocket(), d.camera())])


def stats_batches(size: int = SIZE) -> list[torch.Tensor]:
    """[0, 1] batches for statistics: three photos, their mirror images and zoomed centre crops (the
    other two photos stay unseen, as "unrelated" images)."""
    x = photos(size)[:3]
    c = size // 8
    crops = [F.interpolate(x[:, :, a:a + size // 2, b:b + size // 2], size=(size, size), mode="bilinear", align_corners=False)
             for a in (0, size // 2) for b in (0, size // 2)]
    return [x, x.flip(-1), F.interpolate(x[:, :, c:-c, c:-c], size=(size, size), mode="bilinear", align_corners=False), *crops]


def concept_mask(size: int = SIZE, n: int = 1) -> torch.Tensor:
    m = torch.zeros(n, 1, size, size)
    m[..., size * 5 // 16: size * 13 // 16, size // 4: size * 7 // 8] = 1
    return m


def restyled_pairs(n: int = 1, size: int = SIZE, texture: str = "grass") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, x', mask) in [0, 1]: the first ``n`` photos with the mask region replaced by a real texture."""
    import skimage.data as d

    x = photos(size)[:n]
    tex = as01(getattr(d, texture)(), size)
    mask = concept_mask(size, n)
    return x, x * (1 - mask) + tex * mask, mask


@pytest.fixture(scope="module", autouse=False)
def one_thread():
    """Run a test module on one torch thread (restored after): these tests do many small ops, and on a
    shared 2-core machine two threads per process measured many times slower than one."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
