"""Issue 11: dataset identity as the statistics key (6), statistics disjoint from evaluation sets (7),
"no change" as a candidate (16), mask files with --max-size (2), and the console (17)."""
from __future__ import annotations

import logging
import os
import stat
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

# ---- item 6: one image-folder dataset, one identity, used as the statistics key


def _folder(tmp_path, photos, n=3):
    root = tmp_path / "imgs"
    (root / "cat").mkdir(parents=True)
    for i, name in enumerate(list(photos)[:n]):
        Image.fromarray(photos[name][:96, :96]).save(root / "cat" / f"{i}.png")
    return root


def test_changing_a_file_changes_the_identity(tmp_path, photos):
    from modeledit.eval.datasets import FolderDataset, dataset_key, load_dataset
    from modeledit.image_folder import ImageFolder

    root = _folder(tmp_path, photos)
    ds = load_dataset(str(root), class_names=["dog", "cat"], size=32)
    assert isinstance(ds, FolderDataset) and isinstance(ds, ImageFolder)
    assert ds[0][1] == 1  # the class folder gives the label
    key = dataset_key(str(root), ds)
    assert isinstance(type(ds).identity, property)
    assert dataset_key(str(root), load_dataset(str(root), class_names=["dog", "cat"], size=32)) == key  # stable
    # rewrite one file with other pixels (same name)
    Image.fromarray(photos["rocket"][:96, :96]).save(root / "cat" / "1.png")
    os.utime(root / "cat" / "1.png", ns=(time.time_ns(), time.time_ns() + 10**9))
    key2 = dataset_key(str(root), load_dataset(str(root), class_names=["dog", "cat"], size=32))
    assert key2 != key
    # add a file, change the preprocessing: other keys again
    Image.fromarray(photos["rocket"][:64, :64]).save(root / "cat" / "9.png")
    key3 = dataset_key(str(root), load_dataset(str(root), class_names=["dog", "cat"], size=32))
    assert len({key, key2, key3, dataset_key(str(root), load_dataset(str(root), class_names=["dog", "cat"], size=48))}) == 4
    # the world's datasets name themselves the same way (a property), so the bench keys both alike
    world = load_dataset("world:train:8")
    assert isinstance(type(world).identity, property) and dataset_key("world:train:8", world).startswith("world:train:8|world:")


def test_bench_statistics_key_follows_the_folder(tmp_path, photos):
    """The bench keys C on the dataset's content (it was ``spec:None`` for folders): a changed folder
    gives another cache file."""
    from modeledit.eval.bench import BenchConfig, BenchRunner
    from modeledit.layers import get_site

    root = _folder(tmp_path, photos)
    cfg = BenchConfig(model="world_vgg", dataset="world:test:8", clean="world:val:8", stats_dataset=str(root))
    r = BenchRunner(cfg)
    site = get_site(r.lm.model, -1)
    first = r.statistics(site)
    from modeledit.eval.datasets import dataset_key, load_dataset

    key = dataset_key(str(root), load_dataset(str(root), class_names=r.lm.class_names, size=r.lm.input_size))
    assert first.dataset_id == key
    Image.fromarray(photos["rocket"][:96, :96]).save(root / "cat" / "0.png")
    r2 = BenchRunner(cfg)
    second = r2.statistics(site)
    key2 = dataset_key(str(root), load_dataset(str(root), class_names=r.lm.class_names, size=r.lm.input_size))
    assert key2 != key and second.dataset_id == key2
    assert not np.allclose(first.total.numpy(), second.total.numpy())  # recomputed, not the stale cached C


# ---- item 7: statistics from a split disjoint from every evaluation set


def test_statistics_split_is_disjoint_from_evaluation_sets(tmp_path, photos):
    from modeledit.eval.datasets import check_stats_disjoint as check_disjoint
    from modeledit.eval.snow import SnowConfig
    from modeledit.eval.typographic import TypographicConfig

    for cfg in (TypographicConfig(), SnowConfig()):
        assert cfg.stats_dataset == "world:train:1500"
        check_disjoint(cfg.stats_dataset, {"--clean": cfg.clean, "--dataset": getattr(cfg, "dataset", None)})
    with pytest.raises(ValueError, match="shares images with --clean"):
        check_disjoint("world:val:100", {"--clean": "world:val:600"})
    root = _folder(tmp_path, photos)
    with pytest.raises(ValueError, match="shares images"):
        check_disjoint(str(root), {"--photos": str(root.parent)})
    check_disjoint(str(root), {"--clean": "world:val:600"})


def test_oneshot_study_needs_its_own_statistics_images():
    import torch

    from modeledit import load_model
    from modeledit.eval.oneshot import Exemplar, OneShotStudy

    lm = load_model("world_vgg")
    x = torch.rand(2, 3, 64, 64)
    ex = Exemplar(x[0], x[1], torch.ones(64, 64), 0)
    with pytest.raises(ValueError, match="disjoint from every evaluation set"):
        OneShotStudy(lm, ex, {"val": (x, np.zeros(2, int))}, (x, np.zeros(2, int)))


def test_snow_validation_scenes_come_after_the_clean_set(monkeypatch):
    """Snow's validation scenes (and its exemplar) are drawn from the val split after the clean set."""
    from modeledit import load_model
    from modeledit.eval import snow
    from modeledit.eval.world.data import WorldDataset

    seen: list[int] = []
    real_scene = WorldDataset.scene

    def scene(self, i, **kw):
        if self.split == "val" and "context" in kw:  # the exemplar and the snowy validation scenes
            seen.append(int(i))
        return real_scene(self, i, **kw)

    monkeypatch.setattr(WorldDataset, "scene", scene)
    cfg = snow.SnowConfig(clean="world:val:40", stats_dataset="world:train:8", n_val=6, n_test=6)
    study, _ = snow._world_study(cfg, load_model("world_vgg"))
    assert seen and min(seen) >= 40
    assert len(study.stats_images) == 8


