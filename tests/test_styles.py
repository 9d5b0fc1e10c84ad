"""Stylizers and the style bank on real inputs: the Magenta networks restyle a scikit-image photo only
inside a mask, the torch port agrees with onnxruntime, the bank has the paper's styles."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeledit.images import save_image, to_tensor01
from modeledit.styles import apply_in_mask, available_stylizers, get_stylizer
from modeledit.styles.bank import available_styles, folder_style, get_style

PAPER_STYLES = ("black and white", "floral", "fall colors", "furry", "graffiti", "gravel", "snow", "wooden")


@pytest.fixture(scope="module")
def magenta():
    return get_stylizer("magenta")


@pytest.fixture(scope="module")
def astronaut128(photos):
    return F.interpolate(to_tensor01(photos["astronaut"])[None], size=(128, 128), mode="bilinear", antialias=True)


def test_registry():
    assert {"magenta", "magenta-onnx", "tfhub", "texture"} <= set(available_stylizers())
    with pytest.raises(KeyError, match="magenta"):
        get_stylizer("magneta")


def test_magenta_restyles_only_inside_the_mask(magenta, astronaut128):
    x = astronaut128.repeat(2, 1, 1, 1)
    mask = torch.zeros(2, 128, 128, dtype=torch.bool)
    mask[0, 20:90, 30:100] = True
    mask[1, 64:, :] = True
    y = magenta.stylize(x, get_style("snow").images[0])
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    out = apply_in_mask(x, y, mask)
    outside = ~mask[:, None].expand_as(x)
    assert torch.equal(out[outside], x[outside])  # bit-identical outside
    inside = mask[:, None].expand_as(x)
    assert (out[inside] - x[inside]).abs().mean() > 0.1  # visibly restyled inside
    # the blend: 0.8 stylized + 0.2 original
    assert torch.allclose(out[inside], (0.2 * x + 0.8 * y)[inside], atol=1e-6)
    # snow is bright: the restyled region gets brighter
    assert out[inside].mean() > x[inside].mean() + 0.1


def test_magenta_small_images_batches_and_styles_differ(magenta, astronaut128):
    x64 = F.interpolate(astronaut128, size=(64, 48), mode="bilinear", antialias=True)
    y = magenta.stylize(x64, get_style("wooden").images[0])
    assert y.shape == (1, 3, 64, 48)
    batch = magenta.stylize(torch.cat([astronaut128, astronaut128.flip(3)]), get_style("wooden").images[0])
    single = magenta.stylize(astronaut128, get_style("wooden").images[0])
    assert torch.allclose(batch[:1], single, atol=1e-4)
    other = magenta.stylize(astronaut128, get_style("graffiti").images[0])
    assert (other - single).abs().mean() > 0.05


def test_torch_port_matches_onnxruntime(magenta, photos):
    import onnxruntime  # noqa: F401

    ref = get_stylizer("magenta-onnx")
    style = get_style("floral").images[1]
    a, b = magenta.style_vector(style).flatten().numpy(), ref.style_vector(style).flatten()
    assert np.corrcoef(a, b)[0, 1] > 0.999
    x = F.interpolate(to_tensor01(photos["chelsea"])[None], size=(384, 384), mode="bilinear", antialias=True)
    y_t, y_o = magenta.stylize(x, style), ref.stylize(x, style)
    assert np.corrcoef(y_t.flatten().numpy(), y_o.flatten().numpy())[0, 1] > 0.98
    assert (y_t - y_o).abs().mean() < 0.04


def test_apply_in_mask_errors(astronaut128):
    with pytest.raises(ValueError, match="do not fit"):
        apply_in_mask(astronaut128, astronaut128, torch.ones(1, 64, 64, dtype=torch.bool))
    with pytest.raises(ValueError, match="blend"):
        apply_in_mask(astronaut128, astronaut128, torch.ones(1, 128, 128), blend=1.5)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        apply_in_mask(astronaut128[:, :1], astronaut128[:, :1], torch.ones(1, 128, 128))


def test_stylizers_reject_bad_inputs(magenta, astronaut128):
    style = get_style("snow").images[0]
    with pytest.raises(ValueError, match="RGB"):
        magenta.stylize(astronaut128[:, :1], style)
    with pytest.raises(TypeError, match="float"):
        magenta.stylize((astronaut128 * 255).to(torch.uint8), style)
    with pytest.raises(ValueError, match="style image"):
        magenta.stylize(astronaut128, torch.rand(4, 32, 32))


def test_texture_keeps_the_shading(astronaut128):
    x = astronaut128
    y = get_stylizer("texture").stylize(x, get_style("wooden").images[0])
    assert y.shape == x.shape
    lum = lambda t: (t * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1).flatten()  # noqa: E731
    flat = get_stylizer("texture", shading_strength=0.0).stylize(x, get_style("wooden").images[0])
    corr = lambda a, b: float(np.corrcoef(lum(a).numpy(), lum(b).numpy())[0, 1])  # noqa: E731
    assert corr(y, x) > 0.5 > corr(flat, x)


def test_bank_has_the_papers_styles():
    from modeledit.styles.bank import BUILTIN, TRANSFORMS

    names = available_styles()
    assert set(PAPER_STYLES) <= set(names) and len(names) >= 10
    for name in sorted(set(BUILTIN) | set(TRANSFORMS)):  # folders other tests registered are not the bank's
        s = get_style(name)
        if name == "black and white":
            assert s.kind == "transform"
            continue
        assert s.kind == "images" and len(s.images) >= 3
        for img in s.images:
            assert img.shape == (3, 256, 256) and 0 <= float(img.min()) and float(img.max()) <= 1
            assert float(img.std()) > 0.02  # a texture, not a flat colour
        assert not torch.equal(s.images[0], s.images[1])  # held-out images differ from the exemplar's
    assert torch.equal(get_style("snow").images[2], get_style("snow").images[2])  # deterministic
    with pytest.raises(KeyError, match="snow"):
        get_style("snwo")


def test_black_and_white_is_a_transform(astronaut128):
    s = get_style("Black and White")
    g = s.apply_transform(astronaut128)
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])
    with pytest.raises(TypeError, match="image style"):
        get_style("snow").apply_transform(astronaut128)


def test_a_folder_of_images_is_a_style_named_by_its_path(tmp_path, photos):
    """No registry to fill in each process: the style's name is its folder, so it travels in configs (Ray workers)."""
    folder = tmp_path / "coffee_style"
    folder.mkdir()
    save_image(photos["coffee"], folder / "a.png")
    save_image(photos["chelsea"], folder / "b.jpg")
    s = get_style(str(folder))
    assert s.kind == "images" and len(s.images) == 2 and s.images[0].shape[0] == 3 and s.name == str(folder)
    assert [t.shape for t in folder_style(folder).images] == [t.shape for t in s.images]
    assert str(folder) not in available_styles()          # the bank lists its own styles only
    (tmp_path / "snow").mkdir()
    assert get_style("snow").sources == get_style("SNOW").sources and get_style("snow").sources[0] != str(tmp_path / "snow")
    (folder / "c.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="c.png"):
        get_style(str(folder))
    with pytest.raises(FileNotFoundError):
        folder_style(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no images"):
        folder_style(tmp_path / "snow")
    with pytest.raises(KeyError, match="folder of style images"):
        get_style(str(tmp_path / "missing"))


def test_tensorflow_is_not_imported_by_the_other_backends():
    code = ("import sys; from modeledit.styles import get_stylizer, get_style; "
            "from modeledit import counterfactuals; get_style('snow'); get_stylizer('texture'); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tfhub_loads_a_savedmodel(tmp_path, astronaut128):
    import torchvision.models  # noqa: F401 - before TensorFlow, as the tfhub backend does (see styles/tfhub.py)

    try:
        import tensorflow as tf
    except ImportError:
        with pytest.raises(ImportError, match=r"modeledit\[tfhub\]"):
            get_stylizer("tfhub", handle=str(tmp_path))
        pytest.skip("tensorflow is not installed (pip install 'modeledit[tfhub]'); checked the install message instead")

    class MeanStyle(tf.Module):
        """Same signature as the Magenta hub module: (content NHWC, style 1x256x256x3) -> [stylized]."""

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, 256, 256, 3], tf.float32)])
        def __call__(self, content, style):
            return [0.5 * content + 0.5 * tf.reduce_mean(style, axis=[1, 2], keepdims=True)]

    tf.saved_model.save(MeanStyle(), str(tmp_path / "sm"))
    st = get_stylizer("tfhub", handle=str(tmp_path / "sm"))
    style = get_style("snow").images[0]
    y = st.stylize(astronaut128, style)
    expected = 0.5 * astronaut128 + 0.5 * style.mean(dim=(1, 2)).view(1, 3, 1, 1)
    assert torch.allclose(y, expected, atol=2e-3)
    with pytest.raises(FileNotFoundError, match="SavedModel"):
        get_stylizer("tfhub", handle=str(tmp_path))
    # a fresh process that stylizes with tfhub first and loads a torchvision model after: it ended in a segmentation
    # fault (TensorFlow imported before torchvision.models)
    code = (f"from modeledit.styles import get_stylizer; get_stylizer('tfhub', handle={str(tmp_path / 'sm')!r}); "
            "import modeledit; print(modeledit.load_model('mobilenet_v2').name)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip().endswith("mobilenet_v2"), res.stderr[-2000:]


def test_tfhub_url_imports_tensorflow_hub_and_asks_for_the_network(monkeypatch):
    """A hub URL goes through tensorflow_hub, which imports pkg_resources (gone from setuptools 82: the extra pins
    setuptools below it); offline, the refusal names the way out, not an install."""
    import torchvision.models  # noqa: F401 - before TensorFlow, as the tfhub backend does

    pytest.importorskip("tensorflow")
    monkeypatch.setenv("MODELEDIT_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="MODELEDIT_OFFLINE is set; download it elsewhere"):
        get_stylizer("tfhub", handle="https://tfhub.dev/google/magenta/arbitrary-image-stylization-v1-256/2")
