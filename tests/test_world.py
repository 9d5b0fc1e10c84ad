"""The benchmark world: determinism, exact masks, co-occurrence rates, dataset, oracle, shipped models, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modeledit.eval.world.scene import (
    CLASSES, CONCEPTS, CONTEXTS, HOME, HOMES, PARTS, TEXT_TAG, TWIN, World, WorldConfig, add_text_tag,
)
from modeledit.eval.world.data import WorldDataset, collate

MAGENTA = np.zeros((64, 64, 3), np.uint8)
MAGENTA[..., 0] = MAGENTA[..., 2] = 255


def test_world_vocabulary_is_rich_enough():
    assert len(CLASSES) >= 10 and len(CONTEXTS) >= 6 and len(PARTS) >= 2
    assert all(len(cs) >= 3 for cs in HOMES.values())
    for part in PARTS:  # every part is shared by several classes
        owners = {World().render(i, label=c).class_name for c in CLASSES for i in range(2) if part in World().render(i, label=c).masks}
        assert len(owners) >= 2, part


def test_same_seed_renders_identical_scenes_and_masks():
    a, b = World(WorldConfig(seed=3)), World(WorldConfig(seed=3))
    for i in (0, 7, 123):
        sa, sb = a.render(i), b.render(i)
        assert np.array_equal(sa.image, sb.image)
        assert sa.masks.keys() == sb.masks.keys()
        assert all(np.array_equal(sa.masks[k], sb.masks[k]) for k in sa.masks)
        assert sa.record == sb.record
    other = World(WorldConfig(seed=4)).render(0)
    assert not np.array_equal(other.image, a.render(0).image)


@pytest.mark.parametrize("index", [0, 5, 19, 40])
def test_each_mask_covers_exactly_the_pixels_where_its_concept_was_drawn(index):
    world = World(WorldConfig(text_tag_rate=1.0, neutral_tag_rate=1.0))
    scene = world.render(index)
    assert TEXT_TAG in scene.masks and scene.class_name in scene.masks and scene.record["context"] in scene.masks
    for concept in CONCEPTS:
        swapped = world.render_with(index, {concept: MAGENTA})
        mask = scene.mask(concept)
        changed = np.any(swapped.image != scene.image, axis=2)
        if concept not in scene.masks:  # absent: empty mask, repainting it changes nothing
            assert not mask.any() and not changed.any(), concept
            continue
        assert mask.any(), concept
        assert not changed[~mask].any(), f"{concept}: pixels outside its mask changed"
        px = swapped.image[mask].astype(int)
        assert (px[:, 1] < 60).all() and (px[:, 0] > 150).all() and (px[:, 2] > 150).all(), f"{concept}: mask pixel not repainted"
    # the visible pixels partition the image: context + object + tag
    union = scene.mask(scene.record["context"]) | scene.mask(scene.class_name) | scene.mask(TEXT_TAG)
    assert union.all()
    assert not (scene.mask(scene.record["context"]) & scene.mask(scene.class_name)).any()


def test_cooccurrence_rates_match_the_configuration():
    for rate, n in ((0.85, 720), (0.6, 360)):
        world = World(WorldConfig(cooccurrence=rate, seed=11))
        ctx = [world.render(i).record["context"] for i in range(n)]
        home = np.mean([c == HOME[CLASSES[world.label_of(i)]] for i, c in enumerate(ctx)])
        sigma = np.sqrt(rate * (1 - rate) / n)
        assert abs(home - rate) < 4 * sigma, (rate, home)
        # away from home, the other contexts are drawn uniformly
        away = [c for i, c in enumerate(ctx) if c != HOME[CLASSES[world.label_of(i)]]]
        counts = np.array([away.count(c) for c in CONTEXTS])
        assert counts.sum() == len(away) and counts.max() < 2.5 * max(1, len(away)) / (len(CONTEXTS) - 1)
    # look-alike twins: the object is drawn with its twin's appearance at the configured rate
    world = World(WorldConfig(ambiguity=0.25, seed=12))
    records = [world.render(i).record for i in range(360)]
    twin = np.mean([r["appearance"] == TWIN[r["class_name"]] for r in records])
    assert all(r["appearance"] in (r["class_name"], TWIN[r["class_name"]]) for r in records)
    assert abs(twin - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 360), twin
    assert all(HOME[a] != HOME[b] for a, b in TWIN.items())
    table = World().cooccurrence()
    assert table["car"]["road"] == 0.85 and abs(sum(table["car"].values()) - 1) < 1e-6


def test_context_swap_and_overrides_keep_the_scene():
    world = World()
    scene = world.render(1, context="road")
    snowy = world.render_with(1, {"road": "snow"}, context="road")
    road = scene.masks["road"]
    assert np.array_equal(snowy.image[~road], scene.image[~road])
    assert snowy.image[road].mean() > scene.image[road].mean() + 60  # snow is bright, road is grey
    forced = world.render(1, label="cow", context="water")
    assert forced.class_name == "cow" and forced.record["context"] == "water"
    with pytest.raises(KeyError):
        world.render(1, context="lava")
    with pytest.raises(KeyError):
        world.render_with(1, {"lava": "snow"})


def test_text_tags_follow_the_config():
    cfg = WorldConfig(text_tag_rate=1.0, neutral_tag_rate=0.0)
    world = World(cfg)
    for i in range(36):
        s = world.render(i)
        assert s.record["text_tag"] == (s.class_name if s.class_name in cfg.text_tag_classes else None)
    assert World().render(0).record["text_tag"] is None
    # where the tag decides, a tag class wears another class's appearance; other classes are untouched
    deciding = World(WorldConfig(text_tag_rate=1.0, tag_decides_rate=1.0))
    for i in range(18):
        r, plain = deciding.render(i).record, world.render(i).record
        if r["class_name"] in cfg.text_tag_classes:
            assert r["appearance"] != r["class_name"] and r["text_tag"] == r["class_name"]
        else:
            assert r == plain
    img = World().render(2).image
    tagged, patch = add_text_tag(img, "car")
    assert patch.sum() > 100 and np.array_equal(tagged[~patch], img[~patch])
    assert (tagged[patch] < 60).all(axis=1).sum() > 10  # ink was printed
    with pytest.raises(ValueError):
        add_text_tag(img, "car", box=(0, 0, 100, 10))


def test_config_json_round_trip_and_validation():
    cfg = WorldConfig(seed=5, cooccurrence=0.7, text_tag_rate=0.5)
    assert WorldConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError):
        WorldConfig(cooccurrence=1.5)
    with pytest.raises(ValueError):
        WorldConfig(version=999)
    with pytest.raises(KeyError):
        WorldConfig(text_tag_classes=("unicorn",))


def test_dataset_items_and_splits():
    ds = WorldDataset("val", n=20)
    x, y, meta = ds[3]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert CLASSES[y] == meta["class_name"] and meta["split"] == "val"
    assert all(m.shape == (64, 64) and m.dtype == bool for m in meta["masks"].values())
    xb, yb, metas = collate([ds[i] for i in range(4)])
    assert xb.shape == (4, 3, 64, 64) and yb.tolist() == [ds[i][1] for i in range(4)] and len(metas) == 4
    # labels without rendering: the same as the items', with and without a forced class
    assert ds.labels == [ds[i][1] for i in range(20)]
    forced = WorldDataset("test", n=6, label="cow")
    assert forced.labels == [forced[i][1] for i in range(6)] == [CLASSES.index("cow")] * 6
    train, test = WorldDataset("train", n=5), WorldDataset("test", n=5)
    assert {train.scene_index(i) for i in range(5)}.isdisjoint({test.scene_index(i) for i in range(5)})
    with pytest.raises(KeyError):
        WorldDataset("holdout")
    with pytest.raises(IndexError):
        ds[20]


def test_oracle_segmenter_round_trips_true_masks():
    from modeledit.segmenters import get_segmenter

    seg = get_segmenter("oracle")
    assert seg.name == "oracle"
    ds = WorldDataset("test", n=6)
    for i in range(6):
        x, _, meta = ds[i]
        image = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        got = {inst.concept: inst.mask for inst in seg.segment(image, meta=meta)}
        assert got.keys() == meta["masks"].keys()
        assert all(np.array_equal(got[k], meta["masks"][k]) for k in got)
        # from the record alone (no masks), the scene is re-rendered
        record = {k: v for k, v in meta.items() if k != "masks"}
        again = seg.segment(image, [meta["context"]], meta=record)
        assert len(again) == 1 and np.array_equal(again[0].mask, meta["masks"][meta["context"]])
    with pytest.raises(ValueError):
        seg.segment(image, meta=None)
    with pytest.raises(KeyError):
        seg.segment(image, ["lava"], meta=meta)


@pytest.mark.parametrize("name", ["world_vgg", "world_resnet", "world_vgg_text"])
def test_shipped_world_classifiers_load_by_name_and_classify(name):
    from modeledit import load_model

    lm = load_model(name)
    assert lm.class_names == list(CLASSES) and lm.input_size == 64
    cfg = WorldConfig.from_json(lm.meta["world"])  # the world the classifier was trained on
    assert cfg.version == WorldConfig().version and (cfg.text_tag_rate > 0) == name.endswith("_text")
    ds = WorldDataset("test", n=180, config=cfg, with_masks=False)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    acc = float((lm.predict(x).argmax(1) == y).float().mean())
    assert acc >= 0.75, acc  # chance is 1/18; the full 1800-scene figures are in eval/world/zoo/world_models.json


def test_world_cli_info_and_render(tmp_path, capsys):
    from modeledit.cli import main

    assert main(["world", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["classes"] == list(CLASSES) and info["contexts"] == list(CONTEXTS)
    assert info["cooccurrence"]["bus"]["road"] == 0.85
    assert main(["world", "render", "--n", "3", "--out", str(tmp_path), "--grid", str(tmp_path / "grid.png")]) == 0
    record = json.loads((tmp_path / "0000.json").read_text())
    assert (tmp_path / f"0000_{record['class_name']}.png").is_file()
    assert (tmp_path / f"0000_{record['class_name']}_{record['context']}.png").is_file()
    assert (tmp_path / "grid.png").is_file()
    assert main(["world", "train", "dinosaur"]) == 2
