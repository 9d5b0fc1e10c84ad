"""The one mask reader: the mask rule of ``read_mask`` in every PIL mode, and every reader of mask files
(exemplars, the files segmenter, counterfactual datasets) following it.

The reference mask is a real region of a real photo: the bright parts of scikit-image's astronaut.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from modeledit.masks import box_mask, ellipse_mask, mask_array, read_mask


@pytest.fixture(scope="module")
def ref() -> np.ndarray:
    grey = np.asarray(Image.fromarray(data.astronaut()).convert("L").resize((128, 128)))
    m = grey > 140
    assert 0.1 < m.mean() < 0.6
    return m


def _check(path, ref) -> None:
    m = read_mask(path)
    assert m.dtype == torch.bool and np.array_equal(m.numpy(), ref)


@pytest.mark.parametrize("on", [255, 1, 17])
def test_integer_masks_any_non_zero(ref, on, tmp_path):
    Image.fromarray(np.where(ref, on, 0).astype(np.uint8)).save(tmp_path / "l.png")
    _check(tmp_path / "l.png", ref)
    Image.fromarray(ref).save(tmp_path / "b.png")                  # mode 1
    assert Image.open(tmp_path / "b.png").mode == "1"
    _check(tmp_path / "b.png", ref)
    Image.fromarray(np.where(ref, on * 257, 0).astype(np.uint16)).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    _check(tmp_path / "g16.png", ref)
    h, w = ref.shape                                              # a 16-bit PGM (mode I)
    (tmp_path / "m.pgm").write_bytes(b"P5\n%d %d\n65535\n" % (w, h) + np.where(ref, on, 0).astype(">u2").tobytes())
    assert Image.open(tmp_path / "m.pgm").mode == "I"
    _check(tmp_path / "m.pgm", ref)


def test_palette_and_colour_masks_any_non_zero_channel(ref, tmp_path):
    p = Image.fromarray(ref.astype(np.uint8), "P")
    p.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)                # index 1 shows red
    p.save(tmp_path / "p.png")
    _check(tmp_path / "p.png", ref)
    for colour in ((255, 255, 255), (0, 0, 9), (255, 0, 0)):        # a dark blue, too: non-zero is non-zero
        rgb = np.zeros(ref.shape + (3,), np.uint8)
        rgb[ref] = colour
        Image.fromarray(rgb).save(tmp_path / "c.png")
        _check(tmp_path / "c.png", ref)
        Image.fromarray(np.dstack([rgb, np.full(ref.shape, 255, np.uint8)])).save(tmp_path / "opaque.png")
        _check(tmp_path / "opaque.png", ref)                       # an alpha opaque everywhere: the colour decides


def test_alpha_masks_use_the_alpha(ref, tmp_path):
    photo = np.asarray(Image.fromarray(data.astronaut()).resize(ref.shape[::-1]))
    alpha = np.where(ref, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([photo, alpha])).save(tmp_path / "cutout.png")     # a cut-out: colours are the photo
    _check(tmp_path / "cutout.png", ref)
    Image.fromarray(np.dstack([np.zeros_like(alpha), alpha]), "LA").save(tmp_path / "la.png")   # black strokes on transparency
    _check(tmp_path / "la.png", ref)
    pa = Image.fromarray(np.dstack([photo, alpha])).convert("PA")
    assert np.array_equal(mask_array(pa), ref)
    l = Image.fromarray(np.where(ref, 255, 0).astype(np.uint8))
    l.info["transparency"] = 0                                     # PNG tRNS: the black value is transparent
    l.save(tmp_path / "trns.png")
    _check(tmp_path / "trns.png", ref)
    g16 = np.where(ref, 0, 40000).astype(np.uint16)                 # 16-bit, the background value transparent
    Image.fromarray(g16).save(tmp_path / "trns16.png", transparency=40000)
    _check(tmp_path / "trns16.png", ref)


def test_float_masks_above_half(ref, tmp_path):
    for on in (0.9, 1.0, 0.51):
        Image.fromarray(np.where(ref, on, 0.0).astype(np.float32)).save(tmp_path / "f.tif")
        assert Image.open(tmp_path / "f.tif").mode == "F"
        _check(tmp_path / "f.tif", ref)
    soft = np.where(ref, 0.9, 0.2).astype(np.float32)                # a soft mask: 0.2 is background
    Image.fromarray(soft).save(tmp_path / "soft.tif")
    _check(tmp_path / "soft.tif", ref)
    Image.fromarray(np.where(ref, 255.0, 0.0).astype(np.float32)).save(tmp_path / "f255.tif")
    with pytest.raises(ValueError, match=r"mask '.*f255.tif' holds floats in \[0, 255\], but float images must lie in \[0, 1\]"):
        read_mask(tmp_path / "f255.tif")
    Image.fromarray(np.where(ref, 1.5, 0.0).astype(np.float32)).save(tmp_path / "f15.tif")
    with pytest.raises(ValueError, match=r"holds floats in \[0, 1.5\], but float images must lie in \[0, 1\]"):
        read_mask(tmp_path / "f15.tif")
    bad = np.where(ref, 0.9, 0.0).astype(np.float32)
    bad[0, 0] = np.nan
    Image.fromarray(bad).save(tmp_path / "nan.tif")
    with pytest.raises(ValueError, match="NaN or infinite"):
        read_mask(tmp_path / "nan.tif")
    Image.fromarray(np.where(ref, 0.4, 0.0).astype(np.float32)).save(tmp_path / "low.tif")
    with pytest.raises(ValueError, match="is empty"):
        read_mask(tmp_path / "low.tif")


def test_lossy_and_converted_masks_above_half_range(ref, tmp_path):
    big = np.asarray(Image.fromarray(ref).resize((512, 512), Image.NEAREST))
    Image.fromarray(np.where(big, 255, 0).astype(np.uint8)).save(tmp_path / "m.jpg", quality=75)
    noisy = np.asarray(Image.open(tmp_path / "m.jpg"))
    assert ((noisy > 0) & ~big).sum() > 100                      # JPEG leaves noise where the mask is black
    m = read_mask(tmp_path / "m.jpg").numpy()
    assert (m != big).mean() < 0.01                              # ... which the half-range rule ignores
    rgb = np.where(big[..., None], 255, 0).astype(np.uint8).repeat(3, 2)
    for mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        assert np.array_equal(mask_array(Image.fromarray(rgb).convert(mode)), big), mode


def test_size_resize_and_empty(ref, tmp_path):
    Image.fromarray(np.where(ref, 255, 0).astype(np.uint8)).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png", size=ref.shape).shape == ref.shape
    with pytest.raises(ValueError, match=r"is 128x128 but the image is 64x32; .*resize=True"):
        read_mask(tmp_path / "m.png", size=(32, 64))
    small = read_mask(tmp_path / "m.png", size=(64, 64), resize=True)
    assert small.shape == (64, 64) and np.array_equal(small.numpy(), ref[1::2, 1::2])   # nearest: the centre of each 2x2 block
    Image.fromarray(np.zeros(ref.shape, np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="is empty"):
        read_mask(tmp_path / "empty.png")
    Image.fromarray(np.zeros(ref.shape, np.float32)).save(tmp_path / "empty.tif")
    with pytest.raises(ValueError, match="is empty"):
        read_mask(tmp_path / "empty.tif")


def test_exif_orientation_follows_the_image(ref, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.where(ref, 255, 0).astype(np.uint8)[:, :100]).save(tmp_path / "t.png", exif=exif)
    assert np.array_equal(read_mask(tmp_path / "t.png").numpy(), np.rot90(ref[:, :100], -1))


def test_every_mask_reader_follows_the_rule(ref, mobilenet, tmp_path):
    """A float TIFF mask of 0.9 is the concept everywhere a mask file is read: exemplars, the files segmenter."""
    from modeledit.exemplars import Exemplars
    from modeledit.segmenters.files import read_mask_png

    Image.fromarray(np.where(ref, 0.9, 0.0).astype(np.float32)).save(tmp_path / "f.tif")
    assert np.array_equal(read_mask_png(tmp_path / "f.tif"), ref)
    photo = Image.fromarray(data.astronaut()).resize(ref.shape[::-1])
    photo.save(tmp_path / "x.png")
    ex = Exemplars.from_images(mobilenet, [tmp_path / "x.png"], [tmp_path / "x.png"], masks=[tmp_path / "f.tif"], size=128)
    assert ex.mask is not None and np.array_equal(ex.mask[0].reshape(ref.shape).numpy() > 0.5, ref)


def test_box_and_ellipse():
    m = box_mask((10, 20), (2, 3, 12, 8))
    assert m.shape == (10, 20) and int(m.sum()) == 10 * 5
    e = ellipse_mask((50, 50), center=(25, 25), axes=(10, 5))
    assert e[25, 25] and not e[25, 40] and abs(int(e.sum()) - np.pi * 50) < 10
    with pytest.raises(ValueError, match="covers no pixel"):
        box_mask((10, 10), (20, 20, 30, 30))
