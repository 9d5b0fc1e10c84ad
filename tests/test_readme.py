"""Every Python block of README.md runs as written, in a fresh process, in a folder holding the stand-in
files the blocks name (made from photos that ship offline and from the benchmark world)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> Path:
    """val_images/ (statistics), photos/ (a person to segment), road.png / road_snow.png / road_mask.png."""
    import skimage.data
    from PIL import Image

    from modeledit.eval.world import World, WorldConfig

    root = tmp_path_factory.mktemp("readme")
    (root / "val_images").mkdir()
    for name in ("chelsea", "coffee", "rocket", "astronaut", "hubble_deep_field", "immunohistochemistry"):
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((256, 256)).save(root / "val_images" / f"{name}.png")
    (root / "photos").mkdir()
    Image.fromarray(skimage.data.astronaut()).resize((256, 256)).save(root / "photos" / "astronaut.png")
    world = World(WorldConfig(seed=0, image_size=224))
    scene = world.render(18)                                      # a car on a road
    Image.fromarray(scene.image).save(root / "road.png")
    Image.fromarray(world.render_with(18, {"road": "snow"}).image).save(root / "road_snow.png")
    Image.fromarray(np.where(scene.masks["road"], 255, 0).astype(np.uint8)).save(root / "road_mask.png")
    return root


def test_readme_has_the_blocks_users_copy():
    blocks = python_blocks()
    assert len(blocks) >= 5
    first = blocks[0][1]
    assert len([l for l in first.splitlines() if l.strip()]) <= 10, "the ten-line example grew"
    assert len([l for l in first.splitlines() if l.startswith(("import ", "from "))]) <= 3


@pytest.mark.slow
@pytest.mark.parametrize("line,code", python_blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_readme_block_runs(standins, line, code):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-c", code], cwd=standins, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"README.md block at line {line} failed:\n{res.stderr[-3000:]}"


def test_every_name_the_readme_imports_from_modeledit_is_public():
    """Every ``from modeledit import ...`` name and ``modeledit.NAME`` the README's Python uses is in
    ``modeledit.__all__`` and resolves (the flat public API)."""
    import modeledit

    names: set[str] = set()
    for _, code in python_blocks():
        for m in re.finditer(r"^from modeledit import (.+)$", code, re.M):
            names |= {n.strip() for n in m.group(1).split(",")}
        names |= set(re.findall(r"\bmodeledit\.([a-z_A-Z]+)\(", code))
    assert {"load_model", "rewrite", "restyle", "concept_mask"} <= names
    missing = sorted(n for n in names if n not in modeledit.__all__)
    assert not missing, f"README uses names outside modeledit.__all__: {missing}"
    for n in names:
        assert getattr(modeledit, n) is not None
