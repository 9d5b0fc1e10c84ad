"""Run a quantized ONNX graph as a torch module: int8 weights dequantized to float, activation
quantize/dequantize pairs dropped, every remaining node executed by a registered torch op.

This is how the Magenta networks shipped as int8 ONNX run batched, at any image size and on the
classifier's device. Only the operators those graphs use are registered; anything else raises a
clear error naming the operator.

Example:
    >>> net = OnnxTorchModule.from_file("arbitrary_transform.onnx")
    >>> out = net(content_nhwc, bottleneck)            # same inputs as the ONNX graph, any H, W, N
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, *, attrs: dict[str, Any]) -> torch.Tensor:
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise ValueError(f"Conv auto_pad={attrs['auto_pad']!r} is not supported by the torch port")
    t, l, btm, r = pads
    if t == btm and l == r:
        return F.conv2d(x, w, b, stride=attrs.get("strides", [1, 1]), padding=(t, l),
                        dilation=attrs.get("dilations", [1, 1]), groups=attrs.get("group", 1))
    x = F.pad(x, (l, r, t, btm))
    return F.conv2d(x, w, b, stride=attrs.get("strides", [1, 1]), dilation=attrs.get("dilations", [1, 1]), groups=attrs.get("group", 1))


def _pad(x: torch.Tensor, pads: torch.Tensor, value: torch.Tensor | None = None, *, attrs: dict[str, Any]) -> torch.Tensor:
    p = [int(v) for v in pads.tolist()]
    nd = x.dim()
    begin, end = p[:nd], p[nd:]
    axes = [a for a in range(nd) if begin[a] or end[a]]
    if not axes:
        return x
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    order = [a for a in range(nd) if a not in axes] + axes  # padded axes last, as F.pad expects
    inv = list(np.argsort(order))
    y = x.permute(order)
    torch_pad: list[int] = []
    for a in reversed(axes):
        torch_pad += [begin[a], end[a]]
    if mode == "constant":
        y = F.pad(y, torch_pad, value=float(value) if value is not None else 0.0)
    else:
        shape = y.shape
        lead = int(np.prod(shape[: nd - len(axes)])) if nd > len(axes) else 1
        y = F.pad(y.reshape(lead, 1, *shape[nd - len(axes):]), torch_pad, mode=mode)
        y = y.reshape(*shape[: nd - len(axes)], *y.shape[2:])
    return y.permute(inv)


def _reshape(x: torch.Tensor, shape: torch.Tensor, *, attrs: dict[str, Any]) -> torch.Tensor:
    s = [int(v) for v in shape.tolist()]
    if s and s[0] == 1 and x.numel() != int(np.prod(s)):  # graphs exported at batch 1: keep the batch
        s[0] = -1
    return x.reshape(s)


def _resize(x: torch.Tensor, roi: Any = None, scales: torch.Tensor | None = None, sizes: torch.Tensor | None = None, *, attrs: dict[str, Any]) -> torch.Tensor:
    mode = attrs.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "nearest":
        raise ValueError(f"Resize mode {mode!r} is not supported by the torch port")
    if sizes is not None and sizes.numel():
        return F.interpolate(x, size=[int(v) for v in sizes.tolist()[2:]], mode="nearest")
    sc = [float(v) for v in scales.tolist()]
    if sc[0] != 1.0 or sc[1] != 1.0:
        raise ValueError("Resize over batch or channels is not supported by the torch port")
    if sc[2:] == [1.0, 1.0]:
        return x
    return F.interpolate(x, scale_factor=sc[2:], mode="nearest")


def _clip(x: torch.Tensor, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None, *, attrs: dict[str, Any]) -> torch.Tensor:
    lo_v = float(lo) if lo is not None else attrs.get("min")
    hi_v = float(hi) if hi is not None else attrs.get("max")
    return x.clamp(lo_v, hi_v)


# registry of supported ONNX operators -> torch implementations
OPS: dict[str, Callable[..., torch.Tensor]] = {
    "Conv": _conv,
    "Pad": _pad,
    "Reshape": _reshape,
    "Resize": _resize,
    "Clip": _clip,
    "Transpose": lambda x, *, attrs: x.permute(list(attrs["perm"])),
    "Add": lambda a, b, *, attrs: a + b,
    "Sub": lambda a, b, *, attrs: a - b,
    "Mul": lambda a, b, *, attrs: a * b,
    "Sqrt": lambda x, *, attrs: torch.sqrt(x),
    "Reciprocal": lambda x, *, attrs: torch.reciprocal(x),
    "Relu": lambda x, *, attrs: torch.relu(x),
    "Sigmoid": lambda x, *, attrs: torch.sigmoid(x),
    "GlobalAveragePool": lambda x, *, attrs: x.mean(dim=(2, 3), keepdim=True),
}


def _dequantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int) -> np.ndarray:
    z = np.zeros_like(scale) if zero is None else zero.astype(np.float32)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, z = scale.reshape(shape), z.reshape(shape)
    return ((x.astype(np.float32) - z) * scale).astype(np.float32)


class OnnxTorchModule(nn.Module):
    """A dequantized ONNX graph executed with torch ops (see the module docstring)."""

    def __init__(self, graph: Any) -> None:
        super().__init__()
        from onnx import helper, numpy_helper

        consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        alias: dict[str, str] = {}
        steps: list[tuple[str, list[str | None], list[str], dict[str, Any]]] = []

        def resolve(name: str) -> str:
            while name in alias:
                name = alias[name]
            return name

        for node in graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            ins = [resolve(i) if i else "" for i in node.input]
            if node.op_type == "Constant":
                consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
            elif node.op_type in ("QuantizeLinear", "DequantizeLinear") and ins[0] not in consts:
                alias[node.output[0]] = ins[0]  # activation (de)quantization: identity in float
            elif node.op_type == "DequantizeLinear":
                zero = consts.get(ins[2]) if len(ins) > 2 and ins[2] else None
                consts[node.output[0]] = _dequantize(consts[ins[0]], consts[ins[1]], zero, int(attrs.get("axis", 1)))
            elif node.op_type == "QuantizeLinear":
                raise ValueError("QuantizeLinear on a constant is not supported by the torch port")
            elif node.op_type not in OPS:
                raise ValueError(f"ONNX operator {node.op_type!r} is not supported by the torch port; register it in OPS")
            else:
                steps.append((node.op_type, [i or None for i in ins], list(node.output), attrs))

        used = {i for _, ins, _, _ in steps for i in ins if i}
        self._const_names: dict[str, str] = {}
        for k, name in enumerate(sorted(n for n in used if n in consts)):
            arr = consts[name]
            t = torch.from_numpy(np.array(arr, dtype=np.float32 if arr.dtype.kind == "f" else arr.dtype, copy=True))
            self.register_buffer(f"c{k}", t)
            self._const_names[name] = f"c{k}"
        self._steps = steps
        self.input_names = [i.name for i in graph.input if i.name not in consts]
        self.output_names = [resolve(o.name) for o in graph.output]

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "OnnxTorchModule":
        """Load and port an ``.onnx`` file."""
        import onnx

        return cls(onnx.load(str(path)).graph)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise TypeError(f"expected {len(self.input_names)} inputs ({self.input_names}), got {len(inputs)}")
        env: dict[str, torch.Tensor] = dict(zip(self.input_names, inputs))
        for name, buf in self._const_names.items():
            env[name] = getattr(self, buf)
        for op, ins, outs, attrs in self._steps:
            env[outs[0]] = OPS[op](*[env[i] if i else None for i in ins], attrs=attrs)
        out = tuple(env[o] for o in self.output_names)
        return out[0] if len(out) == 1 else out
