"""Shared fixtures: real photos from scikit-image, the real MobileNetV2, the editor tests' restyled photos and
statistics batches, the baselines' snowy world cars, and one torch thread per module."""
from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MODELEDIT_CACHE", os.path.join(os.path.dirname(__file__), "..", ".modeledit-cache", "tests"))
# make test runs two xdist workers on the two cores: one torch thread each; a plain pytest run uses both cores
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // _WORKERS))


# make test runs `-n 2 --dist loadscope --no-loadscope-reorder`: xdist hands out work units (a test file, or a
# test class: test_readme's two example chains are classes) in collection order. Left alone that order is
# alphabetical, and xdist's default reorder (most tests first) would start the long few-test files last, where
# one of them keeps a worker busy after the other ran out of work. The longest units go first here (largest first, by
# the per-file durations of a full run, `pytest --durations=0`); the short files then fill in. The order decides only when a test runs, never what runs.
LONG_FIRST = (
    "test_studio.py", "test_harnesses.py", "test_report.py", "test_readme.py::TestWorldChain", "test_readme.py::TestPhotosChain",
    "test_interrupt.py", "test_suffix.py", "test_editor.py", "test_sites.py", "test_styles.py", "test_clip_recipe.py",
    "test_executors.py", "test_layers.py", "test_clip_typographic.py", "test_models.py", "test_device.py",
)


def _unit(item) -> str:
    """The xdist loadscope unit of a test: its node id up to the last ``::`` (file, or file::Class)."""
    return item.nodeid.rsplit("::", 1)[0].rsplit("/", 1)[-1]


def pytest_collection_modifyitems(items):
    rank = {u: i for i, u in enumerate(LONG_FIRST)}
    order = {id(it): i for i, it in enumerate(items)}
    items.sort(key=lambda it: (rank.get(_unit(it), len(rank)), order[id(it)]))


@pytest.fixture(scope="session")
def warm_cli(tmp_path_factory):
    """A warm process that runs ``modeledit`` commands and ``python -c`` programs, each in a forked child of
    its own (tests/warm_cli.py): the command's work without ~5 s of imports per run. For tests of what a
    command does; tests of process start-up and signals start real processes."""
    import subprocess
    import sys

    from warm_cli import WarmCLI, shim

    folder = tmp_path_factory.mktemp("warm")
    (folder / "bin").mkdir()
    shim(str(folder / "bin"))
    path = str(folder / "s")
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "warm_cli.py"), "serve", path],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n", "the warm command server did not start"
        yield WarmCLI(path, str(folder / "bin"))
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def mobilenet():
    from modeledit import load_model

    return load_model("mobilenet_v2")


@pytest.fixture(scope="session")
def unlabelled_folder(tmp_path_factory, photos):
    """A flat folder of three full-size photos (chelsea, coffee, rocket) with no class folders: no labels."""
    from PIL import Image

    root = tmp_path_factory.mktemp("unlabelled")
    for name in ("chelsea", "coffee", "rocket"):
        Image.fromarray(photos[name]).save(root / f"{name}.png")
    return root


@pytest.fixture(scope="session")
def mediapipe():
    """The real MediaPipe person segmenter with its default thresholds."""
    from modeledit.segmenters import get_segmenter

    return get_segmenter("mediapipe")


@pytest.fixture(scope="module")
def world_vgg():
    """The world's VGG (module scope: a module's edits stay in that module)."""
    from modeledit import load_model

    return load_model("world_vgg")


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    import skimage.data as d

    return {"chelsea": d.chelsea(), "coffee": d.coffee(), "astronaut": d.astronaut(), "rocket": d.rocket()}


@pytest.fixture
def photo_folder(tmp_path, photos):
    """An image folder ``tmp_path/imgs`` with one class folder ``cat`` holding three 96 x 96 photo crops (0-2.png)."""
    from PIL import Image

    root = tmp_path / "imgs"
    (root / "cat").mkdir(parents=True)
    for i, name in enumerate(list(photos)[:3]):
        Image.fromarray(photos[name][:96, :96]).save(root / "cat" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module on one torch thread (restored after): use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``. These tests do many small ops, and on a shared
    2-core machine two threads per process measured many times slower than one."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ---- editor data: real photos (scikit-image) with a restyled concept region, and a small statistics set.
# The fixtures hand out the builders (tests call them with their own sizes); the builders cache their photos.

EDITOR_SIZE = 128


def _as01(image, size: int = EDITOR_SIZE) -> torch.Tensor:
    import torch.nn.functional as F

    from modeledit.images import to_tensor01

    x = to_tensor01(image)
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    return F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


@functools.lru_cache(maxsize=4)
def _photo_batch(size: int = EDITOR_SIZE) -> torch.Tensor:
    """chelsea, coffee, astronaut, rocket, camera as (5, 3, size, size) in [0, 1]."""
    import skimage.data as d

    return torch.stack([_as01(a, size) for a in (d.chelsea(), d.coffee(), d.astronaut(), d.rocket(), d.camera())])


def _stats_batches(size: int = EDITOR_SIZE) -> list[torch.Tensor]:
    """[0, 1] batches for statistics: three photos, their mirror images and zoomed centre crops (the
    other two photos stay unseen, as "unrelated" images)."""
    import torch.nn.functional as F

    x = _photo_batch(size)[:3]
    c = size // 8
    crops = [F.interpolate(x[:, :, a:a + size // 2, b:b + size // 2], size=(size, size), mode="bilinear", align_corners=False)
             for a in (0, size // 2) for b in (0, size // 2)]
    return [x, x.flip(-1), F.interpolate(x[:, :, c:-c, c:-c], size=(size, size), mode="bilinear", align_corners=False), *crops]


def _concept_mask(size: int = EDITOR_SIZE, n: int = 1) -> torch.Tensor:
    m = torch.zeros(n, 1, size, size)
    m[..., size * 5 // 16: size * 13 // 16, size // 4: size * 7 // 8] = 1
    return m


def _restyled_pairs(n: int = 1, size: int = EDITOR_SIZE, texture: str = "grass") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, x', mask) in [0, 1]: the first ``n`` photos with the mask region replaced by a real texture."""
    import skimage.data as d

    x = _photo_batch(size)[:n]
    tex = _as01(getattr(d, texture)(), size)
    mask = _concept_mask(size, n)
    return x, x * (1 - mask) + tex * mask, mask


@pytest.fixture(scope="session")
def photo_batch():
    """``photo_batch(size=128)``: chelsea, coffee, astronaut, rocket, camera as (5, 3, size, size) in [0, 1]."""
    return _photo_batch


@pytest.fixture(scope="session")
def stats_batches():
    """``stats_batches(size=128)``: batches for statistics from the first three photos (flips, crops)."""
    return _stats_batches


@pytest.fixture(scope="session")
def restyled_pairs():
    """``restyled_pairs(n=1, size=128, texture="grass")``: (x, x', mask), a concept region restyled."""
    return _restyled_pairs


# ---- baseline data: world exemplars for patching, RRR and explanations: cars on a road whose road is
# swapped for snow (world_vgg calls most of them crab or bird), with the exact road mask.


def _snowy_cars(indices=(0,)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


@pytest.fixture(scope="session")
def snowy_cars():
    """``snowy_cars(indices=(0,))``: (x, x', road mask) for world cars whose road is swapped for snow."""
    return _snowy_cars


@pytest.fixture(scope="session")
def car() -> int:
    """The world's class index of "car" (the target of the snowy-car exemplars)."""
    from modeledit.eval.world.scene import CLASSES

    return CLASSES.index("car")
