"""The snow harness (eval/snow.py)."""
from __future__ import annotations


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
