"""Dataset specs are parsed in one place (eval/datasets.py: DatasetSpec) and compared by one disjointness check."""
from __future__ import annotations

import pytest

from modeledit.eval.datasets import DatasetSpec, check_disjoint, check_stats_disjoint


def test_dataset_spec_parses_world_folder_and_other_kinds(tmp_path):
    s = DatasetSpec.parse("world:test:1800")
    assert (s.kind, s.split, s.n, s.size) == ("world", "test", 1800, 1800)
    val = DatasetSpec.parse("world:val")
    assert val.n is None and val.size > 0 and DatasetSpec.parse("world::5").split == "test"
    assert DatasetSpec.parse(f"folder:{tmp_path}").path == str(tmp_path) == DatasetSpec.parse(str(tmp_path)).path
    assert DatasetSpec.parse("coco:val2017").kind == "coco" and DatasetSpec.parse(s) is s
    for bad in ("world:test:0", "world:test:abc", "world:test:5:6"):
        with pytest.raises(ValueError, match="world:SPLIT"):
            DatasetSpec.parse(bad)


def test_one_disjointness_check_for_specs_and_splits(tmp_path):
    assert len(DatasetSpec.parse("world:val:10").items() & DatasetSpec.parse("world:val:600").items()) == 10
    check_stats_disjoint("world:train:1500", {"--dataset": "world:test:1800", "--clean": "world:val:600", "--other": None})
    with pytest.raises(ValueError, match="'world:val:100' shares images with --clean 'world:val:600'"):
        check_stats_disjoint("world:val:100", {"--clean": "world:val:600"})
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="shares images with --photos"):
        check_stats_disjoint(str(tmp_path / "a"), {"--photos": str(tmp_path)})
    check_stats_disjoint(str(tmp_path / "a"), {"--clean": "world:val:600"})
    with pytest.raises(ValueError, match="val & test share 1 item"):
        check_disjoint({"val": [1, 2], "test": [2, 3]})


def test_statistics_split_is_disjoint_from_evaluation_sets(photo_folder):
    """The harnesses' default statistics split is disjoint from their evaluation sets; folders are checked too."""
    from modeledit.eval.snow import SnowConfig
    from modeledit.eval.typographic import TypographicConfig

    for cfg in (TypographicConfig(), SnowConfig()):
        assert cfg.stats_dataset == "world:train:1500"
        check_stats_disjoint(cfg.stats_dataset, {"--clean": cfg.clean, "--dataset": getattr(cfg, "dataset", None)})
    with pytest.raises(ValueError, match="shares images with --clean"):
        check_stats_disjoint("world:val:100", {"--clean": "world:val:600"})
    root = photo_folder
    with pytest.raises(ValueError, match="shares images"):
        check_stats_disjoint(str(root), {"--photos": str(root.parent)})
    check_stats_disjoint(str(root), {"--clean": "world:val:600"})
