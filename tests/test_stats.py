"""Second-moment statistics: exact sums, float64, the cache and its invalidation, regularisation."""
from __future__ import annotations

import copy
import logging
import warnings

import numpy as np
import pytest
import torch

from modeledit import capture_sites, get_site
from modeledit.image_folder import ImageFolder
from modeledit.stats import SecondMoment, cache_path, second_moment

pytestmark = pytest.mark.usefixtures("one_thread")


def test_second_moment_is_the_sum_over_every_key(mobilenet, stats_batches):
    site = get_site(mobilenet.model, 5)
    batches = stats_batches(96)
    st = second_moment(mobilenet.model, site, batches, transform=mobilenet.normalize, cache=False, progress=False)
    keys = torch.cat([capture_sites(mobilenet.model, mobilenet.normalize(b), [site])[site.name].key for b in batches])
    flat = keys.permute(0, 2, 3, 1).reshape(-1, site.key_channels).double()
    assert st.total.dtype == torch.float64 and st.total.shape == (site.key_channels, site.key_channels)
    assert st.count == flat.shape[0] == sum(len(b) for b in batches) * keys.shape[-1] * keys.shape[-2]
    torch.testing.assert_close(st.total, flat.T @ flat, rtol=1e-5, atol=1e-6 * float(st.total.abs().max()))
    torch.testing.assert_close(st.total, st.total.T)


