"""The one image reader: every PIL mode read by its real range, against the same photo in 8-bit RGB.

Each mode is made from a real photo (scikit-image's chelsea), written to a file where a format stores
it, and read back with :func:`read_image` / :func:`to_pil`; the result must be the photo's 8-bit RGB
equivalent within the mode's own rounding. Then the real MobileNetV2 on a 16-bit PNG, EXIF orientation,
arrays by dtype, refusals (one sentence, no image), and the `predict` command on a 16-bit PNG.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from modeledit.images import open_image, read_image, to_pil, to_tensor01


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return data.chelsea()


@pytest.fixture(scope="module")
def grey(rgb) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def _read(im: Image.Image, path, fmt: str | None = None) -> np.ndarray:
    im.save(path, fmt)
    out = read_image(path)
    assert out.mode == "RGB" and out.size == im.size
    return np.asarray(out).astype(int)


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(float)[..., None] / 255.0
    return rgb.astype(float) * a + 255.0 * (1 - a)


def _alpha(shape) -> np.ndarray:
    """An alpha ramp from transparent (left) to opaque (right)."""
    return np.broadcast_to(np.linspace(0, 255, shape[1]).round().astype(np.uint8), shape[:2]).copy()


def test_rgb_l_and_1_are_exact(rgb, grey, tmp_path):
    im = Image.fromarray(rgb)
    assert np.array_equal(_read(im, tmp_path / "rgb.png"), rgb)
    assert np.array_equal(_read(im.convert("L"), tmp_path / "l.png"), np.repeat(grey[..., None], 3, 2))
    bits = im.convert("1")
    assert open_image(tmp_path / "l.png").mode == "L"
    out = _read(bits, tmp_path / "b.png")
    assert open_image(tmp_path / "b.png").mode == "1"
    assert np.array_equal(out[..., 0], np.where(np.asarray(bits), 255, 0)) and set(np.unique(out)) == {0, 255}


def test_palette_with_and_without_transparency(rgb, tmp_path):
    p = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    shown = np.asarray(p.convert("RGB")).astype(int)   # the palette's colours are the picture
    assert np.abs(shown - rgb).mean() < 6               # (a 64-colour palette of the photo)
    assert np.array_equal(_read(p, tmp_path / "p.png"), shown)
    idx = np.asarray(p)
    p.info["transparency"] = int(idx[0, 0])             # one palette entry transparent: it shows white
    out = _read(p, tmp_path / "pt.png")
    hole = idx == idx[0, 0]
    assert (out[hole] == 255).all() and np.array_equal(out[~hole], shown[~hole])


def test_a_fully_transparent_image_is_refused_not_read_as_white(rgb, tmp_path):
    """Alpha 0 at every pixel (a file, an array, a tRNS grey value covering all): on white it would be a blank
    picture read as if it were the photo; one pixel of alpha is enough to read it."""
    from modeledit.images import read_tensor

    clear = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    Image.fromarray(clear, "RGBA").save(tmp_path / "clear.png")
    for bad in (tmp_path / "clear.png", clear):
        with pytest.raises(ValueError, match="fully transparent"):
            read_tensor(bad)
    g16 = np.full((8, 8), 4000, np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16clear.png", transparency=4000)
    with pytest.raises(ValueError, match="fully transparent"):
        read_image(tmp_path / "g16clear.png")
    clear[0, 0, 3] = 255
    assert read_tensor(clear)[:, 0, 0].tolist() == (rgb[0, 0] / 255).astype(np.float32).tolist()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "La", "RGBa"])
def test_alpha_modes_composited_on_white(rgb, grey, mode, tmp_path):
    alpha = _alpha(rgb.shape)
    rgba = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    im = rgba.convert(mode)
    if mode == "La":   # Pillow's RGBA -> La drops the alpha: premultiply by hand
        la = np.dstack([(grey.astype(float) * alpha / 255).round(), alpha]).astype(np.uint8)
        im = Image.frombytes("La", rgba.size, la.tobytes())
    colour = grey[..., None].repeat(3, 2) if mode.startswith("L") else rgb
    if mode == "PA":
        colour = np.asarray(im.convert("RGBA"))[..., :3]
    expected = _composite(colour, alpha)
    out = _read(im, tmp_path / "a.png") if mode in ("RGBA", "LA") else np.asarray(to_pil(im)).astype(int)
    tol = 3 if mode in ("La", "RGBa") else 1   # premultiplied modes lose precision where alpha is small
    assert np.abs(out - expected).max() <= tol


def test_16_bit_grey_png_is_divided_by_65535(rgb, tmp_path):
    f = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
    f = np.clip(f + np.random.default_rng(0).normal(0, 0.002, f.shape), 0, 1)    # a real 16-bit picture, not 8 bits x 257
    g16 = (f * 65535).round().astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert open_image(tmp_path / "g16.png").mode == "I;16"
    out = np.asarray(read_image(tmp_path / "g16.png")).astype(int)
    assert np.abs(out[..., 0] - f * 255).max() <= 0.5 + 1e-6 and abs(out.mean() - f.mean() * 255) < 0.5
    for mode, dtype in (("I;16B", ">u2"), ("I;16L", "<u2"), ("I;16N", "=u2")):   # other byte orders, in memory and through TIFF
        im = Image.frombytes(mode, g16.shape[::-1], g16.astype(dtype).tobytes())
        assert np.array_equal(np.asarray(to_pil(im)).astype(int), out)
    Image.fromarray(g16).save(tmp_path / "g16t.png", transparency=int(g16[0, 0]))   # a tRNS grey value shows white
    clear = np.asarray(read_image(tmp_path / "g16t.png")).astype(int)
    hole = g16 == g16[0, 0]
    assert (clear[hole] == 255).all() and np.array_equal(clear[~hole], out[~hole])
    Image.frombytes("I;16B", g16.shape[::-1], g16.astype(">u2").tobytes()).save(tmp_path / "g16b.tif")
    assert np.array_equal(np.asarray(read_image(tmp_path / "g16b.tif")).astype(int), out)


def _pgm(path, values: np.ndarray, maxval: int) -> None:
    h, w = values.shape
    path.write_bytes(b"P5\n%d %d\n%d\n" % (w, h, maxval) + values.astype(">u2").tobytes())


def test_32_bit_integer_mode_by_the_range_its_file_declares(grey, tmp_path):
    # PGM of 16 and of 12 bits (Pillow opens both as mode 'I', scaled to 16 bits)
    _pgm(tmp_path / "g16.pgm", grey.astype(np.uint16) * 257, 65535)
    _pgm(tmp_path / "g12.pgm", (grey.astype(np.float64) / 255 * 4095).round().astype(np.uint16), 4095)
    for name in ("g16.pgm", "g12.pgm"):
        assert open_image(tmp_path / name).mode == "I"
        assert np.abs(np.asarray(read_image(tmp_path / name))[..., 0].astype(int) - grey).max() <= 1
    # a 32-bit or signed integer TIFF, and an 'I' image in memory, have no agreed range: refused
    import tifffile

    tifffile.imwrite(tmp_path / "u32.tif", grey.astype(np.uint32) * 1000)
    tifffile.imwrite(tmp_path / "s16.tif", grey.astype(np.int16))
    for name in ("u32.tif", "s16.tif"):
        assert open_image(tmp_path / name).mode == "I"
        with pytest.raises(ValueError, match=r"32-bit or signed integers \(PIL mode 'I'\), which have no agreed range"):
            read_image(tmp_path / name)
    with pytest.raises(ValueError, match="no agreed range"):
        to_pil(Image.fromarray(grey.astype(np.int32)))


def test_float_mode_in_0_1_taken_as_is_else_refused(grey, tmp_path):
    f = grey.astype(np.float32) / 255.0
    Image.fromarray(f).save(tmp_path / "f.tif")
    assert open_image(tmp_path / "f.tif").mode == "F"
    assert np.array_equal(np.asarray(read_image(tmp_path / "f.tif"))[..., 0], grey)
    Image.fromarray(f * 255).save(tmp_path / "f255.tif")
    with pytest.raises(ValueError, match=r"holds floats in \[4, 194\], but float images must lie in \[0, 1\]"):
        read_image(tmp_path / "f255.tif")
    Image.fromarray(f * 1.6).save(tmp_path / "f12.tif")          # a little beyond 1 is another range in a file, too
    with pytest.raises(ValueError, match=r"holds floats in \[0\.\d+, 1\.2\d*\], but float images must lie in \[0, 1\]"):
        read_image(tmp_path / "f12.tif")
    Image.fromarray(np.minimum(f + 1e-6, 1 + 1e-6)).save(tmp_path / "f1.tif")   # rounding beyond 1 is not
    assert np.abs(np.asarray(read_image(tmp_path / "f1.tif"))[..., 0].astype(int) - grey).max() <= 1
    bad = f.copy()
    bad[3, 4] = np.nan
    Image.fromarray(bad).save(tmp_path / "nan.tif")
    with pytest.raises(ValueError, match="NaN or infinite"):
        read_image(tmp_path / "nan.tif")


@pytest.mark.parametrize("mode,fmt,tol_max,tol_mean", [
    ("CMYK", "TIFF", 0, 0), ("CMYK", "JPEG", 40, 3.0), ("YCbCr", "TIFF", 3, 1.5), ("LAB", "TIFF", 5, 0.5), ("HSV", None, 3, 0.5)])
def test_colour_spaces(rgb, mode, fmt, tol_max, tol_mean, tmp_path):
    im = Image.fromarray(rgb).convert(mode)
    if fmt:
        out = _read(im, tmp_path / f"x.{fmt.lower()}", fmt)
        assert open_image(tmp_path / f"x.{fmt.lower()}").mode == mode
    else:
        out = np.asarray(to_pil(im)).astype(int)
    err = np.abs(out - rgb)
    assert err.max() <= tol_max and err.mean() <= tol_mean


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_rgb_png_reads_as_its_8_bit_equivalent(rgb, channels, tmp_path):
    low = np.random.default_rng(1).integers(0, 257, rgb.shape)
    rgb16 = (rgb.astype(np.int64) * 257 + low).clip(0, 65535).astype(np.uint16)   # real 16-bit values between the 8-bit ones
    bgr = rgb16[..., ::-1]
    if channels == 4:
        bgr = np.dstack([bgr, np.full(rgb.shape[:2], 65535, np.uint16)])
    cv2.imwrite(str(tmp_path / "c16.png"), bgr)
    out = np.asarray(read_image(tmp_path / "c16.png")).astype(int)
    assert np.abs(out - rgb16 / 257.0).max() <= 1.0


def test_16_bit_grey_png_predicted_like_the_8_bit_file(mobilenet, rgb, tmp_path):
    f = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
    Image.fromarray((f * 65535).round().astype(np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray((f * 255).round().astype(np.uint8)).save(tmp_path / "g8.png")
    x = torch.stack([mobilenet.preprocess(read_image(tmp_path / n)) for n in ("g16.png", "g8.png")])
    assert abs(float(x[0].mean()) - float(f.mean())) < 0.05          # not a near-white picture
    p = torch.softmax(mobilenet.predict(x), -1)
    assert int(p[0].argmax()) == int(p[1].argmax())
    assert float((p[0] - p[1]).abs().max()) < 0.01


def test_predict_command_on_a_16_bit_png(rgb, tmp_path, capsys):
    from modeledit.cli import main

    f = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
    Image.fromarray((f * 65535).round().astype(np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray((f * 255).round().astype(np.uint8)).save(tmp_path / "g8.png")
    assert main(["predict", "mobilenet_v2", str(tmp_path / "g16.png"), str(tmp_path / "g8.png"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    a, b = out[0]["top5"][0], out[1]["top5"][0]
    assert a["label"] == b["label"] and abs(a["prob"] - b["prob"]) < 0.01 and a["prob"] > 0.1


def test_exif_orientation_is_honoured(rgb, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6   # "rotate 90 clockwise to display"
    Image.fromarray(rgb).save(tmp_path / "turned.png", exif=exif)
    out = np.asarray(read_image(tmp_path / "turned.png"))
    assert np.array_equal(out, np.rot90(rgb, -1))
    assert np.array_equal(to_tensor01(tmp_path / "turned.png"), torch.from_numpy(np.rot90(rgb, -1) / np.float32(255)).permute(2, 0, 1))


def test_arrays_by_dtype(rgb):
    expected = np.asarray(to_pil(rgb)).astype(int)
    assert np.array_equal(expected, rgb)
    assert np.array_equal(np.asarray(to_pil(rgb.astype(np.uint16) * 257)), rgb)
    assert np.array_equal(np.asarray(to_pil(rgb.astype(np.int64))), rgb)
    assert np.array_equal(np.asarray(to_pil(rgb / 255.0)), rgb)
    overshoot = rgb / 255.0 * 1.1 - 0.05                          # a resampling overshoot in memory is clipped
    assert np.array_equal(np.asarray(to_pil(overshoot)), (np.clip(overshoot, 0, 1) * 255).round().astype(np.uint8))
    assert np.array_equal(np.asarray(to_pil(torch.from_numpy(rgb / 255.0).permute(2, 0, 1))), rgb)
    assert np.array_equal(np.asarray(to_pil(rgb[..., 0] > 127))[..., 0], np.where(rgb[..., 0] > 127, 255, 0))
    with pytest.raises(ValueError, match=r"floats in \[0, 231\], but float images must lie in \[0, 1\]"):
        to_pil(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="outside 0-255; pass uint16"):
        to_pil(rgb.astype(np.int32) * 4)
    normalised = (torch.from_numpy(rgb / 255.0).permute(2, 0, 1) - 0.45) / 0.225
    with pytest.raises(ValueError, match="undo any normalisation"):
        to_pil(normalised)


def test_unreadable_files_refused_in_one_sentence(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "rgbf.tif", np.random.default_rng(0).random((8, 8, 3)).astype(np.float32), photometric="rgb")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    for name in ("rgbf.tif", "bad.png"):
        with pytest.raises(ValueError, match=r"cannot be read .*save it as PNG") as e:
            read_image(tmp_path / name)
        assert "\n" not in str(e.value)


def test_every_reader_sees_the_16_bit_picture(rgb, tmp_path, capsys):
    """The counterfactual generator (its written original and mask) and image folders read a 16-bit PNG as
    its 8-bit picture (the generator wrote an all-white original before)."""
    from modeledit.cli import main
    from modeledit.image_folder import ImageFolder

    grey = np.asarray(Image.fromarray(rgb).convert("L"))[:96, :96]
    (tmp_path / "imgs").mkdir()
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "imgs" / "a.png")
    (tmp_path / "masks" / "a").mkdir(parents=True)
    mask = np.zeros(grey.shape, np.uint16)
    mask[24:72, 24:72] = 65535                                    # a 16-bit mask file, too
    Image.fromarray(mask).save(tmp_path / "masks" / "a" / "object.png")
    assert main(["counterfactuals", "--images", str(tmp_path / "imgs"), "--concepts", "object", "--styles", "snow",
                 "--segmenter", "files", "--segmenter-arg", f"root={tmp_path / 'masks'}", "--stylizer", "texture",
                 "--style-images", "0", "--out", str(tmp_path / "cf")]) == 0
    capsys.readouterr()
    original = np.asarray(read_image(tmp_path / "cf" / "originals" / "a.png"))[..., 0].astype(int)
    assert np.abs(original - grey).max() <= 1
    written = np.asarray(read_image(next((tmp_path / "cf" / "masks").glob("a__*.png"))))[..., 0]
    assert np.array_equal(written > 0, mask > 0)
    x = ImageFolder(tmp_path / "imgs", size=None).load(0)
    assert torch.allclose(x[0], torch.from_numpy(grey / np.float32(255)), atol=1 / 255)


def test_tensors_at_the_api_are_checked_once(mobilenet, rgb):
    """lm.predict / predict_labels and restyle took 0-255, NaN and uint8 tensors and returned plausible classes and
    pictures (check_batch01); float64 is cast, a meta tensor (shape checks) passes, an empty batch predicts nothing."""
    import torch

    from modeledit import restyle
    from modeledit.images import check_batch01

    x = mobilenet.preprocess(rgb)[None]
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    for bad, msg in ((x * 255, r"hold values in \[0.00, 2\d\d"), (nan, "NaN or infinite"), ((x * 255).to(torch.uint8), "uint8 tensors"),
                     (x[:, :1], r"shape \(1, 1, ")):
        with pytest.raises(ValueError, match=msg):
            mobilenet.predict_labels(bad)
        with pytest.raises(ValueError, match=msg):
            restyle(bad, torch.ones(1, *bad.shape[-2:], dtype=torch.bool), "snow")
    assert mobilenet.predict_labels(x.double()).tolist() == mobilenet.predict_labels(x).tolist()
    assert mobilenet.predict_labels(x[:0]).shape == (0,)
    assert check_batch01(torch.empty(2, 3, 4, 4, device="meta"), "images").device.type == "meta"


def test_save_image_refuses_what_it_would_clip_or_cannot_write(tmp_path):
    """0-255 floats, a normalised tensor or NaN were clamped into a white/black PNG; an unknown suffix failed inside
    PIL (KeyError) after the work; a batch failed with a permute error. Rounding just above 1 is still clipped."""
    import torch

    from modeledit.images import save_image

    x = torch.rand(3, 16, 16)
    for bad, match in ((x * 255, "must lie in"), (x - 0.5, "must lie in"), (x * float("nan"), "NaN"), (x[None], "one by one")):
        with pytest.raises(ValueError, match=match):
            save_image(bad, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="not an image format"):
        save_image(x, tmp_path / "a.txt")
    assert not list(tmp_path.iterdir())
    save_image(x * (1 + 1e-5), tmp_path / "ok.jpg")           # rounding above 1 is clipped
    save_image(x, tmp_path / "ok.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "ok.png")), (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def test_exemplar_tensors_are_checked_not_clamped(mobilenet):
    """Exemplars.from_images clamped tensors to [0, 1]: a uint8 or 0-255 float exemplar became a 92% white picture and
    the rewrite went ahead on it."""
    import torch

    from modeledit import Exemplars

    x = torch.rand(3, 64, 64)
    for bad in ((x * 255).to(torch.uint8), x * 255, (x - 0.45) / 0.22):
        with pytest.raises(ValueError, match="original 0"):
            Exemplars.from_images(mobilenet, [bad], [x])
    assert Exemplars.from_images(mobilenet, [x], [x.flip(-1)]).x.shape == (1, 3, 224, 224)
