"""The paper's exact stylizer: ``magenta/arbitrary-image-stylization-v1-256/2`` through TensorFlow Hub.

Any local SavedModel with the same signature works too (``module(content NHWC [0,1], style
1x256x256x3 [0,1]) -> [stylized NHWC]``). TensorFlow is imported only when this backend is built;
install it with ``pip install 'modeledit[tfhub]'``.

Example:
    >>> st = get_stylizer("tfhub")                                   # downloads through tensorflow_hub
    >>> st = get_stylizer("tfhub", handle="/models/arbitrary-image-stylization-v1-256_2")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from modeledit.styles.base import check_content, check_style

TFHUB_HANDLE = "https://tfhub.dev/google/magenta/arbitrary-image-stylization-v1-256/2"
STYLE_SIZE = 256


class TFHubStylizer:
    """Stylize with a TF Hub module or a local SavedModel of the Magenta signature (CPU, batched)."""

    name = "tfhub"

    def __init__(self, handle: str = TFHUB_HANDLE, batch_size: int = 8) -> None:
        from modeledit.deps import optional_import

        # torchvision's models before TensorFlow: with TensorFlow (2.x, this stack) imported first, a later
        # `import torchvision.models` (any model this library loads) ends the process with a segmentation fault
        import torchvision.models  # noqa: F401

        self.tf = optional_import("tensorflow", "tfhub")
        self.handle = str(handle)
        self.batch_size = int(batch_size)
        if Path(self.handle).exists():
            if not (Path(self.handle) / "saved_model.pb").is_file():
                raise FileNotFoundError(f"{self.handle!r} is not a SavedModel folder (no saved_model.pb)")
            self.module: Any = self.tf.saved_model.load(self.handle)
        elif "://" in self.handle:
            hub = optional_import("tensorflow_hub", "tfhub")
            from modeledit.deps import require_network

            host = self.handle.split("://", 1)[1].split("/", 1)[0]
            require_network(host, f"TF Hub module {self.handle}", "download it elsewhere and pass the SavedModel folder as handle=")
            self.module = hub.load(self.handle)
        else:
            raise FileNotFoundError(f"TF Hub handle {self.handle!r} is neither a URL nor an existing SavedModel folder")

    @torch.no_grad()
    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        check_content(content)
        check_style(style)
        tf = self.tf
        s = F.interpolate(style[None].float().cpu().clamp(0, 1), size=(STYLE_SIZE, STYLE_SIZE), mode="bilinear",
                          align_corners=False, antialias=True)
        s_tf = tf.constant(s.permute(0, 2, 3, 1).numpy())
        outs = []
        for chunk in content.float().cpu().clamp(0, 1).split(self.batch_size):
            y = self.module(tf.constant(chunk.permute(0, 2, 3, 1).contiguous().numpy()), s_tf)
            y = y[0] if isinstance(y, (list, tuple)) else y
            y = torch.from_numpy(y.numpy()).permute(0, 3, 1, 2)
            if y.shape[-2:] != chunk.shape[-2:]:
                y = F.interpolate(y, size=tuple(chunk.shape[-2:]), mode="bilinear", align_corners=False)
            outs.append(y)
        return torch.cat(outs).clamp(0, 1).to(content.device, content.dtype)