def test_cache_reused_and_invalidated_by_model_and_dataset(mobilenet, tmp_path, photo_batch):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, x in enumerate(photo_batch(64)[:3]):
        Image.fromarray((x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / f"{i}.png")
    data = ImageFolder(folder, size=64)
    site = get_site(mobilenet.model, 3)
    cache = tmp_path / "cache"
    kw = dict(transform=mobilenet.normalize, cache_dir=cache, progress=False)
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    st = second_moment(mobilenet.model, site, loader, dataset_id=data.identity, **kw)
    files = list((cache / "stats").glob("*.safetensors"))
    assert len(files) == 1
    # a second call reads the file (proved by planting a marker in it)
    planted = SecondMoment.load(files[0])
    planted.total = planted.total * 0 + 7.0
    planted.save(files[0])
    assert float(second_moment(mobilenet.model, site, loader, dataset_id=data.identity, **kw).total[0, 0]) == 7.0
    # a changed model (one weight before the site) never reuses it
    changed = copy.deepcopy(mobilenet.model)
    with torch.no_grad():
        changed.features[1].conv[0][0].weight[0, 0, 0, 0] += 1e-3
    fresh = second_moment(changed, site, loader, dataset_id=data.identity, **kw)
    assert float(fresh.total[0, 0]) != 7.0 and fresh.model_hash != st.model_hash
    # nor does a changed dataset (one more image)
    Image.fromarray((photo_batch(64)[3].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / "3.png")
    data2 = ImageFolder(folder, size=64)
    assert data2.identity != data.identity
    st2 = second_moment(mobilenet.model, site, torch.utils.data.DataLoader(data2, batch_size=2), dataset_id=data2.identity, **kw)
    assert st2.count == st.count * 4 // 3
    assert len(list((cache / "stats").glob("*.safetensors"))) == 3
    assert cache_path(st.model_hash, site, data.identity, cache) != cache_path(st.model_hash, get_site(mobilenet.model, 4), data.identity, cache)


def _cache_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "modeledit.stats" and r.levelno == logging.WARNING]


def test_a_corrupt_cache_file_is_reported_once_and_recomputed(mobilenet, tmp_path, caplog, photo_batch):
    site = get_site(mobilenet.model, 3)
    batches = [photo_batch(64)[:3]]
    kw = dict(dataset_id="three-photos", transform=mobilenet.normalize, cache_dir=tmp_path / "cache", progress=False)
    st = second_moment(mobilenet.model, site, batches, **kw)
    path = cache_path(st.model_hash, site, "three-photos", tmp_path / "cache")
    good = path.read_bytes()
    # garbage, a truncated file, a flipped byte in the tensor (caught by its checksum), a tensor of the wrong size
    wrong_size = tmp_path / "wrong.safetensors"
    SecondMoment(site.name, torch.ones(3, 3, dtype=torch.float64), 5, st.model_hash, "three-photos").save(wrong_size)
    flipped = bytearray(good)
    flipped[-3] ^= 0xFF
    for broken in (b"not a safetensors file", good[: len(good) // 2], bytes(flipped), wrong_size.read_bytes()):
        path.write_bytes(broken)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="modeledit.stats"):
            again = second_moment(mobilenet.model, site, batches, **kw)
        warned = _cache_warnings(caplog)
        assert len(warned) == 1 and "unreadable" in warned[0] and "recomputing" in warned[0] and "\n" not in warned[0], warned
        assert torch.equal(again.total, st.total) and again.count == st.count
        # the recomputed statistics replaced the broken file, and are read from it next time without a warning
        assert torch.equal(SecondMoment.load(path).total, st.total)
        caplog.clear()
        assert torch.equal(second_moment(mobilenet.model, site, batches, **kw).total, st.total) and not _cache_warnings(caplog)


def test_an_unwritable_cache_dir_warns_once_and_still_returns_the_statistics(mobilenet, tmp_path, caplog, photo_batch):
    site = get_site(mobilenet.model, 3)
    batches = [photo_batch(64)[:3]]
    (tmp_path / "afile").write_text("a file, not a folder")
    expected = second_moment(mobilenet.model, site, batches, transform=mobilenet.normalize, cache=False, progress=False)
    with caplog.at_level(logging.INFO, logger="modeledit.stats"):
        st = second_moment(mobilenet.model, site, batches, dataset_id="three-photos", transform=mobilenet.normalize,
                           cache_dir=tmp_path / "afile" / "cache", progress=False)
    warned = _cache_warnings(caplog)
    assert len(warned) == 1 and "cannot write the statistics cache" in warned[0] and "without caching" in warned[0], warned
    assert torch.equal(st.total, expected.total) and st.count == expected.count
    assert (tmp_path / "afile").read_text() == "a file, not a folder"
    assert not list(tmp_path.glob("**/*.tmp*"))


def test_singular_statistics_are_regularised_with_a_warning(mobilenet, photo_batch):
    site = get_site(mobilenet.model, 16)  # d = 960 from 25 keys: singular
    st = second_moment(mobilenet.model, site, [photo_batch(96)[:1]], transform=mobilenet.normalize, progress=False)
    with pytest.warns(RuntimeWarning, match="ill-conditioned"):
        c = st.regularized()
    ev = torch.linalg.eigvalsh(c)
    assert torch.isfinite(c).all() and float(ev.min()) > 0 and float(ev.max() / ev.min()) <= 1.01e6
    zero = SecondMoment("s", torch.zeros(4, 4, dtype=torch.float64), 10)
    with pytest.warns(RuntimeWarning, match="zero or not finite"):
        assert torch.equal(zero.regularized(), torch.eye(4, dtype=torch.float64))
    # a rewrite with these statistics gives a finite edit, never NaN
    from modeledit.exemplars import Exemplars
    from modeledit.editor import rewrite

    x = photo_batch(96)[1:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        edit = rewrite(mobilenet, site, Exemplars(x, x.flip(-1)), stats=st)
    assert all(torch.isfinite(t).all() for t in edit.changes[f"{site.layer}.weight"].tensors.values())
    assert np.isfinite(edit.metrics["objective_after"])


def test_image_folder_and_batch_errors(mobilenet, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path)
    with pytest.raises(TypeError, match="image tensors"):
        second_moment(mobilenet.model, get_site(mobilenet.model, 0), [["a"]], progress=False)


def test_statistics_of_modeledit_stats_are_found_by_rewrite_and_the_reverse(tmp_path, monkeypatch, capsys, photo_batch):
    """One image folder, one identity: C computed by `modeledit stats DIR` is the file `rewrite(..., stats="DIR")`
    reads (resolve_stats), and C computed through the API is the file the command reports as read from cache."""
    import json

    from PIL import Image

    from modeledit import load_model
    from modeledit.cli import main
    from modeledit.editor import resolve_stats

    monkeypatch.setenv("MODELEDIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, x in enumerate(photo_batch(64)[:3]):
        Image.fromarray((x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / f"{i}.png")
    lm = load_model("world_vgg")
    site = get_site(lm.model, -1)
    cli = ["stats", "world_vgg", "--images", str(folder), "--layer", "-1"]

    assert main(cli) == 0
    out = json.loads(capsys.readouterr().out)
    assert not out["from_cache"] and out["cache"]
    planted = SecondMoment.load(out["cache"])
    planted.total = planted.total * 0 + 7.0
    planted.save(out["cache"])
    assert float(resolve_stats(lm, site, str(folder)).total[0, 0]) == 7.0   # the API read the command's file

    for f in (tmp_path / "cache").rglob("*.safetensors"):
        f.unlink()
    st = resolve_stats(lm, site, str(folder))
    assert float(st.total[0, 0]) != 7.0
    assert main(cli) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["from_cache"] and again["keys"] == st.count        # the command read the API's file


def test_statistics_images_are_checked(mobilenet):
    """0-255 or uint8 batches gave a second moment of the wrong images without a word."""
    import torch

    from modeledit.layers import get_site
    from modeledit.stats import second_moment

    site = get_site(mobilenet.model, "features.14")
    x = torch.rand(2, 3, 64, 64)
    for bad, msg in ((x * 255, "hold values in"), ((x * 255).to(torch.uint8), "uint8 tensors")):
        with pytest.raises(ValueError, match=msg):
            second_moment(mobilenet, site, [bad], progress=False)
    assert second_moment(mobilenet, site, [x], progress=False).count > 0