# ---- item 16: "no change" is always a candidate scoring 0


def test_no_change_beats_a_negative_best():
    from modeledit.eval.bench import display_summary, summarize
    from modeledit.eval.protocol import choose_setting

    rows = [{"val_corrected": -0.2, "clean_drop": 0.0}, {"val_corrected": -0.05, "clean_drop": 0.001}]
    assert choose_setting(rows, 0.0025) is None
    assert choose_setting(rows + [{"val_corrected": 0.1, "clean_drop": 0.002}], 0.0025)["val_corrected"] == 0.1
    assert choose_setting([{"val_corrected": 0.0, "clean_drop": 0.0}], 0.0025) is None  # a tie goes to no change
    base = dict(concept="road", style="snow", n_exemplars=3, seed=0, site_name="features.15", target_class="car",
                test_target_corrected=0.5, test_other_corrected=-0.3, heldout_target_corrected=0.1, heldout_other_corrected=-0.1,
                test_target_n_pre=10, test_other_n_pre=20)
    table = pd.DataFrame([{**base, "method": "edit", "setting": "{}", "val_corrected": -0.1, "clean_drop": 0.0},
                          {**base, "method": "finetune_local", "setting": "{}", "val_corrected": 0.4, "clean_drop": 0.5},
                          {**base, "method": "finetune_global", "setting": "{}", "val_corrected": 0.4, "clean_drop": 0.001}])
    s = summarize(table, 0.0025).set_index("method")
    assert not s.loc["edit", "changed"] and s.loc["edit", "setting"] == "no setting beats no change: no change"
    assert s.loc["edit", "test_other_corrected"] == 0.0 and s.loc["edit", "site_name"] == "-"
    assert not s.loc["finetune_local", "changed"] and s.loc["finetune_local", "setting"] == "no setting qualifies: no change"
    assert s.loc["finetune_global", "changed"] and s.loc["finetune_global", "test_other_corrected"] == -0.3
    text = display_summary(s.reset_index(), ["method", "test_other_corrected", "clean_drop", "site_name", "setting"])
    assert "no setting qualifies: no change" in text and "no setting beats no change: no change" in text
    assert "0.000" not in text.splitlines()[1] + text.splitlines()[2]  # unchanged rows show '-', not 0.000


# ---- item 2: mask files made for the original size still fit after --max-size


def test_mask_files_fit_after_max_size(tmp_path, photos):
    from modeledit.counterfactuals import CounterfactualConfig, generate_counterfactuals, load_counterfactuals
    from modeledit.segmenters.files import write_mask_png

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    img = photos["astronaut"]  # 512x512
    Image.fromarray(img).save(images / "astro.png")
    m = np.zeros(img.shape[:2], bool)
    m[100:400, 150:350] = True
    (masks / "astro").mkdir(parents=True)
    write_mask_png(m, masks / "astro" / "road.png")
    cfg = CounterfactualConfig(max_size=128, progress=False)
    out = generate_counterfactuals(images, "files", "texture", ["road"], ["snow"], tmp_path / "cf", cfg, segmenter_kwargs={"root": str(masks)})
    ds = load_counterfactuals(out)
    r = ds[0]
    assert tuple(r.mask.shape) == (128, 128) and abs(float(r.mask.float().mean()) - m.mean()) < 0.02
    # a mask of neither size is refused, naming both
    write_mask_png(np.ones((50, 60), bool), masks / "astro" / "road.png")
    with pytest.raises(ValueError, match=r"mask for 'road' is 60x50 but the image is 512x512 \(processed at 128x128\)"):
        generate_counterfactuals(images, "files", "texture", ["road"], ["snow"], tmp_path / "cf2", cfg, segmenter_kwargs={"root": str(masks)})
    assert not (tmp_path / "cf2").exists()


# ---- item 17: the console


def test_edit_files_are_0644(tmp_path):
    import torch

    from modeledit import load_model
    from modeledit.edit import Edit, ParamChange

    lm = load_model("world_vgg")
    name = next(n for n, _ in lm.model.named_parameters())
    p = dict(lm.model.named_parameters())[name]
    e = Edit.from_changes(lm.model, "finetune_local", {name: ParamChange("delta", {"delta": torch.zeros_like(p)})},
                          sites=[name.rsplit(".", 1)[0]])   # a saved edit names a known method and its site
    st, js = e.save(tmp_path / "e")
    old = os.umask(0o022)
    os.umask(old)
    for f in (st, js):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644 & ~old


def test_verbose_does_not_flood_and_warnings_are_one_line(capsys, monkeypatch):
    import modeledit.commands.models as cmd
    from modeledit.cli import main

    def run(args):
        logging.getLogger("PIL.PngImagePlugin").debug("STREAM b'IHDR' 16 13")
        logging.getLogger("a_users_tool").debug("our own debug line")
        warnings.warn("ill-conditioned statistics", RuntimeWarning)
        return 0

    monkeypatch.setattr(cmd, "run", run)
    assert main(["-v", "models"]) == 0
    err = capsys.readouterr().err
    assert "STREAM" not in err and "our own debug line" in err
    line = next(ln for ln in err.splitlines() if "ill-conditioned" in ln)
    assert line.startswith("WARNING py.warnings: RuntimeWarning: ill-conditioned statistics (")
    assert "warnings.warn(" not in err  # no echoed source line
    assert logging.getLogger("PIL").level == logging.NOTSET  # restored after the command
